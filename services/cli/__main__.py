"""`customlabels`: the command-line client, one command per RPC, in the style of `aws rekognition`.

    customlabels create-project --project-name shelves --tags team=vision env=prod
    customlabels describe-projects --project-names shelves --max-results 5

The response is printed as AWS JSON (PascalCase members, timestamps as epoch seconds); failures
print the AWS CLI's `An error occurred (<Exception>) when calling the <Operation> operation: ...`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message

from services.cli import endpoints, protodocs, upload, wait
from services.cli.arguments import ArgumentError, add_flags, parse_json, request_json
from services.cli.operations import SERVICES, Operation, operations
from services.common import awsjson, clients, errors
from services.common.auth import GrpcSecurity
from services.common.config import ConfigError

EXIT_USAGE = 2  # bad arguments, as argparse exits
EXIT_SERVICE_ERROR = 254  # the service answered with an error (the AWS CLI's status)
EXIT_CONNECTION = 255  # no answer at all: unreachable or timed out (the AWS CLI's status)
EXIT_INTERRUPTED = 130

RAW_IN_BASE64_OUT = "raw-in-base64-out"

_NOTES = """\
Helpers: upload-images DIR uploads a folder of images (sub-folder = label) with a progress bar;
wait-training --project-arn ARN --version-name NAME follows a training run (phase, percent, ETA).

Addresses: --<service>-addr flags, else CUSTOMLABELS_<SERVICE>_ADDR variables, else the same keys
in the stack.env file (--stack-env, default .data/stack.env in the current directory or a parent up
to the repository root, written by `make up`), else 127.0.0.1:50051 (project) to :50054 (serving).
The API token (CUSTOMLABELS_API_TOKEN) and the mutual-TLS files (CUSTOMLABELS_TLS_CERT_FILE,
CUSTOMLABELS_TLS_KEY_FILE, CUSTOMLABELS_TLS_CA_FILE) come from the environment, else stack.env.

Values: a string flag may be file://PATH; JSON flags take AWS JSON (PascalCase members) or
file://PATH; bytes flags take fileb://PATH. --cli-input-json gives the whole request as AWS JSON;
flags override its members.

Output: the response as AWS JSON; nothing for an empty response; a streaming response prints one
JSON object per line. List commands return one page: pass the printed NextToken back with
--next-token for the next one.

