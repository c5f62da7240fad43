"""Training workers as real processes: a worker killed with -9 mid-training leaves a job that another
claims once the lease expires; the maximum training time ends a runaway job; external manifests
with AutoCreate train too; a worker started while S3 is down waits for it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from customlabels.common.v1 import types_pb2 as common
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.training.v1 import training_service_pb2 as tr

from scripts import samples
from scripts.embedded import free_port
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


class _LateProxy:
    """A TCP port that refuses connections until `open()`, then forwards each one to `target`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None

    def open(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()


def test_a_worker_started_before_s3_waits_for_it_then_goes_on(stack, database_url, tmp_path):
    """The stack (and Kubernetes) may start the worker while the store is down or restarting: it must
    wait and say so, not exit (a dead worker left `make up` with no one to train)."""
    endpoint = urlsplit(stack.env["CUSTOMLABELS_S3_ENDPOINT"])
    proxy = _LateProxy((endpoint.hostname, endpoint.port))
    bucket = f"models-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "late.log"
    worker = start_worker(
        stack,
        database_url,
        log,
        CUSTOMLABELS_S3_ENDPOINT=f"http://127.0.0.1:{proxy.port}",
        CUSTOMLABELS_MODELS_BUCKET=bucket,
    )
    try:
        deadline = time.monotonic() + 60
        while "waiting for S3" not in log.read_text(errors="replace"):
            assert worker.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.2)
        assert not stack.store.client.bucket_exists(bucket)
        proxy.open()
        # Once the store answers, the worker makes its models bucket and starts taking jobs.
        deadline = time.monotonic() + 60
        while not stack.store.client.bucket_exists(bucket):
            assert worker.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.2)
        time.sleep(1.0)
        assert worker.poll() is None, log.read_text(errors="replace")
        worker.terminate()
        assert worker.wait(30) == 0, log.read_text(errors="replace")
    finally:
        stop(worker)
        proxy.close()
