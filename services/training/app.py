"""Wiring of the training service: `build_server(config, deps)` for tests and `main()` for the process.

The service answers the version operations; training itself runs in worker processes (worker.py)
that take jobs from the same Postgres queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from customlabels.training.v1 import training_service_pb2 as pb
from customlabels.training.v1 import training_service_pb2_grpc as pb_grpc
from psycopg_pool import ConnectionPool

from services.common import db, logs
from services.common.config import Config
from services.common.pagination import PageTokens
from services.common.server import RunningServer, create_server, serve
from services.common.storage import ObjectStore
from services.training.peers import Peers
from services.training.repository import VersionRepository
from services.training.servicer import TrainingServicer
from services.training.versions import TrainingLimits, TrainingPeers, VersionService

SCHEMA = "training"
MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["TrainingService"].full_name


@dataclass
class Deps:
    """What the training service is built from; tests pass their own."""

    pool: ConnectionPool
    store: ObjectStore
    peers: TrainingPeers
    limits: TrainingLimits = field(default_factory=TrainingLimits)


def build_server(config: Config, deps: Deps) -> RunningServer:
    """Starts a training server on config.listen_addr (port 0 allowed) and marks it SERVING."""
    deps.store.ensure_bucket(config.models_bucket)
    service = VersionService(
        VersionRepository(deps.pool),
        deps.store,
        deps.peers,
        PageTokens(config.page_token_secret),
        config.region,
        config.account_id,
        config.models_bucket,
        deps.limits,
    )
    servicer = TrainingServicer(service)
    running = create_server(
        config.listen_addr,
        [lambda server: pb_grpc.add_TrainingServiceServicer_to_server(servicer, server)],
        [SERVICE_NAME],
        workers=config.grpc_workers,
    )
    running.set_serving(True)
    return running


def main() -> None:
    """Runs the training service process until SIGTERM."""
    config = Config.from_env("training")
    logs.setup("training", config.log_level)
    db.migrate(config.database_url, SCHEMA, MIGRATIONS)
    pool = db.create_pool(config.database_url, SCHEMA, config.db_pool_min, config.db_pool_max)
    store = ObjectStore(config.s3_endpoint, config.s3_access_key, config.s3_secret_key, config.s3_region)
    peers = Peers(config.project_addr, config.dataset_addr)
    running = build_server(config, Deps(pool=pool, store=store, peers=peers))
    running.on_stop[:0] = [pool.close, peers.close]
    serve(running, config.shutdown_grace_s)
