"""A job queue in Postgres and the threads that run its jobs, shared by the services that have jobs.

A job is claimed with `FOR UPDATE SKIP LOCKED` under a lease that a heartbeat renews while it runs. A
process killed with -9 stops renewing; once the lease expires, any replica (or the restarted process)
claims the job again and runs it from the start, so jobs must be idempotent and land their results in
one transaction that also calls `JobQueue.finish` (which refuses if the lease was lost meanwhile). A
job that keeps failing is handed to `on_give_up` instead of being retried forever; between its
attempts it waits, longer each time (`JobSettings.retry_backoff_s`), so that a dependency that is
restarting (S3, Postgres) does not use up every attempt within a second.

A process that is asked to stop (SIGTERM: a Kubernetes eviction, a node drain, a rollout) is not a
failed attempt: its handler raises `JobInterrupted` (or `JobRunner.stop` runs out of time) and the
job goes back to the queue with its attempt given back (`JobQueue.release(..., give_back=True)`),
so evictions alone never end a job as failed.

The table lives in the owning service's schema: `jobs (id, <subject column>, kind, payload, state,
attempts, lease_owner, lease_until, error, created_at, updated_at)`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
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


class JobInterrupted(Exception):
    """A handler stopped because its process is shutting down; the job is requeued, attempt given back."""


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
                    " WHERE id = (SELECT id FROM jobs"
                    "   WHERE (state = 'queued' AND (lease_until IS NULL OR lease_until <= now()))"
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

    def release(
        self, job_id: int, owner: str, error: str, *, give_back: bool = False, retry_in_s: float = 0.0
    ) -> bool:
        """Puts a job we hold back in the queue; False when it was no longer ours.

        A failed attempt keeps its count; with `give_back` (the worker is shutting down, the attempt
        did not fail) the claim's attempt is returned, so the next claim counts the same attempt again.
        With `retry_in_s` no worker claims it before that many seconds (a queued job's `lease_until`
        is the moment it may run again).
        """
        with self.pool.connection() as conn:
            cur = conn.execute(
                "UPDATE jobs SET state = 'queued', lease_owner = NULL, error = %(error)s,"
                " lease_until = CASE WHEN %(retry)s > 0 THEN now() + make_interval(secs => %(retry)s) END,"
                " attempts = CASE WHEN %(back)s THEN greatest(attempts - 1, 0) ELSE attempts END,"
                " updated_at = now() WHERE id = %(id)s AND lease_owner = %(owner)s AND state = 'running'",
                {"id": job_id, "owner": owner, "error": error, "back": give_back, "retry": retry_in_s},
            )
            return cur.rowcount == 1

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
    # A failed attempt is retried after retry_backoff_s, doubling with each attempt: an outage of a
    # few seconds (S3 or Postgres restarting) must not use up every attempt at once.
    retry_backoff_s: float = 2.0

    def retry_in_s(self, attempts: int) -> float:
        """How long a job that failed its `attempts`-th attempt waits before the next one."""
        return float(self.retry_backoff_s * 2 ** max(attempts - 1, 0))


class Heartbeat:
    """Renews a job's lease every third of its length until stopped; `on_alive` after each renewal."""

    def __init__(
        self,
        repo: JobQueue,
        job: JobRow,
        owner: str,
        lease_s: float,
        on_alive: Callable[[], None] | None = None,
    ) -> None:
        self._stop = threading.Event()
        self._on_alive = on_alive or (lambda: None)
        self._thread = threading.Thread(target=self._run, args=(repo, job, owner, lease_s), daemon=True)
        self.lost = False

    def _run(self, repo: JobQueue, job: JobRow, owner: str, lease_s: float) -> None:
        while not self._stop.wait(lease_s / 3):
            try:
                if not repo.renew(job.id, owner, lease_s):
                    self.lost = True
                    return
                self._on_alive()
            except Exception:  # noqa: BLE001 - a DB blip must not kill the heartbeat; the next try may work
                log.warning("lease renewal failed", extra={"job_id": job.id}, exc_info=True)

    def stop(self) -> None:
        """Stops renewing (idempotent); the lease then runs out unless the job is finished or released."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class JobRunner:
    """Runs jobs with `handle(job, owner)`; `on_give_up(job, owner, reason)` ends a job that keeps failing.

    `on_alive` is called at every poll and every lease renewal (a worker's liveness file).
    """

    def __init__(
        self,
        repo: JobQueue,
        handle: Callable[[JobRow, str], None],
        on_give_up: Callable[[JobRow, str, str], None],
        settings: JobSettings = JobSettings(),
        name: str = "jobs",
        on_alive: Callable[[], None] | None = None,
    ) -> None:
        self.repo = repo
        self.handle = handle
        self.on_give_up = on_give_up
        self.settings = settings
        self.owner = f"{name}-{uuid.uuid4().hex[:12]}"
        self.on_alive = on_alive or (lambda: None)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running: dict[int, tuple[JobRow, Heartbeat]] = {}
        self._lock = threading.Lock()

    @property
    def stopping(self) -> threading.Event:
        """Set once `stop` was called: handlers that can stop early check it and raise JobInterrupted."""
        return self._stop

    def start(self, once: bool = False, on_done: Callable[[bool | None], None] | None = None) -> None:
        """Starts the worker threads; with `once`, one thread that runs `run_once` and then calls
        `on_done` with its answer (None when claiming failed, e.g. the database is unreachable)."""
        if once:
            thread = threading.Thread(
                target=self._once, args=(on_done,), name=f"{self.owner}-once", daemon=True
            )
            thread.start()
            self._threads.append(thread)
            return
        for i in range(self.settings.workers):
            thread = threading.Thread(target=self._loop, name=f"{self.owner}-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _once(self, on_done: Callable[[bool | None], None] | None) -> None:
        result: bool | None = None
        try:
            result = self.run_once()
        except Exception:  # noqa: BLE001 - reported through on_done; the caller decides the exit status
            log.exception("claiming a job failed")
        finally:
            if on_done is not None:
                on_done(result)

    def wake(self) -> None:
        """Tells idle workers that a job was just queued (saves a poll interval)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stops taking jobs and waits for running ones up to `timeout` seconds in all.

        Handlers see `stopping` set and should end early with JobInterrupted (their job is requeued with
        the attempt given back). A job still running after `timeout` is released the same way here, its
        heartbeat stopped, so a process that exits next leaves nothing behind to expire.
        """
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            left = list(self._running.values())
        for job, heartbeat in left:
            heartbeat.stop()
            try:
                released = self.repo.release(job.id, self.owner, "the worker stopped", give_back=True)
            except Exception:  # noqa: BLE001 - the lease then expires and another worker takes the job
                log.warning("could not release a job on shutdown", extra={"job_id": job.id}, exc_info=True)
                continue
            if released:
                log.warning("job still running at shutdown; released", extra={"job_id": job.id})

    def run_once(self) -> bool:
        """Claims at most one job and runs it to its end here; False when none was queued (one-job mode)."""
        self.on_alive()
        job = self.repo.claim(self.owner, self.settings.lease_s)
        if job is None:
            return False
        self._run(job)
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.on_alive()
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
        heartbeat = Heartbeat(self.repo, job, self.owner, self.settings.lease_s, self.on_alive)
        with self._lock:
            self._running[job.id] = (job, heartbeat)
        try:
            with heartbeat:
                self.handle(job, self.owner)
        except LeaseLost:
            log.warning("job lease lost; another worker took over", extra=extra)
        except JobInterrupted:
            log.warning("job interrupted by shutdown; requeued with its attempt given back", extra=extra)
            self._release_quietly(job, "the worker stopped", give_back=True)
        except Exception as exc:  # noqa: BLE001 - any failure is retried, then given up
            log.exception("job failed", extra=extra)
            reason = f"{type(exc).__name__}: {exc}"
            if job.attempts >= self.settings.max_attempts:
                self._give_up(job, reason)
            else:
                self._release_quietly(job, reason, retry_in_s=self.settings.retry_in_s(job.attempts))
        else:
            log.info("job finished", extra=extra)
        finally:
            with self._lock:
                self._running.pop(job.id, None)

    def _release_quietly(
        self, job: JobRow, reason: str, give_back: bool = False, retry_in_s: float = 0.0
    ) -> None:
        try:
            self.repo.release(job.id, self.owner, reason, give_back=give_back, retry_in_s=retry_in_s)
        except Exception:  # noqa: BLE001 - the lease then expires and another worker takes the job
            log.warning("could not release a job", extra={"job_id": job.id}, exc_info=True)

    def _give_up(self, job: JobRow, reason: str) -> None:
        try:
            self.on_give_up(job, self.owner, reason)
        except LeaseLost:
            pass
        except Exception:  # noqa: BLE001
            log.exception("could not record a failed job", extra={"job_id": job.id})
