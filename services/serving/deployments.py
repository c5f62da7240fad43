"""The serving domain: starting and stopping versions on Triton, DetectCustomLabels, and the control
loop that keeps Triton in line with the desired state.

The desired state is the `deployments` table (repository.py): a row per version that should run.
The version's Status belongs to the training service and is moved here with its compare-and-set
(STARTING → RUNNING | FAILED, RUNNING → STOPPING → STOPPED). Start and stop answer at once; the
Triton work runs on a small thread pool. The control loop (`Controller`) runs one `reconcile` every
few seconds, at start-up, and as soon as a call finds a model missing: it reloads RUNNING versions
that Triton lacks (a restarted Triton comes back empty), finishes starts and stops that a killed
process left half-way, unloads models nobody wants, marks FAILED what cannot be loaded, and
auto-scales instance counts (autoscale.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
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
from services.serving.repository import RUNNING, STARTING, STOPPING, Deployment, DeploymentRepository
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


@dataclass(frozen=True)
class ImageSource:
    """The image of a DetectCustomLabels call: bytes, or an object of the object store."""

    data: bytes | None = None
    bucket: str = ""
    key: str = ""
    version: str | None = None


@dataclass
class _Scaling:
    """What the auto-scaler remembers of a model between two samples."""

    sample: Statistics
    at: float
    last_request_at: float


@dataclass
class _Cached:
    deployment: Deployment
    spec: modelio.ModelSpec
    until: float


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
        # Every model of this installation is named cl_<installation>_…; the loop touches no other.
        self.installation = repo.installation()
        self._jobs = ThreadPoolExecutor(max_workers=4, thread_name_prefix="serving-job")
        self._busy: set[str] = set()
        # Starts that found Triton down: the control loop resumes them once it answers.
        self._retry: set[str] = set()
        self._lock = threading.Lock()
        self._cache: dict[str, _Cached] = {}
        self._scaling: dict[str, _Scaling] = {}
        self._rounds = 0
        self.wake: Callable[[], None] = lambda: None

    def close(self) -> None:
        """Waits for the start and stop jobs in flight."""
        self._jobs.shutdown(wait=True)

    # -- StartProjectVersion ----------------------------------------------------------------------

    def start(self, version_arn: str, min_units: int, max_units: int | None) -> str:
        """Records the deployment, moves the version to STARTING and loads it in the background."""
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
        self._submit(version_arn, lambda: self._finish_start(deployment))
        log.info("starting", extra={"project_version_arn": version_arn, "units": min_units, "max": max_units})
        return "STARTING"

    def _submit(self, version_arn: str, job: Callable[[], None]) -> None:
        with self._lock:
            if version_arn in self._busy:
                return
            self._busy.add(version_arn)

        def run() -> None:
            try:
                job()
            except Exception:
                log.exception("serving job failed", extra={"project_version_arn": version_arn})
            finally:
                with self._lock:
                    self._busy.discard(version_arn)

        self._jobs.submit(run)

    def _finish_start(self, d: Deployment) -> None:
        """Writes the model into the repository, loads it, then RUNNING (or FAILED with the reason)."""
        began = time.monotonic()
        try:
            self.triton_repo.write(d.model_name, d.spec, (d.onnx_bucket, d.onnx_key), d.units)
            self.triton.load(d.model_name, self.settings.load_timeout_s)
            if not self.triton.ready(d.model_name):
                raise TritonFailed("Triton loaded the model but does not report it ready")
        except TritonUnavailable as exc:
            # Triton is down: the row stays STARTING and the control loop retries once it is back.
            log.warning("Triton unavailable during a start", extra={"error": str(exc)})
            self._retry.add(d.version_arn)
            return
        except Exception as exc:  # noqa: BLE001 - whatever went wrong is the version's FAILED message
            self._retry.discard(d.version_arn)
            self._fail(d, f"The model could not be started: {str(exc)[:500]}", expected=(STARTING,))
            return
        self._retry.discard(d.version_arn)
        try:
            self.training.set_status(d.version_arn, "RUNNING", ("STARTING",), MESSAGES["RUNNING"])
        except InUse:
            # The version left STARTING (another replica finished this start, or it was changed):
            # only a running version keeps its model.
            if self.training.artifact(d.version_arn).status != "RUNNING":
                self._forget(d)
                return
        except NotFound:
            self._forget(d)
            return
        self.repo.set_state(d.version_arn, RUNNING, STARTING)
        self.wake()
        log.info(
            "running",
            extra={"project_version_arn": d.version_arn, "seconds": round(time.monotonic() - began, 2)},
        )

    def _fail(self, d: Deployment, message: str, expected: tuple[str, ...]) -> None:
        log.warning("model failed", extra={"project_version_arn": d.version_arn, "reason": message})
        with contextlib.suppress(InUse, NotFound):
            self.training.set_status(d.version_arn, "FAILED", tuple(expected), message)
        self._forget(d)

    def _forget(self, d: Deployment) -> None:
        """Unloads the model, removes its files and its row."""
        # A Triton that is down has nothing loaded once it is back (explicit model control).
        with contextlib.suppress(TritonUnavailable):
            self.triton.unload(d.model_name)
        self.triton_repo.remove(d.model_name)
        self.repo.delete(d.version_arn)
        self._cache.pop(d.version_arn, None)
        self._scaling.pop(d.model_name, None)

    # -- StopProjectVersion -----------------------------------------------------------------------

    def stop(self, version_arn: str) -> str:
        """Moves a RUNNING version to STOPPING and unloads it in the background."""
        arns.parse_version(version_arn)
        d = self.repo.get(version_arn)
        if d is None or d.state != RUNNING:
            status = self.training.artifact_status(version_arn) if d is None else d.state
            raise InUse(f"the model version is {status}; only a RUNNING version can be stopped")
        self.training.set_status(version_arn, "STOPPING", ("RUNNING",), MESSAGES["STOPPING"])
        self.repo.set_state(version_arn, STOPPING, RUNNING)
        self._cache.pop(version_arn, None)
        self._submit(version_arn, lambda: self._finish_stop(d))
        log.info("stopping", extra={"project_version_arn": version_arn})
        return "STOPPING"

    def _finish_stop(self, d: Deployment) -> None:
        with contextlib.suppress(TritonUnavailable):
            self.triton.unload(d.model_name)
        self.triton_repo.remove(d.model_name)
        with contextlib.suppress(InUse, NotFound):
            self.training.set_status(d.version_arn, "STOPPED", ("STOPPING",), MESSAGES["STOPPED"])
        self.repo.delete(d.version_arn)
        self._scaling.pop(d.model_name, None)
        log.info("stopped", extra={"project_version_arn": d.version_arn})

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

    # -- reconciliation ---------------------------------------------------------------------------

    def reconcile(self) -> None:
        """One round of the control loop (only one replica at a time runs it)."""
        with self.repo.leader() as leader:
            if not leader:
                return
            first = self._rounds == 0
            if not self.triton.live():
                log.warning("Triton is not answering; models are restored when it is back")
                return
            self._rounds += 1
            loaded = self.triton.loaded()
            wanted = set()
            for d in self.repo.all():
                wanted.add(d.model_name)
                with self._lock:
                    if d.version_arn in self._busy:
                        continue
                if d.state == RUNNING:
                    if loaded.get(d.model_name) != "READY":
                        self._restore(d)
                    elif (d.max_units or d.min_units) > d.min_units or d.units != d.min_units:
                        self._autoscale(d)
                elif first or d.version_arn in self._retry or self._stale(d):
                    # A start or stop that a killed process (or a lost Triton) left half-way.
                    job = self._finish_start if d.state == STARTING else self._finish_stop
                    self._submit(d.version_arn, lambda d=d, job=job: job(d))  # type: ignore[misc]
            # Only this installation's models: others sharing the Triton keep theirs.
            mine = model_prefix(self.installation)
            for name, state in loaded.items():
                if name.startswith(mine) and name not in wanted and state == "READY":
                    log.info("unloading a model no deployment wants", extra={"model": name})
                    self.triton.unload(name)

    def _stale(self, d: Deployment) -> bool:
        # Rows carry no owner: a start/stop left untouched for a load timeout is nobody's any more.
        age = self.repo.age_s(d.version_arn)
        return age is not None and age > self.settings.load_timeout_s

    def _restore(self, d: Deployment) -> None:
        """Loads a RUNNING version that Triton lacks; FAILED when it cannot be loaded."""
        log.info("restoring a running model", extra={"project_version_arn": d.version_arn})
        try:
            if not self.triton_repo.has(d.model_name):
                self.triton_repo.write(d.model_name, d.spec, (d.onnx_bucket, d.onnx_key), d.units)
            self.triton.load(d.model_name, self.settings.load_timeout_s)
        except TritonUnavailable:
            return
        except Exception as exc:  # noqa: BLE001 - the reason becomes the FAILED message
            self._fail(d, f"The model could not be restored: {str(exc)[:500]}", expected=("RUNNING",))
            return
        self._scaling.pop(d.model_name, None)

    def _autoscale(self, d: Deployment) -> None:
        now = time.monotonic()
        sample = self.triton.statistics(d.model_name)
        state = self._scaling.get(d.model_name)
        if state is None:
            self._scaling[d.model_name] = _Scaling(sample, now, now)
            return
        load = autoscale.load_between(state.sample, sample, now - state.at, self.settings.instances(d.units))
        if load is None:
            self._scaling[d.model_name] = _Scaling(sample, now, now)
            return
        if load.requests:
            state.last_request_at = now
        target = autoscale.decide(
            d.units,
            d.min_units,
            d.max_units or d.min_units,
            load,
            now - state.last_request_at,
            scale_up_queue_ms=self.settings.scale_up_queue_ms,
            scale_down_idle_s=self.settings.scale_down_idle_s,
            spare_units=self.settings.max_total_units - self.repo.units_in_use(),
        )
        state.sample, state.at = sample, now
        if target == d.units:
            return
        log.info(
            "scaling",
            extra={
                "project_version_arn": d.version_arn,
                "from": d.units,
                "to": target,
                "load": load.__dict__,
            },
        )
        self.triton_repo.write_config(d.model_name, d.spec, target)
        try:
            # Triton loads the new instances beside the old ones and switches when they are ready.
            self.triton.load(d.model_name, self.settings.load_timeout_s)
        except (TritonUnavailable, TritonFailed) as exc:
            log.warning("scaling failed", extra={"project_version_arn": d.version_arn, "error": str(exc)})
            self.triton_repo.write_config(d.model_name, d.spec, d.units)
            return
        self.repo.set_units(d.version_arn, target)
        # Counters restart with the reloaded model.
        self._scaling[d.model_name] = _Scaling(self.triton.statistics(d.model_name), time.monotonic(), now)


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
