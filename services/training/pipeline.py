"""What a training worker does with one job: validate, train, evaluate, export, write the files.

A job runs from the snapshot taken at CreateProjectVersion, so it is repeatable: a worker killed
mid-way leaves a lease that expires, and the next worker starts the job again from the start. The
version's final status, its files and "job done" land in one transaction (VersionRepository.finish).
A worker that is stopping sets `Trainer.stopping`: the next progress report raises JobInterrupted and
the job goes back to the queue with its attempt given back. With a `DistributedFit` (distributed.py)
and a world size above one, the classifier's fit runs in N rank processes or pods instead of here.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from PIL import Image, ImageOps

from services.common.jobs import JobInterrupted, JobRow
from services.common.storage import ObjectStore
from services.dataset import manifest
from services.dataset.images import ImageIngestor
from services.training import evaluation
from services.training.repository import VersionRepository, VersionRow

log = logging.getLogger("customlabels.training.worker")

# Shares of the progress bar each phase takes.
PHASES = {
    "VALIDATING": (0.0, 0.10),
    "TRAINING": (0.10, 0.85),
    "EVALUATING": (0.85, 0.95),
    "EXPORTING": (0.95, 1.0),
}


class TrainingFailed(Exception):
    """A training that cannot succeed with this data: TRAINING_FAILED with `text` as StatusMessage."""

    def __init__(self, code: str | None, message: str) -> None:
        self.code = code
        self.text = f"{code}: {message}" if code and not message.startswith(code) else message
        super().__init__(self.text)


@dataclass(frozen=True)
class TrainingSettings:
    """Limits of a training run (spec/limits.md §5: no maximum documented; † 72 h)."""

    max_seconds: float = 72 * 3600
    auto_split_share: float = 0.2


class Progress:
    """Writes phase, percent and ETA to the version row (at most every `every_s` seconds)."""

    def __init__(
        self,
        repo: VersionRepository,
        version_id: int,
        attempt: int,
        every_s: float = 1.0,
        stopping: threading.Event | None = None,
    ) -> None:
        self.repo = repo
        self.version_id = version_id
        self.attempt = attempt
        self.every_s = every_s
        self.stopping = stopping
        self.started = time.monotonic()
        self._last = 0.0

    def update(self, phase: str, fraction: float, force: bool = False) -> None:
        """Reports `fraction` (0–1) of `phase` done; JobInterrupted once the worker is stopping.

        Every phase reports often, so this is where a running training notices a SIGTERM: raising here
        unwinds the fit (a training is idempotent, the next claim starts it again)."""
        if self.stopping is not None and self.stopping.is_set():
            raise JobInterrupted(f"version {self.version_id}")
        now = time.monotonic()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        low, high = PHASES.get(phase, (0.0, 1.0))
        percent = 100.0 * (low + (high - low) * max(0.0, min(1.0, fraction)))
        elapsed = now - self.started
        eta = int(elapsed * (100.0 - percent) / percent) if percent >= 1.0 else None
        message = f"{phase.title()}: {percent:.0f}%" + (f", about {eta} s left" if eta is not None else "")
        self.repo.set_progress(
            self.version_id,
            {
                "phase": phase,
                "percent": round(percent, 1),
                "eta_seconds": eta,
                "attempt": self.attempt,
                "updated_ms": int(time.time() * 1000),
            },
            message,
        )


@dataclass
class Example:
    """One manifest line with its validation and (when valid) its image."""

    number: int
    text: str
    parsed: manifest.ParsedLine
    image_key: str | None = None  # our content-addressed copy in the images bucket
    image: bytes | None = None
    size: tuple[int, int] | None = None  # (width, height) of the image as displayed


@dataclass(frozen=True)
class FitResult:
    """What a model family returns after training: predictions on encoded test images (as serving
    makes them, services/common/modelio.py) and the export (ONNX bytes and model.json)."""

    labels: list[str]
    predict: Callable[[Sequence[bytes]], Any]
    export: Callable[[dict[str, float]], tuple[bytes, dict[str, Any]]]


class DistributedFit(Protocol):
    """Fits a model in several processes (distributed.py); `world_size` 1 means: fit here."""

    world_size: int

    def supports(self, use_case: str) -> bool:
        """Whether the use case's model family trains under torch.distributed."""

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
        """Trains in `world_size` ranks that read the images themselves; raises when a rank fails."""


