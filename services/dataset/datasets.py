"""The dataset domain: every dataset operation and the jobs behind the asynchronous ones.

Calls return as soon as the dataset shows its new *_IN_PROGRESS status (spec/api.md §1.2: status
changes are visible synchronously); the work itself is a job (jobs.py) whose result lands in one
transaction (repository.commit*), so a dataset is never half imported.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from services.common import arn as arns
from services.common import validation
from services.common.errors import (
    AlreadyExists,
    InUse,
    InvalidParameter,
    InvalidS3Object,
    LimitExceeded,
    NotFound,
    NotReady,
    ServiceError,
)
from services.common.jobs import JobInterrupted, JobRow
from services.common.pagination import Page, PageTokens, keyset_page
from services.common.storage import ObjectStore
from services.dataset import images, importers, manifest, thumbnails
from services.dataset.images import ImageIngestor
from services.dataset.repository import (
    AlreadyExists as DatasetTypeTaken,
)
from services.dataset.repository import (
    DatasetRepository,
    DatasetRow,
    EntryFilter,
    EntryRow,
)
from services.dataset.thumbnails import ImageReader, ServedImage

log = logging.getLogger("customlabels.dataset")

COMPLETE = ("CREATE_COMPLETE", "UPDATE_COMPLETE")
UPDATABLE = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_FAILED")


class ProjectPeer(Protocol):
    """What the dataset service asks of the project service."""

    def project_status(self, project_arn: str) -> str:
        """Returns CREATED or DELETING; raises NotFound when the project does not exist."""

    def set_tags(self, resource_arn: str, tags: dict[str, str]) -> None:
        """Stores a new dataset's tags."""

    def forget_tags(self, resource_arn: str) -> None:
        """Drops a deleted dataset's tags."""


@dataclass(frozen=True)
class DatasetLimits:
    """Limits of spec/limits.md §2–3 that the service enforces (configurable)."""

    manifest: manifest.ManifestLimits = field(default_factory=manifest.ManifestLimits)
    max_update_bytes: int = 5_242_880
    max_manifest_bytes: int = 1024**3
    max_coco_bytes: int = 512 * 1024**2
    distribute_test_share: float = 0.2


@dataclass(frozen=True)
class UploadedFile:
    """One file received by UploadImages."""

    file_name: str
    labels: list[str]
    data: bytes


@dataclass(frozen=True)
class UploadOutcome:
    """What happened to one uploaded file."""

    file_name: str
    source_ref: str = ""
    error_code: str = ""
    error_message: str = ""


@dataclass
class _Batch:
    """Entries computed by a job, with the counts the terminal checks need."""

    entries: list[EntryRow] = field(default_factory=list)
    total_lines: int = 0
    dropped: int = 0
    line_errors: int = 0
    ignored: int = 0
    labels: set[str] = field(default_factory=set)


class TerminalError(Exception):
    """A dataset-level (terminal) validation error: the operation fails with this code and message."""

    def __init__(self, code: str, message: str) -> None:
        # Status messages start with the code (spec/api.md §1.2), whoever wrote the message.
        text = message if message.startswith(code) else f"{code}: {message}"
        super().__init__(text)
        self.code = code
        self.text = text


def _now(clock: Callable[[], float]) -> datetime:
    return datetime.fromtimestamp(clock(), UTC)


