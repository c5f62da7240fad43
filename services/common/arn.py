"""Building and parsing our ARNs (spec/api.md §0.2).

Region and account come from the configuration; the trailing number is the creation time in
epoch milliseconds, as in AWS's own examples.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.common.errors import InvalidParameter

_NAME = r"[a-zA-Z0-9_.\-]{1,255}"
_PREFIX = r"^arn:(?P<partition>[a-z\d-]+):rekognition:(?P<region>[a-z\d-]+):(?P<account>\d{12}):project/"
PROJECT_ARN = re.compile(_PREFIX + rf"(?P<project>{_NAME})/(?P<created>[0-9]+)$")
VERSION_ARN = re.compile(_PREFIX + rf"(?P<project>{_NAME})/version/(?P<version>{_NAME})/(?P<created>[0-9]+)$")
DATASET_ARN = re.compile(_PREFIX + rf"(?P<project>{_NAME})/dataset/(?P<type>train|test)/(?P<created>[0-9]+)$")


@dataclass(frozen=True)
class Arn:
    """A parsed ARN of ours: the project it lives in, and the version or dataset part if any."""

    kind: str  # "project", "version" or "dataset"
    region: str
    account: str
    project: str
    created_ms: int
    version: str | None = None
    dataset_type: str | None = None  # "train" or "test"


def project_arn(region: str, account: str, project: str, created_ms: int) -> str:
    """Returns the ARN of a project."""
    return f"arn:aws:rekognition:{region}:{account}:project/{project}/{created_ms}"


def version_arn(region: str, account: str, project: str, version: str, created_ms: int) -> str:
    """Returns the ARN of a model version."""
    return f"arn:aws:rekognition:{region}:{account}:project/{project}/version/{version}/{created_ms}"


def dataset_arn(region: str, account: str, project: str, dataset_type: str, created_ms: int) -> str:
    """Returns the ARN of a dataset; `dataset_type` is "train" or "test"."""
    return f"arn:aws:rekognition:{region}:{account}:project/{project}/dataset/{dataset_type}/{created_ms}"


def _check_length(value: str, field: str) -> None:
    if not 20 <= len(value) <= 2048:
        raise InvalidParameter(f"{field} must be 20 to 2048 characters long")


def parse(value: str, field: str = "ResourceArn") -> Arn:
    """Parses any ARN of ours; raises InvalidParameter naming `field` when it is not one."""
    _check_length(value, field)
    for kind, pattern in (("project", PROJECT_ARN), ("version", VERSION_ARN), ("dataset", DATASET_ARN)):
        match = pattern.match(value)
        if match:
            return Arn(
                kind=kind,
                region=match["region"],
                account=match["account"],
                project=match["project"],
                created_ms=int(match["created"]),
                version=match.groupdict().get("version"),
                dataset_type=match.groupdict().get("type"),
            )
    raise InvalidParameter(f"{field} is not a valid Rekognition Custom Labels ARN: {value[:200]!r}")


def parse_project(value: str, field: str = "ProjectArn") -> Arn:
    """Parses a project ARN; raises InvalidParameter otherwise."""
    return _parse_kind(value, field, "project")


def parse_version(value: str, field: str = "ProjectVersionArn") -> Arn:
    """Parses a model version ARN; raises InvalidParameter otherwise."""
    return _parse_kind(value, field, "version")


def parse_dataset(value: str, field: str = "DatasetArn") -> Arn:
    """Parses a dataset ARN; raises InvalidParameter otherwise."""
    return _parse_kind(value, field, "dataset")


def _parse_kind(value: str, field: str, kind: str) -> Arn:
    if not value:
        raise InvalidParameter(f"{field} is required")
    parsed = parse(value, field)
    if parsed.kind != kind:
        raise InvalidParameter(f"{field} must be a {kind} ARN, got a {parsed.kind} ARN")
    return parsed
