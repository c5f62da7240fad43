"""Self-healing: Triton killed with -9 while a model runs comes back (the fixture's watchdog, as the
stack's supervisor does) and the serving service reloads the model without any user action; a serving
process killed with -9 leaves statuses right, and its successor finishes what it left half-way."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import grpc
from customlabels.serving.v1 import serving_service_pb2 as sv
from customlabels.serving.v1 import serving_service_pb2_grpc as sv_grpc
from customlabels.training.v1 import training_service_pb2 as tr

from scripts.embedded import ServiceProcess, free_port
from scripts.inprocess import LocalServices
from services.common import clients
from services.common.errors import aws_name_of
from tests.serving.conftest import Trained, describe, ensure_stopped, wait_status


def detect(stub: sv_grpc.ServingServiceStub, arn: str, data: bytes) -> list[sv.CustomLabel]:
    request = sv.DetectCustomLabelsRequest(
        project_version_arn=arn, image=sv.Image(bytes=data), min_confidence=0
    )
    return list(stub.DetectCustomLabels(request, timeout=30).custom_labels)


def test_a_killed_triton_comes_back_with_its_models(
    cloud: LocalServices, running_classifier: Trained, triton_server: object
) -> None:
    assert cloud.serving is not None
    arn, image = running_classifier.version_arn, running_classifier.images[0].data
    before = detect(cloud.serving, arn, image)
    triton = triton_server.process  # type: ignore[attr-defined]
    old_pid = triton.pid
    os.kill(old_pid, signal.SIGKILL)

    refusals: set[str | None] = set()
    deadline = time.monotonic() + 120
    while True:
        try:
            after = detect(cloud.serving, arn, image)
            break
        except grpc.RpcError as exc:
            # While Triton is away the answer is the retryable ThrottlingException, nothing else.
            refusals.add(aws_name_of(exc))
        assert time.monotonic() < deadline, f"no answer 120 s after the kill; refusals {refusals}"
        time.sleep(0.2)
    assert triton.pid != old_pid
    assert refusals <= {"ThrottlingException"}
    assert [(c.name, round(c.confidence, 3)) for c in after] == [
        (c.name, round(c.confidence, 3)) for c in before
    ]
    assert describe(cloud, arn).status == tr.PROJECT_VERSION_STATUS_RUNNING


def _serving_process(cloud: LocalServices, log: Path, addr: str) -> ServiceProcess:
    env = {**cloud.env, "CUSTOMLABELS_SERVING_RECONCILE_S": "0.5", "CUSTOMLABELS_LOG_LEVEL": "WARNING"}
    process = ServiceProcess("serving", "services.serving", env, log, addr=addr, die_with_parent=True)
    process.start()
    process.wait_ready(60)
    return process


def test_a_killed_serving_process_leaves_statuses_right_and_its_successor_finishes_its_start(
    cloud: LocalServices, classifier: Trained, tmp_path: Path
) -> None:
    arn, image = classifier.version_arn, classifier.images[0].data
    ensure_stopped(cloud, arn)
    addr = f"127.0.0.1:{free_port()}"
    process = _serving_process(cloud, tmp_path / "serving-1.log", addr)
    channel = clients.channel(addr)
    try:
        stub = sv_grpc.ServingServiceStub(channel)
        # Killed right after it answered STARTING, with the load still under way.
        status = stub.StartProjectVersion(
            sv.StartProjectVersionRequest(project_version_arn=arn, min_inference_units=1)
        ).status
        assert status == tr.PROJECT_VERSION_STATUS_STARTING
        os.kill(process.pid or 0, signal.SIGKILL)
        assert describe(cloud, arn).status in (
            tr.PROJECT_VERSION_STATUS_STARTING,
            tr.PROJECT_VERSION_STATUS_RUNNING,
        )

        # The successor (same address, as a restarted pod) finishes the start in its first round.
        process = _serving_process(cloud, tmp_path / "serving-2.log", addr)
        desc = wait_status(
            cloud, arn, {tr.PROJECT_VERSION_STATUS_RUNNING, tr.PROJECT_VERSION_STATUS_FAILED}, 120
        )
        assert desc.status == tr.PROJECT_VERSION_STATUS_RUNNING, desc.status_message
        first = detect(stub, arn, image)
        assert first

        # Killed while the model runs: the status stays RUNNING and the model keeps answering.
        os.kill(process.pid or 0, signal.SIGKILL)
        assert describe(cloud, arn).status == tr.PROJECT_VERSION_STATUS_RUNNING
        assert cloud.serving is not None
        assert [c.name for c in detect(cloud.serving, arn, image)] == [c.name for c in first]
        process = _serving_process(cloud, tmp_path / "serving-3.log", addr)
        assert [c.name for c in detect(stub, arn, image)] == [c.name for c in first]
        assert describe(cloud, arn).status == tr.PROJECT_VERSION_STATUS_RUNNING
    finally:
        channel.close()
        process.stop()
        ensure_stopped(cloud, arn)
