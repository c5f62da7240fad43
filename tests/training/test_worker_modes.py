"""Worker modes and shutdown: one-job mode exits 0 (with and without a queued job), SIGTERM requeues the
running job with its attempt given back and exits 0, releases never spend attempts, a worker under
torchrun refuses to start, and `--check` reads the liveness file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
from customlabels.common.v1 import types_pb2 as common
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.training.v1 import training_service_pb2 as tr

from scripts import samples
from services.common import db
from services.common.jobs import JobInterrupted, JobRunner, JobSettings
from services.training import app as training_app
from services.training.repository import VersionRepository
from tests.dataset.util import new_project
from tests.training.test_worker import dataset_from_samples
from tests.training.test_worker_process import classification_project, create, job_state, start_worker, stop

ROOT = Path(__file__).resolve().parents[2]


def run_worker(
    stack, database_url: str, tmp_path: Path, *args: str, **extra: str
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        **stack.env,
        "DATABASE_URL": database_url,
        "CUSTOMLABELS_TRAINING_JOB_LEASE_S": "3",
        "CUSTOMLABELS_TRAINING_WORKER_ALIVE_FILE": str(tmp_path / "alive"),
        **extra,
    }
    return subprocess.run(
        [sys.executable, "-m", "services.training.worker", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def small_project(stack, name: str) -> str:
    project = new_project(stack, name)
    dataset_from_samples(stack, project, samples.classification(per_label=3, seed=81), ds.DATASET_TYPE_TRAIN)
    dataset_from_samples(stack, project, samples.classification(per_label=2, seed=82), ds.DATASET_TYPE_TEST)
    return project


def failing_version(stack, project: str, name: str) -> str:
    """A version whose training fails at once (its output bucket does not exist)."""
    return stack.training.CreateProjectVersion(
        tr.CreateProjectVersionRequest(
            project_arn=project,
            version_name=name,
            output_config=common.OutputConfig(s3_bucket=f"missing-{uuid.uuid4().hex[:8]}", s3_key_prefix="x"),
        )
    ).project_version_arn


def forget(database_url: str, *arns: str) -> None:
    """Removes versions (and their jobs), so the next test finds an empty queue."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM training.versions WHERE arn = ANY(%s)", (list(arns),))


def status(stack, project: str, name: str) -> tr.ProjectVersionDescription:
    (desc,) = stack.training.DescribeProjectVersions(
        tr.DescribeProjectVersionsRequest(project_arn=project, version_names=[name])
    ).project_version_descriptions
    return desc


def test_one_job_mode_exits_zero_when_nothing_is_queued(stack, database_url, tmp_path):
    done = run_worker(stack, database_url, tmp_path, "--once")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert '"ran_a_job": false' in done.stdout


def test_one_job_mode_runs_one_job_then_exits_zero(stack, database_url, tmp_path):
    project = small_project(stack, "once")
    first, second = failing_version(stack, project, "a"), failing_version(stack, project, "b")
    done = run_worker(stack, database_url, tmp_path, "--once")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    # Exactly one of the two jobs ran (to its end); the other is still waiting for the next worker.
    assert job_state(database_url, first) == ("failed", 1)
    assert status(stack, project, "a").status_message == "Unable to write to output S3 bucket."
    assert job_state(database_url, second) == ("queued", 0)
    assert status(stack, project, "b").status == tr.PROJECT_VERSION_STATUS_TRAINING_IN_PROGRESS
    # The same through the environment instead of the flag.
    again = run_worker(stack, database_url, tmp_path, CUSTOMLABELS_TRAINING_WORKER_MODE="once")
    assert again.returncode == 0, again.stderr[-2000:]
    assert job_state(database_url, second) == ("failed", 1)
    forget(database_url, first, second)


