"""`customlabels wait-training`: follows a training run to its end with a progress bar.

    customlabels wait-training --project-arn ARN --version-name v1

Polls DescribeProjectVersions (every --interval seconds) and draws phase, percent and ETA on
stderr; prints the final ProjectVersionDescription as AWS JSON on stdout. Exit status: 0 when the
version is TRAINING_COMPLETED (or COPYING_COMPLETED), 1 when it failed (its StatusMessage goes to
stderr), otherwise the CLI's usual 2 / 254 / 255 / 130.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any

from customlabels.training.v1 import training_service_pb2 as pb
from customlabels.training.v1 import training_service_pb2_grpc as pb_grpc

from services.cli.operations import SERVICES, Operation
from services.common import awsjson, clients
from services.common.auth import GrpcSecurity

_TRAINING = next(service for service in SERVICES if service.key == "training")
# The command runs DescribeProjectVersions; its errors are reported as that operation's.
OPERATION = Operation(_TRAINING, _TRAINING.descriptor.methods_by_name["DescribeProjectVersions"])
COMMAND = "wait-training"
EXIT_FAILED = 1
DONE = {pb.PROJECT_VERSION_STATUS_TRAINING_COMPLETED, pb.PROJECT_VERSION_STATUS_COPYING_COMPLETED}
FAILED = {pb.PROJECT_VERSION_STATUS_TRAINING_FAILED, pb.PROJECT_VERSION_STATUS_COPYING_FAILED}


@dataclass(frozen=True)
class Plan:
    """A checked wait-training command."""

    project_arn: str
    version_name: str
    interval: float
    quiet: bool


def add_parser(
    subparsers: Any, docs: Mapping[str, str], global_options: Callable[[argparse.ArgumentParser], None]
) -> argparse.ArgumentParser:
    """Adds the wait-training command; returns its parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        COMMAND,
        description="Waits until a model version has trained (or failed), showing its progress.",
        epilog="Exit status: 0 trained, 1 failed, 2 bad arguments, 254 service error, 255 no answer.",
        allow_abbrev=False,
    )
    parser.add_argument("--project-arn", required=True, help="the project of the version")
    parser.add_argument("--version-name", required=True, help="the version to wait for")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between polls (default 2)")
    parser.add_argument("--quiet", action="store_true", help="no progress output on stderr")
    global_options(parser)
    return parser


def prepare(args: argparse.Namespace) -> Plan:
    """Reads the command's arguments."""
    return Plan(args.project_arn, args.version_name, max(0.2, args.interval), args.quiet)


def bar(desc: pb.ProjectVersionDescription, width: int = 30) -> str:
    """One progress line: status, phase, a bar, percent and ETA."""
    p = desc.training_progress
    percent = p.percent if desc.HasField("training_progress") else 0.0
    filled = int(width * percent / 100)
    phase = pb.TrainingPhase.Name(p.phase).removeprefix("TRAINING_PHASE_").lower() if p.phase else "queued"
    eta = f" ETA {p.eta_seconds // 60}:{p.eta_seconds % 60:02d}" if p.HasField("eta_seconds") else ""
    status = pb.ProjectVersionStatus.Name(desc.status).removeprefix("PROJECT_VERSION_STATUS_")
    return f"{status} {phase:<10} [{'#' * filled}{'.' * (width - filled)}] {percent:5.1f}%{eta}"


def run(
    plan: Plan,
    addr: str,
    timeout: float,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    security: GrpcSecurity | None = None,
) -> int:
    """Polls until the version settles; returns the exit status (RpcError propagates to the CLI)."""
    out, err = out or sys.stdout, err or sys.stderr
    tty = err.isatty()
    channel = clients.channel(addr, security)
    stub = pb_grpc.TrainingServiceStub(channel)
    try:
        while True:
            response = stub.DescribeProjectVersions(
                pb.DescribeProjectVersionsRequest(
                    project_arn=plan.project_arn, version_names=[plan.version_name]
                ),
                timeout=timeout,
            )
            if not response.project_version_descriptions:
                print(f"no version named {plan.version_name!r} in {plan.project_arn}", file=err)
                return EXIT_FAILED
            desc = response.project_version_descriptions[0]
            if not plan.quiet:
                print(("\r" if tty else "") + bar(desc), end="" if tty else "\n", file=err, flush=True)
            if desc.status in DONE or desc.status in FAILED:
                if not plan.quiet and tty:
                    print(file=err)
                print(json.dumps(awsjson.to_aws(desc), indent=4, ensure_ascii=False), file=out)
                if desc.status in FAILED:
                    print(f"training failed: {desc.status_message}", file=err)
                    return EXIT_FAILED
                return 0
            time.sleep(plan.interval)
    finally:
        channel.close()
