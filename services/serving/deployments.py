"""The serving domain: starting and stopping versions on Triton, DetectCustomLabels, and the control
loop that keeps every replica's Triton in line with the desired state.

The desired state is the `deployments` table (repository.py): a row per version that should run.
The version's Status belongs to the training service and is moved here with its compare-and-set
(STARTING → RUNNING | FAILED, RUNNING → STOPPING → STOPPED). Start and stop answer at once.

Each serving replica drives its own Triton (in Kubernetes a sidecar of the pod). Every round of the
control loop (`Controller`, every few seconds and as soon as a call finds a model missing) of every
replica loads into its Triton each RUNNING version, and each STARTING one whose files are written,
that it lacks (a restarted Triton comes back empty), reloads a model whose instance count changed,
unloads what nobody wants, and reports what its Triton holds, with Triton's counters, in Postgres.
Loads run on a small thread pool, never inside a database transaction.

One replica, the leader (a session advisory lock, repository.LeaderLock), moves statuses from those
reports: STARTING → RUNNING once every replica with a live Triton has the model, STOPPING → STOPPED
once none holds it any more, FAILED when a load fails; it writes the files of a start that the
replica which took it left unwritten, expires silent replicas and auto-scales (autoscale.py) from
the statistics of all replicas' Tritons, writing the new instance count once for every replica.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from services.common import arn as arns
from services.common import enums, modelio
from services.common.errors import (
    ImageTooLarge,
    InternalServerError,
    InUse,
    InvalidImageFormat,
    InvalidParameter,
    LimitExceeded,
    NotFound,
    NotReady,
    Throttling,
)
from services.common.storage import ObjectStore
from services.serving import autoscale, images
from services.serving.config import ServingSettings
from services.serving.peers import TrainingClient
from services.serving.repository import (
    FAILED,
    LOADING,
    READY,
    RUNNING,
    STARTING,
    STOPPING,
    Deployment,
    DeploymentRepository,
    ModelReport,
    Replica,
)
from services.serving.triton import (
    BadImage,
    Statistics,
    TritonClient,
    TritonFailed,
    TritonRepository,
    TritonUnavailable,
    model_name,
    model_prefix,
)

log = logging.getLogger("customlabels.serving")

# Version states a start may begin from (spec/api.md §1.3).
STARTABLE = enums.TRAINED_VERSION_STATUSES
MESSAGES = {
    "STARTING": "The model is being started.",
    "RUNNING": "The model is running.",
    "STOPPING": "The model is being stopped.",
    "STOPPED": "The model is stopped.",
}
# How long DetectCustomLabels trusts a cached RUNNING deployment before reading the table again
# (another replica may have stopped it).
CACHE_S = 1.0
# A start whose files are still unwritten this long after it was taken lost its replica: the leader
# writes them (writing them twice is harmless).
UNWRITTEN_S = 10.0


@dataclass(frozen=True)
class ImageSource:
    """The image of a DetectCustomLabels call: bytes, or an object of the object store."""

    data: bytes | None = None
    bucket: str = ""
    key: str = ""
    version: str | None = None


@dataclass
class _Sample:
    """One replica's counters of one model as the leader last read them."""

    stats: Statistics
    seen_at: float


@dataclass
class _Cached:
    deployment: Deployment
    spec: modelio.ModelSpec
    until: float


