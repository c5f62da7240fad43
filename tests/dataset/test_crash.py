"""Kill -9 the dataset service in the middle of a large import: the dataset still ends in a final
status (resumed and completed, or failed with a message), never stuck, never partially visible."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.dataset.v1 import dataset_service_pb2_grpc as ds_grpc
from customlabels.project.v1 import project_service_pb2 as pj
from customlabels.project.v1 import project_service_pb2_grpc as pj_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from scripts.embedded import free_port
from services.common import db
from services.common.storage import ObjectStore
from services.dataset import app as dataset_app
from services.project import app as project_app
from services.project.peers import GrpcPeers
from tests.conftest import service_config
from tests.dataset.util import cls_line, jpeg, put
from tests.helpers import expect_error

ROOT = Path(__file__).resolve().parents[2]
IMAGES = 400


class DatasetProcess:
    """The dataset service as a real process we can kill -9 and restart."""

    def __init__(self, env: dict[str, str], addr: str, log: Path) -> None:
        self.env, self.addr, self.log = env, addr, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.dataset"], cwd=ROOT, env=self.env, stdout=out, stderr=out
            )
        channel = grpc.insecure_channel(self.addr)
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 30
        while True:
            try:
                if (
                    health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    break
            except grpc.RpcError:
                pass
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            assert time.monotonic() < deadline, "dataset service did not become healthy"
            time.sleep(0.1)
        channel.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def crash_env(database_url, s3_server, tmp_path_factory) -> Iterator[dict]:
    project_addr, dataset_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    images_bucket = f"images-{uuid.uuid4().hex[:12]}"
    db.migrate(database_url, project_app.SCHEMA, project_app.MIGRATIONS)
    db.migrate(database_url, dataset_app.SCHEMA, dataset_app.MIGRATIONS)
    pool = db.create_pool(database_url, project_app.SCHEMA)
    peers = GrpcPeers(dataset_addr, f"127.0.0.1:{free_port()}")
    project = project_app.build_server(
        service_config("project", database_url, CUSTOMLABELS_LISTEN_ADDR=project_addr),
        project_app.Deps(pool=pool, peers=peers),
    )
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CUSTOMLABELS_LISTEN_ADDR": dataset_addr,
        "CUSTOMLABELS_PROJECT_ADDR": project_addr,
        "CUSTOMLABELS_S3_ENDPOINT": s3_server.endpoint,
        "CUSTOMLABELS_S3_ACCESS_KEY": s3_server.access_key,
        "CUSTOMLABELS_S3_SECRET_KEY": s3_server.secret_key,
        "CUSTOMLABELS_IMAGES_BUCKET": images_bucket,
        "CUSTOMLABELS_DATASET_JOB_LEASE_S": "2",
    }
    store = ObjectStore(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
    bucket = f"crash-{uuid.uuid4().hex[:8]}"
    refs = [put(store, bucket, f"{i}.jpg", jpeg(320, 240, seed=5000 + i)) for i in range(IMAGES)]
    manifest = "\n".join(cls_line(r, f"l{i % 4}") for i, r in enumerate(refs)).encode()
    put(store, bucket, "big.manifest", manifest)
    channel, dchannel = grpc.insecure_channel(project_addr), grpc.insecure_channel(dataset_addr)
    yield {
        "env": env,
        "addr": dataset_addr,
        "bucket": bucket,
        "log": tmp_path_factory.mktemp("crash") / "dataset.log",
        "project": pj_grpc.ProjectServiceStub(channel),
        "dataset": ds_grpc.DatasetServiceStub(dchannel),
        "database_url": database_url,
    }
    channel.close()
    dchannel.close()
    project.stop(0)
    peers.close()
    pool.close()


def _stored_entries(database_url: str, dataset_arn: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM dataset.entries e JOIN dataset.datasets d ON d.id = e.dataset_id WHERE d.arn = %s",
            (dataset_arn,),
        ).fetchone()
    return row[0] if row else 0


def _stored_status_and_entries(database_url: str, dataset_arn: str) -> tuple[str, int]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT d.status, (SELECT count(*) FROM dataset.entries e WHERE e.dataset_id = d.id)"
            " FROM dataset.datasets d WHERE d.arn = %s",
            (dataset_arn,),
        ).fetchone()
    assert row is not None, "the dataset row vanished"
    return row[0], row[1]


def _start_import(env: dict) -> str:
    project = (
        env["project"]
        .CreateProject(pj.CreateProjectRequest(project_name=f"crash-{uuid.uuid4().hex[:8]}"))
        .project_arn
    )
    return (
        env["dataset"]
        .CreateDataset(
            ds.CreateDatasetRequest(
                project_arn=project,
                dataset_type=ds.DATASET_TYPE_TRAIN,
                dataset_source=ds.DatasetSource(
                    ground_truth_manifest={"s3_object": {"bucket": env["bucket"], "name": "big.manifest"}}
                ),
            )
        )
        .dataset_arn
    )


def _kill_once_running(env: dict, arn: str, service: DatasetProcess) -> None:
    """Kills the service as soon as its job for `arn` is running (well before it can finish)."""
    deadline = time.monotonic() + 30
    with psycopg.connect(env["database_url"], autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT j.state FROM dataset.jobs j JOIN dataset.datasets d ON d.id = j.dataset_id WHERE d.arn = %s",
                (arn,),
            ).fetchone()
            if row and row[0] == "running":
                break
            assert time.monotonic() < deadline, "the import job never started"
            time.sleep(0.02)
    time.sleep(0.2)
    service.kill()


def _describe(env: dict, arn: str) -> ds.DatasetDescription:
    return env["dataset"].DescribeDataset(ds.DescribeDatasetRequest(dataset_arn=arn)).dataset_description


def _wait_final(env: dict, arn: str, timeout: float = 90) -> ds.DatasetDescription:
    deadline = time.monotonic() + timeout
    while True:
        # One statement sees one snapshot: status and entries together. While the import is
        # unfinished nothing of it is visible (entries and the final status commit together).
        status, entries = _stored_status_and_entries(env["database_url"], arn)
        if status != "CREATE_IN_PROGRESS":
            return _describe(env, arn)
        assert entries == 0
        assert time.monotonic() < deadline, "dataset stuck in CREATE_IN_PROGRESS"
        time.sleep(0.2)


def test_an_import_killed_midway_is_resumed_and_completes(crash_env):
    service = DatasetProcess(crash_env["env"], crash_env["addr"], crash_env["log"])
    service.start()
    try:
        arn = _start_import(crash_env)
        _kill_once_running(crash_env, arn, service)
        assert _stored_entries(crash_env["database_url"], arn) == 0
        service.start()
        expect_error(
            lambda: crash_env["dataset"].ListDatasetEntries(ds.ListDatasetEntriesRequest(dataset_arn=arn)),
            grpc.StatusCode.FAILED_PRECONDITION,
            "ResourceNotReadyException",
        )
        desc = _wait_final(crash_env, arn)
        assert desc.status == ds.DATASET_STATUS_CREATE_COMPLETE, desc.status_message
        assert desc.dataset_stats.total_entries == IMAGES
        assert _stored_entries(crash_env["database_url"], arn) == IMAGES
    finally:
        service.stop()


def test_an_import_that_keeps_dying_ends_failed_with_a_service_error(crash_env):
    env = {**crash_env["env"], "CUSTOMLABELS_DATASET_JOB_MAX_ATTEMPTS": "1"}
    service = DatasetProcess(env, crash_env["addr"], crash_env["log"])
    service.start()
    try:
        arn = _start_import(crash_env)
        _kill_once_running(crash_env, arn, service)
        service.start()
        desc = _wait_final(crash_env, arn)
        assert desc.status == ds.DATASET_STATUS_CREATE_FAILED
        assert desc.status_message_code == ds.DATASET_STATUS_MESSAGE_CODE_SERVICE_ERROR
        assert "retry" in desc.status_message
        assert _stored_entries(crash_env["database_url"], arn) == 0
    finally:
        service.stop()
