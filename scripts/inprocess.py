"""The project, dataset, training (and serving) services in one process, wired over real gRPC.

Tests and benchmarks use this instead of separate processes: same servers, same channels, same
database and object store, but started in milliseconds on free ports.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from customlabels.dataset.v1 import dataset_service_pb2_grpc as ds_grpc
from customlabels.project.v1 import project_service_pb2_grpc as pj_grpc
from customlabels.serving.v1 import serving_service_pb2_grpc as sv_grpc
from customlabels.training.v1 import training_service_pb2_grpc as tr_grpc

from scripts.embedded import Postgres, SeaweedS3, Triton, ensure_triton_repository, free_port
from services.common import clients, db
from services.common.config import Config
from services.common.jobs import JobSettings
from services.common.storage import ObjectStore
from services.dataset import app as dataset_app
from services.dataset.peers import ProjectClient
from services.project import app as project_app
from services.project.peers import GrpcPeers
from services.serving import app as serving_app
from services.serving.config import ServingSettings
from services.serving.peers import TrainingClient
from services.serving.triton import TritonClient
from services.training import app as training_app
from services.training.peers import Peers as TrainingPeers


@dataclass
class LocalServices:
    """Running project, dataset and training services, their stubs, and what stops them."""

    project: pj_grpc.ProjectServiceStub
    dataset: ds_grpc.DatasetServiceStub
    training: tr_grpc.TrainingServiceStub
    project_addr: str
    dataset_addr: str
    training_addr: str
    store: ObjectStore
    images_bucket: str
    models_bucket: str
    s3: Any
    env: dict[str, str]
    # The serving service, when started with a Triton (see `start`).
    serving: sv_grpc.ServingServiceStub | None = None
    serving_addr: str = ""
    _stops: list[Any] = field(default_factory=list, repr=False)

    def stop(self) -> None:
        """Stops the servers and closes channels and pools."""
        for stop in reversed(self._stops):
            stop()
        self._stops.clear()


def start(
    database_url: str,
    s3: Any,
    serving_addr: str | None = None,
    jobs: JobSettings | None = None,
    triton: Any = None,
    serving_settings: ServingSettings | None = None,
) -> LocalServices:
    """Migrates the schemas and starts the services on free ports; `s3` has endpoint/access_key/secret_key.

    With `triton` (grpc_addr, bucket, prefix: a TritonServer of tests/infra.py), the serving service
    runs too, on that Triton, with `serving_settings`. `env` of the result holds the variables a
    separate process (a training worker, a serving process) needs to join them.
    """
    project_addr, dataset_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    training_addr = f"127.0.0.1:{free_port()}"
    images_bucket = f"images-{uuid.uuid4().hex[:12]}"
    models_bucket = f"models-{uuid.uuid4().hex[:12]}"
    env = {
        "DATABASE_URL": database_url,
        "CUSTOMLABELS_PROJECT_ADDR": project_addr,
        "CUSTOMLABELS_DATASET_ADDR": dataset_addr,
        "CUSTOMLABELS_TRAINING_ADDR": training_addr,
        "CUSTOMLABELS_SERVING_ADDR": serving_addr or f"127.0.0.1:{free_port()}",
        "CUSTOMLABELS_S3_ENDPOINT": s3.endpoint,
        "CUSTOMLABELS_S3_ACCESS_KEY": s3.access_key,
        "CUSTOMLABELS_S3_SECRET_KEY": s3.secret_key,
        "CUSTOMLABELS_IMAGES_BUCKET": images_bucket,
        "CUSTOMLABELS_MODELS_BUCKET": models_bucket,
    }
    stops: list[Any] = []
    db.migrate(database_url, project_app.SCHEMA, project_app.MIGRATIONS)
    db.migrate(database_url, dataset_app.SCHEMA, dataset_app.MIGRATIONS)
    db.migrate(database_url, training_app.SCHEMA, training_app.MIGRATIONS)
    project_pool = db.create_pool(database_url, project_app.SCHEMA)
    dataset_pool = db.create_pool(database_url, dataset_app.SCHEMA)
    training_pool = db.create_pool(database_url, training_app.SCHEMA)
    stops += [project_pool.close, dataset_pool.close, training_pool.close]
    store = ObjectStore(s3.endpoint, s3.access_key, s3.secret_key)
    peers = GrpcPeers(dataset_addr, training_addr)
    project_client = ProjectClient(project_addr)
    training_peers = TrainingPeers(project_addr, dataset_addr)
    stops += [peers.close, project_client.close, training_peers.close]
    project = project_app.build_server(
        Config.from_env("project", {**env, "CUSTOMLABELS_LISTEN_ADDR": project_addr}),
        project_app.Deps(pool=project_pool, peers=peers),
    )
    stops.append(lambda: project.stop(0))
    dataset = dataset_app.build_server(
        Config.from_env("dataset", {**env, "CUSTOMLABELS_LISTEN_ADDR": dataset_addr}),
        dataset_app.Deps(
            pool=dataset_pool,
            store=store,
            project=project_client,
            jobs=jobs or JobSettings(workers=2, lease_s=3.0, poll_s=0.2),
        ),
    )
    stops.append(lambda: dataset.stop(0))
    training = training_app.build_server(
        Config.from_env("training", {**env, "CUSTOMLABELS_LISTEN_ADDR": training_addr}),
        training_app.Deps(pool=training_pool, store=store, peers=training_peers),
    )
    stops.append(lambda: training.stop(0))
    channels = [clients.channel(a) for a in (project_addr, dataset_addr, training_addr)]
    stops += [c.close for c in channels]
    serving = None
    if triton is not None:
        env.update(
            CUSTOMLABELS_TRITON_GRPC_ADDR=triton.grpc_addr,
            CUSTOMLABELS_TRITON_BUCKET=triton.bucket,
            CUSTOMLABELS_TRITON_PREFIX=triton.prefix,
        )
        serving_addr = start_serving(env, store, serving_settings or ServingSettings(), stops)
        env["CUSTOMLABELS_SERVING_ADDR"] = serving_addr
        serving_channel = clients.channel(serving_addr)
        stops.append(serving_channel.close)
        serving = sv_grpc.ServingServiceStub(serving_channel)
    return LocalServices(
        project=pj_grpc.ProjectServiceStub(channels[0]),
        dataset=ds_grpc.DatasetServiceStub(channels[1]),
        training=tr_grpc.TrainingServiceStub(channels[2]),
        project_addr=project_addr,
        dataset_addr=dataset_addr,
        training_addr=training_addr,
        store=store,
        images_bucket=images_bucket,
        models_bucket=models_bucket,
        s3=s3,
        env=env,
        serving=serving,
        serving_addr=env["CUSTOMLABELS_SERVING_ADDR"] if serving else "",
        _stops=stops,
    )


def start_serving(
    env: dict[str, str], store: ObjectStore, settings: ServingSettings, stops: list[Any]
) -> str:
    """Starts the serving service in-process with `env` (database, training, Triton); returns its address.

    What stops it (server, control loop, channels, pool) is appended to `stops`."""
    database_url = env["DATABASE_URL"]
    db.migrate(database_url, serving_app.SCHEMA, serving_app.MIGRATIONS)
    config = Config.from_env("serving", {**env, "CUSTOMLABELS_LISTEN_ADDR": "127.0.0.1:0"})
    pool = db.create_pool(database_url, serving_app.SCHEMA)
    training = TrainingClient(config.training_addr)
    triton = TritonClient(config.triton_grpc_addr)
    stops += [pool.close, training.close, triton.close]
    running = serving_app.build_server(config, serving_app.Deps(pool, store, training, triton, settings))
    stops.append(lambda: running.stop(0))
    return f"127.0.0.1:{running.port}"


class _TritonRepository(NamedTuple):
    """What `start` needs of a Triton: its gRPC address and model repository."""

    grpc_addr: str
    bucket: str
    prefix: str


@contextmanager
def training_worker(
    services: LocalServices, database_url: str, lease_s: int = 30, **extra: str
) -> Iterator[None]:
    """One training worker, in-process, on `database_url` and the object store of `services`;
    `extra` adds worker settings (CUSTOMLABELS_TRAINING_* variables)."""
    from services.training import app as training_app
    from services.training.worker import build_runner

    config = Config.from_env("training", {**services.env, "DATABASE_URL": database_url})
    pool = db.create_pool(database_url, training_app.SCHEMA, 1, 4)
    runner = build_runner(
        config,
        services.store,
        pool,
        {
            "CUSTOMLABELS_TRAINING_JOB_LEASE_S": str(lease_s),
            "CUSTOMLABELS_TRAINING_JOB_POLL_S": "0.2",
            **extra,
        },
    )
    runner.start()
    try:
        yield
    finally:
        runner.stop(timeout=60)
        pool.close()


@dataclass
class EmbeddedStack:
    """What `embedded_stack` yields: the services, the Postgres admin URL, a work folder and the
    Triton (when asked for)."""

    services: LocalServices
    database_url: str
    work: Path
    triton: Triton | None = None


@contextmanager
def embedded_stack(
    prefix: str = "customlabels-local-", *, triton: bool = False, serving: bool = False
) -> Iterator[EmbeddedStack]:
    """A throwaway Postgres + S3 (scripts/embedded.py) with the services in-process, for benchmarks.

    With `triton`, an embedded Triton runs too, on a model repository in the same S3; the serving
    service runs in-process on it only with `serving` (benchmarks run it as its own process, as
    deployed). Everything is stopped and removed after.
    """
    work = Path(tempfile.mkdtemp(prefix=prefix))
    work.chmod(0o755)  # the postgres user must reach its data folder
    pg = Postgres(
        work / "pg", free_port(), secrets.token_hex(8), work / "pg.log", durable=False, die_with_parent=True
    )
    s3 = SeaweedS3(
        work / "s3",
        SeaweedS3.pick_ports(),
        "local" + secrets.token_hex(4),
        secrets.token_hex(16),
        work / "s3.log",
        die_with_parent=True,
    )
    parts: list[Any] = [pg, s3]
    services = None
    try:
        pg.start()
        s3.start()
        pg.wait_ready(60)
        s3.wait_ready(60)
        server = None
        if triton:
            bucket, repository = f"triton-{uuid.uuid4().hex[:8]}", "repository"
            ensure_triton_repository(s3.s3, bucket, repository)
            server = Triton(
                work / "triton",
                Triton.pick_ports(),
                s3.s3,
                bucket,
                repository,
                work / "triton.log",
                die_with_parent=True,
            )
            parts.append(server)
            server.start()
        if server is not None:
            server.wait_ready(90)
        served = _TritonRepository(server.grpc_addr, bucket, repository) if server and serving else None
        services = start(pg.admin_url, s3.s3, triton=served)
        yield EmbeddedStack(services, pg.admin_url, work, server)
    finally:
        if services:
            services.stop()
        for part in reversed(parts):
            part.stop()
        shutil.rmtree(work, ignore_errors=True)