Exit status: 0 success, 2 bad arguments, 254 the service answered with an error, 255 the service
could not be reached or did not answer in time."""


# Operations that take an image file as --image-bytes (the AWS CLI's shorthand for Image.Bytes).
IMAGE_BYTES_OPERATIONS = ("DetectCustomLabels",)


def _global_options(parser: argparse.ArgumentParser) -> None:
    # Every command takes them too, so they may go before or after the command; SUPPRESS keeps a
    # command's defaults from overwriting what the main parser read.
    group = parser.add_argument_group("global options")
    for service in SERVICES:
        group.add_argument(
            f"--{service.key}-addr",
            metavar="HOST:PORT",
            default=argparse.SUPPRESS,
            help=f"address of the {service.descriptor.name} (${endpoints.env_key(service.key)})",
        )
    group.add_argument(
        "--stack-env",
        metavar="PATH",
        type=Path,
        default=argparse.SUPPRESS,
        help=f"stack.env file with the addresses (default: {endpoints.STACK_ENV} here or in a parent)",
    )
    group.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        default=argparse.SUPPRESS,
        help=f"deadline of the call (default: {clients.DEFAULT_TIMEOUT_S:g})",
    )
    group.add_argument(
        "--cli-binary-format",
        choices=["base64", RAW_IN_BASE64_OUT],
        default=argparse.SUPPRESS,
        help="how blob values are given: base64 (default) or raw text",
    )


def _command_list(ops: Sequence[Operation], docs: dict[str, str]) -> str:
    public = [op for op in ops if not op.hidden]
    width = max(len(op.command) for op in public) + 2
    lines = ["commands (`customlabels COMMAND --help` lists its flags):"]
    for service in SERVICES:
        lines.append(f"\n  {service.descriptor.name} (--{service.key}-addr)")
        for op in public:
            if op.service is service:
                summary = docs.get(op.method.full_name, "")
                lines.append(
                    textwrap.fill(
                        summary,
                        width=100,
                        initial_indent=f"    {op.command:<{width}}",
                        subsequent_indent=" " * (width + 4),
                    )
                )
    return "\n".join(lines) + "\n\n" + _NOTES


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, tuple[Operation, argparse.ArgumentParser]]]:
    """Returns the parser and, per command, its operation and its own parser (for its errors)."""
    docs = protodocs.comments()
    ops = operations()
    parser = argparse.ArgumentParser(
        prog="customlabels",
        description="Command-line client of customlabels, a self-hosted Rekognition Custom Labels.",
        epilog=_command_list([*ops, upload.OPERATION], docs),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    _global_options(parser)
    # The command list lives in the epilog, grouped by service: commands are added without a
    # `help`, so argparse lists none of them itself (it would list internal RPCs too).
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, help="the operation to call (see below)"
    )
    commands: dict[str, tuple[Operation, argparse.ArgumentParser]] = {}
    for op in ops:
        sub = subparsers.add_parser(op.command, description=docs.get(op.method.full_name), allow_abbrev=False)
        add_flags(sub, op.method.input_type, docs)
        sub.add_argument(
            "--cli-input-json",
            metavar="JSON",
            default=None,
            help="the whole request as AWS JSON, or file://PATH; flags override its members",
        )
        if op.name in IMAGE_BYTES_OPERATIONS:
            sub.add_argument(
                "--image-bytes",
                metavar="fileb://PATH|PATH",
                default=None,
                help="the image file (PNG or JPEG) sent as Image.Bytes, as the AWS CLI's --image-bytes",
            )
        _global_options(sub)
        commands[op.command] = (op, sub)
    # Client streaming takes no flags-shaped request: upload-images has a parser of its own.
    commands[upload.COMMAND] = (upload.OPERATION, upload.add_parser(subparsers, docs, _global_options))
    commands[wait.COMMAND] = (wait.OPERATION, wait.add_parser(subparsers, docs, _global_options))
    return parser, commands


def _usage_error(parser: argparse.ArgumentParser, message: str) -> int:
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _stack_env(args: argparse.Namespace) -> dict[str, str]:
    path = getattr(args, "stack_env", None)
    if path is None:
        path = endpoints.find_stack_env(Path.cwd())
        if path is None:
            return {}
    try:
        return endpoints.read_env_file(path)
    except OSError as exc:
        raise ArgumentError(f"--stack-env: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ArgumentError(f"--stack-env: {exc}") from None


def _security(stack_env: dict[str, str]) -> GrpcSecurity:
    """The token and TLS files of the environment, else of stack.env."""
    try:
        return GrpcSecurity.from_env({**stack_env, **os.environ})
    except ConfigError as exc:
        raise ArgumentError(str(exc)) from None


def _request(op: Operation, args: argparse.Namespace) -> Message:
    base: Any = {}
    if args.cli_input_json is not None:
        base = parse_json(args.cli_input_json, "--cli-input-json")
        if not isinstance(base, dict):
            raise ArgumentError("--cli-input-json: expected a JSON object")
    raw_blobs = getattr(args, "cli_binary_format", "base64") == RAW_IN_BASE64_OUT
    document = request_json(args, op.method.input_type, base, raw_blobs)
    image_file = getattr(args, "image_bytes", None)
    if image_file is not None:
        path = image_file.removeprefix("fileb://")
        try:
            document["Image"] = {"Bytes": Path(path).read_bytes()}
        except OSError as exc:
            raise ArgumentError(f"--image-bytes: cannot read {path}: {exc.strerror}") from None
    try:
        return awsjson.from_aws(document, op.request_class, raw_blobs=raw_blobs)
    except errors.InvalidParameter as exc:
        raise ArgumentError(exc.message) from None


def _print(document: dict[str, Any], stream: bool) -> None:
    if stream:
        print(json.dumps(document, ensure_ascii=False), flush=True)
    elif document:
        print(json.dumps(document, indent=4, ensure_ascii=False))


def _report(exc: grpc.RpcError, op: Operation, addr: str, timeout: float) -> int:
    """Prints why a call failed the way the AWS CLI does; returns the exit status."""
    code: grpc.StatusCode = exc.code()  # type: ignore[attr-defined]
    details: str = exc.details() or ""  # type: ignore[attr-defined]
    where = f"{op.service.descriptor.name} at {addr}"
    name = errors.aws_name_of(exc)
    if name is None and code == grpc.StatusCode.UNAVAILABLE:
        print(f"Could not connect to the {where}: {details}", file=sys.stderr)
        return EXIT_CONNECTION
    if name is None and code == grpc.StatusCode.DEADLINE_EXCEEDED:
        print(f"The {where} did not answer {op.name} within {timeout:g} seconds", file=sys.stderr)
        return EXIT_CONNECTION
    if name is None:
        # A failure without our error details: not one of our services, or one that predates
        # this operation (UNIMPLEMENTED). Say which, under the name a peer would report it with.
        name = errors.from_rpc_error(exc).aws_name
        details = f"the {where} answered {code.name}: {details}"
    print(f"An error occurred ({name}) when calling the {op.name} operation: {details}", file=sys.stderr)
    return EXIT_SERVICE_ERROR


def main(argv: list[str] | None = None) -> int:
    """Runs one command; returns the exit status (0, 2, 254 or 255 as the AWS CLI does)."""
    parser, commands = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse has already printed
        return 0 if exc.code is None else exc.code if isinstance(exc.code, int) else EXIT_USAGE
    op, command_parser = commands[args.command]
    try:
        stack_env = _stack_env(args)
        addr = endpoints.resolve(
            op.service.key, getattr(args, f"{op.service.key}_addr", None), os.environ, stack_env
        )
        security = _security(stack_env)
        if args.command == wait.COMMAND:
            request: Any = wait.prepare(args)
        elif op is upload.OPERATION:
            request = upload.prepare(args)
        else:
            request = _request(op, args)
    except ArgumentError as exc:
        return _usage_error(command_parser, str(exc))
    timeout = getattr(args, "timeout", clients.DEFAULT_TIMEOUT_S)
    try:
        if isinstance(request, upload.Plan):  # no deadline unless --timeout: uploads take long
            return upload.run(request, addr, getattr(args, "timeout", None), security)
        if isinstance(request, wait.Plan):
            return wait.run(request, addr, timeout, security=security)
        for response in op.invoke(addr, request, timeout, security):
            _print(awsjson.to_aws(response), stream=op.method.server_streaming)
    except grpc.RpcError as exc:
        return _report(exc, op, addr, timeout)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
