"""Shared fixtures: real Postgres/S3/Triton (tests/infra.py) and our services in-process on port 0."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from services.common.config import Config
from services.common.storage import ObjectStore

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
    """The training and serving services as they are today (UNIMPLEMENTED operations)."""
    from services.serving import app as serving_app
    from services.training import app as training_app

    started = {}
    for name, app in (("training", training_app), ("serving", serving_app)):
        running = app.build_server(service_config(name, "postgresql://unused"))
        addr = f"127.0.0.1:{running.port}"
        started[name] = (running, Served(addr, grpc.insecure_channel(addr)))
    yield {name: served for name, (_, served) in started.items()}
    for running, served in started.values():
        served.channel.close()
        running.stop(0)


@dataclass
class Stack:
    """The project and dataset services of one test module, wired to each other over gRPC."""

    project: Any
    dataset: Any
    project_addr: str
    dataset_addr: str
    store: ObjectStore
    images_bucket: str
    s3: Any


@pytest.fixture(scope="module")
def stack(database_url: str, s3_server: Any, placeholder_peers: dict[str, Served]) -> Iterator[Stack]:
    """Real project + dataset services (own database, own images bucket), job leases of 3 s."""
    from customlabels.dataset.v1 import dataset_service_pb2_grpc as ds_grpc
    from customlabels.project.v1 import project_service_pb2_grpc as pj_grpc

    from scripts.embedded import free_port
    from services.common import db
    from services.dataset import app as dataset_app
    from services.dataset.jobs import JobSettings
    from services.dataset.peers import ProjectClient
    from services.project import app as project_app
    from services.project.peers import GrpcPeers

    project_addr = f"127.0.0.1:{free_port()}"
    dataset_addr = f"127.0.0.1:{free_port()}"
    images_bucket = f"images-{uuid.uuid4().hex[:12]}"
    common_env = {
        "CUSTOMLABELS_PROJECT_ADDR": project_addr,
        "CUSTOMLABELS_DATASET_ADDR": dataset_addr,
        "CUSTOMLABELS_TRAINING_ADDR": placeholder_peers["training"].addr,
        "CUSTOMLABELS_SERVING_ADDR": placeholder_peers["serving"].addr,
        "CUSTOMLABELS_S3_ENDPOINT": s3_server.endpoint,
        "CUSTOMLABELS_S3_ACCESS_KEY": s3_server.access_key,
        "CUSTOMLABELS_S3_SECRET_KEY": s3_server.secret_key,
        "CUSTOMLABELS_IMAGES_BUCKET": images_bucket,
    }
    project_config = service_config(
        "project", database_url, **common_env, CUSTOMLABELS_LISTEN_ADDR=project_addr
    )
    dataset_config = service_config(
        "dataset", database_url, **common_env, CUSTOMLABELS_LISTEN_ADDR=dataset_addr
    )
    db.migrate(database_url, project_app.SCHEMA, project_app.MIGRATIONS)
    db.migrate(database_url, dataset_app.SCHEMA, dataset_app.MIGRATIONS)
    project_pool = db.create_pool(database_url, project_app.SCHEMA)
    dataset_pool = db.create_pool(database_url, dataset_app.SCHEMA)
    store = ObjectStore(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
    peers = GrpcPeers(dataset_addr, placeholder_peers["training"].addr)
    project_client = ProjectClient(project_addr)
    project = project_app.build_server(project_config, project_app.Deps(pool=project_pool, peers=peers))
    dataset = dataset_app.build_server(
        dataset_config,
        dataset_app.Deps(
            pool=dataset_pool,
            store=store,
            project=project_client,
            jobs=JobSettings(workers=2, lease_s=3.0, poll_s=0.2),
        ),
    )
    channels = [grpc.insecure_channel(project_addr), grpc.insecure_channel(dataset_addr)]
    yield Stack(
        project=pj_grpc.ProjectServiceStub(channels[0]),
        dataset=ds_grpc.DatasetServiceStub(channels[1]),
        project_addr=project_addr,
        dataset_addr=dataset_addr,
        store=store,
        images_bucket=images_bucket,
        s3=s3_server,
    )
    for channel in channels:
        channel.close()
    dataset.stop(0)
    project.stop(0)
    peers.close()
    project_client.close()
    dataset_pool.close()
    project_pool.close()