class Trainer:
    """Runs training and copy jobs for the worker."""

    def __init__(
        self,
        repo: VersionRepository,
        store: ObjectStore,
        images_bucket: str,
        models_bucket: str,
        fit: Callable[..., FitResult],
        settings: TrainingSettings = TrainingSettings(),
        distributed: DistributedFit | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self.repo = repo
        self.store = store
        self.images_bucket = images_bucket
        self.models_bucket = models_bucket
        self.fit = fit
        self.settings = settings
        self.distributed = distributed
        self.stopping = stopping

    # -- jobs -------------------------------------------------------------------------------------

    def handle(self, job: JobRow, owner: str) -> None:
        """Runs one job to a final status."""
        row = self.repo.get_by_id(job.subject_id)
        if row is None:
            return
        if job.kind == "copy":
            self._copy(job, owner, row)
            return
        started = time.monotonic()
        progress = Progress(self.repo, row.id, job.attempts, stopping=self.stopping)
        files: dict[str, str] = dict(row.files)
        try:
            values = self._train(row, job, progress, files, started)
        except TrainingFailed as exc:
            log.info("training failed", extra={"project_version_arn": row.arn, "reason": exc.text})
            self.repo.finish(
                job,
                owner,
                {
                    "status": "TRAINING_FAILED",
                    "status_message": exc.text,
                    "files": files,
                    "training_end_at": datetime.now(UTC),
                    "progress": None,
                },
                job_state="failed",
            )
            return
        values.update(
            status="TRAINING_COMPLETED",
            status_message="Training completed.",
            files=files,
            training_end_at=datetime.now(UTC),
            billable_s=int(round(time.monotonic() - started)),
            progress={
                "phase": "DONE",
                "percent": 100.0,
                "attempt": job.attempts,
                "updated_ms": int(time.time() * 1000),
            },
        )
        self.repo.finish(job, owner, values)
        log.info("training completed", extra={"project_version_arn": row.arn, "f1": values.get("f1")})

    def give_up(self, job: JobRow, owner: str, reason: str) -> None:
        """Ends a job that keeps failing (service errors): TRAINING_FAILED / COPYING_FAILED."""
        status = "COPYING_FAILED" if job.kind == "copy" else "TRAINING_FAILED"
        self.repo.finish(
            job,
            owner,
            {
                "status": status,
                "status_message": f"The service failed to complete the operation ({reason}); retry.",
                "progress": None,
            },
            job_state="failed",
        )

    # -- training ---------------------------------------------------------------------------------

    def _train(
        self, row: VersionRow, job: JobRow, progress: Progress, files: dict[str, str], started: float
    ) -> dict[str, Any]:
        progress.update("VALIDATING", 0.0, force=True)
        if not self.store.client.bucket_exists(row.output_bucket):
            raise TrainingFailed(None, "Unable to write to output S3 bucket.")
        project_name = row.arn.split("/")[1]
        keys = evaluation.output_keys(row.output_prefix, project_name, row.version_name)
        train, test = self._load(row, job, progress)
        use_case = self._use_case(train, test)
        errors, train_errors, test_errors = self._content_errors(train, test, use_case)
        self._write(
            row,
            files,
            "train_validation",
            keys.training_validation,
            evaluation.validation_manifest_text((e.text, e.parsed) for e in train),
        )
        self._write(
            row,
            files,
            "test_validation",
            keys.testing_validation,
            evaluation.validation_manifest_text((e.text, e.parsed) for e in test),
        )
        summary = evaluation.manifest_summary_json(
            evaluation.dataset_statistics(((e.number, e.parsed) for e in train), use_case, train_errors),
            evaluation.dataset_statistics(((e.number, e.parsed) for e in test), use_case, test_errors),
            errors,
        )
        self._write(row, files, "manifest_summary", keys.manifest_summary, summary)
        first = errors or train_errors or test_errors
        if first:
            raise TrainingFailed(*first[0])
        usable_train = [e for e in train if self._usable(e, use_case)]
        usable_test = [e for e in test if self._usable(e, use_case)]
        progress.update("VALIDATING", 1.0, force=True)

        budget = self.settings.max_seconds - (time.monotonic() - started)
        fitted = self._fit(row, job, use_case, usable_train, progress, budget)
        if time.monotonic() - started > self.settings.max_seconds:
            raise TrainingFailed(
                None, f"Training exceeded the maximum training time of {self.settings.max_seconds:.0f} s."
            )

        progress.update("EVALUATING", 0.0, force=True)
        result = fitted.predict([e.image for e in usable_test])
        evaluated = self._evaluate(use_case, fitted.labels, usable_test, result)
        progress.update("EXPORTING", 0.0, force=True)
        model, metadata = fitted.export(evaluated.thresholds)
        prefix = row.files.get("snapshot", f"versions/{row.id}")
        self.store.put_bytes(self.models_bucket, f"{prefix}/model.onnx", model)
        metadata = {**metadata, "project_version_arn": row.arn, "thresholds": evaluated.thresholds}
        self.store.put_bytes(
            self.models_bucket, f"{prefix}/model.json", json.dumps(metadata).encode(), "application/json"
        )
        files.update(onnx=f"{prefix}/model.onnx", metadata=f"{prefix}/model.json")
        now = datetime.now(UTC)
        self._write(
            row,
            files,
            "summary",
            keys.summary,
            evaluation.summary_json(
                evaluated,
                project_version_arn=row.arn,
                evaluation_end=now,
                number_of_training_images=len(usable_train),
            ),
        )
        self._write(
            row,
            files,
            "train_output",
            keys.training_snapshot,
            evaluation.training_snapshot_text([e.parsed.entry for e in usable_train], use_case),
        )
        self._write(
            row,
            files,
            "test_output",
            keys.testing_snapshot,
            evaluation.testing_snapshot_text(
                evaluated, {e.parsed.source_ref: e.parsed.entry for e in usable_test}, now
            ),
        )
        model_type = metadata.get("model_type")
        return {
            "f1": evaluated.f1_score,
            "map": evaluated.average_precision if use_case == evaluation.OBJECT_LOCALIZATION else None,
            "labels": list(fitted.labels),
            "model_type": model_type,
        }

    def _fit(
        self,
        row: VersionRow,
        job: JobRow,
        use_case: str,
        train: list[Example],
        progress: Progress,
        budget: float,
    ) -> FitResult:
        """Fits here, or across the ranks of `distributed` when its world is larger than one process."""
        targets = [_targets(e, use_case) for e in train]

        def on_progress(fraction: float) -> None:
            progress.update("TRAINING", fraction)

        world = self.distributed.world_size if self.distributed is not None else 1
        if self.distributed is not None and world > 1:
            if self.distributed.supports(use_case):
                prefix = row.files.get("snapshot", f"versions/{row.id}")
                keys = [e.image_key or "" for e in train]
                return self.distributed.fit(job, prefix, use_case, keys, targets, on_progress, budget)
            # The detector has no torch.distributed path: it trains here, in one process.
            log.warning(
                "object detection trains in one process; the world size applies to classification only",
                extra={"project_version_arn": row.arn, "world_size": world},
            )
        return self.fit(
            use_case=use_case,
            images=[e.image for e in train],
            targets=targets,
            on_progress=on_progress,
            time_budget_s=budget,
        )

    def _write(self, row: VersionRow, files: dict[str, str], name: str, key: str, text: str) -> None:
        try:
            self.store.put_bytes(row.output_bucket, key, text.encode(), "application/json")
        except Exception as exc:  # noqa: BLE001 - any refusal of the user's bucket is the same file error
            raise TrainingFailed(None, "Unable to write to output S3 bucket.") from exc
        files[name] = key

    def _load(self, row: VersionRow, job: JobRow, progress: Progress) -> tuple[list[Example], list[Example]]:
        """Reads the snapshot (or the external manifests), validates each line against its image."""
        prefix = job.payload["snapshot"]
        if job.payload.get("source") == "manifests":
            return self._load_manifests(row, progress)
        train = self._read_snapshot(f"{prefix}/training.jsonl")
        test = self._read_snapshot(f"{prefix}/testing.jsonl")
        if not train:
            raise TrainingFailed("ERROR_EMPTY_MANIFEST", "The manifest file is empty.")
        if not test:
            raise TrainingFailed("ERROR_EMPTY_MANIFEST", "The manifest file is empty.")
        self._fetch_images([*train, *test], progress)
        return train, test

    def _read_snapshot(self, key: str) -> list[Example]:
        examples = []
        text = self.store.get_bytes(self.models_bucket, key).decode()
        for number, raw in enumerate(filter(None, text.split("\n")), start=1):
            item = json.loads(raw)
            parsed = manifest.parse_line(item["line"])
            examples.append(
                Example(number, item["line"], parsed, item["image"]["key"] if item["image"] else None)
            )
        return examples

    def _fetch_images(self, examples: list[Example], progress: Progress) -> None:
        """Reads each usable line's image copy and re-checks the line against the real image size."""
        todo = [e for e in examples if e.image_key and e.parsed.entry is not None]

        def read(example: Example) -> None:
            example.image = self.store.get_bytes(self.images_bucket, example.image_key or "")

        with ThreadPoolExecutor(8) as pool:
            for i, _ in enumerate(pool.map(read, todo), start=1):
                progress.update("VALIDATING", 0.8 * i / max(1, len(todo)))
        for e in examples:
            if e.image is not None:
                with Image.open(io.BytesIO(e.image)) as im:
                    width, height = ImageOps.exif_transpose(im).size if _rotated(im) else im.size
                e.size = (width, height)
                e.parsed = manifest.apply_image(e.parsed, width, height, None)
            elif e.parsed.entry is not None:
                e.parsed = manifest.apply_image(
                    e.parsed, None, None, ("ERROR_INVALID_IMAGE", "The image is invalid.")
                )

    def _load_manifests(self, row: VersionRow, progress: Progress) -> tuple[list[Example], list[Example]]:
        """External TrainingData/TestingData manifests: read, validate, copy their images (AutoCreate splits)."""
        ingestor = ImageIngestor(self.store, self.images_bucket, max_workers=16)

        def read(refs: list[dict[str, Any]]) -> list[Example]:
            examples: list[Example] = []
            for ref in refs:
                try:
                    data = self.store.get_bytes(
                        ref["bucket"],
                        ref["name"],
                        max_bytes=manifest.DEFAULT_LIMITS.max_manifest_bytes,
                        version=ref.get("version"),
                    )
                except Exception as exc:  # noqa: BLE001 - unreadable or too large: a manifest-file error
                    raise TrainingFailed(
                        None, "The manifest file extension or contents are invalid."
                    ) from exc
                for text in manifest.split_lines(data):
                    examples.append(Example(len(examples) + 1, text, manifest.parse_line(text)))
            if not examples:
                raise TrainingFailed("ERROR_EMPTY_MANIFEST", "The manifest file is empty.")
            valid = [e for e in examples if e.parsed.entry is not None and e.parsed.bucket]
            for e, (_, result) in zip(
                valid, ingestor.ingest_many([(e.parsed.bucket, e.parsed.key) for e in valid]), strict=True
            ):
                if result.error is not None:
                    e.parsed = manifest.apply_image(e.parsed, None, None, result.error)
                else:
                    e.image_key = result.key
            return examples

        train = read(row.inputs["training"])
        if row.inputs.get("auto_create"):
            train, test = _auto_split(train, self.settings.auto_split_share)
        else:
            test = read(row.inputs["testing"])
        self._fetch_images([*train, *test], progress)
        # The same snapshot files a dataset-based version has, so ListTestResults finds the copies.
        prefix = row.files.get("snapshot", f"versions/{row.id}")
        for name, examples in (("training.jsonl", train), ("testing.jsonl", test)):
            self.store.put_bytes(
                self.models_bucket,
                f"{prefix}/{name}",
                _snapshot_text(examples, self.images_bucket),
                "application/x-ndjson",
            )
        return train, test

    # -- validation ---------------------------------------------------------------------------------

    @staticmethod
    def _usable(e: Example, use_case: str) -> bool:
        return (
            e.image is not None
            and e.parsed.entry is not None
            and not e.parsed.line_error
            and (
                (use_case == evaluation.OBJECT_LOCALIZATION and e.parsed.kind == "detection")
                or (use_case == evaluation.IMAGE_LEVEL_LABELS and bool(e.parsed.image_labels))
            )
        )

    @staticmethod
    def _use_case(train: list[Example], test: list[Example]) -> str:
        summary = manifest.summarize(e.parsed for e in train if e.parsed.entry is not None)
        test_summary = manifest.summarize(e.parsed for e in test if e.parsed.entry is not None)
        chosen = manifest.project_model_type(summary, test_summary)
        if chosen is None:
            return evaluation.NOT_DETERMINED
        return (
            evaluation.OBJECT_LOCALIZATION
            if chosen == "OBJECT_LOCALIZATION"
            else evaluation.IMAGE_LEVEL_LABELS
        )

    def _content_errors(
        self, train: list[Example], test: list[Example], use_case: str
    ) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str]]]:
        """The terminal content errors of spec/manifest.md §7.3: (both, training only, testing only)."""
        both: list[tuple[str, str]] = []
        per: list[list[tuple[str, str]]] = [[], []]
        limits = manifest.DEFAULT_LIMITS
        for i, examples in enumerate((train, test)):
            invalid = sum(1 for e in examples if e.parsed.entry is None or e.parsed.line_error)
            ignored = sum(1 for e in examples if e.parsed.entry is not None and e.parsed.ignored)
            base = len(examples) - ignored
            if base and invalid * 100 > base * limits.max_invalid_percent:
                per[i].append(
                    (
                        "ERROR_TOO_MANY_INVALID_ROWS_IN_MANIFEST",
                        "The manifest file contains too many invalid rows.",
                    )
                )
        if use_case == evaluation.NOT_DETERMINED:
            per[0].append(("ERROR_MANIFEST_TOO_FEW_LABELS", "The manifest file has too few labels."))
            return both, per[0], per[1]
        minimum = 1 if use_case == evaluation.OBJECT_LOCALIZATION else 2
        train_labels = {label for e in train if self._usable(e, use_case) for label in _labels(e, use_case)}
        test_labels = {label for e in test if self._usable(e, use_case) for label in _labels(e, use_case)}
        if len(train_labels) < minimum:
            per[0].append(("ERROR_MANIFEST_TOO_FEW_LABELS", "The manifest file has too few labels."))
        if len(train_labels) > limits.max_labels:
            per[0].append(("ERROR_MANIFEST_TOO_MANY_LABELS", "The manifest file has too many labels."))
        share = manifest.label_overlap(train_labels, test_labels)
        if share is not None and share < manifest.MIN_LABEL_OVERLAP:
            both.append(
                (
                    "ERROR_INSUFFICIENT_LABEL_OVERLAP",
                    "Less than 50% label overlap between the training and testing manifest files.",
                )
            )
        return both, per[0], per[1]

    def _evaluate(self, use_case: str, labels: list[str], test: list[Example], predictions: Any) -> Any:
        if use_case == evaluation.IMAGE_LEVEL_LABELS:
            samples = [
                evaluation.ClassificationSample(
                    e.parsed.source_ref or "",
                    frozenset(e.parsed.image_labels),
                    {label: float(p) for label, p in zip(labels, row, strict=True)},
                )
                for e, row in zip(test, predictions, strict=True)
            ]
            return evaluation.evaluate_classification(samples, labels)
        samples = [
            evaluation.DetectionSample(
                e.parsed.source_ref or "",
                evaluation.ground_truth_from_entry(e.parsed.entry or {}, use_case).boxes,
                boxes,
            )
            for e, boxes in zip(test, predictions, strict=True)
        ]
        return evaluation.evaluate_detection(samples, labels)

    # -- copy -------------------------------------------------------------------------------------

    def _copy(self, job: JobRow, owner: str, row: VersionRow) -> None:
        """CopyProjectVersion: the model and its files, under the destination's OutputConfig."""
        source = self.repo.get_by_id(job.payload["source_id"])
        if source is None or not source.files.get("onnx"):
            self.repo.finish(
                job,
                owner,
                {"status": "COPYING_FAILED", "status_message": "The source version no longer exists."},
                job_state="failed",
            )
            return
        prefix = row.files["snapshot"]
        files = {"snapshot": prefix}
        for name in ("onnx", "metadata"):
            data = self.store.get_bytes(self.models_bucket, source.files[name])
            key = f"{prefix}/{source.files[name].rsplit('/', 1)[1]}"
            self.store.put_bytes(self.models_bucket, key, data)
            files[name] = key
        # The snapshot of the data, so the copy's test results find their images (ListTestResults).
        source_prefix = source.files.get("snapshot")
        for name in ("training.jsonl", "testing.jsonl"):
            if source_prefix and self.store.exists(self.models_bucket, f"{source_prefix}/{name}"):
                data = self.store.get_bytes(self.models_bucket, f"{source_prefix}/{name}")
                self.store.put_bytes(self.models_bucket, f"{prefix}/{name}", data, "application/x-ndjson")
        project_name = row.arn.split("/")[1]
        keys = evaluation.output_keys(row.output_prefix, project_name, row.version_name)
        targets = {
            "summary": keys.summary,
            "manifest_summary": keys.manifest_summary,
            "train_validation": keys.training_validation,
            "test_validation": keys.testing_validation,
            "train_output": keys.training_snapshot,
            "test_output": keys.testing_snapshot,
        }
        try:
            for name, key in targets.items():
                if source.files.get(name):
                    data = self.store.get_bytes(source.output_bucket, source.files[name])
                    self.store.put_bytes(row.output_bucket, key, data, "application/json")
                    files[name] = key
        except Exception:  # noqa: BLE001 - the destination bucket refused the files
            self.repo.finish(
                job,
                owner,
                {"status": "COPYING_FAILED", "status_message": "Unable to write to output S3 bucket."},
                job_state="failed",
            )
            return
        self.repo.finish(
            job,
            owner,
            {
                "status": "COPYING_COMPLETED",
                "status_message": "Copy completed.",
                "files": files,
                "f1": source.f1,
                "map": source.map,
                "labels": source.labels,
                "model_type": source.model_type,
                "training_end_at": datetime.now(UTC),
                "billable_s": source.billable_s,
            },
        )


