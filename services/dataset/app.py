"""Wiring of the dataset service: `build_server(config, deps)` for tests and `main()` for the process."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from customlabels.dataset.v1 import dataset_service_pb2 as pb
from customlabels.dataset.v1 import dataset_service_pb2_grpc as pb_grpc
from psycopg_pool import ConnectionPool

from services.common import db, logs
from services.common.config import Config
from services.common.jobs import JobRunner, JobSettings
from services.common.pagination import PageTokens
from services.common.server import RunningServer, create_server, serve
from services.common.storage import ObjectStore
from services.dataset.datasets import DatasetLimits, DatasetService, ProjectPeer
from services.dataset.images import ImageIngestor
from services.dataset.peers import ProjectClient
from services.dataset.repository import DatasetRepository
from services.dataset.servicer import DatasetServicer

SCHEMA = "dataset"
MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["DatasetService"].full_name


@dataclass
class Deps:
    """What the dataset service is built from; tests pass their own."""

    pool: ConnectionPool
    store: ObjectStore
    project: ProjectPeer
    jobs: JobSettings = field(default_factory=JobSettings)
    limits: DatasetLimits = field(default_factory=DatasetLimits)


def job_settings(env: dict[str, str] | None = None) -> JobSettings:
    """Reads the job runner's settings from the environment."""
    env = dict(os.environ) if env is None else env
    return JobSettings(
        workers=int(env.get("CUSTOMLABELS_DATASET_JOB_WORKERS", "2")),
        lease_s=float(env.get("CUSTOMLABELS_DATASET_JOB_LEASE_S", "30")),
        max_attempts=int(env.get("CUSTOMLABELS_DATASET_JOB_MAX_ATTEMPTS", "3")),
    )


def build_server(config: Config, deps: Deps) -> RunningServer:
    """Starts a dataset server and its job runner; marks it SERVING."""
    deps.store.ensure_bucket(config.images_bucket)
    repo = DatasetRepository(deps.pool)
    # 16 threads keep both cores busy while requests to the object store are in flight.
    ingestor = ImageIngestor(deps.store, config.images_bucket, max_workers=16)
    service = DatasetService(
        repo,
        deps.store,
        ingestor,
        deps.project,
        PageTokens(config.page_token_secret),
        config.region,
        config.account_id,
        config.images_bucket,
        deps.limits,
    )
    runner = JobRunner(repo.jobs, service.handle, service.give_up, deps.jobs, name="dataset")
    service.wake = runner.wake
    service.stopping = runner.stopping
    servicer = DatasetServicer(service)
    running = create_server(
        config.listen_addr,
        [lambda server: pb_grpc.add_DatasetServiceServicer_to_server(servicer, server)],
        [SERVICE_NAME],
        workers=config.grpc_workers,
    )
    runner.start()
    # Jobs get the shutdown grace, then are handed back with their attempt (services/common/jobs.py).
    running.on_stop.append(lambda: runner.stop(config.shutdown_grace_s))
    running.set_serving(True)
    return running


def main() -> None:
    """Runs the dataset service process until SIGTERM."""
    config = Config.from_env("dataset")
    logs.setup("dataset", config.log_level)
    db.migrate(config.database_url, SCHEMA, MIGRATIONS)
    pool = db.create_pool(config.database_url, SCHEMA, config.db_pool_min, config.db_pool_max)
    store = ObjectStore(config.s3_endpoint, config.s3_access_key, config.s3_secret_key, config.s3_region)
    project = ProjectClient(config.project_addr)
    running = build_server(config, Deps(pool=pool, store=store, project=project, jobs=job_settings()))
    # on_stop runs last-added first: the job runner stops before the pool and the channel close.
    running.on_stop[:0] = [pool.close, project.close]
    serve(running, config.shutdown_grace_s)
