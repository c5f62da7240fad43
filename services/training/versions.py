"""The model-version domain: CreateProjectVersion, DescribeProjectVersions, DeleteProjectVersion,
CopyProjectVersion, ListTestResults (results.py), and the internal calls of the serving and project services.

CreateProjectVersion snapshots the training and test entries as they are at that moment (so later
dataset edits never change a version) and enqueues a job that a training worker (worker.py) runs.
"""

from __future__ import annotations

import bisect
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from services.common import arn as arns
from services.common import enums, validation
from services.common.errors import (
    AccessDenied,
    InUse,
    InvalidParameter,
    LimitExceeded,
    NotFound,
    NotReady,
)
from services.common.pagination import Page, PageTokens, keyset_page
from services.common.storage import ObjectStore
from services.training.repository import NameTaken, VersionRepository, VersionRow
from services.training.results import ResultImage, TestResultsReader

log = logging.getLogger("customlabels.training")

TRAINED = enums.TRAINED_VERSION_STATUSES
# Statuses in which DeleteProjectVersion is refused (spec/api.md §1.3).
BUSY = ("TRAINING_IN_PROGRESS", "RUNNING", "STARTING", "STOPPING", "COPYING_IN_PROGRESS")
RUN_STATES = ("STARTING", "RUNNING", "STOPPING", "STOPPED", "FAILED")
COMPLETE_DATASET = ("CREATE_COMPLETE", "UPDATE_COMPLETE")
# Statuses without test results to list (ListTestResults answers ResourceNotReadyException).
NO_TEST_RESULTS = {
    "TRAINING_IN_PROGRESS": "is still training; its test results are listed once training completes",
    "COPYING_IN_PROGRESS": "is being copied; its test results are listed once the copy completes",
    "TRAINING_FAILED": "failed to train; it has no test results",
    "COPYING_FAILED": "failed to copy; it has no test results",
    "DELETING": "is being deleted",
}
# ListTestResults' Outcome filter (AWS spelling) → the kinds of evaluation.Outcome.
OUTCOME_KINDS = {
    "TRUE_POSITIVE": "TP",
    "FALSE_POSITIVE": "FP",
    "FALSE_NEGATIVE": "FN",
    "TRUE_NEGATIVE": "TN",
}


class TrainingPeers(Protocol):
    """What the training service asks of the project and dataset services."""

    def project(self, project_arn: str) -> Any:
        """Returns the project (status, name); NotFound when it does not exist."""

    def set_tags(self, resource_arn: str, tags: dict[str, str]) -> None:
        """Stores a version's tags."""

    def forget_tags(self, resource_arn: str) -> None:
        """Drops a version's tags."""

    def copy_allowed(self, source_project: str, source_version: str, destination_project: str) -> bool:
        """Tells whether the copy is authorised."""

    def datasets(self, project_arn: str) -> list[Any]:
        """Returns DatasetMetadata of the project's datasets."""

    def export(self, dataset_arn: str) -> Any:
        """Iterates ExportedDatasetEntry of a dataset."""


@dataclass(frozen=True)
class TrainingLimits:
    """Quotas the spec leaves to us (limits.md §6); configurable."""

    max_versions_per_project: int = 1000


@dataclass(frozen=True)
class S3Ref:
    """A bucket/key (and optional object version)."""

    bucket: str
    name: str
    version: str | None = None


def _output(bucket: str, prefix: str) -> tuple[str, str]:
    validation.bucket(bucket, "OutputConfig.S3Bucket")
    validation.object_key(prefix, "OutputConfig.S3KeyPrefix", allow_empty=True)
    return bucket, prefix


