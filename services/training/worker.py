"""`python -m services.training.worker`: a training worker process.

Takes training and copy jobs from the training service's Postgres queue (FOR UPDATE SKIP LOCKED,
renewed leases) and runs them one at a time. Several workers — on one machine or as Kubernetes
Jobs — share the queue; a worker killed with -9 leaves a job that another claims once its lease
expires. Settings: CUSTOMLABELS_TRAINING_JOB_LEASE_S (default 60), CUSTOMLABELS_TRAINING_JOB_MAX_ATTEMPTS
(3), CUSTOMLABELS_TRAINING_MAX_SECONDS (72 h).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable

from services.common import db, logs
from services.common.config import Config
from services.common.jobs import JobRunner, JobSettings
from services.common.storage import ObjectStore
from services.training import app
from services.training.pipeline import Trainer, TrainingSettings
from services.training.repository import VersionRepository

log = logging.getLogger("customlabels.training.worker")


def build_runner(
    config: Config, store: ObjectStore, pool: object, env: dict[str, str] | None = None
) -> JobRunner:
    """The job runner of a worker (tests start it in-process on their own database)."""
    from services.training.modeling import fit

    env = dict(os.environ) if env is None else env
    repo = VersionRepository(pool)  # type: ignore[arg-type]
    store.ensure_bucket(config.models_bucket)
    trainer = Trainer(
        repo,
        store,
        config.images_bucket,
        config.models_bucket,
        fit,
        TrainingSettings(max_seconds=float(env.get("CUSTOMLABELS_TRAINING_MAX_SECONDS", 72 * 3600))),
    )
    settings = JobSettings(
        workers=1,
        lease_s=float(env.get("CUSTOMLABELS_TRAINING_JOB_LEASE_S", "60")),
        poll_s=float(env.get("CUSTOMLABELS_TRAINING_JOB_POLL_S", "1")),
        max_attempts=int(env.get("CUSTOMLABELS_TRAINING_JOB_MAX_ATTEMPTS", "3")),
    )
    return JobRunner(repo.jobs, trainer.handle, trainer.give_up, settings, name="training-worker")


def until_ready(
    what: str, attempt: Callable[[], object], stop: threading.Event, *, cap_s: float = 5.0
) -> bool:
    """Calls `attempt` until it returns without raising (backing off up to `cap_s`); False if `stop` came first.

    A worker has no health endpoint for its supervisor to watch while it starts, so a store or a
    database that is down (restarting, not yet scheduled in Kubernetes) must not end it: it waits, says
    what for in its log, and goes on once the part answers."""
    delay = 0.2
    while not stop.is_set():
        try:
            attempt()
            return True
        except Exception as exc:  # any failure to reach the part: the next try tells
            log.warning("waiting for %s: %s", what, exc)
        stop.wait(delay)
        delay = min(cap_s, delay * 2)
    return False


def main() -> None:
    """Runs jobs until SIGTERM/SIGINT; waits for Postgres and S3 first, however long they take."""
    config = Config.from_env("training")
    logs.setup("training-worker", config.log_level)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if not until_ready("Postgres", lambda: db.migrate(config.database_url, app.SCHEMA, app.MIGRATIONS), stop):
        return
    store = ObjectStore(config.s3_endpoint, config.s3_access_key, config.s3_secret_key, config.s3_region)
    if not until_ready("S3", lambda: store.ensure_bucket(config.models_bucket), stop):
        return
    pool = db.create_pool(config.database_url, app.SCHEMA, 1, 4)
    runner = build_runner(config, store, pool)
    runner.start()
    stop.wait()
    runner.stop(timeout=config.shutdown_grace_s)
    pool.close()


if __name__ == "__main__":
    main()
