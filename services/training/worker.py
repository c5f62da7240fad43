"""`python -m services.training.worker [--once | --check]`: a training worker process.

Takes training and copy jobs from the training service's Postgres queue (FOR UPDATE SKIP LOCKED,
renewed leases) and runs them one at a time. Several workers — on one machine, as a Deployment or as
Kubernetes Jobs — share the queue; a worker killed with -9 leaves a job that another claims once its
lease expires.

Modes (CUSTOMLABELS_TRAINING_WORKER_MODE, or the flag):
- `queue` (default): runs jobs until SIGTERM/SIGINT.
- `once` (`--once`): claims at most one job, runs it to its end and exits 0; exits 0 at once when none
  is queued (a Kubernetes Job, e.g. started by KEDA for each queued job, then completes). A failed
  attempt is requeued (or given up) as in queue mode, and the process still exits 0: the job's fate
  is recorded in the queue, not in the exit code. Non-zero only when the worker itself cannot work.
- `--check`: a liveness probe; exit 0 when the worker touched its liveness file
  (CUSTOMLABELS_TRAINING_WORKER_ALIVE_FILE, default /tmp/customlabels-training-worker.alive) within
  CUSTOMLABELS_TRAINING_WORKER_ALIVE_S (default 180) seconds. The worker touches it while it waits for
  Postgres/S3, at every poll of the queue and at every renewal of a running job's lease.

SIGTERM/SIGINT: the running training stops at its next progress report, its job goes back to the queue
with its attempt given back (an eviction is not a failure), the ranks of a distributed training are
ended, and the process exits 0; what has not stopped within CUSTOMLABELS_SHUTDOWN_GRACE_S is released
the same way before exiting.

A worker started with WORLD_SIZE > 1 (under torchrun) refuses to start: every rank would claim a
different job. Training across N processes or pods is CUSTOMLABELS_TRAINING_WORLD_SIZE (distributed.py).

Settings: CUSTOMLABELS_TRAINING_JOB_LEASE_S (default 60), CUSTOMLABELS_TRAINING_JOB_MAX_ATTEMPTS (3),
CUSTOMLABELS_TRAINING_MAX_SECONDS (72 h), and those of distributed.py and kube.py.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from services.common import db, logs
from services.common.config import Config, ConfigError
from services.common.jobs import JobRunner, JobSettings
from services.common.server import SIGNAL_POLL_S
from services.common.storage import ObjectStore
from services.training import app
from services.training.pipeline import Trainer, TrainingSettings
from services.training.repository import VersionRepository

log = logging.getLogger("customlabels.training.worker")

MODES = ("queue", "once")
ALIVE_FILE = "/tmp/customlabels-training-worker.alive"
ALIVE_S = 180.0


class Refused(Exception):
    """The worker must not start as configured (the message says why)."""


def alive_file(env: Mapping[str, str]) -> Path:
    """The liveness file that the worker touches and `--check` reads."""
    return Path(env.get("CUSTOMLABELS_TRAINING_WORKER_ALIVE_FILE") or ALIVE_FILE)


def toucher(path: Path) -> Callable[[], None]:
    """A function that touches `path` (at most once a second; failures only logged)."""
    last = [0.0]

    def touch() -> None:
        now = time.monotonic()
        if now - last[0] < 1.0:
            return
        last[0] = now
        try:
            path.touch()
        except OSError as exc:
            log.warning("cannot touch the liveness file", extra={"path": str(path), "error": str(exc)})

    return touch


def check(env: Mapping[str, str]) -> int:
    """`--check`: 0 when the liveness file is fresh, else 1 with the reason on stderr."""
    path = alive_file(env)
    limit = float(env.get("CUSTOMLABELS_TRAINING_WORKER_ALIVE_S") or ALIVE_S)
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        print(f"training worker not alive: {path} is missing", file=sys.stderr)
        return 1
    if age > limit:
        print(f"training worker not alive: {path} is {age:.0f} s old (limit {limit:.0f} s)", file=sys.stderr)
        return 1
    return 0


def worker_mode(once_flag: bool, env: Mapping[str, str]) -> str:
    """The mode from `--once` or CUSTOMLABELS_TRAINING_WORKER_MODE; Refused when run under torchrun."""
    mode = "once" if once_flag else (env.get("CUSTOMLABELS_TRAINING_WORKER_MODE") or "queue").strip()
    if mode not in MODES:
        raise Refused(f"CUSTOMLABELS_TRAINING_WORKER_MODE must be one of {', '.join(MODES)}, got {mode!r}")
    world = env.get("WORLD_SIZE", "1").strip() or "1"
    if not world.isdigit() or int(world) > 1:
        raise Refused(
            f"the training worker was started with WORLD_SIZE={world} (under torchrun?): each process would"
            " claim a different job. Start one worker and set CUSTOMLABELS_TRAINING_WORLD_SIZE to train each"
            " job across that many processes or pods."
        )
    return mode


def build_runner(
    config: Config,
    store: ObjectStore,
    pool: object,
    env: dict[str, str] | None = None,
    on_alive: Callable[[], None] | None = None,
) -> JobRunner:
    """The job runner of a worker (tests start it in-process on their own database)."""
    from services.training import distributed
    from services.training.modeling import fit

    env = dict(os.environ) if env is None else env
    repo = VersionRepository(pool)  # type: ignore[arg-type]
    store.ensure_bucket(config.models_bucket)
    spread = distributed.DistributedSettings.from_env(env)
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
    runner = JobRunner(
        repo.jobs, trainer.handle, trainer.give_up, settings, name="training-worker", on_alive=on_alive
    )
    trainer.stopping = runner.stopping
    if spread.world_size > 1:
        launcher: distributed.Launcher
        if spread.launcher == "kubernetes":
            from services.training import kube

            launcher = kube.KubernetesLauncher(kube.KubeSettings.from_env(env))
        else:
            launcher = distributed.LocalLauncher(distributed.rank_env(config, env))
        trainer.distributed = distributed.DistributedTrainer(
            store, config.models_bucket, config.images_bucket, launcher, spread, runner.stopping
        )
        log.info(
            "classification trains across ranks",
            extra={"world_size": spread.world_size, "launcher": spread.launcher},
        )
    return runner


def until_ready(
    what: str,
    attempt: Callable[[], object],
    stop: threading.Event,
    *,
    cap_s: float = 5.0,
    on_wait: Callable[[], None] = lambda: None,
) -> bool:
    """Calls `attempt` until it returns without raising (backing off up to `cap_s`); False if `stop` came first.

    A worker has no health endpoint for its supervisor to watch while it starts, so a store or a
    database that is down (restarting, not yet scheduled in Kubernetes) must not end it: it waits, says
    what for in its log, and goes on once the part answers."""
    delay = 0.2
    while not stop.is_set():
        on_wait()
        try:
            attempt()
            return True
        except Exception as exc:  # any failure to reach the part: the next try tells
            log.warning("waiting for %s: %s", what, exc)
        stop.wait(delay)
        delay = min(cap_s, delay * 2)
    return False


def main(argv: list[str] | None = None) -> int:
    """Runs the worker in its mode (module doc); returns the exit status."""
    parser = argparse.ArgumentParser(description="customlabels training worker")
    parser.add_argument("--once", action="store_true", help="claim at most one job, run it, exit")
    parser.add_argument("--check", action="store_true", help="liveness probe: is the worker alive?")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if args.check:
        return check(env)
    try:
        mode = worker_mode(args.once, env)
        config = Config.from_env("training")
    except (Refused, ConfigError) as exc:
        print(f"training worker refuses to start: {exc}", file=sys.stderr)
        return 2
    logs.setup("training-worker", config.log_level)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    alive = toucher(alive_file(env))
    alive()
    migrate = lambda: db.migrate(config.database_url, app.SCHEMA, app.MIGRATIONS)  # noqa: E731
    if not until_ready("Postgres", migrate, stop, on_wait=alive):
        return 0
    store = ObjectStore(config.s3_endpoint, config.s3_access_key, config.s3_secret_key, config.s3_region)
    if not until_ready("S3", lambda: store.ensure_bucket(config.models_bucket), stop, on_wait=alive):
        return 0
    pool = db.create_pool(config.database_url, app.SCHEMA, 1, 4)
    try:
        runner = build_runner(config, store, pool, env, on_alive=alive)
    except ConfigError as exc:
        print(f"training worker refuses to start: {exc}", file=sys.stderr)
        pool.close()
        return 2
    log.info("training worker started", extra={"mode": mode, "owner": runner.owner})
    outcome: list[bool | None] = []
    if mode == "once":

        def done(ran: bool | None) -> None:
            outcome.append(ran)
            stop.set()

        runner.start(once=True, on_done=done)
    else:
        runner.start()
    # In slices: a signal taken by another thread would not wake an endless wait (common/server.py).
    while not stop.wait(SIGNAL_POLL_S):
        pass
    runner.stop(timeout=config.shutdown_grace_s)
    pool.close()
    if mode == "once":
        log.info("one-job mode: exiting", extra={"ran_a_job": bool(outcome and outcome[0])})
        # Claiming itself failed (the database went away): the Job should be retried.
        return 1 if outcome and outcome[0] is None else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