def default_replica_id() -> str:
    """A replica name unique among the processes of one host and the replicas of one process."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Deployments:
    """StartProjectVersion, StopProjectVersion, DetectCustomLabels and the reconciliation with Triton."""

    def __init__(
        self,
        repo: DeploymentRepository,
        training: TrainingClient,
        triton: TritonClient,
        triton_repo: TritonRepository,
        store: ObjectStore,
        settings: ServingSettings,
    ) -> None:
        self.repo = repo
        self.training = training
        self.triton = triton
        self.triton_repo = triton_repo
        self.store = store
        self.settings = settings
        self.replica_id = settings.replica_id or default_replica_id()
        # A replica silent for a few rounds is gone, however short the TTL was set.
        self.replica_ttl_s = max(settings.replica_ttl_s, 3 * settings.reconcile_s)
        self.lock = repo.leader_lock(self.replica_id)
        # Every model of this installation is named cl_<installation>_…; the loop touches no other.
        self.installation = repo.installation()
        self._jobs = ThreadPoolExecutor(max_workers=4, thread_name_prefix="serving-job")
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        # Loads into this replica's Triton that failed: model -> (units, reason); not retried until the
        # deployment's units change (the leader marks the version FAILED meanwhile).
        self._failed: dict[str, tuple[int, str]] = {}
        self._cache: dict[str, _Cached] = {}
        # The leader's auto-scaler: last samples per (model, replica), last request seen per model.
        self._samples: dict[tuple[str, str], _Sample] = {}
        self._last_request: dict[str, float] = {}
        self._leading = False
        self.wake: Callable[[], None] = lambda: None

    def close(self) -> None:
        """Waits for the jobs in flight, leaves the replicas table and gives the leader lock up."""
        self._jobs.shutdown(wait=True)
        with contextlib.suppress(Exception):
            self.repo.forget_replica(self.replica_id)
        self.lock.release()

    # -- StartProjectVersion ----------------------------------------------------------------------

    def start(self, version_arn: str, min_units: int, max_units: int | None) -> str:
        """Records the deployment, moves the version to STARTING and writes its files in the background
        (every replica then loads it; the leader moves it to RUNNING)."""
        arns.parse_version(version_arn)
        if min_units < 1:
            raise InvalidParameter("MinInferenceUnits must be at least 1")
        if max_units is not None and max_units < min_units:
            raise InvalidParameter("MaxInferenceUnits must be at least MinInferenceUnits")
        try:
            artifact = self.training.artifact(version_arn)
        except NotReady:
            raise InUse("the model version has no trained model; it cannot be started") from None
        if artifact.status not in STARTABLE:
            raise InUse(f"the model version is {artifact.status}; it cannot be started now")
        spec_json = json.loads(self.store.get_bytes(artifact.metadata_bucket, artifact.metadata_key))
        modelio.ModelSpec.from_json(spec_json)  # a model this code cannot run fails here, not in Triton
        deployment = Deployment(
            version_arn=version_arn,
            model_name=model_name(version_arn, self.installation),
            state=STARTING,
            min_units=min_units,
            max_units=max_units,
            units=min_units,
            spec=spec_json,
            onnx_bucket=artifact.onnx_bucket,
            onnx_key=artifact.onnx_key,
        )
        inserted, in_use = self.repo.create(deployment, self.settings.max_total_units)
        if not inserted:
            if in_use + min_units > self.settings.max_total_units:
                raise LimitExceeded(
                    f"{in_use} of {self.settings.max_total_units} inference units are in use; "
                    f"{min_units} more cannot be started"
                )
            raise InUse("the model version is already started")
        try:
            self.training.set_status(
                version_arn, "STARTING", STARTABLE, MESSAGES["STARTING"], (min_units, max_units)
            )
        except Exception:
            self.repo.delete(version_arn)
            raise
        self._submit(f"write:{version_arn}", lambda: self._write_files(deployment))
        log.info("starting", extra={"project_version_arn": version_arn, "units": min_units, "max": max_units})
        return "STARTING"

    def _submit(self, key: str, job: Callable[[], None]) -> None:
        """Runs `job` on the pool unless a job of the same key is in flight."""
        with self._lock:
            if key in self._busy:
                return
            self._busy.add(key)

        def run() -> None:
            try:
                job()
            except Exception:
                log.exception("serving job failed", extra={"job": key})
            finally:
                with self._lock:
                    self._busy.discard(key)

        self._jobs.submit(run)

    def _is_busy(self, key: str) -> bool:
        with self._lock:
            return key in self._busy

    def _write_files(self, d: Deployment) -> None:
        """Writes a starting version's model into the Triton repository, then lets every replica load it."""
        try:
            self.triton_repo.write(d.model_name, d.spec, (d.onnx_bucket, d.onnx_key), d.units)
        except Exception as exc:  # noqa: BLE001 - whatever went wrong is the version's FAILED message
            self.repo.set_error(d.version_arn, str(exc)[:500])
        else:
            self.repo.set_files_ready(d.version_arn)
        self.wake()

    # -- StopProjectVersion -----------------------------------------------------------------------

    def stop(self, version_arn: str) -> str:
        """Moves a RUNNING version to STOPPING; every replica unloads it, then the leader says STOPPED."""
        arns.parse_version(version_arn)
        d = self.repo.get(version_arn)
        if d is None or d.state != RUNNING:
            status = self.training.artifact_status(version_arn) if d is None else d.state
            raise InUse(f"the model version is {status}; only a RUNNING version can be stopped")
        self.training.set_status(version_arn, "STOPPING", ("RUNNING",), MESSAGES["STOPPING"])
        self.repo.set_state(version_arn, STOPPING, RUNNING)
        self._cache.pop(version_arn, None)
        self.wake()
        log.info("stopping", extra={"project_version_arn": version_arn})
        return "STOPPING"

    # -- DetectCustomLabels -----------------------------------------------------------------------

    def _running(self, version_arn: str) -> _Cached:
        now = time.monotonic()
        cached = self._cache.get(version_arn)
        if cached is not None and cached.until > now:
            return cached
        d = self.repo.get(version_arn)
        if d is None or d.state != RUNNING:
            self._cache.pop(version_arn, None)
            status = self.training.artifact_status(version_arn) if d is None else d.state
            raise NotReady(f"the model version is {status}; it must be RUNNING")
        cached = _Cached(d, modelio.ModelSpec.from_json(d.spec), now + CACHE_S)
        self._cache[version_arn] = cached
        return cached

    def read_image(self, source: ImageSource) -> bytes:
        """The image's bytes within the size limits (Bytes: 4 MB, S3 object: 15 MB)."""
        if source.data is not None:
            if len(source.data) > self.settings.max_image_bytes:
                raise ImageTooLarge(
                    f"the image is {len(source.data)} bytes; the limit is {self.settings.max_image_bytes}"
                )
            return source.data
        return self.store.get_bytes(
            source.bucket, source.key, max_bytes=self.settings.max_s3_image_bytes, version=source.version
        )

    def detect(
        self, version_arn: str, source: ImageSource, min_confidence: float | None, max_results: int | None
    ) -> list[Any]:
        """Labels one image: (name, confidence 0–1) or (name, confidence, left, top, width, height)."""
        arns.parse_version(version_arn)
        if min_confidence is not None and not 0.0 <= min_confidence <= 100.0:
            raise InvalidParameter("MinConfidence must be between 0 and 100")
        if max_results is not None and max_results < 0:
            raise InvalidParameter("MaxResults must be at least 0")
        running = self._running(version_arn)
        data = self.read_image(source)
        size = images.check(data, self.settings)
        spec = running.spec
        try:
            if self.settings.decode == "service":
                try:
                    pixels, size = modelio.prepare(data, spec.input_size)
                except Exception:  # noqa: BLE001 - Pillow raises many kinds for a broken file
                    raise InvalidImageFormat("the image cannot be decoded") from None
                found = self.triton.infer(
                    running.deployment.model_name, self.settings.infer_timeout_s, pixels=pixels, size=size
                )
            else:
                found = self.triton.infer(
                    running.deployment.model_name, self.settings.infer_timeout_s, encoded=data
                )
        except BadImage:
            raise InvalidImageFormat("the image cannot be decoded") from None
        except TritonUnavailable as exc:
            log.warning(
                "model unavailable on Triton; reconciling",
                extra={"project_version_arn": version_arn, "error": str(exc)[:300]},
            )
            self._cache.pop(version_arn, None)
            self.wake()
            raise Throttling("the model is being restored on the inference server; retry shortly") from None
        except TritonFailed as exc:
            log.error("inference failed", extra={"project_version_arn": version_arn, "error": str(exc)})
            raise InternalServerError("inference failed; retry later") from None
        labels = spec.labels
        if spec.detects:
            results: list[Any] = [
                (labels[int(i)], float(c), *(float(v) for v in box))
                for i, c, box in zip(found.labels, found.confidences, found.boxes, strict=True)
            ]
        else:
            results = [
                (labels[int(i)], float(c)) for i, c in zip(found.labels, found.confidences, strict=True)
            ]
        return modelio.select(spec, results, min_confidence, max_results)

    # -- this replica's Triton --------------------------------------------------------------------

    def reconcile(self) -> None:
        """One round of the control loop: this replica's Triton first, then, on the leader, the statuses."""
        snapshot_at, deployments = self.repo.snapshot()
        live = self.triton.live()
        models: list[ModelReport] = []
        if live:
            try:
                models = self._sync(deployments)
            except TritonUnavailable:
                live = False
        if not live:
            log.warning("Triton is not answering; models are restored when it is back")
        self.repo.report(self.replica_id, live, snapshot_at, models)
        leading = self.lock.hold()
        if leading != self._leading:
            log.info("leader" if leading else "no longer leader", extra={"replica": self.replica_id})
            self._leading = leading
            self._samples.clear()
        if leading:
            self._lead(deployments)

    def _wanted(self, d: Deployment) -> bool:
        return d.state == RUNNING or (d.state == STARTING and d.files_ready and not d.error)

    def _sync(self, deployments: list[Deployment]) -> list[ModelReport]:
        """Loads, reloads and unloads on this replica's Triton; returns what it holds of our models."""
        loaded = self.triton.loaded()
        wanted = {d.model_name: d for d in deployments if self._wanted(d)}
        for name in list(self._failed):
            if name not in wanted or wanted[name].units != self._failed[name][0]:
                self._failed.pop(name)
        reports: list[ModelReport] = []
        for name, d in wanted.items():
            if self._is_busy(name):
                reports.append(ModelReport(name, LOADING, 0))
                continue
            failed = self._failed.get(name)
            ready = loaded.get(name) == READY
            instances = (self.triton.instances(name) or 0) if ready else 0
            if failed is None and (not ready or instances != self.settings.instances(d.units)):
                self._submit(name, lambda d=d, ready=ready: self._load(d, ready))  # type: ignore[misc]
            if ready:
                stats = self.triton.statistics(name)
                reports.append(
                    ModelReport(
                        name,
                        READY,
                        instances,
                        stats.requests,
                        stats.executions,
                        stats.queue_ns,
                        stats.infer_ns,
                        failed[1] if failed else None,
                    )
                )
            else:
                reports.append(
                    ModelReport(name, FAILED, 0, error=failed[1]) if failed else ModelReport(name, LOADING, 0)
                )
        # Only this installation's models: others sharing the Triton keep theirs.
        mine = model_prefix(self.installation)
        for name, state in loaded.items():
            if name.startswith(mine) and name not in wanted and state in (READY, LOADING):
                if not self._is_busy(name):
                    log.info("unloading a model no deployment wants", extra={"model": name})
                    self._submit(name, lambda name=name: self._unload(name))  # type: ignore[misc]
                # Still held until Triton says otherwise (the leader waits for it before STOPPED).
                reports.append(ModelReport(name, LOADING, 0))
        return reports

    def _load(self, d: Deployment, reload: bool) -> None:
        """Loads a model into this replica's Triton (or reloads it with the config's new instance count)."""
        began = time.monotonic()
        try:
            if not reload and not self.triton_repo.has(d.model_name):
                # Only a lost repository lacks them: the row has all it takes to write them again.
                self.triton_repo.write(d.model_name, d.spec, (d.onnx_bucket, d.onnx_key), d.units)
            # A reload: Triton loads the new instances beside the old ones and switches when ready.
            self.triton.load(d.model_name, self.settings.load_timeout_s)
            if not self.triton.ready(d.model_name):
                raise TritonFailed("Triton loaded the model but does not report it ready")
        except TritonUnavailable as exc:
            log.warning("Triton unavailable during a load", extra={"model": d.model_name, "error": str(exc)})
            return
        except Exception as exc:  # noqa: BLE001 - the reason goes to the leader, then the FAILED message
            log.warning("load failed", extra={"model": d.model_name, "error": str(exc)[:500]})
            self._failed[d.model_name] = (d.units, str(exc)[:500])
        else:
            log.info(
                "reloaded" if reload else "loaded",
                extra={
                    "project_version_arn": d.version_arn,
                    "units": d.units,
                    "seconds": round(time.monotonic() - began, 2),
                },
            )
        self.wake()

    def _unload(self, name: str) -> None:
        with contextlib.suppress(TritonUnavailable):
            self.triton.unload(name)
        self._failed.pop(name, None)
        self.wake()

    # -- the leader: statuses, stale replicas, auto-scaling ---------------------------------------

    def _lead(self, deployments: list[Deployment]) -> None:
        for gone in self.repo.expire_replicas(self.replica_ttl_s):
            log.warning("replica silent; forgotten", extra={"replica": gone})
        # Replicas whose Triton answers: those a model must be on before it runs.
        replicas = self.repo.replicas(self.replica_ttl_s)
        serving = [r for r in replicas if r.triton_live]
        names = {d.model_name for d in deployments}
        for key in [k for k in self._samples if k[0] not in names]:
            self._samples.pop(key)
        for d in deployments:
            if d.state == STARTING:
                self._lead_start(d, serving)
            elif d.state == RUNNING:
                self._lead_running(d, serving)
            elif d.state == STOPPING:
                self._lead_stop(d, replicas)

    def _lead_start(self, d: Deployment, serving: list[Replica]) -> None:
        if d.error:
            self._fail(d, f"The model could not be started: {d.error}", expected=(STARTING,))
            return
        if not d.files_ready:
            age = self.repo.age_s(d.version_arn)
            if age is not None and age > UNWRITTEN_S:
                self._submit(f"write:{d.version_arn}", lambda: self._write_files(d))
            return
        reports = [r.models.get(d.model_name) for r in serving]
        failures = [m.error for m in reports if m is not None and m.state == FAILED]
        if failures:
            self._fail(d, f"The model could not be started: {failures[0]}", expected=(STARTING,))
        elif serving and all(m is not None and m.state == READY for m in reports):
            self._set_running(d)

    def _set_running(self, d: Deployment) -> None:
        try:
            self.training.set_status(d.version_arn, "RUNNING", ("STARTING",), MESSAGES["RUNNING"])
        except InUse:
            # The version left STARTING (it was changed meanwhile): only a running version keeps its model.
            if self.training.artifact(d.version_arn).status != "RUNNING":
                self._forget(d)
                return
        except NotFound:
            self._forget(d)
            return
        self.repo.set_state(d.version_arn, RUNNING, STARTING)
        log.info("running", extra={"project_version_arn": d.version_arn})

    def _fail(self, d: Deployment, message: str, expected: tuple[str, ...]) -> None:
        log.warning("model failed", extra={"project_version_arn": d.version_arn, "reason": message})
        with contextlib.suppress(InUse, NotFound):
            self.training.set_status(d.version_arn, "FAILED", tuple(expected), message)
        self._forget(d)

    def _forget(self, d: Deployment) -> None:
        """Removes the model's files and its row; every replica then unloads it."""
        self.triton_repo.remove(d.model_name)
        self.repo.delete(d.version_arn)
        self._cache.pop(d.version_arn, None)
        self._last_request.pop(d.model_name, None)

    def _lead_stop(self, d: Deployment, replicas: list[Replica]) -> None:
        # Every live replica must have reported since the stop, and none may hold the model.
        for r in replicas:
            if r.snapshot_at <= d.changed_at or (r.triton_live and d.model_name in r.models):
                return
        self.triton_repo.remove(d.model_name)
        with contextlib.suppress(InUse, NotFound):
            self.training.set_status(d.version_arn, "STOPPED", ("STOPPING",), MESSAGES["STOPPED"])
        self.repo.delete(d.version_arn)
        self._last_request.pop(d.model_name, None)
        log.info("stopped", extra={"project_version_arn": d.version_arn})

    def _lead_running(self, d: Deployment, serving: list[Replica]) -> None:
        reports = [(r, r.models.get(d.model_name)) for r in serving]
        failures = [m.error for _, m in reports if m is not None and m.state == FAILED]
        if failures:
            self._fail(d, f"The model could not be restored: {failures[0]}", expected=(RUNNING,))
            return
        if d.units != d.min_units and any(m is not None and m.error for _, m in reports):
            # A replica could not load the new instance count (it keeps serving the old one): back to min.
            log.warning("scaling failed; back to min", extra={"project_version_arn": d.version_arn})
            self._scale(d, d.min_units)
            return
        if (d.max_units or d.min_units) > d.min_units or d.units != d.min_units:
            self._autoscale(d, reports)

    def _autoscale(self, d: Deployment, reports: list[tuple[Replica, ModelReport | None]]) -> None:
        now = time.monotonic()
        instances = self.settings.instances(d.units)
        pairs: list[tuple[Statistics, Statistics, float]] = []
        for r, m in reports:
            # Only replicas running the current instance count: the others' counters describe another.
            if m is None or m.state != READY or m.instances != instances:
                continue
            key = (d.model_name, r.replica_id)
            sample = _Sample(Statistics(m.requests, m.executions, m.queue_ns, m.infer_ns), r.snapshot_at)
            before = self._samples.get(key)
            if before is None or sample.seen_at > before.seen_at:
                self._samples[key] = sample
            if before is not None and sample.seen_at > before.seen_at:
                pairs.append((before.stats, sample.stats, sample.seen_at - before.seen_at))
        last_request = self._last_request.setdefault(d.model_name, now)
        load = autoscale.load_across(pairs, instances)
        if load is None:
            return
        if load.requests:
            last_request = self._last_request[d.model_name] = now
        target = autoscale.decide(
            d.units,
            d.min_units,
            d.max_units or d.min_units,
            load,
            now - last_request,
            scale_up_queue_ms=self.settings.scale_up_queue_ms,
            scale_down_idle_s=self.settings.scale_down_idle_s,
            spare_units=self.settings.max_total_units - self.repo.units_in_use(),
        )
        if target != d.units:
            log.info(
                "scaling",
                extra={
                    "project_version_arn": d.version_arn,
                    "from": d.units,
                    "to": target,
                    "replicas": len(pairs),
                    "load": load.__dict__,
                },
            )
            self._scale(d, target)

    def _scale(self, d: Deployment, units: int) -> None:
        """Writes the new instance count once; every replica reloads its Triton with it."""
        self.triton_repo.write_config(d.model_name, d.spec, units)
        self.repo.set_units(d.version_arn, units)
        # Counters restart with the reloaded models.
        for key in [k for k in self._samples if k[0] == d.model_name]:
            self._samples.pop(key)


@dataclass
class Controller:
    """Runs `reconcile` every `interval_s` seconds on a thread, and at once when woken."""

    deployments: Deployments
    interval_s: float
    _stop: threading.Event = field(default_factory=threading.Event)
    _wake: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Starts the loop (the first round runs at once)."""
        self.deployments.wake = self._wake.set
        self._thread = threading.Thread(target=self._run, name="serving-reconcile", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ends the loop after the round in progress."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.deployments.reconcile()
            except Exception:
                log.exception("reconciliation round failed")
            self._wake.wait(self.interval_s)
            self._wake.clear()
