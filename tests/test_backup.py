"""Backup and restore (scripts/backup.py) on real parts: a project with a labeled dataset and a trained,
running version is backed up, restored into a fresh Postgres and a fresh S3 server (new ports, new
data folders) with a fresh Triton, and the services started on them as processes serve the same
entries and versions, and the restored model answers DetectCustomLabels like the original."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import psycopg
import pytest
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.dataset.v1 import dataset_service_pb2_grpc as ds_grpc
from customlabels.project.v1 import project_service_pb2 as pj
from customlabels.project.v1 import project_service_pb2_grpc as pj_grpc
from customlabels.serving.v1 import serving_service_pb2 as sv
from customlabels.serving.v1 import serving_service_pb2_grpc as sv_grpc
from customlabels.training.v1 import training_service_pb2 as tr
from customlabels.training.v1 import training_service_pb2_grpc as tr_grpc
from psycopg import sql

from scripts import backup, samples
from scripts.embedded import Postgres, SeaweedS3, ServiceProcess, Triton, free_port, stop_all, wait_all_ready
from scripts.inprocess import LocalServices
from services.common import clients
from tests.dataset.util import create_from_lines, entries, new_project, put, wait
from tests.helpers import training_worker
from tests.infra import READY_TIMEOUT

OUTPUT_BUCKET = "backup-test-output"


def _env(stack: LocalServices) -> dict[str, str]:
    return dict(stack.env)


def _versions(stack: Any, project: str) -> list[tuple[Any, ...]]:
    page = stack.training.DescribeProjectVersions(tr.DescribeProjectVersionsRequest(project_arn=project))
    return [
        (d.project_version_arn, d.status, d.evaluation_result.f1_score, d.creation_timestamp.seconds)
        for d in page.project_version_descriptions
    ]


def _wait_version(stack: Any, project: str, wanted: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        (version,) = _versions(stack, project)
        if version[1] == wanted:
            return
        assert version[1] not in (tr.PROJECT_VERSION_STATUS_TRAINING_FAILED, tr.PROJECT_VERSION_STATUS_FAILED)
        assert time.monotonic() < deadline, f"version still {tr.ProjectVersionStatus.Name(version[1])}"
        time.sleep(0.2)


def _detect(stack: Any, arn: str, data: bytes) -> list[tuple[str, float]]:
    answer = stack.serving.DetectCustomLabels(
        sv.DetectCustomLabelsRequest(project_version_arn=arn, image=sv.Image(bytes=data), min_confidence=0)
    )
    return [(label.name, round(label.confidence, 3)) for label in answer.custom_labels]


@pytest.fixture(scope="module")
def original(stack: LocalServices, database_url: str) -> Iterator[SimpleNamespace]:
    """A project with TRAIN and TEST datasets and a trained version, RUNNING on the session's Triton."""
    project = new_project(stack, "backup")
    bucket = f"bk-{secrets.token_hex(4)}"
    for dataset_type, items in (
        (ds.DATASET_TYPE_TRAIN, samples.classification(per_label=4, seed=51)),
        (ds.DATASET_TYPE_TEST, samples.classification(per_label=2, seed=52)),
    ):
        lines = [samples.manifest_line(put(stack.store, bucket, s.file_name, s.data), s) for s in items]
        assert wait(stack, create_from_lines(stack, project, lines, dataset_type)).status in (
            ds.DATASET_STATUS_CREATE_COMPLETE,
        )
    stack.store.ensure_bucket(OUTPUT_BUCKET)
    with training_worker(stack, database_url, lease_s=60):
        arn = stack.training.CreateProjectVersion(
            tr.CreateProjectVersionRequest(
                project_arn=project,
                version_name="v1",
                output_config={"s3_bucket": OUTPUT_BUCKET, "s3_key_prefix": "v1"},
            )
        ).project_version_arn
        _wait_version(stack, project, tr.PROJECT_VERSION_STATUS_TRAINING_COMPLETED, 300)
    assert stack.serving is not None
    stack.serving.StartProjectVersion(
        sv.StartProjectVersionRequest(project_version_arn=arn, min_inference_units=1)
    )
    _wait_version(stack, project, tr.PROJECT_VERSION_STATUS_RUNNING, 120)
    probe = samples.classification(per_label=1, seed=53)[0].data
    yield SimpleNamespace(project=project, version_arn=arn, probe=probe, answer=_detect(stack, arn, probe))
    stack.serving.StopProjectVersion(sv.StopProjectVersionRequest(project_version_arn=arn))


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="customlabels-backup-"))
    path.chmod(0o755)  # the postgres user must reach its data folder
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def fresh(work: Path) -> Iterator[SimpleNamespace]:
    """A new Postgres (with an empty database) and a new S3 server, on new ports and data folders."""
    pg = Postgres(
        work / "pg", free_port(), secrets.token_hex(8), work / "pg.log", durable=False, die_with_parent=True
    )
    s3 = SeaweedS3(
        work / "s3",
        SeaweedS3.pick_ports(),
        "fresh" + secrets.token_hex(4),
        secrets.token_hex(16),
        work / "s3.log",
        die_with_parent=True,
    )
    try:
        pg.start()
        s3.start()
        assert wait_all_ready([pg, s3], READY_TIMEOUT) == []
        password = secrets.token_hex(8)
        with psycopg.connect(pg.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE restored LOGIN PASSWORD {}").format(sql.Literal(password)))
            conn.execute("CREATE DATABASE restored OWNER restored")
        yield SimpleNamespace(pg=pg, s3=s3, database_url=pg.url("restored", password, "restored"))
    finally:
        stop_all([s3, pg])


@pytest.fixture(scope="module")
def restored(
    stack: LocalServices, database_url: str, original: SimpleNamespace, fresh: SimpleNamespace, work: Path
) -> Iterator[SimpleNamespace]:
    """Backup of the original, restored into the fresh servers; Triton and the services started on them."""
    source = backup.target_from({**_env(stack), "DATABASE_URL": database_url})
    manifest = backup.backup(source, work / "backup")
    env = {
        **_env(stack),
        "DATABASE_URL": fresh.database_url,
        "CUSTOMLABELS_S3_ENDPOINT": fresh.s3.endpoint,
        "CUSTOMLABELS_S3_ACCESS_KEY": fresh.s3.s3.access_key,
        "CUSTOMLABELS_S3_SECRET_KEY": fresh.s3.s3.secret_key,
    }
    summary = backup.restore(work / "backup", backup.target_from(env))
    triton = Triton(
        work / "triton",
        Triton.pick_ports(),
        fresh.s3.s3,
        env["CUSTOMLABELS_TRITON_BUCKET"],
        env["CUSTOMLABELS_TRITON_PREFIX"],
        work / "triton.log",
        die_with_parent=True,
    )
    names = ("project", "dataset", "training", "serving")
    addrs = {name: f"127.0.0.1:{free_port()}" for name in names}
    env.update({f"CUSTOMLABELS_{n.upper()}_ADDR": a for n, a in addrs.items()})
    env["CUSTOMLABELS_TRITON_GRPC_ADDR"] = triton.grpc_addr
    env["CUSTOMLABELS_SHUTDOWN_GRACE_S"] = "1"
    services = [
        ServiceProcess(n, f"services.{n}", env, work / f"{n}.log", addr=addrs[n], die_with_parent=True)
        for n in names
    ]
    channels = []
    try:
        triton.start()
        for service in services:
            service.start()
        assert wait_all_ready([triton, *services], READY_TIMEOUT) == []
        channels = [clients.channel(addrs[n]) for n in names]
        yield SimpleNamespace(
            manifest=manifest,
            summary=summary,
            project=pj_grpc.ProjectServiceStub(channels[0]),
            dataset=ds_grpc.DatasetServiceStub(channels[1]),
            training=tr_grpc.TrainingServiceStub(channels[2]),
            serving=sv_grpc.ServingServiceStub(channels[3]),
        )
    finally:
        for channel in channels:
            channel.close()
        stop_all([*reversed(services), triton])


def test_the_backup_holds_every_row_and_object_it_refers_to(restored, original):
    manifest = restored.manifest
    assert manifest["missing_references"] == [] and manifest["references"] >= 18
    assert manifest["postgres"]["rows"]["dataset.entries"] >= 18
    assert manifest["postgres"]["rows"]["serving.deployments"] >= 1
    assert OUTPUT_BUCKET in manifest["buckets"]
    assert restored.summary["rows"] == manifest["postgres"]["rows"]
    assert restored.summary["objects"] == sum(len(v) for v in manifest["buckets"].values())


def test_the_restored_stack_serves_the_same_entries_and_versions(stack, restored, original):
    projects = stack.project.DescribeProjects(pj.DescribeProjectsRequest()).project_descriptions
    arns = [d.dataset_arn for p in projects if p.project_arn == original.project for d in p.datasets]
    assert len(arns) == 2
    for arn in arns:
        before = entries(stack, arn)
        assert before and entries(restored, arn) == before
        assert any(e for e in before if len(e) > 1)  # labeled lines, labels included in the comparison
    assert _versions(restored, original.project) == _versions(stack, original.project)


def test_the_restored_model_runs_again_and_answers_like_the_original(restored, original):
    # The deployment row says RUNNING: the serving service loads the model into the new Triton by
    # itself, answering UNAVAILABLE ("retry shortly") until it is there.
    _wait_version(restored, original.project, tr.PROJECT_VERSION_STATUS_RUNNING, 120)
    deadline = time.monotonic() + 120
    while True:
        try:
            answer = _detect(restored, original.version_arn, original.probe)
            break
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline, exc
            time.sleep(0.2)
    assert answer == original.answer
    assert original.answer


def test_restore_refuses_a_database_that_is_not_empty(restored, work, fresh, stack):
    env = {
        **_env(stack),
        "DATABASE_URL": fresh.database_url,
        "CUSTOMLABELS_S3_ENDPOINT": fresh.s3.endpoint,
        "CUSTOMLABELS_S3_ACCESS_KEY": fresh.s3.s3.access_key,
        "CUSTOMLABELS_S3_SECRET_KEY": fresh.s3.s3.secret_key,
    }
    with pytest.raises(backup.BackupError, match="empty"):
        backup.restore(work / "backup", backup.target_from(env))
