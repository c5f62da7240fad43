"""Shared fixtures: real Postgres/S3/Triton (tests/infra.py) and our services in-process on port 0."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from scripts import inprocess
from scripts.inprocess import LocalServices
from services.common import clients
from services.common.config import Config

pytest_plugins = ["tests.infra"]


def service_config(service: str, database_url: str, **overrides: str) -> Config:
    """A Config for an in-process service bound to a free port."""
    env = {"DATABASE_URL": database_url, "CUSTOMLABELS_LISTEN_ADDR": "127.0.0.1:0", **overrides}
    return Config.from_env(service, env)


@dataclass
class Served:
    """A running in-process service and a channel to it."""

    addr: str
    channel: grpc.Channel


@pytest.fixture
def unique() -> str:
    """A short unique suffix for resource names, so tests never collide."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="module")
def api_token() -> Iterator[str]:
    """The bearer token of the module's services, set in the environment as a deployment sets it.

    Servers built while it is set demand it, and every client of ours (peers, the CLI, worker
    processes started with os.environ) sends it (services/common/auth.py).
    """
    token = secrets.token_urlsafe(24)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CUSTOMLABELS_API_TOKEN", token)
        yield token


@pytest.fixture(scope="module")
def stack(database_url: str, s3_server: Any, triton_server: Any, api_token: str) -> Iterator[LocalServices]:
    """Real project, dataset, training and serving services (own database, own buckets), job leases
    of 3 s, token on; serving runs its models on the session's Triton."""
    services = inprocess.start(database_url, s3_server, triton=triton_server)
    yield services
    services.stop()


@pytest.fixture(scope="module")
def peers(stack: LocalServices) -> Iterator[dict[str, Served]]:
    """A channel to the serving service of the module's stack (the services LocalServices has no stub field for)."""
    served = Served(stack.serving_addr, clients.channel(stack.serving_addr))
    yield {"serving": served}
    served.channel.close()
