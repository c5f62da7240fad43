"""`python -m services.common.healthcheck HOST:PORT`: a container healthcheck for our gRPC servers.

Asks the standard health service (grpc.health.v1, open without the API token) for the server's
overall status ("" by default, `--service NAME` for one service) and exits 0 only on SERVING. Anything
else exits 1 with one line on stderr saying why: NOT_SERVING (still starting, or draining after
SIGTERM), nothing listening, or no answer within `--timeout` seconds. TLS follows the same
CUSTOMLABELS_TLS_* variables as every client of ours (services/common/auth.py), so the check works
against a server that demands mutual TLS. `http://` or `https://` URLs are checked with a GET that
must answer 2xx (the edge's and the console's `/health`), so one command serves every image.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.auth import GrpcSecurity

DEFAULT_TIMEOUT_S = 3.0


def check_grpc(addr: str, service: str = "", timeout: float = DEFAULT_TIMEOUT_S) -> str | None:
    """None when `addr` reports `service` SERVING, else why not (one line)."""
    # A probe dials the server itself, never through an HTTP proxy the environment may name.
    channel = GrpcSecurity.from_env().open_channel(addr, [("grpc.enable_http_proxy", 0)])
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout, wait_for_ready=False
        )
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else None
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return f"{addr}: no health answer within {timeout:g} s"
        if code == grpc.StatusCode.UNAVAILABLE:
            return f"{addr}: unreachable ({exc.details()})"  # type: ignore[attr-defined]
        if code == grpc.StatusCode.NOT_FOUND:
            return f"{addr}: the server does not know service {service!r}"
        return f"{addr}: health check failed: {code} {exc}"
    finally:
        channel.close()
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        return f"{addr}: {service or 'server'} is {name}"
    return None


def check_http(url: str, timeout: float = DEFAULT_TIMEOUT_S) -> str | None:
    """None when a GET of `url` answers 2xx within `timeout`, else why not (one line)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http(s) only, see main
            status = response.status
    except urllib.error.HTTPError as exc:
        return f"{url}: HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{url}: unreachable ({reason})"
    return None if 200 <= status < 300 else f"{url}: HTTP {status}"


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one check; 0 when healthy, 1 (with a line on stderr) otherwise."""
    parser = argparse.ArgumentParser(
        prog="python -m services.common.healthcheck",
        description="Exit 0 only when a gRPC server reports SERVING (or an http(s) URL answers 2xx).",
    )
    parser.add_argument("target", help="HOST:PORT of a gRPC server, or an http:// / https:// URL")
    parser.add_argument("--service", default="", help="gRPC service name to ask about (default: the server)")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds to wait for an answer"
    )
    args = parser.parse_args(argv)
    if args.target.startswith(("http://", "https://")):
        problem = check_http(args.target, args.timeout)
    else:
        problem = check_grpc(args.target, args.service, args.timeout)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
