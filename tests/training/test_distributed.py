"""Training across processes through the public API: CUSTOMLABELS_TRAINING_WORLD_SIZE=2 on the local
launcher trains a classification version in two rank processes (torch.distributed, gloo) while the
claiming worker keeps the job; a killed rank fails the version with its reason instead of leaving it
TRAINING_IN_PROGRESS; a worker stopped with SIGTERM ends its ranks and hands the job back."""

from __future__ import annotations

import json
import os
import signal
import time
from contextlib import AbstractContextManager

import psycopg
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.training.v1 import training_service_pb2 as tr

from scripts import inprocess, samples
from tests.dataset.util import new_project
from tests.training.test_worker import SETTLED, dataset_from_samples, train
from tests.training.test_worker_process import job_state, start_worker, stop


def worker(stack, database_url: str, **extra: str) -> AbstractContextManager[None]:
    """An in-process training worker with `extra` settings (its ranks are real processes)."""
    return inprocess.training_worker(
        stack,
        database_url,
        30,
        CUSTOMLABELS_TRAINING_RANK_POLL_S="0.2",
        OMP_NUM_THREADS="1",
        **extra,
    )


def project_with_data(stack, name: str) -> str:
    stack.store.ensure_bucket("training-results")
    project = new_project(stack, name)
    dataset_from_samples(stack, project, samples.classification(per_label=8, seed=71), ds.DATASET_TYPE_TRAIN)
    dataset_from_samples(stack, project, samples.classification(per_label=3, seed=72), ds.DATASET_TYPE_TEST)
    return project


def describe(stack, project: str, name: str) -> tr.ProjectVersionDescription:
    (desc,) = stack.training.DescribeProjectVersions(
        tr.DescribeProjectVersionsRequest(project_arn=project, version_names=[name])
    ).project_version_descriptions
    return desc


def settle_watching(
    stack, project: str, name: str, timeout: float = 600
) -> tuple[tr.ProjectVersionDescription, list]:
    """The final description, and every (phase, percent) seen on the way."""
    deadline, seen = time.monotonic() + timeout, []
    while True:
        desc = describe(stack, project, name)
        if desc.status in SETTLED:
            return desc, seen
        seen.append((desc.training_progress.phase, desc.training_progress.percent))
        assert time.monotonic() < deadline, f"still {tr.ProjectVersionStatus.Name(desc.status)}"
        time.sleep(0.2)


def run_prefix(database_url: str, arn: str) -> str:
    """Where the ranks of the version's training keep their files (distributed.py)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT v.files->>'snapshot', j.id, j.attempts FROM training.versions v"
            " JOIN training.jobs j ON j.version_id = v.id WHERE v.arn = %s",
            (arn,),
        ).fetchone()
    assert row is not None
    return f"{row[0]}/distributed/job-{row[1]}-attempt-{row[2]}"


def rank_docs(stack, prefix: str) -> dict[int, dict]:
    out = {}
    for key in stack.store.list_keys(stack.models_bucket, f"{prefix}/ranks/"):
        doc = json.loads(stack.store.get_bytes(stack.models_bucket, key))
        out[doc["rank"]] = doc
    return out


def test_a_classification_trains_in_two_processes_through_create_project_version(stack, database_url):
    project = project_with_data(stack, "ddp")
    with worker(stack, database_url, CUSTOMLABELS_TRAINING_WORLD_SIZE="2"):
        arn = train(stack, project, "two")
        desc, seen = settle_watching(stack, project, "two")
    assert desc.status == tr.PROJECT_VERSION_STATUS_TRAINING_COMPLETED, desc.status_message
    assert desc.evaluation_result.f1_score >= 0.7
    assert desc.evaluation_result.summary.s3_object.name
    # Progress moved while the ranks trained (rank 0's reports reach DescribeProjectVersions).
    training = [percent for phase, percent in seen if phase == tr.TRAINING_PHASE_TRAINING]
    assert any(10.0 < percent < 85.0 for percent in training), sorted(set(seen))
    # Two ranks really ran: both recorded themselves done, in a world of two, as different processes.
    ranks = rank_docs(stack, run_prefix(database_url, arn))
    assert sorted(ranks) == [0, 1]
    assert all(r["state"] == "done" and r["world"] == 2 and r["processes"] == 2 for r in ranks.values())
    assert ranks[0]["pid"] != ranks[1]["pid"] and os.getpid() not in (ranks[0]["pid"], ranks[1]["pid"])
    # The model the claimer exported is the one trained by two processes.
    artifact = stack.training.GetModelArtifact(tr.GetModelArtifactRequest(project_version_arn=arn))
    meta = json.loads(stack.store.get_bytes(artifact.model_metadata.bucket, artifact.model_metadata.name))
    assert meta["training"]["processes"] == 2
    assert meta["project_version_arn"] == arn


def test_a_killed_rank_fails_the_version_with_its_reason(stack, database_url):
    project = project_with_data(stack, "kill")
    with worker(
        stack, database_url, CUSTOMLABELS_TRAINING_WORLD_SIZE="2", CUSTOMLABELS_TRAINING_JOB_MAX_ATTEMPTS="1"
    ):
        arn = train(stack, project, "killed")
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline, "the ranks never started"
            ranks = rank_docs(stack, run_prefix(database_url, arn))
            if 1 in ranks and 0 in ranks:
                break
            time.sleep(0.1)
        os.kill(ranks[1]["pid"], signal.SIGKILL)
        desc, _ = settle_watching(stack, project, "killed", timeout=120)
    assert desc.status == tr.PROJECT_VERSION_STATUS_TRAINING_FAILED
    assert "rank 1 was killed by SIGKILL" in desc.status_message, desc.status_message
    # Rank 0 was ended with it, not left waiting for its peer.
    assert gone(ranks[0]["pid"])


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_sigterm_ends_the_ranks_and_hands_the_job_back(stack, database_url, tmp_path):
    project = project_with_data(stack, "term")
    arn = train(stack, project, "term")
    log = tmp_path / "w.log"
    proc = start_worker(stack, database_url, log, CUSTOMLABELS_TRAINING_WORLD_SIZE="2", OMP_NUM_THREADS="1")
    try:
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
            ranks = rank_docs(stack, run_prefix(database_url, arn))
            if len(ranks) == 2:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    finally:
        stop(proc)
    assert job_state(database_url, arn) == ("queued", 0)
    assert all(gone(r["pid"]) for r in ranks.values())
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM training.versions WHERE arn = %s", (arn,))


def test_ranks_die_with_a_worker_killed_by_sigkill(stack, database_url, tmp_path):
    """A claimer killed with -9 cannot end its ranks itself: they must not train on as orphans."""
    project = project_with_data(stack, "orphan")
    arn = train(stack, project, "orphan")
    log = tmp_path / "w.log"
    proc = start_worker(stack, database_url, log, CUSTOMLABELS_TRAINING_WORLD_SIZE="2", OMP_NUM_THREADS="1")
    try:
        deadline = time.monotonic() + 120
        while len(ranks := rank_docs(stack, run_prefix(database_url, arn))) < 2:
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        stop(proc)
    deadline = time.monotonic() + 30
    while not all(gone(r["pid"]) for r in ranks.values()):
        assert time.monotonic() < deadline, f"orphaned ranks still running: {ranks}"
        time.sleep(0.1)
    # The job is still running under the dead worker's lease; the next claim starts it again.
    assert job_state(database_url, arn) == ("running", 1)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM training.versions WHERE arn = %s", (arn,))
