"""The dataset service's job runner: background threads that claim and run queued jobs.

A job is claimed under a lease that a heartbeat renews while it runs. A service killed with -9
stops renewing; once the lease expires, any replica (or the restarted service) claims the job
again and runs it from the start: jobs are idempotent (images are content-addressed, entries land
in one final transaction), so a rerun is safe. A job that keeps failing ends its datasets in a
*_FAILED status with a SERVICE_ERROR message instead of retrying forever.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from services.dataset.repository import DatasetRepository, JobRow, LeaseLost

log = logging.getLogger("customlabels.dataset.jobs")


@dataclass(frozen=True)
class JobSettings:
    """How jobs are run; configurable for tests and large deployments."""

    workers: int = 2
    lease_s: float = 30.0
    poll_s: float = 0.5
    max_attempts: int = 3


class Heartbeat:
    """Renews a job's lease every third of its length until stopped."""

    def __init__(self, repo: DatasetRepository, job: JobRow, owner: str, lease_s: float) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(repo, job, owner, lease_s), daemon=True)
        self.lost = False

    def _run(self, repo: DatasetRepository, job: JobRow, owner: str, lease_s: float) -> None:
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
        repo: DatasetRepository,
        handle: Callable[[JobRow, str], None],
        on_give_up: Callable[[JobRow, str, str], None],
        settings: JobSettings = JobSettings(),
    ) -> None:
        self.repo = repo
        self.handle = handle
        self.on_give_up = on_give_up
        self.settings = settings
        self.owner = f"dataset-{uuid.uuid4().hex[:12]}"
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Starts the worker threads."""
        for i in range(self.settings.workers):
            thread = threading.Thread(target=self._loop, name=f"dataset-job-{i}", daemon=True)
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
        extra = {"job_id": job.id, "kind": job.kind, "dataset_id": job.dataset_id, "attempt": job.attempts}
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