def _snapshot_text(examples: Sequence[Example], images_bucket: str) -> bytes:
    """Snapshot lines as versions.py writes them: the manifest line and where its image copy is."""
    lines = []
    for e in examples:
        image = None
        if e.image_key:
            width, height = e.size or (0, 0)
            image = {"bucket": images_bucket, "key": e.image_key, "width": width, "height": height}
        lines.append(json.dumps({"line": e.text, "image": image}, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


def _labels(e: Example, use_case: str) -> set[str]:
    if use_case == evaluation.OBJECT_LOCALIZATION:
        return {label for label, n in e.parsed.box_counts.items() if n > 0}
    return set(e.parsed.image_labels)


def _targets(e: Example, use_case: str) -> Any:
    """Image-level labels (classification), or boxes (label, left, top, width, height) as ratios."""
    if use_case == evaluation.IMAGE_LEVEL_LABELS:
        return set(e.parsed.image_labels)
    truth = evaluation.ground_truth_from_entry(e.parsed.entry or {}, use_case)
    return [(b.label, b.left, b.top, b.width, b.height) for b in truth.boxes]


def _rotated(im: Image.Image) -> bool:
    return im.format == "JPEG" and im.getexif().get(0x0112, 1) != 1


def _auto_split(examples: list[Example], share: float) -> tuple[list[Example], list[Example]]:
    """TestingData.AutoCreate: a deterministic stratified split (every label keeps images on both sides)."""
    import hashlib

    order = sorted(examples, key=lambda e: hashlib.sha256(e.text.encode()).digest())
    counts: dict[str, int] = {}
    for e in order:
        for label in e.parsed.labels:
            counts[label] = counts.get(label, 0) + 1
    if any(n < 2 for n in counts.values()):
        raise TrainingFailed(
            "ERROR_INSUFFICIENT_IMAGES_PER_LABEL_FOR_AUTOSPLIT",
            "The manifest file contains insufficient labeled images per label to perform auto-split.",
        )
    target = {label: max(1, round(n * share)) for label, n in counts.items()}
    taken = dict.fromkeys(counts, 0)
    test: list[Example] = []
    train: list[Example] = []
    for e in order:
        labels = e.parsed.labels
        if (
            labels
            and any(taken[x] < target[x] for x in labels)
            and all(counts[x] - taken[x] > 1 for x in labels)
        ):
            test.append(e)
            for x in labels:
                taken[x] += 1
        else:
            train.append(e)
    return train, test