def test_sigterm_requeues_the_running_training_with_its_attempt_back_and_exits_zero(
    stack, database_url, tmp_path
):
    project = classification_project(stack)
    arn = create(stack, project, "evicted")
    log = tmp_path / "w.log"
    proc = start_worker(
        stack, database_url, log, CUSTOMLABELS_TRAINING_WORKER_ALIVE_FILE=str(tmp_path / "alive")
    )
    try:
        deadline = time.monotonic() + 120
        while status(stack, project, "evicted").training_progress.phase != tr.TRAINING_PHASE_TRAINING:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.1)
        assert job_state(database_url, arn) == ("running", 1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    finally:
        stop(proc)
    # Back in the queue, the attempt given back: an eviction is not a failed attempt.
    assert job_state(database_url, arn) == ("queued", 0)
    desc = status(stack, project, "evicted")
    assert desc.status == tr.PROJECT_VERSION_STATUS_TRAINING_IN_PROGRESS
    assert "interrupted by shutdown" in log.read_text()
    forget(database_url, arn)


def test_interrupted_jobs_never_spend_their_attempts(stack, database_url):
    project = small_project(stack, "releases")
    arn = failing_version(stack, project, "r")
    pool = db.create_pool(database_url, training_app.SCHEMA, 1, 2)
    try:
        queue = VersionRepository(pool).jobs
        calls: list[int] = []

        def interrupted(job, owner):
            calls.append(job.attempts)
            raise JobInterrupted("stopping")

        def give_up(job, owner, reason):
            raise AssertionError(f"gave up after {job.attempts} attempts")

        runner = JobRunner(queue, interrupted, give_up, JobSettings(workers=1, lease_s=30, max_attempts=1))
        for _ in range(4):
            assert runner.run_once()
            assert job_state(database_url, arn) == ("queued", 0)
        assert calls == [1, 1, 1, 1]
        # A plain release keeps the attempt; a given-back one returns it.
        job = queue.claim("me", 30)
        assert job is not None and job.attempts == 1
        assert queue.release(job.id, "me", "failed")
        assert job_state(database_url, arn) == ("queued", 1)
        job = queue.claim("me", 30)
        assert job is not None and job.attempts == 2
        assert queue.release(job.id, "me", "stopping", give_back=True)
        assert job_state(database_url, arn) == ("queued", 1)
        # Not ours (any more): nothing changes.
        assert not queue.release(job.id, "someone-else", "x", give_back=True)
        assert job_state(database_url, arn) == ("queued", 1)
    finally:
        pool.close()
        forget(database_url, arn)


def test_a_worker_stopped_past_its_grace_releases_its_job_itself(stack, database_url):
    """A handler that ignores `stopping` (stuck in one long call) still leaves a requeued job behind."""
    project = small_project(stack, "grace")
    arn = failing_version(stack, project, "g")
    pool = db.create_pool(database_url, training_app.SCHEMA, 1, 2)
    try:
        queue = VersionRepository(pool).jobs
        entered, leave = threading.Event(), threading.Event()

        def stuck(job, owner):
            entered.set()
            leave.wait(60)

        runner = JobRunner(queue, stuck, lambda *a: None, JobSettings(workers=1, lease_s=30, poll_s=0.1))
        runner.start()
        assert entered.wait(30)
        runner.stop(timeout=0.5)
        assert job_state(database_url, arn) == ("queued", 0)
        leave.set()
    finally:
        pool.close()
        forget(database_url, arn)


def test_a_worker_under_torchrun_refuses_to_start(stack, database_url, tmp_path):
    for args, extra in (((), {}), (("--once",), {}), ((), {"CUSTOMLABELS_TRAINING_WORKER_MODE": "once"})):
        done = run_worker(stack, database_url, tmp_path, *args, WORLD_SIZE="2", RANK="0", **extra)
        assert done.returncode == 2
        assert "WORLD_SIZE=2" in done.stderr and "CUSTOMLABELS_TRAINING_WORLD_SIZE" in done.stderr
    bad = run_worker(stack, database_url, tmp_path, CUSTOMLABELS_TRAINING_WORKER_MODE="forever")
    assert bad.returncode == 2 and "CUSTOMLABELS_TRAINING_WORKER_MODE" in bad.stderr


def test_check_reads_the_liveness_file(stack, database_url, tmp_path):
    alive = tmp_path / "alive"
    check = lambda **extra: run_worker(stack, database_url, tmp_path, "--check", **extra)  # noqa: E731
    missing = check()
    assert missing.returncode == 1 and "missing" in missing.stderr
    # A worker touches the file as soon as it runs (here: one-job mode with an empty queue).
    assert run_worker(stack, database_url, tmp_path, "--once").returncode == 0
    assert alive.exists()
    assert check().returncode == 0
    old = time.time() - 600
    os.utime(alive, (old, old))
    stale = check(CUSTOMLABELS_TRAINING_WORKER_ALIVE_S="60")
    assert stale.returncode == 1 and "old" in stale.stderr
