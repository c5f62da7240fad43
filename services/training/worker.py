"""`python -m services.training.worker`: a training worker process.

Takes training and copy jobs from the training service's Postgres queue (FOR UPDATE SKIP LOCKED,
renewed leases) and runs them one at a time. Several workers — on one machine or as Kubernetes
Jobs — share the queue; a worker killed with -9 leaves a job that another claims once its lease
expires. Settings: CUSTOMLABELS_TRAINING_JOB_LEASE_S (default 60), CUSTOMLABELS_TRAINING_JOB_MAX_ATTEMPTS
(3), CUSTOMLABELS_TRAINING_MAX_SECONDS (72 h).
"""

from __future__ import annotations

import os
import signal
import threading

from services.common import db, logs
from services.common.config import Config
from services.common.jobs import JobRunner, JobSettings
from services.common.storage import ObjectStore
from services.training import app
from services.training.pipeline import Trainer, TrainingSettings
from services.training.repository import VersionRepository


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


def main() -> None:
    """Runs jobs until SIGTERM/SIGINT."""
    config = Config.from_env("training")
    logs.setup("training-worker", config.log_level)
    db.migrate(config.database_url, app.SCHEMA, app.MIGRATIONS)
    pool = db.create_pool(config.database_url, app.SCHEMA, 1, 4)
    store = ObjectStore(config.s3_endpoint, config.s3_access_key, config.s3_secret_key, config.s3_region)
    runner = build_runner(config, store, pool)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    runner.start()
    stop.wait()
    runner.stop(timeout=config.shutdown_grace_s)
    pool.close()


if __name__ == "__main__":
    main()
