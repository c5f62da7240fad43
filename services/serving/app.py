"""Wiring of the serving service: `build_server(config, deps)` for tests and `main()` for the process."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from customlabels.serving.v1 import serving_service_pb2 as pb
from customlabels.serving.v1 import serving_service_pb2_grpc as pb_grpc
from psycopg_pool import ConnectionPool

from services.common import db, logs
from services.common.config import Config
from services.common.server import RunningServer, create_server, serve
from services.common.storage import ObjectStore
from services.serving.config import ServingSettings
from services.serving.deployments import Controller, Deployments
from services.serving.peers import TrainingClient
from services.serving.repository import DeploymentRepository
from services.serving.servicer import ServingServicer
from services.serving.triton import TritonClient, TritonRepository

SCHEMA = "serving"
MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ServingService"].full_name


@dataclass
class Deps:
    """What the serving service is built from; tests pass their own."""

    pool: ConnectionPool
    store: ObjectStore
    training: TrainingClient
    triton: TritonClient
    settings: ServingSettings = field(default_factory=ServingSettings)


def build_server(config: Config, deps: Deps) -> RunningServer:
    """Starts a serving server on config.listen_addr (port 0 allowed), its control loop, and marks it SERVING.

    The control loop's first round runs at once: after a restart it finds the versions that should run
    and loads whatever this replica's Triton lacks."""
    triton_repo = TritonRepository(deps.store, config.triton_bucket, config.triton_prefix, deps.settings)
    triton_repo.ensure()
    deployments = Deployments(
        DeploymentRepository(deps.pool), deps.training, deps.triton, triton_repo, deps.store, deps.settings
    )
    controller = Controller(deployments, deps.settings.reconcile_s)
    running = create_server(
        config.listen_addr,
        [lambda server: pb_grpc.add_ServingServiceServicer_to_server(ServingServicer(deployments), server)],
        [SERVICE_NAME],
        workers=config.grpc_workers,
    )
    controller.start()
    running.on_stop += [deployments.close, controller.stop]
    running.set_serving(True)
    return running


def main() -> None:
    """Runs the serving service process until SIGTERM."""
    config = Config.from_env("serving")
    logs.setup("serving", config.log_level)
    db.migrate(config.database_url, SCHEMA, MIGRATIONS)
    pool = db.create_pool(config.database_url, SCHEMA, config.db_pool_min, config.db_pool_max)
    store = ObjectStore(config.s3_endpoint, config.s3_access_key, config.s3_secret_key, config.s3_region)
    training = TrainingClient(config.training_addr)
    triton = TritonClient(config.triton_grpc_addr)
    running = build_server(config, Deps(pool, store, training, triton, ServingSettings.from_env()))
    # Closed last (on_stop runs in reverse): the control loop and the jobs still use them while they stop.
    running.on_stop[:0] = [triton.close, training.close, pool.close]
    serve(running, config.shutdown_grace_s)
