"""The short form of the faults campaign (bench/chaos.py): an embedded stack of real processes, imports
and UpdateDatasetEntries from client threads while the dataset service, the training worker, the S3
server and Postgres are each killed with SIGKILL once and brought back. Nothing acknowledged is lost,
nothing stays in progress, and nothing Postgres references is missing from S3. And the fix of what the
full campaign found: a job's failed attempts are spaced out (services/common/jobs.py), so a restart of
S3 or Postgres no longer uses up all three at once."""

from __future__ import annotations

import psycopg
import pytest

from bench import chaos
from services.common import db
from services.common.jobs import JobQueue, JobSettings

pytestmark = pytest.mark.slow


def test_kills_during_imports_and_updates_lose_no_acknowledged_write() -> None:
    # A temporary directory of its own (removed after), which the postgres user can enter when we are root.
    outcome = chaos.run(chaos.Settings.short(seed=3))
    text = "\n".join(chaos.table(outcome))

    assert outcome.chaos.error is None, text
    assert dict(outcome.chaos.kills) == dict.fromkeys(chaos.SHORT_PARTS, 1), text
    assert outcome.ledger.acked_writes > 0 and outcome.ledger.ops["CreateDataset"] > 0, text
    assert outcome.findings.checked_entries > 0, text
    assert outcome.findings.lost == [], text
    assert outcome.findings.stuck == [], text
    assert outcome.findings.orphans == [], text
    assert outcome.mix_errors == [], text


def test_a_failed_attempt_waits_its_backoff_before_the_next_claim(database_url: str) -> None:
    # What the campaign found: an S3 restart (500s for a second) failed an acknowledged update's three
    # attempts back to back, and its entries were lost with UPDATE_FAILED.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS backoff")
        conn.execute(
            "CREATE TABLE backoff.jobs (id bigserial PRIMARY KEY, subject_id bigint NOT NULL,"
            " kind text NOT NULL, payload jsonb NOT NULL, state text NOT NULL DEFAULT 'queued',"
            " attempts integer NOT NULL DEFAULT 0, lease_owner text, lease_until timestamptz, error text,"
            " created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now())"
        )
    pool = db.create_pool(database_url, "backoff")
    try:
        queue = JobQueue(pool, "subject_id")
        with pool.connection() as conn:
            queue.enqueue(conn, 1, "update", {})
        job = queue.claim("worker-a", 30)
        assert job is not None and job.attempts == 1
        assert queue.release(job.id, "worker-a", "S3 answered 500", retry_in_s=JobSettings().retry_in_s(1))
        # Not claimable while its backoff runs: another worker finds nothing to do.
        assert queue.claim("worker-b", 30) is None
        with pool.connection() as conn:
            conn.execute("UPDATE jobs SET lease_until = now() - interval '1 second'")  # the backoff is over
        again = queue.claim("worker-b", 30)
        assert again is not None and again.id == job.id and again.attempts == 2
        # A job handed back at shutdown (no backoff) is claimable at once.
        assert queue.release(again.id, "worker-b", "the worker stopped", give_back=True)
        back = queue.claim("worker-c", 30)
        assert back is not None and back.attempts == 2
    finally:
        pool.close()
    assert JobSettings(retry_backoff_s=2.0).retry_in_s(1) == 2.0
    assert JobSettings(retry_backoff_s=2.0).retry_in_s(2) == 4.0
