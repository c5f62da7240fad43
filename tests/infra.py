"""pytest plugin: a real Postgres, a real S3 server and a real Triton, started once per test session.

Load it with `pytest_plugins = ["tests.infra"]` in tests/conftest.py (or `pytest -p tests.infra`).

When a Docker engine answers, Postgres and S3 run as containers (testcontainers: `postgres:15`,
MinIO); otherwise, which is what these machines have, as local processes through scripts/embedded.py
(the Debian Postgres binaries and SeaweedFS), in a temporary directory removed at the end of the
session. Triton is always a local process. Set CUSTOMLABELS_TEST_DOCKER=0 to skip the Docker probe.

Fixtures (all lazy: a server starts only when a test needs it):

- `pg_server` (session) -> str: superuser URL of the server, `postgresql://postgres:PW@HOST:PORT/postgres`.
- `database_url` (module) -> str: URL of a fresh database (copied from a template) owned by a non-super
  login role, for the tests of one module; dropped after the module.
- `s3_server` (session) -> S3Endpoint: `(endpoint "http://host:port", access_key, secret_key)`, with
  `.address` ("host:port") and `.client()` (a minio.Minio).
- `triton_server` (session) -> TritonServer: `(grpc_addr, http_addr, bucket, prefix)` with
  `.repository_url`; Triton runs with explicit model control and reads `s3://bucket/prefix` of
  `s3_server`, so a test writes a model there and loads it by name.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pytest

from scripts.embedded import (
    LOOPBACK,
    Postgres,
    S3Endpoint,
    SeaweedS3,
    Triton,
    Watchdog,
    ensure_triton_repository,
    free_port,
)

READY_TIMEOUT = 90.0
TEMPLATE_DATABASE = "customlabels_template"
TEST_ROLE = "customlabels_test"
TRITON_BUCKET = "customlabels-triton-test"
TRITON_PREFIX = "repository"

__all__ = ["S3Endpoint", "TritonServer"]


class TritonServer(NamedTuple):
    """A running Triton: its gRPC and HTTP `host:port`, and where in S3 its model repository is.

    `process` is the Triton part itself (its `pid` changes when the watchdog restarts it)."""

    grpc_addr: str
    http_addr: str
    bucket: str
    prefix: str
    process: Triton | None = None

    @property
    def repository_url(self) -> str:
        """`s3://bucket/prefix`."""
        return f"s3://{self.bucket}/{self.prefix}"


def _docker_reachable() -> bool:
    if os.environ.get("CUSTOMLABELS_TEST_DOCKER", "").lower() in ("0", "false", "no"):
        return False
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@pytest.fixture(scope="session")
def use_docker() -> bool:
    """Whether Postgres and S3 run in containers (a Docker engine answers) or as local processes."""
    return _docker_reachable()


@pytest.fixture(scope="session")
def infra_dir() -> Iterator[Path]:
    """A directory for the local servers' data and logs, removed at the end of the session."""
    # Not tmp_path_factory: its base is a 0700 directory that the postgres user (when we run as root)
    # cannot enter.
    path = Path(tempfile.mkdtemp(prefix="customlabels-infra-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server(use_docker: bool, infra_dir: Path) -> Iterator[str]:
    """A Postgres server for the session; yields the superuser URL (database `postgres`)."""
    password = secrets.token_hex(16)
    if use_docker:
        try:
            from testcontainers.community.postgres import PostgresContainer
        except ImportError:  # older testcontainers
            from testcontainers.postgres import PostgresContainer

        with PostgresContainer(
            "postgres:15", username="postgres", password=password, dbname="postgres"
        ) as pg:
            yield pg.get_connection_url(driver=None)
        return
    server = Postgres(
        infra_dir / "postgres",
        free_port(),
        password,
        infra_dir / "logs" / "postgres.log",
        durable=False,
        die_with_parent=True,
    )
    try:
        server.start()
        server.wait_ready(READY_TIMEOUT)
        yield server.admin_url
    finally:
        server.stop()


class _TestDatabases(NamedTuple):
    role: str
    password: str
    template: str

    @contextmanager
    def fresh(self, pg_server: str, name: str) -> Iterator[str]:
        """A new database `name` copied from the template, owned by the role: its URL; dropped after."""
        import psycopg
        from psycopg import conninfo, sql

        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(self.template), sql.Identifier(self.role)
                )
            )
        admin = conninfo.conninfo_to_dict(pg_server)
        try:
            yield f"postgresql://{self.role}:{self.password}@{admin['host']}:{admin['port']}/{name}"
        finally:
            with psycopg.connect(pg_server, autocommit=True) as conn:
                # FORCE: a pool a test forgot to close must not keep the database alive.
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def _test_databases(pg_server: str) -> _TestDatabases:
    """The login role the tests' databases belong to, and the (empty) template they are copied from."""
    import psycopg
    from psycopg import sql

    password = secrets.token_hex(16)
    with psycopg.connect(pg_server, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [TEST_ROLE]).fetchone()
        conn.execute(
            sql.SQL("{} ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                sql.SQL("ALTER" if exists else "CREATE"), sql.Identifier(TEST_ROLE), sql.Literal(password)
            )
        )
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [TEMPLATE_DATABASE]).fetchone():
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {} IS_TEMPLATE true").format(
                    sql.Identifier(TEMPLATE_DATABASE), sql.Identifier(TEST_ROLE)
                )
            )
    return _TestDatabases(TEST_ROLE, password, TEMPLATE_DATABASE)