class VersionService:
    """Model versions: creation (snapshot + job), description, deletion, copy, run state."""

    def __init__(
        self,
        repo: VersionRepository,
        store: ObjectStore,
        peers: TrainingPeers,
        tokens: PageTokens,
        region: str,
        account_id: str,
        models_bucket: str,
        limits: TrainingLimits = TrainingLimits(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.repo = repo
        self.store = store
        self.peers = peers
        self.tokens = tokens
        self.region = region
        self.account_id = account_id
        self.models_bucket = models_bucket
        self.limits = limits
        self.clock = clock
        self.test_results = TestResultsReader(store, models_bucket)

    # -- lookups ----------------------------------------------------------------------------------

    def get(self, version_arn: str, field: str = "ProjectVersionArn") -> VersionRow:
        """Returns a version; InvalidParameter for a malformed ARN, NotFound when it does not exist."""
        arns.parse_version(version_arn, field)
        row = self.repo.get(version_arn)
        if row is None:
            raise NotFound(f"model version {version_arn} does not exist")
        return row

    def _project(self, project_arn: str, field: str = "ProjectArn") -> Any:
        arns.parse_project(project_arn, field)
        project = self.peers.project(project_arn)
        if project.status != "CREATED":
            raise InUse(f"project {project_arn} is being deleted")
        return project

    # -- create -----------------------------------------------------------------------------------

    def create_version(
        self,
        project_arn: str,
        version_name: str,
        output: tuple[str, str] | None,
        training_assets: Sequence[S3Ref] | None,
        testing_assets: Sequence[S3Ref] | None,
        auto_create: bool | None,
        tags: dict[str, str],
        kms_key_id: str | None,
        description: str | None,
        has_feature_config: bool,
    ) -> str:
        """Validates, snapshots the data, records the version and queues its training."""
        validation.name(version_name, "VersionName")
        if output is None:
            raise InvalidParameter("OutputConfig is required")
        bucket, prefix = _output(*output)
        if description is not None:
            validation.description(description)
        if kms_key_id is not None:
            validation.kms_key_id(kms_key_id)
        validation.tags(tags)
        if has_feature_config:
            raise InvalidParameter("FeatureConfig applies to CONTENT_MODERATION projects only")
        project = self._project(project_arn)
        datasets = {d.dataset_type: d for d in self.peers.datasets(project_arn)}
        external = training_assets is not None or testing_assets is not None or auto_create is not None
        snapshot = f"versions/{uuid.uuid4().hex}"
        inputs: dict[str, Any]
        if external:
            if datasets:
                raise InvalidParameter(
                    "TrainingData/TestingData may only be given for a project without datasets"
                )
            if not training_assets:
                raise InvalidParameter("TrainingData with one manifest asset is required")
            if not testing_assets and not auto_create:
                raise InvalidParameter("TestingData needs a manifest asset or AutoCreate")
            if testing_assets and auto_create:
                raise InvalidParameter("TestingData takes either manifest assets or AutoCreate, not both")
            for ref in [*training_assets, *(testing_assets or [])]:
                validation.bucket(ref.bucket, "GroundTruthManifest.S3Object.Bucket")
                validation.object_key(ref.name, "GroundTruthManifest.S3Object.Name")
            inputs = {
                "training": [ref.__dict__ for ref in training_assets],
                "testing": [ref.__dict__ for ref in testing_assets or []],
                "auto_create": bool(auto_create),
            }
            payload = {"source": "manifests", "snapshot": snapshot}
        else:
            train, test = datasets.get("TRAIN"), datasets.get("TEST")
            if train is None:
                raise InvalidParameter("the project has no TRAIN dataset; create one before training")
            if test is None:
                raise InvalidParameter(
                    "the project has no TEST dataset; create one (or use DistributeDatasetEntries) before training"
                )
            for d in (train, test):
                if d.status.endswith("IN_PROGRESS"):
                    raise InUse(f"dataset {d.arn} is {d.status}; retry when it is complete")
                if d.status not in (*COMPLETE_DATASET, "UPDATE_FAILED"):
                    raise InvalidParameter(f"dataset {d.arn} is {d.status}; it cannot be used for training")
            counts = {
                "training": self._snapshot(train.arn, f"{snapshot}/training.jsonl"),
                "testing": self._snapshot(test.arn, f"{snapshot}/testing.jsonl"),
            }
            inputs = {"datasets": {"training": train.arn, "testing": test.arn}, "counts": counts}
            payload = {"source": "datasets", "snapshot": snapshot}
        now = self.clock()
        created_ms = int(now * 1000)
        version_arn = arns.version_arn(self.region, self.account_id, project.name, version_name, created_ms)
        values = {
            "arn": version_arn,
            "project_arn": project_arn,
            "version_name": version_name,
            "status": "TRAINING_IN_PROGRESS",
            "status_message": "Queued for training.",
            "created_ms": created_ms,
            "created_at": datetime.fromtimestamp(now, UTC),
            "description": description,
            "kms_key_id": kms_key_id,
            "output_bucket": bucket,
            "output_prefix": prefix,
            "inputs": inputs,
            "files": {"snapshot": snapshot},
            "progress": {"phase": "QUEUED", "percent": 0.0, "attempt": 0, "updated_ms": created_ms},
        }
        try:
            row = self.repo.create(values, ("train", payload), self.limits.max_versions_per_project)
        except NameTaken:
            raise InUse(f"the project already has a version named {version_name!r}") from None
        if row is None:
            raise LimitExceeded(f"a project may have at most {self.limits.max_versions_per_project} versions")
        if tags:
            self.peers.set_tags(version_arn, tags)
        log.info("version created", extra={"project_version_arn": version_arn})
        return version_arn

    def _snapshot(self, dataset_arn: str, key: str) -> int:
        """Writes a dataset's entries (and where their image copies are) as JSON lines; returns the count."""
        lines = []
        for entry in self.peers.export(dataset_arn):
            image = (
                {
                    "bucket": entry.image.bucket,
                    "key": entry.image.name,
                    "width": entry.image_width,
                    "height": entry.image_height,
                }
                if entry.image.name
                else None
            )
            lines.append(json.dumps({"line": entry.dataset_entry, "image": image}, separators=(",", ":")))
        self.store.put_bytes(
            self.models_bucket, key, ("\n".join(lines) + "\n").encode(), "application/x-ndjson"
        )
        return len(lines)

    # -- describe / delete ------------------------------------------------------------------------

    def describe(
        self, project_arn: str, names: list[str], next_token: str | None, max_results: int
    ) -> Page[VersionRow]:
        """Returns a page of a project's versions, newest first."""
        arns.parse_project(project_arn)
        validation.list_size(names, "VersionNames", 1, 10)
        for name in names:
            validation.name(name, "VersionNames")
        self.peers.project(project_arn)  # ResourceNotFoundException for an unknown project
        filters = {"project": project_arn, "names": sorted(set(names))}
        return keyset_page(
            self.tokens,
            "DescribeProjectVersions",
            filters,
            next_token,
            max_results,
            lambda position, limit: self.repo.list(
                project_arn, names, (int(position[0]), int(position[1])) if position else None, limit
            ),
            lambda row: [row.created_ms, row.id],
        )

    def delete(self, version_arn: str) -> str:
        """Deletes a version that is not training, running or busy; returns DELETING."""
        row = self.get(version_arn)
        allowed = [
            s
            for s in (
                "TRAINING_COMPLETED",
                "TRAINING_FAILED",
                "FAILED",
                "STOPPED",
                "COPYING_COMPLETED",
                "COPYING_FAILED",
                "DEPRECATED",
                "EXPIRED",
            )
        ]
        if self.repo.transition(version_arn, allowed, "DELETING") is None:
            raise InUse(f"the model version is {self.repo.get(version_arn).status}; it cannot be deleted now")  # type: ignore[union-attr]
        self.repo.delete(row.id)
        self.peers.forget_tags(version_arn)
        for key in self.store.list_keys(self.models_bucket, row.files.get("snapshot", "versions/none") + "/"):
            self.store.delete(self.models_bucket, key)
        log.info("version deleted", extra={"project_version_arn": version_arn})
        return "DELETING"

    def count(self, project_arn: str) -> int:
        """Counts a project's versions (DeleteProject refuses while any exist)."""
        arns.parse_project(project_arn)
        return self.repo.count(project_arn)

    # -- test results (the console) ---------------------------------------------------------------

    def list_test_results(
        self,
        version_arn: str,
        labels: Sequence[str],
        outcome: str | None,
        next_token: str | None,
        max_results: int,
    ) -> tuple[Page[ResultImage], int]:
        """A page of a trained version's test images in manifest order, and how many match in all.

        `labels` keeps images where any of them is in the ground truth or in an evaluation record;
        `outcome` (TRUE_POSITIVE … TRUE_NEGATIVE) keeps images with a record of that outcome.
        """
        labels = list(labels)
        validation.list_size(labels, "Labels", 1, 10)
        for label in labels:
            if not 1 <= len(label) <= 255:
                raise InvalidParameter("each Labels label must be 1 to 255 characters long")
        if outcome is not None and outcome not in OUTCOME_KINDS:
            raise InvalidParameter(f"Outcome must be one of {', '.join(OUTCOME_KINDS)}")
        row = self.get(version_arn)
        why = NO_TEST_RESULTS.get(row.status)
        if why is None and not row.files.get("test_output"):
            why = f"is {row.status} but has no evaluation files"
        if why is not None:
            raise NotReady(f"model version {version_arn} {why}")
        matching = self.test_results.results(row).matching(labels, OUTCOME_KINDS.get(outcome or ""))
        filters = {"arn": version_arn, "labels": sorted(set(labels)), "outcome": outcome}

        def fetch(position: list[Any] | None, limit: int) -> list[ResultImage]:
            start = (
                0
                if position is None
                else bisect.bisect_right(matching, int(position[0]), key=lambda i: i.index)
            )
            return matching[start : start + limit]

        page = keyset_page(
            self.tokens, "ListTestResults", filters, next_token, max_results, fetch, lambda i: [i.index]
        )
        return page, len(matching)

    # -- copy -------------------------------------------------------------------------------------

    def copy(
        self,
        source_project_arn: str,
        source_version_arn: str,
        destination_project_arn: str,
        version_name: str,
        output: tuple[str, str] | None,
        tags: dict[str, str],
        kms_key_id: str | None,
    ) -> str:
        """Copies a trained version into another project (honouring project policies)."""
        arns.parse_project(source_project_arn, "SourceProjectArn")
        validation.name(version_name, "VersionName")
        if output is None:
            raise InvalidParameter("OutputConfig is required")
        bucket, prefix = _output(*output)
        validation.tags(tags)
        if kms_key_id is not None:
            validation.kms_key_id(kms_key_id)
        source = self.get(source_version_arn, "SourceProjectVersionArn")
        if source.project_arn != source_project_arn:
            raise InvalidParameter("SourceProjectVersionArn does not belong to SourceProjectArn")
        self.peers.project(source_project_arn)
        destination = self._project(destination_project_arn, "DestinationProjectArn")
        if not self.peers.copy_allowed(source_project_arn, source_version_arn, destination_project_arn):
            raise AccessDenied("no project policy of the source project allows this copy")
        if source.status not in TRAINED or not source.files.get("onnx"):
            raise InUse(f"the source version is {source.status}; only trained versions can be copied")
        now = self.clock()
        created_ms = int(now * 1000)
        version_arn = arns.version_arn(
            self.region, self.account_id, destination.name, version_name, created_ms
        )
        values = {
            "arn": version_arn,
            "project_arn": destination_project_arn,
            "version_name": version_name,
            "status": "COPYING_IN_PROGRESS",
            "status_message": "Queued for copying.",
            "created_ms": created_ms,
            "created_at": datetime.fromtimestamp(now, UTC),
            "description": source.description,
            "kms_key_id": kms_key_id,
            "output_bucket": bucket,
            "output_prefix": prefix,
            "source_version_arn": source_version_arn,
            "inputs": source.inputs,
            "files": {"snapshot": f"versions/{uuid.uuid4().hex}"},
        }
        try:
            row = self.repo.create(
                values, ("copy", {"source_id": source.id}), self.limits.max_versions_per_project
            )
        except NameTaken:
            raise InUse(f"the destination project already has a version named {version_name!r}") from None
        if row is None:
            raise LimitExceeded(f"a project may have at most {self.limits.max_versions_per_project} versions")
        if tags:
            self.peers.set_tags(version_arn, tags)
        return version_arn

    # -- internal: serving ------------------------------------------------------------------------

    def artifact(self, version_arn: str) -> VersionRow:
        """Returns a version whose model exists (NotReady otherwise), for the serving service."""
        row = self.get(version_arn)
        if not row.files.get("onnx"):
            raise NotReady(f"model version {version_arn} has no trained model ({row.status})")
        return row

    def update_status(
        self,
        version_arn: str,
        status: str,
        message: str | None,
        expected: Sequence[str],
        units: tuple[int | None, int | None] | None,
    ) -> tuple[str, str]:
        """Compare-and-set of the run state the serving service drives."""
        if status not in RUN_STATES:
            raise InvalidParameter(f"the serving service may only set {', '.join(RUN_STATES)}")
        self.get(version_arn)
        result = self.repo.transition(version_arn, expected, status, message, units)
        if result is None:
            current = self.repo.get(version_arn)
            raise InUse(f"the model version is {current.status if current else 'gone'}")
        return result
