"""Training workers as real processes: a worker killed with -9 mid-training leaves a job that another
claims once the lease expires; the maximum training time ends a runaway job; external manifests
with AutoCreate train too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
from customlabels.common.v1 import types_pb2 as common
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.training.v1 import training_service_pb2 as tr

from scripts import samples
from tests.dataset.util import new_project, put
from tests.training.test_worker import dataset_from_samples, settle

ROOT = Path(__file__).resolve().parents[2]


def start_worker(stack, database_url: str, log: Path, **extra: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **stack.env,
        "DATABASE_URL": database_url,
        "CUSTOMLABELS_TRAINING_JOB_LEASE_S": "3",
        "CUSTOMLABELS_TRAINING_JOB_POLL_S": "0.2",
        **extra,
    }
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.training.worker"], cwd=ROOT, env=env, stdout=out, stderr=out
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def job_state(database_url: str, version_arn: str) -> tuple[str, int] | None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT j.state, j.attempts FROM training.jobs j JOIN training.versions v ON v.id = j.version_id"
            " WHERE v.arn = %s",
            (version_arn,),
        ).fetchone()
    return (row[0], row[1]) if row else None


def classification_project(stack) -> str:
    stack.store.ensure_bucket("training-results")
    project = new_project(stack, "proc")
    dataset_from_samples(stack, project, samples.classification(per_label=8, seed=41), ds.DATASET_TYPE_TRAIN)
    dataset_from_samples(stack, project, samples.classification(per_label=3, seed=42), ds.DATASET_TYPE_TEST)
    return project


def create(stack, project: str, name: str, **kwargs) -> str:
    return stack.training.CreateProjectVersion(
        tr.CreateProjectVersionRequest(
            project_arn=project,
            version_name=name,
            output_config=common.OutputConfig(s3_bucket="training-results", s3_key_prefix="proc"),
            **kwargs,
        )
    ).project_version_arn


def test_a_worker_killed_mid_training_leaves_a_job_another_worker_finishes(stack, database_url, tmp_path):
    project = classification_project(stack)
    arn = create(stack, project, "killed")
    first = start_worker(stack, database_url, tmp_path / "w1.log")
    try:
        deadline = time.monotonic() + 120
        while job_state(database_url, arn) != ("running", 1):
            assert time.monotonic() < deadline, (tmp_path / "w1.log").read_text()[-2000:]
            time.sleep(0.05)
        time.sleep(1.0)  # well inside the run: it is reading images or computing features
        first.send_signal(signal.SIGKILL)
        first.wait()
        desc = stack.training.DescribeProjectVersions(
            tr.DescribeProjectVersionsRequest(project_arn=project, version_names=["killed"])
        ).project_version_descriptions[0]
        assert desc.status == tr.PROJECT_VERSION_STATUS_TRAINING_IN_PROGRESS
    finally:
        stop(first)
    second = start_worker(stack, database_url, tmp_path / "w2.log")
    try:
        desc = settle(stack, project, "killed", timeout=300)
        assert desc.status == tr.PROJECT_VERSION_STATUS_TRAINING_COMPLETED, desc.status_message
        assert job_state(database_url, arn) == ("done", 2)
        assert desc.training_progress.attempt == 2
    finally:
        stop(second)


def test_the_maximum_training_time_ends_a_runaway_job(stack, database_url, tmp_path):
    project = classification_project(stack)
    create(stack, project, "slow")
    worker = start_worker(stack, database_url, tmp_path / "w3.log", CUSTOMLABELS_TRAINING_MAX_SECONDS="0.5")
    try:
        desc = settle(stack, project, "slow", timeout=300)
        assert desc.status == tr.PROJECT_VERSION_STATUS_TRAINING_FAILED
        assert "maximum training time" in desc.status_message
    finally:
        stop(worker)


def test_external_manifests_with_auto_create_train(stack, database_url, tmp_path):
    stack.store.ensure_bucket("training-results")
    project = new_project(stack, "external")
    bucket = f"ext-{uuid.uuid4().hex[:8]}"
    lines = [
        samples.manifest_line(put(stack.store, bucket, s.file_name, s.data), s)
        for s in samples.classification(per_label=8, seed=51)
    ]
    put(stack.store, bucket, "train.manifest", "\n".join(lines).encode())
    asset = common.Asset(
        ground_truth_manifest=common.GroundTruthManifest(
            s3_object=common.S3Object(bucket=bucket, name="train.manifest")
        )
    )
    create(
        stack,
        project,
        "auto",
        training_data=common.TrainingData(assets=[asset]),
        testing_data=common.TestingData(auto_create=True),
    )
    worker = start_worker(stack, database_url, tmp_path / "w4.log")
    try:
        desc = settle(stack, project, "auto", timeout=300)
        assert desc.status == tr.PROJECT_VERSION_STATUS_TRAINING_COMPLETED, desc.status_message
        assert desc.testing_data_result.input.auto_create
        assert (
            desc.training_data_result.input.assets[0].ground_truth_manifest.s3_object.name == "train.manifest"
        )
        stats = __import__("json").loads(
            stack.store.get_bytes(
                desc.manifest_summary.s3_object.bucket, desc.manifest_summary.s3_object.name
            )
        )["statistics"]
        assert stats["training"]["valid_json_lines"] + stats["testing"]["valid_json_lines"] == 24
        assert stats["testing"]["valid_json_lines"] >= 3
    finally:
        stop(worker)
