"""Our gRPC plumbing with several replicas (services/common/clients.py and server.py, real servers): one
channel spreads its calls over every address of its target, and a server told to stop by SIGTERM
says NOT_SERVING first, refuses new calls, and lets the call in flight finish."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from scripts.embedded import REPO_ROOT
from services.common import clients
from services.common.server import RunningServer, create_server

WHO = "/customlabels.test.v1.Test/Who"


def _answering(name: str) -> grpc.GenericRpcHandler:
    """A handler whose one method answers the server's name (raw bytes, no protobuf)."""
    return grpc.method_handlers_generic_handler(
        "customlabels.test.v1.Test",
        {"Who": grpc.unary_unary_rpc_method_handler(lambda _r, _c: name.encode())},
    )


@pytest.fixture
def two_servers() -> Iterator[list[RunningServer]]:
    """Two real servers of ours on free ports, each answering its own name."""
    servers = [
        create_server(
            "127.0.0.1:0",
            [lambda server, name=name: server.add_generic_rpc_handlers((_answering(name),))],  # type: ignore[misc]
            ["customlabels.test.v1.Test"],
            workers=2,
        )
        for name in ("first", "second")
    ]
    yield servers
    for server in servers:
        server.stop(0)


def test_one_channel_spreads_its_calls_over_every_address(two_servers: list[RunningServer]) -> None:
    target = f"ipv4:127.0.0.1:{two_servers[0].port},127.0.0.1:{two_servers[1].port}"
    channel = clients.channel(target)
    try:
        who = channel.unary_unary(WHO)
        answers: Counter[bytes] = Counter()
        # pick_first (gRPC's default) would send all of them to one server.
        for _ in range(200):
            answers[who(b"", timeout=10)] += 1
            if len(answers) == 2 and min(answers.values()) >= 5:
                break
        assert set(answers) == {b"first", b"second"}
        assert min(answers.values()) >= 5, answers
    finally:
        channel.close()


# A server process of ours with a call that runs until the test lets it go (a file appears).
SERVER = """
import sys, time
from pathlib import Path
import grpc
from services.common.server import create_server, serve

release = Path(sys.argv[2])

def slow(request, context):
    print("in-flight", flush=True)
    while not release.exists():
        time.sleep(0.05)
    return b"done"

def fast(request, context):
    return b"fast"

handler = grpc.method_handlers_generic_handler(
    "customlabels.test.v1.Test",
    {"Slow": grpc.unary_unary_rpc_method_handler(slow), "Fast": grpc.unary_unary_rpc_method_handler(fast)},
)
running = create_server("127.0.0.1:0", [lambda s: s.add_generic_rpc_handlers((handler,))],
                        ["customlabels.test.v1.Test"], workers=4)
running.set_serving(True)
print(running.port, flush=True)
serve(running, float(sys.argv[1]))
"""


def test_sigterm_flips_health_refuses_new_calls_and_lets_the_call_in_flight_finish(tmp_path: Path) -> None:
    release = tmp_path / "release"
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, "60", str(release)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "CUSTOMLABELS_LOG_LEVEL": "WARNING"},
    )
    channel: grpc.Channel | None = None
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        channel = clients.channel(f"127.0.0.1:{port}")
        statuses: list[int] = []
        flipped = threading.Event()

        def watch() -> None:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                for answer in stub.Watch(health_pb2.HealthCheckRequest(service="")):
                    statuses.append(answer.status)
                    if answer.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                        flipped.set()
            except grpc.RpcError:
                pass  # the stream ends with the server
            flipped.set()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        slow = channel.unary_unary("/customlabels.test.v1.Test/Slow").future(b"", timeout=60)
        assert process.stdout.readline().strip() == "in-flight"
        fast = channel.unary_unary("/customlabels.test.v1.Test/Fast")
        assert fast(b"", timeout=10) == b"fast"

        process.send_signal(signal.SIGTERM)
        assert flipped.wait(30)
        assert statuses[-1] == health_pb2.HealthCheckResponse.NOT_SERVING, statuses
        # From the moment the server stops, new calls are refused: one that crossed the server's GOAWAY
        # is cancelled, later ones find no server (a client with other replicas sends them there) ...
        refusals: list[grpc.StatusCode] = []
        for _ in range(1000):
            try:
                fast(b"", timeout=10)
            except grpc.RpcError as exc:
                refusals.append(exc.code())
                if exc.code() == grpc.StatusCode.UNAVAILABLE:
                    break
        assert refusals and refusals[-1] == grpc.StatusCode.UNAVAILABLE, refusals
        assert set(refusals) <= {grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE}, refusals
        # ... while the call in flight still runs, and finishes with its answer.
        assert not slow.done()
        release.touch()
        assert slow.result(timeout=30) == b"done"
        assert process.wait(timeout=30) == 0
    finally:
        if channel is not None:
            channel.close()
        if process.poll() is None:
            process.kill()
            process.wait()
