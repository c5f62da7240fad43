"""A model's evaluation and training files, read as the user would read them.

Training writes the summary file, manifest_summary.json, the validation manifests and the
evaluation snapshots into the version's OutputConfig bucket and reports each exact key through
DescribeProjectVersions (spec/evaluation.md §6-§9). The console reads only those reported keys from
the object store, so a request can name a file by kind, never by path. A reported file that cannot be
read (deleted, not JSON) does not fail the page: GetEvaluation names it under `Unreadable` and the
validation zip leaves it out.
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from customlabels.common.v1 import types_pb2 as common
from customlabels.project.v1 import project_service_pb2 as pj
from customlabels.training.v1 import training_service_pb2 as tr
from minio.error import S3Error

from services.common import arn as arns
from services.common import awsjson
from services.common.errors import InvalidParameter, InvalidS3Object, NotFound, ServiceError
from services.common.storage import ObjectStore
from services.console.backends import Backends

log = logging.getLogger("customlabels.console")

MAX_JSON_BYTES = 64 * 1024 * 1024
STREAM_CHUNK = 256 * 1024


def _first_asset(assets: Any) -> common.S3Object | None:
    return assets[0].ground_truth_manifest.s3_object if len(assets) else None


# The files of a version the console hands out, by the name the page asks for.
FILES: dict[str, Callable[[tr.ProjectVersionDescription], common.S3Object | None]] = {
    "summary": lambda d: d.evaluation_result.summary.s3_object if d.HasField("evaluation_result") else None,
    "manifest_summary": lambda d: d.manifest_summary.s3_object if d.HasField("manifest_summary") else None,
    "training_validation": lambda d: _first_asset(d.training_data_result.validation.assets),
    "testing_validation": lambda d: _first_asset(d.testing_data_result.validation.assets),
    "training_output": lambda d: _first_asset(d.training_data_result.output.assets),
    "testing_output": lambda d: _first_asset(d.testing_data_result.output.assets),
}
# What "Download validation results" bundles (spec/evaluation.md §8).
VALIDATION_FILES = ("manifest_summary", "training_validation", "testing_validation")


@dataclass(frozen=True)
class Download:
    """A file to send: its name for the browser, its size, and its bytes in chunks."""

    file_name: str
    size: int | None
    chunks: Iterator[bytes]


def aggregated_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    """The aggregate metrics block, in either form spec/evaluation.md §6 allows (nested or flat)."""
    block = summary.get("AggregatedEvaluationResults")
    if not isinstance(block, dict):
        return {}
    metrics = block.get("Metrics")
    return metrics if isinstance(metrics, dict) else block


class Evaluations:
    """Reads versions' evaluation files."""

    def __init__(self, backends: Backends, store: ObjectStore) -> None:
        self.backends = backends
        self.store = store

    def describe(self, version_arn: Any) -> tr.ProjectVersionDescription:
        """The version's description (ResourceNotFoundException when it does not exist)."""
        if version_arn is None or version_arn == "":
            raise InvalidParameter("ProjectVersionArn is required")
        if type(version_arn) is not str:
            raise InvalidParameter("ProjectVersionArn must be a string")
        parsed = arns.parse_version(version_arn)
        projects = self.backends.call(
            "DescribeProjects", pj.DescribeProjectsRequest(project_names=[parsed.project])
        ).project_descriptions
        if not projects:
            raise NotFound(f"The project {parsed.project} does not exist")
        versions = self.backends.call(
            "DescribeProjectVersions",
            tr.DescribeProjectVersionsRequest(
                project_arn=projects[0].project_arn, version_names=[parsed.version or ""]
            ),
        ).project_version_descriptions
        for description in versions:
            if description.project_version_arn == version_arn:
                return description
        raise NotFound(f"The model version {version_arn} does not exist")

    def _json(self, location: common.S3Object) -> dict[str, Any]:
        """A JSON object file; InvalidS3Object when it cannot be read or is not a JSON object."""
        data = self.store.get_bytes(location.bucket, location.name, max_bytes=MAX_JSON_BYTES)
        try:
            document = json.loads(data)
        except ValueError as exc:
            raise InvalidS3Object(f"s3://{location.bucket}/{location.name} is not JSON: {exc}") from None
        if not isinstance(document, dict):
            raise InvalidS3Object(f"s3://{location.bucket}/{location.name} is not a JSON object")
        return document

    def evaluation(self, document: dict[str, Any]) -> dict[str, Any]:
        """GetEvaluation: {ProjectVersionArn} → the version, its summary and manifest summary (when
        written and readable), which files exist, and which of those could not be read."""
        description = self.describe(document.get("ProjectVersionArn"))
        files = [name for name, locate in FILES.items() if (found := locate(description)) and found.name]
        documents: dict[str, dict[str, Any] | None] = {"summary": None, "manifest_summary": None}
        unreadable = []
        for name in documents:
            location = FILES[name](description)
            if name not in files or location is None:
                continue
            try:
                documents[name] = self._json(location)
            except ServiceError as exc:
                log.warning("training file unreadable", extra={"file": name, "error": exc.aws_name})
                unreadable.append({"File": name, "Type": exc.aws_name, "Message": exc.message})
        summary = documents["summary"]
        if summary is not None:
            summary["AggregatedEvaluationResults"] = {"Metrics": aggregated_metrics(summary)}
        return {
            "ProjectVersion": awsjson.to_aws(description),
            "Summary": summary,
            "ManifestSummary": documents["manifest_summary"],
            "Files": files,
            "Unreadable": unreadable,
        }

    def _location(self, description: tr.ProjectVersionDescription, name: str) -> common.S3Object:
        locate = FILES.get(name)
        if locate is None:
            raise InvalidParameter(f"Unknown file {name!r}; one of {', '.join(FILES)} or validation")
        location = locate(description)
        if location is None or not location.name:
            raise NotFound(f"The model version has no {name.replace('_', ' ')} file")
        return location

    def download(self, version_arn: str, name: str) -> Download:
        """One file of the version, streamed from the object store."""
        description = self.describe(version_arn)
        if name == "validation":
            return self._validation_zip(description)
        location = self._location(description, name)
        try:
            response = self.store.client.get_object(location.bucket, location.name)
        except S3Error as exc:
            raise NotFound(f"s3://{location.bucket}/{location.name} cannot be read: {exc.code}") from None
        length = response.headers.get("Content-Length")

        def chunks() -> Iterator[bytes]:
            try:
                yield from response.stream(STREAM_CHUNK)
            finally:
                response.close()
                response.release_conn()

        return Download(location.name.rsplit("/", 1)[-1], int(length) if length else None, chunks())

    def _validation_zip(self, description: tr.ProjectVersionDescription) -> Download:
        buffer = io.BytesIO()
        written = 0
        missing: list[str] = []
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in VALIDATION_FILES:
                location = FILES[name](description)
                if location is None or not location.name:
                    continue
                try:
                    data = self.store.get_bytes(location.bucket, location.name, max_bytes=MAX_JSON_BYTES * 16)
                except InvalidS3Object:
                    # A file removed from the user's bucket since training: the others still help.
                    missing.append(f"s3://{location.bucket}/{location.name}")
                    continue
                archive.writestr(location.name.rsplit("/", 1)[-1], data)
                written += 1
        if not written and missing:
            raise NotFound(f"The validation results cannot be read any more: {', '.join(missing)}")
        if not written:
            raise NotFound(
                "The model version has no validation results (a manifest file error stops them being written)"
            )
        version = arns.parse_version(description.project_version_arn).version
        data = buffer.getvalue()
        return Download(f"validation-results-{version}.zip", len(data), iter([data]))
