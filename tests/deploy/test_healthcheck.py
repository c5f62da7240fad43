"""`python -m services.common.healthcheck`, run as compose runs it, against a real project service
(real Postgres, real gRPC) and the real edge."""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from services.common import db
from services.common.server import RunningServer
from services.edge.app import RunningEdge
from services.edge.app import build_server as build_edge
from services.edge.config import EdgeConfig
from services.project import app
from services.project.peers import GrpcPeers
from tests.conftest import service_config

PROJECT_SERVICE = "customlabels.project.v1.ProjectService"


def healthcheck(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process, exactly as a compose healthcheck starts it."""
    return subprocess.run(
        [sys.executable, "-m", "services.common.healthcheck", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def project(database_url: str) -> Iterator[RunningServer]:
    """A real project service on a free port (its peers are never called here)."""
    db.migrate(database_url, app.SCHEMA, app.MIGRATIONS)
    pool = db.create_pool(database_url, app.SCHEMA)
    peers = GrpcPeers(f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")
    running = app.build_server(service_config("project", database_url), app.Deps(pool=pool, peers=peers))
    yield running
    running.stop(0)
    peers.close()
    pool.close()


@pytest.fixture(scope="module")
def edge() -> Iterator[RunningEdge]:
    """The real edge (its /health answers while it runs, whatever the services do)."""
    config = EdgeConfig.from_env(
        {
            "CUSTOMLABELS_LISTEN_ADDR": "127.0.0.1:0",
            "CUSTOMLABELS_EDGE_CREDENTIALS": f"AKCL{secrets.token_hex(8).upper()}:{secrets.token_urlsafe(30)}",
        }
    )
    running = build_edge(config)
    yield running
    running.stop(1)


def test_serving_service_exits_zero(project: RunningServer) -> None:
    result = healthcheck(f"127.0.0.1:{project.port}")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_named_service_is_checked(project: RunningServer) -> None:
    assert healthcheck(f"127.0.0.1:{project.port}", "--service", PROJECT_SERVICE).returncode == 0
    unknown = healthcheck(f"127.0.0.1:{project.port}", "--service", "customlabels.nope.v1.Nope")
    assert unknown.returncode == 1
    assert "does not know service 'customlabels.nope.v1.Nope'" in unknown.stderr


def test_not_serving_service_exits_non_zero(project: RunningServer) -> None:
    project.set_serving(False)
    try:
        result = healthcheck(f"127.0.0.1:{project.port}")
    finally:
        project.set_serving(True)
    assert result.returncode == 1
    assert f"unhealthy: 127.0.0.1:{project.port}: server is NOT_SERVING" in result.stderr


def test_nothing_listening_exits_non_zero_with_the_reason() -> None:
    port = free_port()
    result = healthcheck(f"127.0.0.1:{port}", "--timeout", "2")
    assert result.returncode == 1
    assert f"unhealthy: 127.0.0.1:{port}: unreachable" in result.stderr


def test_http_health_of_the_edge(edge: RunningEdge) -> None:
    assert healthcheck(f"http://127.0.0.1:{edge.port}/health").returncode == 0
    missing = healthcheck(f"http://127.0.0.1:{edge.port}/no-such-page")
    assert missing.returncode == 1
    assert "HTTP 4" in missing.stderr or "HTTP 5" in missing.stderr
    closed = healthcheck(f"http://127.0.0.1:{free_port()}/health", "--timeout", "2")
    assert closed.returncode == 1
    assert "unreachable" in closed.stderr