@pytest.fixture(scope="module")
def database_url(
    request: pytest.FixtureRequest, pg_server: str, _test_databases: _TestDatabases
) -> Iterator[str]:
    """A fresh database for this test module (a copy of the template), dropped after the module."""
    stem = re.sub(r"[^a-z0-9]+", "_", request.module.__name__.rsplit(".", 1)[-1].lower())[:40]
    with _test_databases.fresh(pg_server, f"t_{stem}_{uuid.uuid4().hex[:8]}") as url:
        yield url


@pytest.fixture(scope="session")
def s3_server(use_docker: bool, infra_dir: Path) -> Iterator[S3Endpoint]:
    """An S3 server for the session: `(endpoint "http://host:port", access_key, secret_key)`."""
    access_key, secret_key = "cl" + secrets.token_hex(9), secrets.token_hex(20)
    if use_docker:
        try:
            from testcontainers.community.minio import MinioContainer
        except ImportError:  # older testcontainers
            from testcontainers.minio import MinioContainer

        with MinioContainer(access_key=access_key, secret_key=secret_key) as minio:
            config = minio.get_config()
            yield S3Endpoint(f"http://{config['endpoint']}", access_key, secret_key)
        return
    server = SeaweedS3(
        infra_dir / "s3",
        SeaweedS3.pick_ports(),
        access_key,
        secret_key,
        infra_dir / "logs" / "s3.log",
        die_with_parent=True,
    )
    try:
        server.start()
        server.wait_ready(READY_TIMEOUT)
        yield server.s3
    finally:
        server.stop()


@pytest.fixture(scope="session")
def triton_server(s3_server: S3Endpoint, infra_dir: Path) -> Iterator[TritonServer]:
    """Triton for the session (local process), its repository at `s3://customlabels-triton-test/repository`.

    A watchdog restarts it on its ports whenever it dies, as the stack's supervisor does (tests kill it)."""
    ensure_triton_repository(s3_server, TRITON_BUCKET, TRITON_PREFIX)
    server = Triton(
        infra_dir / "triton",
        Triton.pick_ports(),
        s3_server,
        TRITON_BUCKET,
        TRITON_PREFIX,
        infra_dir / "logs" / "triton.log",
        host=LOOPBACK,
        die_with_parent=True,
    )
    watchdog = Watchdog(server, ready_timeout=READY_TIMEOUT)
    try:
        server.start()
        server.wait_ready(READY_TIMEOUT)
        watchdog.start()
        yield TritonServer(server.grpc_addr, server.http_addr, TRITON_BUCKET, TRITON_PREFIX, server)
    finally:
        watchdog.stop()
        server.stop()
