"""Training that spans processes or pods: the claiming worker keeps the job, N ranks do the fit.

Running the worker itself under torchrun would let every rank claim a different job and then gather
features across different datasets, so the worker refuses that (worker.py). Instead the worker that
claimed a job keeps its lease and heartbeat and, for a classification with
CUSTOMLABELS_TRAINING_WORLD_SIZE > 1, hands the fit to `DistributedTrainer`:

1. it writes `inputs.json` (use case, image keys, labels, budget) under a run prefix in the models
   bucket: `<snapshot>/distributed/job-<id>-attempt-<n>`;
2. a launcher removes what an earlier claim of the same job left running (the claimer may have died),
   then starts the ranks: `LocalLauncher` as N processes of this machine (torchrun's variables set
   here, so it owns every PID), `kube.KubernetesLauncher` as an Indexed Job with a headless Service;
3. it waits: rank 0's `progress.json` moves TRAINING progress; the first rank that fails ends all of
   them (`DistributedTrainingFailed`, retried by the job queue up to its attempts, then
   TRAINING_FAILED with the rank's reason); a stopping worker ends the ranks and raises
   JobInterrupted; the training budget plus a start-up allowance bounds the wait;
4. it loads rank 0's `model.pt` and returns it as a FitResult: evaluation, export and the version's
   status then run in the claimer exactly as after a single-process fit.

Object detection has no torch.distributed path (models/detector.py); it trains in the claimer.
"""

from __future__ import annotations

import ctypes
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from services.common.config import ConfigError, env_number
from services.common.jobs import JobInterrupted, JobRow
from services.common.storage import ObjectStore
from services.training import evaluation
from services.training.pipeline import FitResult, TrainingFailed

log = logging.getLogger("customlabels.training.distributed")

LAUNCHERS = ("local", "kubernetes")


class DistributedTrainingFailed(RuntimeError):
    """A rank failed, was killed or was deleted: the attempt failed (the queue retries it)."""


@dataclass(frozen=True)
class Outcome:
    """How a group of ranks ended: `ok`, or why not."""

    ok: bool
    message: str = ""


class RankGroup(Protocol):
    """Running ranks, as a launcher started them."""

    def poll(self) -> Outcome | None:
        """None while the ranks run; their outcome once every rank succeeded or one failed."""

    def abort(self) -> None:
        """Ends every rank (idempotent)."""

    def finished(self) -> None:
        """Cleans up after ranks that all succeeded."""


class Launcher(Protocol):
    """Starts the ranks of one job's training."""

    def cleanup(self, job_id: int) -> None:
        """Ends what an earlier claim of `job_id` left running."""

    def launch(self, job: JobRow, prefix: str, world: int, deadline_s: float) -> RankGroup:
        """Starts `world` ranks of `python -m services.training.ddp --job prefix`."""


@dataclass(frozen=True)
class DistributedSettings:
    """CUSTOMLABELS_TRAINING_WORLD_SIZE (1), CUSTOMLABELS_TRAINING_LAUNCHER (local | kubernetes),
    CUSTOMLABELS_TRAINING_RANK_START_S (600: image pulls, scheduling and rendezvous, beyond the budget)."""

    world_size: int = 1
    launcher: str = "local"
    start_allowance_s: float = 600.0
    poll_s: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DistributedSettings:
        """Reads the settings; ConfigError on a bad value."""
        world = env_number(env, "CUSTOMLABELS_TRAINING_WORLD_SIZE", 1, minimum=1)
        if world != int(world):
            raise ConfigError("CUSTOMLABELS_TRAINING_WORLD_SIZE must be an integer")
        launcher = env.get("CUSTOMLABELS_TRAINING_LAUNCHER", "local").strip() or "local"
        if launcher not in LAUNCHERS:
            raise ConfigError(f"CUSTOMLABELS_TRAINING_LAUNCHER must be one of {', '.join(LAUNCHERS)}")
        return cls(
            world_size=int(world),
            launcher=launcher,
            start_allowance_s=env_number(env, "CUSTOMLABELS_TRAINING_RANK_START_S", 600.0),
            poll_s=env_number(env, "CUSTOMLABELS_TRAINING_RANK_POLL_S", 1.0, minimum=0.05),
        )