class DatasetService:
    """CreateDataset, DescribeDataset, DeleteDataset, ListDatasetEntries, ListDatasetLabels,
    UpdateDatasetEntries, DistributeDatasetEntries, the imports, GetDatasetImage, and the jobs behind them."""

    def __init__(
        self,
        repo: DatasetRepository,
        store: ObjectStore,
        ingestor: ImageIngestor,
        project: ProjectPeer,
        tokens: PageTokens,
        region: str,
        account_id: str,
        images_bucket: str,
        limits: DatasetLimits = DatasetLimits(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.repo = repo
        self.store = store
        self.ingestor = ingestor
        self.project = project
        self.tokens = tokens
        self.region = region
        self.account_id = account_id
        self.images_bucket = images_bucket
        self.limits = limits
        self.clock = clock
        self.wake: Callable[[], None] = lambda: None
        # The job runner's `stopping` (app.py): an import checks it between images and hands its job
        # back (JobInterrupted) instead of holding the shutdown until it finishes.
        self.stopping = threading.Event()
        self.image_reader = ImageReader(store, images_bucket, ingestor.limits)

    # -- lookups ----------------------------------------------------------------------------------

    def get(self, dataset_arn: str, field_name: str = "DatasetArn") -> DatasetRow:
        """Returns a dataset; InvalidParameter for a malformed ARN, NotFound when it does not exist."""
        arns.parse_dataset(dataset_arn, field_name)
        row = self.repo.get(dataset_arn)
        if row is None:
            raise NotFound(f"dataset {dataset_arn} does not exist")
        return row

    def _check_project(self, project_arn: str) -> arns.Arn:
        parsed = arns.parse_project(project_arn)
        if self.project.project_status(project_arn) != "CREATED":
            raise InUse(f"project {project_arn} is being deleted")
        return parsed

    # -- create -----------------------------------------------------------------------------------

    def _new_dataset(
        self,
        project_arn: str,
        dataset_type: str,
        tags: dict[str, str],
        job: tuple[str, dict[str, Any]] | None,
    ) -> str:
        if dataset_type not in ("TRAIN", "TEST"):
            raise InvalidParameter("DatasetType must be TRAIN or TEST")
        validation.tags(tags)
        project = self._check_project(project_arn)
        now = self.clock()
        created_ms = int(now * 1000)
        dataset_arn = arns.dataset_arn(
            self.region, self.account_id, project.project, dataset_type.lower(), created_ms
        )
        try:
            self.repo.create(dataset_arn, project_arn, dataset_type, created_ms, _now(lambda: now), job)
        except DatasetTypeTaken:
            raise AlreadyExists(f"the project already has a {dataset_type} dataset") from None
        if tags:
            self.project.set_tags(dataset_arn, tags)
        if job:
            self.wake()
        log.info("dataset created", extra={"dataset_arn": dataset_arn, "job": job[0] if job else None})
        return dataset_arn

    def create_dataset(
        self,
        project_arn: str,
        dataset_type: str,
        manifest_ref: tuple[str, str, str | None] | None,
        source_dataset_arn: str | None,
        tags: dict[str, str],
    ) -> str:
        """Creates a TRAIN or TEST dataset: empty, from a manifest, or as a copy of another dataset."""
        job: tuple[str, dict[str, Any]] | None = None
        if manifest_ref is not None:
            bucket, key, version = self._check_manifest(*manifest_ref)
            job = ("manifest", {"bucket": bucket, "key": key, "version": version})
        elif source_dataset_arn is not None:
            source = self.get(source_dataset_arn, "DatasetSource.DatasetArn")
            if source.status not in UPDATABLE:
                raise NotReady(f"source dataset is {source.status}; it must be complete")
            job = ("copy", {"source_id": source.id})
        return self._new_dataset(project_arn, dataset_type, tags, job)

    def _check_manifest(self, bucket: str, key: str, version: str | None) -> tuple[str, str, str | None]:
        validation.bucket(bucket, "S3Object.Bucket")
        validation.object_key(key, "S3Object.Name")
        if version is not None and not 1 <= len(version) <= 1024:
            raise InvalidParameter("S3Object.Version must be 1 to 1024 characters long")
        self.store.stat(bucket, key, version)  # InvalidS3ObjectException now rather than a failed job later
        return bucket, key, version

    # -- import targets ---------------------------------------------------------------------------

    def _import(
        self,
        dataset_arn: str | None,
        new: tuple[str, str, dict[str, str]] | None,
        job: tuple[str, dict[str, Any]],
    ) -> str:
        """Starts `job` on an existing dataset (UPDATE_*) or on a new one (CREATE_*); returns its ARN."""
        if (dataset_arn is None) == (new is None):
            raise InvalidParameter("give exactly one of Target.DatasetArn or Target.NewDataset")
        if new is not None:
            return self._new_dataset(new[0], new[1], new[2], job)
        assert dataset_arn is not None
        row = self.get(dataset_arn, "Target.DatasetArn")
        self._begin_update([row], job)
        return row.arn

    def _begin_update(self, rows: Sequence[DatasetRow], job: tuple[str, dict[str, Any]]) -> None:
        job[1]["mode"] = "update"
        current = self.repo.begin(
            [r.id for r in rows], UPDATABLE, "UPDATE_IN_PROGRESS", job, _now(self.clock)
        )
        if current is not None:
            if "CREATE_FAILED" in current:
                raise InUse(
                    "a dataset whose creation failed cannot be updated; delete it and create it again"
                )
            raise InUse(f"the dataset is busy ({', '.join(sorted(set(current)))}); retry when it is complete")
        self.wake()

    def update_entries(self, dataset_arn: str, ground_truth: bytes) -> None:
        """Adds or replaces entries (matched by source-ref) from JSON lines."""
        if not ground_truth:
            raise InvalidParameter("Changes.GroundTruth must hold at least one JSON line")
        if len(ground_truth) > self.limits.max_update_bytes:
            raise LimitExceeded(
                f"Changes.GroundTruth is {len(ground_truth)} bytes; the limit is {self.limits.max_update_bytes}"
            )
        row = self.get(dataset_arn)
        # The lines travel in the job's jsonb payload, which cannot hold U+0000. A raw NUL byte makes its
        # line invalid JSON (RFC 8259 allows no unescaped control character); U+0001 keeps it exactly as
        # invalid, so that line alone is dropped as ERROR_INVALID_JSON_LINE.
        text = ground_truth.decode("utf-8", errors="replace").replace("\x00", "\x01")
        self._begin_update([row], ("lines", {"lines": text}))

    def import_s3_folder(
        self,
        dataset_arn: str | None,
        new: tuple[str, str, dict[str, str]] | None,
        bucket: str,
        prefix: str,
        label_by_folder: bool,
    ) -> str:
        """Imports the images under s3://bucket/prefix, labeled by folder name (spec/manifest.md §12)."""
        validation.bucket(bucket, "S3Bucket")
        validation.object_key(prefix, "S3KeyPrefix", allow_empty=True)
        try:
            prefix = importers.normalize_prefix(prefix)
        except ValueError as exc:
            raise InvalidParameter(f"S3KeyPrefix: {exc}") from None
        try:
            self.store.list_keys(bucket, prefix, recursive=False)
        except InvalidS3Object:
            raise InvalidS3Object(f"cannot list s3://{bucket}/{prefix}") from None
        payload = {"bucket": bucket, "prefix": prefix, "label_by_folder": label_by_folder}
        return self._import(dataset_arn, new, ("folder", payload))

    def import_coco(
        self,
        dataset_arn: str | None,
        new: tuple[str, str, dict[str, str]] | None,
        coco_ref: tuple[str, str, str | None] | None,
        coco_json: bytes | None,
        images_bucket: str,
        images_prefix: str,
        mode: str,
    ) -> str:
        """Imports a COCO annotation file (spec/manifest.md §10)."""
        validation.bucket(images_bucket, "ImagesS3Bucket")
        validation.object_key(images_prefix, "ImagesS3KeyPrefix", allow_empty=True)
        payload: dict[str, Any] = {
            "images_bucket": images_bucket,
            "images_prefix": images_prefix,
            "coco_mode": mode,
        }
        if (coco_ref is None) == (coco_json is None):
            raise InvalidParameter("give exactly one of CocoS3Object or CocoJson")
        if coco_ref is not None:
            bucket, key, version = self._check_manifest(*coco_ref)
            payload.update(bucket=bucket, key=key, version=version)
        else:
            assert coco_json is not None
            try:
                importers.coco_lines(coco_json, images_bucket, images_prefix, mode)
            except importers.CocoError as exc:
                raise InvalidParameter(f"CocoJson: {exc}") from None
            payload["coco_json"] = coco_json.decode("utf-8", errors="replace")
        return self._import(dataset_arn, new, ("coco", payload))

    def upload_images(
        self,
        dataset_arn: str | None,
        new: tuple[str, str, dict[str, str]] | None,
        files: Iterable[UploadedFile],
    ) -> tuple[str, list[UploadOutcome]]:
        """Stores uploaded images (inspected as they arrive) and imports them as entries."""
        if dataset_arn is not None:
            self.get(dataset_arn, "Target.DatasetArn")
        elif new is not None:
            self._check_project(new[0])
        upload_id = uuid.uuid4().hex
        outcomes: list[UploadOutcome] = []
        lines: list[str] = []
        seen: set[str] = set()
        for f in files:
            # The relative path without "." / ".." / empty segments: files of different sub-folders
            # ("cats/1.jpg", "dogs/1.jpg") keep apart, and no name climbs out of the upload's prefix.
            segments = [s for s in f.file_name.replace("\\", "/").split("/") if s not in ("", ".", "..")]
            name = "/".join(segments)
            if (
                not segments
                or any(ord(c) < 32 for c in name)
                or any(len(s) > 255 for s in segments)
                or len(name) > 1024
            ):
                outcomes.append(
                    UploadOutcome(
                        f.file_name,
                        error_code="InvalidParameterException",
                        error_message="the file name is not valid",
                    )
                )
                continue
            if name in seen:
                outcomes.append(
                    UploadOutcome(
                        f.file_name,
                        error_code="InvalidParameterException",
                        error_message="the same file name was sent twice",
                    )
                )
                continue
            try:
                for label in f.labels:
                    if not 1 <= len(label) <= 255:
                        raise InvalidParameter("labels must be 1 to 255 characters long")
                    validation.no_nul(label, "labels")
                images.check_for_inference(f.data, self.ingestor.limits)
            except ServiceError as exc:
                outcomes.append(
                    UploadOutcome(f.file_name, error_code=exc.aws_name, error_message=exc.message)
                )
                continue
            seen.add(name)
            key = f"uploads/{upload_id}/{name}"
            self.store.put_bytes(self.images_bucket, key, f.data)
            source_ref = f"s3://{self.images_bucket}/{key}"
            lines.append(manifest.image_level_line(source_ref, list(dict.fromkeys(f.labels))))
            outcomes.append(UploadOutcome(f.file_name, source_ref=source_ref))
        arn = self._import(dataset_arn, new, ("lines", {"lines": "\n".join(lines)}))
        return arn, outcomes

    # -- distribute ---------------------------------------------------------------------------------

    def distribute(self, dataset_arns: Sequence[str]) -> None:
        """Moves 20 % of a project's TRAIN entries into its empty TEST dataset."""
        if len(dataset_arns) != 2:
            raise InvalidParameter("Datasets must hold exactly 2 items: the TRAIN and the TEST dataset")
        rows = [self.get(a, "Datasets.Arn") for a in dataset_arns]
        by_type = {r.dataset_type: r for r in rows}
        if set(by_type) != {"TRAIN", "TEST"}:
            raise InvalidParameter("Datasets must be one TRAIN and one TEST dataset")
        train, test = by_type["TRAIN"], by_type["TEST"]
        if train.project_arn != test.project_arn:
            raise InvalidParameter("the TRAIN and TEST datasets must belong to the same project")
        for row in rows:
            if row.status not in COMPLETE:
                raise NotReady(f"dataset {row.arn} is {row.status}; it must be complete")
        if test.total_entries:
            raise InvalidParameter("the TEST dataset must be empty")
        self._begin_update([train, test], ("distribute", {"train_id": train.id, "test_id": test.id}))

    # -- delete -----------------------------------------------------------------------------------

    def delete(self, dataset_arn: str) -> None:
        """Deletes a dataset that is not being created or updated."""
        row = self.get(dataset_arn)
        allowed = [s for s in ("CREATE_COMPLETE", "CREATE_FAILED", "UPDATE_COMPLETE", "UPDATE_FAILED")]
        current = self.repo.begin([row.id], allowed, "DELETE_IN_PROGRESS", None, _now(self.clock))
        if current is not None:
            raise InUse(f"the dataset is {current[0]}; it can be deleted once that operation ends")
        self.repo.delete(row.id)
        self.project.forget_tags(dataset_arn)
        log.info("dataset deleted", extra={"dataset_arn": dataset_arn})

    # -- reads ------------------------------------------------------------------------------------

    def _readable(self, dataset_arn: str) -> DatasetRow:
        row = self.get(dataset_arn)
        if row.status in ("CREATE_IN_PROGRESS", "CREATE_FAILED"):
            raise NotReady(f"the dataset is {row.status}; it has no entries to read")
        if row.status == "DELETE_IN_PROGRESS":
            raise InUse("the dataset is being deleted")
        return row

    def list_entries(
        self, dataset_arn: str, flt: EntryFilter, next_token: str | None, max_results: int
    ) -> Page:
        """Returns a page of entries (JSON lines) in source-ref order."""
        validation.list_size(list(flt.contains_labels), "ContainsLabels", 1, 10)
        for label in flt.contains_labels:
            if not 1 <= len(label) <= 255:
                raise InvalidParameter("each ContainsLabels label must be 1 to 255 characters long")
            validation.no_nul(label, "ContainsLabels")
        if flt.source_ref_contains is not None and (
            not 1 <= len(flt.source_ref_contains) <= 2048 or not flt.source_ref_contains.strip()
        ):
            raise InvalidParameter(
                "SourceRefContains must be 1 to 2048 characters with a non-space character"
            )
        if flt.source_ref_contains is not None:
            validation.no_nul(flt.source_ref_contains, "SourceRefContains")
        row = self._readable(dataset_arn)
        filters = {
            "arn": dataset_arn,
            "labels": sorted(set(flt.contains_labels)),
            "labeled": flt.labeled,
            "contains": flt.source_ref_contains,
            "errors": flt.has_errors,
        }
        page = keyset_page(
            self.tokens,
            "ListDatasetEntries",
            filters,
            next_token,
            max_results,
            lambda position, limit: self.repo.list_entries(
                row.id, flt, str(position[0]) if position else None, limit
            ),
            lambda entry: [entry[0]],
        )
        return Page([line for _, line in page.items], page.next_token)

    def list_labels(self, dataset_arn: str, next_token: str | None, max_results: int) -> Page:
        """Returns a page of labels with their statistics, by name."""
        row = self._readable(dataset_arn)
        filters = {"arn": dataset_arn}
        return keyset_page(
            self.tokens,
            "ListDatasetLabels",
            filters,
            next_token,
            max_results,
            lambda position, limit: self.repo.list_labels(
                row.id, str(position[0]) if position else None, limit
            ),
            lambda label: [label.name],
        )

    def datasets_of(self, project_arns: Sequence[str]) -> dict[str, list[DatasetRow]]:
        """Returns the datasets of each project."""
        out: dict[str, list[DatasetRow]] = {a: [] for a in project_arns}
        for row in self.repo.for_projects(project_arns):
            out[row.project_arn].append(row)
        return out

    def export(
        self, dataset_arn: str, include_errors: bool, include_unlabeled: bool
    ) -> Iterator[list[EntryRow]]:
        """Yields a consistent snapshot of the entries in batches (training reads it)."""
        row = self._readable(dataset_arn)
        if row.status == "UPDATE_IN_PROGRESS":
            raise InUse("the dataset is being updated; retry when the update is complete")
        yield from self.repo.export(row.id, include_errors, include_unlabeled, batch=500)

    def get_image(self, dataset_arn: str, source_ref: str, image_key: str, max_side: int) -> ServedImage:
        """An entry's stored image (dataset_arn + source_ref) or a stored copy (image_key), as stored
        (max_side 0) or as a cached JPEG thumbnail (thumbnails.py)."""
        thumbnails.check_max_side(max_side)
        by_entry = bool(dataset_arn or source_ref)
        if by_entry == bool(image_key):
            raise InvalidParameter("give either DatasetArn with SourceRef, or ImageKey")
        size: tuple[int, int] | None = None
        if by_entry:
            if not dataset_arn or not source_ref:
                raise InvalidParameter("DatasetArn and SourceRef must be given together")
            validation.no_nul(source_ref, "SourceRef")
            row = self._readable(dataset_arn)
            entry = self.repo.entry(row.id, source_ref)
            if entry is None:
                raise NotFound(f"the dataset has no entry with source-ref {source_ref}")
            if entry.image_key is None:
                raise NotFound(f"the entry {source_ref} has no stored image: {_image_errors(entry.line)}")
            image_key = entry.image_key
            if entry.image_width and entry.image_height:
                size = (entry.image_width, entry.image_height)
        thumbnails.digest_of_key(image_key)  # InvalidParameter for anything but a stored copy's key
        if max_side:
            return self.image_reader.thumbnail(image_key, max_side)
        return self.image_reader.original(image_key, size)

    # -- jobs -------------------------------------------------------------------------------------

    def handle(self, job: JobRow, owner: str) -> None:
        """Runs one job to its end: entries committed and status final, or the dataset failed."""
        row = self.repo.get_by_id(job.subject_id)
        if row is None:
            return
        mode = job.payload.get("mode", "create")
        final_ok, final_failed = (
            ("UPDATE_COMPLETE", "UPDATE_FAILED") if mode == "update" else ("CREATE_COMPLETE", "CREATE_FAILED")
        )
        if job.kind == "distribute":
            self._run_distribute(job, owner)
            return
        try:
            batch = self._run_import(job, row, mode)
        except TerminalError as exc:
            log.info("dataset import failed", extra={"dataset_arn": row.arn, "code": exc.code})
            self.repo.fail(
                job,
                owner,
                [row.id],
                final_failed,
                exc.text,
                "CLIENT_ERROR",
                _now(self.clock),
            )
            return
        message = (
            f"{len(batch.entries)} entries imported from {batch.total_lines} lines"
            f" ({batch.dropped} dropped, {batch.line_errors} with errors)."
        )
        labels = batch.labels | (self.repo.label_names(row.id) if mode == "update" else set())
        message = " ".join(filter(None, [message, self._label_overlap_warning(row, labels)]))
        self.repo.commit(
            job, owner, row.id, batch.entries, mode != "update", final_ok, message, _now(self.clock)
        )

    def _label_overlap_warning(self, row: DatasetRow, labels: set[str]) -> str | None:
        """Warns early when training would fail the TRAIN/TEST label overlap rule (spec/limits.md §2)."""
        other_type = "TEST" if row.dataset_type == "TRAIN" else "TRAIN"
        other = next(
            (d for d in self.repo.for_projects([row.project_arn]) if d.dataset_type == other_type), None
        )
        if other is None or other.total_entries == 0:
            return None
        others = self.repo.label_names(other.id)
        train, test = (labels, others) if row.dataset_type == "TRAIN" else (others, labels)
        share = manifest.label_overlap(train, test)
        if share is None or share >= manifest.MIN_LABEL_OVERLAP:
            return None
        return (
            f"Warning: only {share:.0%} of the TRAIN labels appear in the TEST dataset; training needs at least"
            f" {manifest.MIN_LABEL_OVERLAP:.0%} (ERROR_INSUFFICIENT_LABEL_OVERLAP)."
        )

    def give_up(self, job: JobRow, owner: str, reason: str) -> None:
        """Ends a job that keeps failing: its datasets get *_FAILED with a SERVICE_ERROR message."""
        mode = job.payload.get("mode", "create")
        status = "UPDATE_FAILED" if mode == "update" or job.kind == "distribute" else "CREATE_FAILED"
        ids = (
            [job.payload["train_id"], job.payload["test_id"]]
            if job.kind == "distribute"
            else [job.subject_id]
        )
        self.repo.fail(
            job,
            owner,
            ids,
            status,
            f"The service failed to complete the operation ({reason}); retry.",
            "SERVICE_ERROR",
            _now(self.clock),
        )

    def _run_import(self, job: JobRow, row: DatasetRow, mode: str) -> _Batch:
        p = job.payload
        if job.kind == "copy":
            source = self.repo.get_by_id(p["source_id"])
            if source is None:
                raise TerminalError(
                    "ERROR_SOURCE_DATASET_DELETED", "The source dataset was deleted during the copy."
                )
            entries = self.repo.entries(source.id)
            batch = _Batch(entries=entries, total_lines=len(entries))
            batch.labels = {label for e in entries for label in e.labels}
            self._check_terminal(batch)
            return batch
        lines: Iterable[str]
        if job.kind == "manifest":
            lines = self._manifest_lines(p["bucket"], p["key"], p.get("version"))
        elif job.kind == "lines":
            lines = manifest.split_lines(p["lines"].encode())
        elif job.kind == "folder":
            keys = self.store.list_keys(p["bucket"], p["prefix"])
            lines = (
                line.line
                for line in importers.folder_lines(p["bucket"], p["prefix"], keys, p["label_by_folder"])
                if line.line
            )
        elif job.kind == "coco":
            data = (
                p["coco_json"].encode()
                if "coco_json" in p
                else self._read_capped(p["bucket"], p["key"], p.get("version"), self.limits.max_coco_bytes)
            )
            try:
                lines = importers.coco_lines(
                    data, p["images_bucket"], p["images_prefix"], p["coco_mode"]
                ).lines
            except importers.CocoError as exc:
                raise TerminalError("ERROR_MANIFEST_INACCESSIBLE_OR_UNSUPPORTED_FORMAT", str(exc)) from None
        else:
            raise ValueError(f"unknown job kind {job.kind!r}")
        batch = self._ingest(lines)
        self._check_terminal(batch)
        return batch

    def _check_terminal(self, batch: _Batch) -> None:
        error = manifest.terminal_error(
            batch.total_lines,
            batch.dropped,
            batch.line_errors,
            len(batch.labels),
            self.limits.manifest,
            ignored_lines=batch.ignored,
        )
        if error is not None:
            raise TerminalError(*error)

    def _read_capped(self, bucket: str, key: str, version: str | None, limit: int) -> bytes:
        try:
            info = self.store.stat(bucket, key, version)
        except InvalidS3Object:
            raise TerminalError(
                "ERROR_MANIFEST_INACCESSIBLE_OR_UNSUPPORTED_FORMAT",
                "The manifest file extension or contents are invalid.",
            ) from None
        if info.size > limit:
            raise TerminalError(
                "ERROR_MANIFEST_SIZE_TOO_LARGE", "The manifest file size exceeds the maximum supported size."
            )
        try:
            return self.store.get_bytes(bucket, key, max_bytes=limit, version=version)
        except Exception:  # noqa: BLE001 - vanished or unreadable between stat and read
            raise TerminalError(
                "ERROR_MANIFEST_INACCESSIBLE_OR_UNSUPPORTED_FORMAT",
                "The manifest file extension or contents are invalid.",
            ) from None

    def _manifest_lines(self, bucket: str, key: str, version: str | None) -> Iterator[str]:
        data = self._read_capped(bucket, key, version, self.limits.max_manifest_bytes)
        yield from manifest.split_lines(data)

    def _ingest(self, lines: Iterable[str]) -> _Batch:
        """Validates lines, reads and stores their images, and builds the entries to commit."""
        batch = _Batch()
        parsed: dict[str, manifest.ParsedLine] = {}
        for text in lines:
            batch.total_lines += 1
            if batch.total_lines > self.limits.manifest.max_lines:
                raise TerminalError(
                    "ERROR_MANIFEST_ROWS_EXCEEDS_MAXIMUM", "The manifest file has too many rows."
                )
            line = manifest.parse_line(text, self.limits.manifest)
            if line.dropped or line.source_ref is None:
                batch.dropped += 1
                continue
            if line.source_ref in parsed:
                # The same image twice in one import: keep the first (spec/manifest.md §5).
                batch.dropped += 1
                continue
            parsed[line.source_ref] = line
        refs = [(p.bucket, p.key) for p in parsed.values()]
        for p, (_, result) in zip(parsed.values(), self.ingestor.ingest_many(refs), strict=True):
            if self.stopping.is_set():
                raise JobInterrupted("the dataset service is stopping; the import starts again elsewhere")
            info = result.info
            # The entry keeps AWS's fixed text for the code, then says what exactly is wrong.
            error = None
            if result.error:
                code = result.error.code
                if result.error.problem in images.DIMENSION_PROBLEMS and p.image_size is not None:
                    # The spec reports a bad size of a bounding-box image as a dimension error.
                    code = images.ERROR_INVALID_IMAGE_DIMENSION
                error = (code, f"{images.AWS_MESSAGES[code]} ({result.error.message})")
            p = manifest.apply_image(
                p,
                info.width if info else None,
                info.height if info else None,
                error,
                self.limits.manifest,
            )
            batch.line_errors += p.line_error
            batch.ignored += p.ignored
            batch.labels |= p.labels
            batch.entries.append(
                EntryRow(
                    source_ref=p.source_ref or "",
                    line=p.to_json(),
                    labels=sorted(p.labels),
                    image_labels=sorted(p.image_labels),
                    box_labels=sorted(label for label, n in p.box_counts.items() if n > 0),
                    is_labeled=p.is_labeled,
                    has_errors=p.has_errors,
                    usable=p.is_labeled and not p.line_error,
                    image_key=result.key if info else None,
                    image_width=info.width if info else None,
                    image_height=info.height if info else None,
                )
            )
        return batch

    def _run_distribute(self, job: JobRow, owner: str) -> None:
        train_id, test_id = job.payload["train_id"], job.payload["test_id"]
        entries = [e for e in self.repo.entries(train_id) if e.usable]
        chosen = choose_test_entries(entries, self.limits.distribute_test_share, seed=f"{train_id}:{test_id}")
        if chosen is None:
            self.repo.fail(
                job,
                owner,
                [train_id, test_id],
                "UPDATE_FAILED",
                "ERROR_INSUFFICIENT_IMAGES_PER_LABEL_FOR_DISTRIBUTE: The manifest file doesn't have enough labeled"
                " images to distribute the dataset.",
                "CLIENT_ERROR",
                _now(self.clock),
            )
            return
        message = f"{len(chosen)} of {len(entries)} labeled entries moved to the TEST dataset."
        self.repo.commit_move(job, owner, train_id, test_id, chosen, message, _now(self.clock))


def _image_errors(line: str) -> str:
    """The line errors of an entry as `CODE: message` texts (why its image was not stored)."""
    try:
        errors = json.loads(line).get(manifest.CL_ERRORS) or []
        texts = [f"{e['code']}: {e['message']}" for e in errors if isinstance(e, dict) and "code" in e]
    except (ValueError, AttributeError, KeyError):
        texts = []
    return "; ".join(texts) or "the image failed validation"


def choose_test_entries(entries: Sequence[EntryRow], share: float, seed: str) -> list[str] | None:
    """Picks the entries that move to TEST: about `share` of them, stratified so that every label keeps
    at least one entry on each side. Deterministic for a seed. None when some label has fewer than 2 entries.
    """
    counts: dict[str, int] = {}
    for e in entries:
        for label in e.labels:
            counts[label] = counts.get(label, 0) + 1
    if not counts or any(n < 2 for n in counts.values()):
        return None
    target = {label: max(1, round(n * share)) for label, n in counts.items()}
    in_test: dict[str, int] = dict.fromkeys(counts, 0)
    order = sorted(entries, key=lambda e: hashlib.sha256(f"{seed}|{e.source_ref}".encode()).digest())
    chosen: list[str] = []
    for e in order:
        if not e.labels:
            continue
        # Move an entry while one of its labels still needs test images and none would lose its last train image.
        needs = any(in_test[label] < target[label] for label in e.labels)
        keeps = all(counts[label] - in_test[label] > 1 for label in e.labels)
        if needs and keeps:
            chosen.append(e.source_ref)
            for label in e.labels:
                in_test[label] += 1
    if any(n == 0 for n in in_test.values()):
        return None
    return chosen
