"""Wiring of the project service: `build_server(config, deps)` for tests and `main()` for the process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from customlabels.project.v1 import project_service_pb2 as pb
from customlabels.project.v1 import project_service_pb2_grpc as pb_grpc
from psycopg_pool import ConnectionPool

from services.common import db, logs
from services.common.config import Config
from services.common.pagination import PageTokens
from services.common.server import RunningServer, create_server, serve
from services.project.peers import GrpcPeers
from services.project.projects import Limits, Peers, ProjectService
from services.project.repository import ProjectRepository
from services.project.servicer import ProjectServicer

SCHEMA = "project"
MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ProjectService"].full_name


@dataclass
class Deps:
    """What the project service is built from; tests pass their own."""

    pool: ConnectionPool
    peers: Peers
    limits: Limits = Limits()


def build_server(config: Config, deps: Deps) -> RunningServer:
    """Starts a project server on config.listen_addr (port 0 allowed) and marks it SERVING."""
    service = ProjectService(
        ProjectRepository(deps.pool),
        deps.peers,
        PageTokens(config.page_token_secret),
        config.region,
        config.account_id,
        deps.limits,
    )
    servicer = ProjectServicer(service)
    running = create_server(
        config.listen_addr,
        [lambda server: pb_grpc.add_ProjectServiceServicer_to_server(servicer, server)],
        [SERVICE_NAME],
        workers=config.grpc_workers,
    )
    running.set_serving(True)
    return running


def main() -> None:
    """Runs the project service process until SIGTERM."""
    config = Config.from_env("project")
    logs.setup("project", config.log_level)
    db.migrate(config.database_url, SCHEMA, MIGRATIONS)
    pool = db.create_pool(config.database_url, SCHEMA, config.db_pool_min, config.db_pool_max)
    peers = GrpcPeers(config.dataset_addr, config.training_addr)
    running = build_server(config, Deps(pool=pool, peers=peers))
    running.on_stop[:0] = [pool.close, peers.close]
    serve(running, config.shutdown_grace_s)
