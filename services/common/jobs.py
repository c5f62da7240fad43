"""A job queue in Postgres and the threads that run its jobs, shared by the services that have jobs.

A job is claimed with `FOR UPDATE SKIP LOCKED` under a lease that a heartbeat renews while it runs. A
process killed with -9 stops renewing; once the lease expires, any replica (or the restarted process)
claims the job again and runs it from the start, so jobs must be idempotent and land their results in
one transaction that also calls `JobQueue.finish` (which refuses if the lease was lost meanwhile). A
job that keeps failing is handed to `on_give_up` instead of being retried forever.

The table lives in the owning service's schema: `jobs (id, <subject column>, kind, payload, state,
attempts, lease_owner, lease_until, error, created_at, updated_at)`.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row
from psycopg_pool import ConnectionPool

log = logging.getLogger("customlabels.jobs")


class LeaseLost(Exception):
    """A job's lease expired while we worked on it; another worker owns it now."""


@dataclass(frozen=True)
class JobRow:
    """A claimed job: `subject_id` is the row it works on (a dataset, a model version)."""

    id: int
    subject_id: int
    kind: str
    payload: dict[str, Any]
    attempts: int


class JobQueue:
    """The SQL of a service's `jobs` table; `subject` names the column that points at the job's subject."""

    def __init__(self, pool: ConnectionPool, subject: str) -> None:
        self.pool = pool
        self._subject = sql.Identifier(subject)

    def enqueue(self, conn: psycopg.Connection, subject_id: int, kind: str, payload: dict[str, Any]) -> None:
        """Adds a job inside the caller's transaction (so it exists exactly when the caller's change does)."""
        conn.execute(
            sql.SQL("INSERT INTO jobs ({}, kind, payload) VALUES (%(s)s, %(k)s, %(p)s)").format(
                self._subject
            ),
            {"s": subject_id, "k": kind, "p": json.dumps(payload)},
        )

    def claim(self, owner: str, lease_s: float) -> JobRow | None:
        """Claims the oldest queued job, or a running one whose lease expired (its worker died)."""
        with self.pool.connection() as conn, conn.cursor(row_factory=class_row(JobRow)) as cur:
            cur.execute(
                sql.SQL(
                    "UPDATE jobs SET state = 'running', lease_owner = %(owner)s, attempts = attempts + 1,"
                    " lease_until = now() + make_interval(secs => %(lease)s), updated_at = now()"
                    " WHERE id = (SELECT id FROM jobs WHERE state = 'queued'"
                    "   OR (state = 'running' AND lease_until < now())"
                    "   ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)"
                    " RETURNING id, {} AS subject_id, kind, payload, attempts"
                ).format(self._subject),
                {"owner": owner, "lease": lease_s},
            )
            return cur.fetchone()

    def renew(self, job_id: int, owner: str, lease_s: float) -> bool:
        """Extends a lease we hold; False when the job is no longer ours."""
        with self.pool.connection() as conn:
            cur = conn.execute(
                "UPDATE jobs SET lease_until = now() + make_interval(secs => %(lease)s)"
                " WHERE id = %(id)s AND lease_owner = %(owner)s AND state = 'running'",
                {"id": job_id, "owner": owner, "lease": lease_s},
            )
            return cur.rowcount == 1

    def release(self, job_id: int, owner: str, error: str) -> None:
        """Puts a failed attempt back in the queue at once (its attempt count is kept)."""
        with self.pool.connection() as conn:
            conn.execute(
                "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_until = NULL, error = %(error)s,"
                " updated_at = now() WHERE id = %(id)s AND lease_owner = %(owner)s AND state = 'running'",
                {"id": job_id, "owner": owner, "error": error},
            )

    @staticmethod
    def finish(
        conn: psycopg.Connection, job_id: int, owner: str, state: str, error: str | None = None
    ) -> None:
        """Marks a job done/failed inside the transaction that lands its results; LeaseLost if no longer ours."""
        cur = conn.execute(
            "UPDATE jobs SET state = %(state)s, error = %(error)s, updated_at = now()"
            " WHERE id = %(id)s AND lease_owner = %(owner)s AND state = 'running'",
            {"id": job_id, "owner": owner, "state": state, "error": error},
        )
        if cur.rowcount != 1:
            # Our lease expired and someone else took the job over: our results must not land.
            raise LeaseLost(job_id)


@dataclass(frozen=True)
class JobSettings:
    """How jobs are run; configurable for tests and large deployments."""

    workers: int = 2
    lease_s: float = 30.0
    poll_s: float = 0.5
    max_attempts: int = 3


class Heartbeat:
    """Renews a job's lease every third of its length until stopped."""

    def __init__(self, repo: JobQueue, job: JobRow, owner: str, lease_s: float) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(repo, job, owner, lease_s), daemon=True)
        self.lost = False

    def _run(self, repo: JobQueue, job: JobRow, owner: str, lease_s: float) -> None:
        while not self._stop.wait(lease_s / 3):
            try:
                if not repo.renew(job.id, owner, lease_s):
                    self.lost = True
                    return
            except Exception:  # noqa: BLE001 - a DB blip must not kill the heartbeat; the next try may work
                log.warning("lease renewal failed", extra={"job_id": job.id}, exc_info=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class JobRunner:
    """Runs jobs with `handle(job, owner)`; `on_give_up(job, owner, reason)` ends a job that keeps failing."""

    def __init__(
        self,
        repo: JobQueue,
        handle: Callable[[JobRow, str], None],
        on_give_up: Callable[[JobRow, str, str], None],
        settings: JobSettings = JobSettings(),
        name: str = "jobs",
    ) -> None:
        self.repo = repo
        self.handle = handle
        self.on_give_up = on_give_up
        self.settings = settings
        self.owner = f"{name}-{uuid.uuid4().hex[:12]}"
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Starts the worker threads."""
        for i in range(self.settings.workers):
            thread = threading.Thread(target=self._loop, name=f"{self.owner}-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        """Tells idle workers that a job was just queued (saves a poll interval)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stops taking jobs and waits for running ones up to `timeout` seconds."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                job = self.repo.claim(self.owner, self.settings.lease_s)
            except Exception:  # noqa: BLE001 - keep polling through DB outages
                log.warning("claiming a job failed", exc_info=True)
                job = None
            if job is None:
                self._wake.wait(self.settings.poll_s)
                self._wake.clear()
                continue
            self._run(job)

    def _run(self, job: JobRow) -> None:
        extra = {"job_id": job.id, "kind": job.kind, "subject_id": job.subject_id, "attempt": job.attempts}
        if job.attempts > self.settings.max_attempts:
            log.error("job failed too often; giving up", extra=extra)
            self._give_up(job, f"the operation failed {job.attempts - 1} times")
            return
        log.info("job started", extra=extra)
        try:
            with Heartbeat(self.repo, job, self.owner, self.settings.lease_s):
                self.handle(job, self.owner)
        except LeaseLost:
            log.warning("job lease lost; another worker took over", extra=extra)
        except Exception as exc:  # noqa: BLE001 - any failure is retried, then given up
            log.exception("job failed", extra=extra)
            reason = f"{type(exc).__name__}: {exc}"
            if job.attempts >= self.settings.max_attempts:
                self._give_up(job, reason)
            else:
                self.repo.release(job.id, self.owner, reason)
        else:
            log.info("job finished", extra=extra)

    def _give_up(self, job: JobRow, reason: str) -> None:
        try:
            self.on_give_up(job, self.owner, reason)
        except LeaseLost:
            pass
        except Exception:  # noqa: BLE001
            log.exception("could not record a failed job", extra={"job_id": job.id})
