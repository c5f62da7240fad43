"""The HTTP edge in-process in front of the module's in-process services, and real AWS clients of it."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig

from scripts.inprocess import LocalServices
from services.edge.app import RunningEdge, build_server
from services.edge.config import EdgeConfig

REGION = "local"


@dataclass(frozen=True)
class EdgeUnderTest:
    """A running edge: where it listens and the one access key it accepts."""

    running: RunningEdge
    endpoint: str
    access_key_id: str
    secret_access_key: str


def edge_config(stack: LocalServices, **overrides: str) -> EdgeConfig:
    """The edge's configuration for the module's services, a fresh key pair, port 0."""
    env = {
        **stack.env,
        "CUSTOMLABELS_LISTEN_ADDR": "127.0.0.1:0",
        "CUSTOMLABELS_REGION": REGION,
        "CUSTOMLABELS_EDGE_CREDENTIALS": f"AKCL{secrets.token_hex(8).upper()}:{secrets.token_urlsafe(30)}",
        **overrides,
    }
    return EdgeConfig.from_env(env)


@pytest.fixture(scope="module")
def edge(stack: LocalServices) -> Iterator[EdgeUnderTest]:
    """The edge, talking to the module's services with the module's API token (from the environment)."""
    config = edge_config(stack)
    running = build_server(config)
    ((key_id, secret),) = config.credentials.items()
    yield EdgeUnderTest(running, f"http://127.0.0.1:{running.port}", key_id, secret)
    running.stop(5)


@pytest.fixture(scope="module")
def make_client(edge: EdgeUnderTest) -> Callable[..., Any]:
    """`make_client(service="rekognition", **overrides)`: a boto3 client of the edge, retries off.

    Retries are off so a test that provokes a retryable error (500/503) sees it at once.
    """

    def make(service: str = "rekognition", **overrides: Any) -> Any:
        kwargs: dict[str, Any] = {
            "endpoint_url": edge.endpoint,
            "region_name": REGION,
            "aws_access_key_id": edge.access_key_id,
            "aws_secret_access_key": edge.secret_access_key,
            "config": BotoConfig(retries={"total_max_attempts": 1}),
            **overrides,
        }
        return boto3.session.Session().client(service, **kwargs)

    return make


@pytest.fixture(scope="module")
def rekognition(make_client: Callable[..., Any]) -> Any:
    """A boto3 `rekognition` client of the edge."""
    return make_client()