class DistributedTrainer:
    """The pipeline's DistributedFit: runs a classifier's fit in `world_size` ranks (module doc)."""

    def __init__(
        self,
        store: ObjectStore,
        models_bucket: str,
        images_bucket: str,
        launcher: Launcher,
        settings: DistributedSettings,
        stopping: threading.Event | None = None,
    ) -> None:
        self.store = store
        self.models_bucket = models_bucket
        self.images_bucket = images_bucket
        self.launcher = launcher
        self.settings = settings
        self.world_size = settings.world_size
        self.stopping = stopping or threading.Event()

    def supports(self, use_case: str) -> bool:
        """Classification only: the classifier shards its features and head batches by rank."""
        return use_case == evaluation.IMAGE_LEVEL_LABELS

    def fit(
        self,
        job: JobRow,
        prefix: str,
        use_case: str,
        image_keys: list[str],
        targets: list[Any],
        on_progress: Callable[[float], None],
        time_budget_s: float,
    ) -> FitResult:
        """Trains in the ranks and returns rank 0's model; DistributedTrainingFailed when a rank fails."""
        from services.training.modeling import classifier_result

        run = f"{prefix}/distributed/job-{job.id}-attempt-{job.attempts}"
        inputs = {
            "use_case": use_case,
            "images_bucket": self.images_bucket,
            "keys": image_keys,
            "targets": [sorted(t) for t in targets],
            "time_budget_s": time_budget_s,
            "world_size": self.world_size,
        }
        self.store.put_bytes(self.models_bucket, f"{run}/inputs.json", json.dumps(inputs).encode())
        self.launcher.cleanup(job.id)
        deadline_s = time_budget_s + self.settings.start_allowance_s
        extra = {"job_id": job.id, "world_size": self.world_size, "run": run}
        log.info("starting ranks", extra=extra)
        group = self.launcher.launch(job, run, self.world_size, deadline_s)
        try:
            on_progress(0.0)
            outcome = self._wait(group, run, on_progress, time.monotonic() + deadline_s)
        except BaseException:
            group.abort()
            raise
        if not outcome.ok:
            group.abort()
            log.error("ranks failed", extra={**extra, "reason": outcome.message})
            raise DistributedTrainingFailed(outcome.message)
        ranks = self._ranks(run)
        log.info("ranks done", extra={**extra, "ranks": ranks})
        data = self.store.get_bytes(self.models_bucket, f"{run}/model.pt")
        group.finished()
        # The ranks' records stay (they show who trained); the inputs and the pickle are spent.
        for name in ("model.pt", "inputs.json"):
            self.store.delete(self.models_bucket, f"{run}/{name}")
        import torch

        # Our own pickle, written by rank 0 of this job a moment ago (not a user's file).
        model = torch.load(io.BytesIO(data), weights_only=False, map_location="cpu")
        return classifier_result(model)

    def _wait(
        self, group: RankGroup, run: str, on_progress: Callable[[float], None], deadline: float
    ) -> Outcome:
        shown = -1.0
        while True:
            if self.stopping.is_set():
                raise JobInterrupted(run)
            outcome = group.poll()
            if outcome is not None:
                return outcome
            fraction = self._progress(run)
            if fraction is not None and fraction != shown:
                shown = fraction
                on_progress(fraction)
            if time.monotonic() > deadline:
                raise TrainingFailed(None, "Training exceeded the maximum training time.")
            self.stopping.wait(self.settings.poll_s)

    def _progress(self, run: str) -> float | None:
        try:
            doc = json.loads(self.store.get_bytes(self.models_bucket, f"{run}/progress.json"))
        except Exception:  # noqa: BLE001 - not written yet, or a store blip: the next poll tells
            return None
        return float(doc.get("fraction", 0.0))

    def _ranks(self, run: str) -> list[dict[str, Any]]:
        out = []
        for key in sorted(self.store.list_keys(self.models_bucket, f"{run}/ranks/")):
            out.append(json.loads(self.store.get_bytes(self.models_bucket, key)))
        return out


def describe_exit(code: int) -> str:
    """'exited with code 3' / 'was killed by SIGKILL' for a Popen return code."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the thread that started us ends (a worker killed with -9)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the rendezvous of local ranks)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalGroup:
    """N local rank processes; the first one to fail ends the others (gloo would wait for it)."""

    def __init__(self, procs: list[subprocess.Popen[bytes]]) -> None:
        self.procs = procs

    def poll(self) -> Outcome | None:
        """See RankGroup."""
        codes = [proc.poll() for proc in self.procs]
        for rank, code in enumerate(codes):
            if code not in (None, 0):
                self.abort()
                return Outcome(False, f"rank {rank} {describe_exit(code)}")
        if all(code == 0 for code in codes):
            return Outcome(True)
        return None

    def abort(self) -> None:
        """See RankGroup."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def finished(self) -> None:
        """See RankGroup."""


class LocalLauncher:
    """Ranks as processes of this machine (the embedded stack): torchrun --standalone's layout."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)

    def cleanup(self, job_id: int) -> None:
        """Nothing to do: local ranks die with the worker that started them (PR_SET_PDEATHSIG)."""

    def launch(self, job: JobRow, prefix: str, world: int, deadline_s: float) -> LocalGroup:
        """Starts `world` processes with RANK/WORLD_SIZE/MASTER_* set as torchrun sets them."""
        port = free_port()
        procs = []
        for rank in range(world):
            env = {
                **self.env,
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "WORLD_SIZE": str(world),
                "LOCAL_WORLD_SIZE": str(world),
                "GROUP_RANK": "0",
            }
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "services.training.ddp", "--job", prefix],
                    env=env,
                    preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, before exec
                )
            )
        log.info("local ranks started", extra={"job_id": job.id, "pids": [p.pid for p in procs]})
        return LocalGroup(procs)


def rank_env(config: Any, env: Mapping[str, str]) -> dict[str, str]:
    """What a local rank needs of the worker's settings (the worker may run in-process, in tests)."""
    from services.training.models.runtime import malloc_env

    out = {**malloc_env(), **os.environ, **env}
    out.update(
        DATABASE_URL=config.database_url,
        CUSTOMLABELS_S3_ENDPOINT=config.s3_endpoint,
        CUSTOMLABELS_S3_ACCESS_KEY=config.s3_access_key,
        CUSTOMLABELS_S3_SECRET_KEY=config.s3_secret_key,
        CUSTOMLABELS_S3_REGION=config.s3_region,
        CUSTOMLABELS_MODELS_BUCKET=config.models_bucket,
        CUSTOMLABELS_IMAGES_BUCKET=config.images_bucket,
    )
    # A rank is never a worker: drop what would make one of them claim jobs.
    out.pop("CUSTOMLABELS_TRAINING_WORKER_MODE", None)
    return out
