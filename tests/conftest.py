"""Shared fixtures: real Postgres/S3/Triton (tests/infra.py) and our services in-process on port 0."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from scripts import inprocess
from scripts.inprocess import LocalServices
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
def placeholder_peers() -> Iterator[dict[str, Served]]:
    """The serving service as it is today (UNIMPLEMENTED operations)."""
    from services.serving import app as serving_app

    started = {}
    for name, app in (("serving", serving_app),):
        running = app.build_server(service_config(name, "postgresql://unused"))
        addr = f"127.0.0.1:{running.port}"
        started[name] = (running, Served(addr, grpc.insecure_channel(addr)))
    yield {name: served for name, (_, served) in started.items()}
    for running, served in started.values():
        served.channel.close()
        running.stop(0)


@pytest.fixture(scope="module")
def stack(database_url: str, s3_server: Any, placeholder_peers: dict[str, Served]) -> Iterator[LocalServices]:
    """Real project + dataset services (own database, own images bucket), job leases of 3 s."""
    services = inprocess.start(database_url, s3_server, placeholder_peers["serving"].addr)
    yield services
    services.stop()
