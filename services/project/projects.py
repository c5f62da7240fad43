"""The project domain: projects, tags on any of our resources, and project policies.

Knows nothing of gRPC. Other services are reached through the `Peers` protocol, which the
servicer's wiring implements with gRPC clients (peers.py).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from services.common import arn as arns
from services.common import validation
from services.common.errors import (
    AlreadyExists,
    InUse,
    InvalidParameter,
    InvalidPolicyRevisionId,
    LimitExceeded,
    NotFound,
    ServiceQuotaExceeded,
)
from services.common.pagination import Page, PageTokens, keyset_page
from services.project import policy as policies
from services.project.repository import NameTaken, ProjectRepository, ProjectRow

log = logging.getLogger("customlabels.project")

FEATURES = ("CUSTOM_LABELS", "CONTENT_MODERATION")
AUTO_UPDATE = ("ENABLED", "DISABLED")


class Peers(Protocol):
    """What the project service asks of the dataset and training services."""

    def datasets_of(self, project_arns: list[str]) -> dict[str, list[Any]]:
        """Returns each project's dataset metadata (opaque to this module), keyed by project ARN."""

    def has_versions(self, project_arn: str) -> bool:
        """Tells whether the project has any model version."""

    def dataset_exists(self, dataset_arn: str) -> bool:
        """Tells whether a dataset ARN names an existing dataset."""

    def version_exists(self, project_arn: str, version_arn: str) -> bool:
        """Tells whether a version ARN names an existing model version of the project."""


@dataclass(frozen=True)
class Limits:
    """Quotas the spec leaves to us (limits.md §6); configurable."""

    max_projects: int = 10_000
    max_policies_per_project: int = 5
    max_tags: int = validation.MAX_TAGS


@dataclass(frozen=True)
class Project:
    """A project with its datasets, as DescribeProjects returns it."""

    row: ProjectRow
    datasets: list[Any]


class ProjectService:
    """CreateProject, DescribeProjects, DeleteProject, tags and project policies."""

    def __init__(
        self,
        repo: ProjectRepository,
        peers: Peers,
        tokens: PageTokens,
        region: str,
        account_id: str,
        limits: Limits = Limits(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.repo = repo
        self.peers = peers
        self.tokens = tokens
        self.region = region
        self.account_id = account_id
        self.limits = limits
        self.clock = clock

    # -- projects ---------------------------------------------------------------------------------

    def create_project(
        self, name: str, feature: str | None, auto_update: str | None, tags: dict[str, str]
    ) -> str:
        """Creates a project and returns its ARN."""
        validation.name(name, "ProjectName")
        feature = feature or "CUSTOM_LABELS"
        if feature not in FEATURES:
            raise InvalidParameter(f"Feature must be one of {', '.join(FEATURES)}")
        if feature == "CONTENT_MODERATION":
            # Adapters (content moderation) are a different product; we accept the value in the
            # schema but do not pretend to train them.
            raise InvalidParameter(
                "Feature CONTENT_MODERATION (adapters) is not supported; use CUSTOM_LABELS"
            )
        if auto_update is not None and auto_update not in AUTO_UPDATE:
            raise InvalidParameter(f"AutoUpdate must be one of {', '.join(AUTO_UPDATE)}")
        validation.tags(tags)
        now = self.clock()
        created_ms = int(now * 1000)
        arn = arns.project_arn(self.region, self.account_id, name, created_ms)
        try:
            row = self.repo.insert_project(
                name,
                arn,
                feature,
                auto_update,
                created_ms,
                datetime.fromtimestamp(now, UTC),
                tags,
                self.limits.max_projects,
            )
        except NameTaken:
            raise InUse(f"a project named {name!r} already exists") from None
        if row is None:
            raise LimitExceeded(f"the project quota ({self.limits.max_projects}) is reached")
        log.info("project created", extra={"project_arn": arn})
        return arn

    def describe_projects(
        self, names: list[str], features: list[str], next_token: str | None, max_results: int
    ) -> Page:
        """Returns a page of projects (oldest first) with their datasets."""
        validation.list_size(names, "ProjectNames", 1, 10)
        for name in names:
            validation.name(name, "ProjectNames")
        validation.list_size(features, "Features", 1, 2)
        for feature in features:
            if feature not in FEATURES:
                raise InvalidParameter(f"Features may hold only {', '.join(FEATURES)}")
        features = sorted(set(features)) or ["CUSTOM_LABELS"]
        names = sorted(set(names))
        filters = {"names": names, "features": features}
        page = keyset_page(
            self.tokens,
            "DescribeProjects",
            filters,
            next_token,
            max_results,
            lambda position, limit: self.repo.list_projects(
                names, features, (int(position[0]), int(position[1])) if position else None, limit
            ),
            lambda row: [row.created_ms, row.id],
        )
        datasets = self.peers.datasets_of([r.arn for r in page.items]) if page.items else {}
        return Page([Project(r, datasets.get(r.arn, [])) for r in page.items], page.next_token)

    def get_project(self, project_arn: str) -> ProjectRow:
        """Returns a project by ARN; NotFound when it does not exist."""
        arns.parse_project(project_arn)
        row = self.repo.get_project_by_arn(project_arn)
        if row is None:
            raise NotFound(f"project {project_arn} does not exist")
        return row

    def delete_project(self, project_arn: str) -> str:
        """Deletes a project with no datasets and no versions; returns its status (DELETING)."""
        row = self.get_project(project_arn)
        # DELETING first, so the dataset and training services refuse new children while we look.
        if not self.repo.set_status(project_arn, "CREATED", "DELETING"):
            raise InUse(f"project {project_arn} is already being deleted")
        try:
            if self.peers.datasets_of([project_arn]).get(project_arn):
                raise InUse("the project still has datasets; delete them first")
            if self.peers.has_versions(project_arn):
                raise InUse("the project still has model versions; delete them first")
        except Exception:
            self.repo.set_status(project_arn, "DELETING", row.status)
            raise
        self.repo.delete_project(project_arn)
        log.info("project deleted", extra={"project_arn": project_arn})
        return "DELETING"

    # -- tags -------------------------------------------------------------------------------------

    def _check_resource(self, resource_arn: str) -> None:
        if not resource_arn:
            raise InvalidParameter("ResourceArn is required")
        try:
            parsed = arns.parse(resource_arn)
        except InvalidParameter:
            # A syntactically foreign ARN is still a valid ResourceArn (no pattern): it just isn't ours.
            if not 20 <= len(resource_arn) <= 2048:
                raise
            raise NotFound(f"resource {resource_arn[:200]} does not exist") from None
        if (parsed.region, parsed.account) != (self.region, self.account_id):
            raise NotFound(f"resource {resource_arn} does not exist")
        project = self.repo.get_project_by_name(parsed.project)
        if project is None or project.status == "DELETING":
            raise NotFound(f"resource {resource_arn} does not exist")
        exists = {
            "project": lambda: project.arn == resource_arn,
            "dataset": lambda: self.peers.dataset_exists(resource_arn),
            "version": lambda: self.peers.version_exists(project.arn, resource_arn),
        }[parsed.kind]()
        if not exists:
            raise NotFound(f"resource {resource_arn} does not exist")

    def tag_resource(self, resource_arn: str, tags: dict[str, str]) -> None:
        """Adds or overwrites tags of any of our resources."""
        validation.tags(tags)
        self._check_resource(resource_arn)
        if not self.repo.tag(resource_arn, tags, self.limits.max_tags):
            raise ServiceQuotaExceeded(f"a resource may have at most {self.limits.max_tags} tags")

    def untag_resource(self, resource_arn: str, keys: list[str]) -> None:
        """Removes tags by key."""
        validation.tag_keys(keys)
        self._check_resource(resource_arn)
        if keys:
            self.repo.untag(resource_arn, keys)

    def list_tags(self, resource_arn: str) -> dict[str, str]:
        """Returns the tags of a resource."""
        self._check_resource(resource_arn)
        return self.repo.list_tags(resource_arn)

    def set_resource_tags(self, resource_arn: str, tags: dict[str, str]) -> None:
        """Replaces the tags of a resource another service owns (it vouches that the resource exists)."""
        arns.parse(resource_arn)
        validation.tags(tags)
        self.repo.replace_tags(resource_arn, tags)

    def delete_resource_tags(self, resource_arn: str) -> None:
        """Forgets the tags of a resource its owner removed."""
        arns.parse(resource_arn)
        self.repo.delete_tags(resource_arn)

    def authorize_copy(
        self, source_project_arn: str, version_arn: str, destination_project_arn: str
    ) -> str | None:
        """Returns the name of the policy allowing the copy ("" for a same-account copy), None if denied."""
        source = arns.parse_project(source_project_arn, "SourceProjectArn")
        destination = arns.parse_project(destination_project_arn, "DestinationProjectArn")
        arns.parse_version(version_arn, "SourceProjectVersionArn")
        self.get_project(source_project_arn)
        if source.account == destination.account:
            return ""
        for name, document in self.repo.policy_documents(source_project_arn):
            if policies.allows(
                policies.check_document(document), destination.account, "rekognition:CopyProjectVersion"
            ):
                return name
        return None

    # -- policies ---------------------------------------------------------------------------------

    @staticmethod
    def _revision(value: str | None) -> str | None:
        if value is None:
            return None
        if not 1 <= len(value) <= 64 or not validation.HEX.match(value):
            raise InvalidParameter("PolicyRevisionId must be 1 to 64 hexadecimal characters")
        return value

    def put_policy(self, project_arn: str, name: str, revision_id: str | None, document: str) -> str:
        """Creates or replaces a project policy; returns the new revision id."""
        arns.parse_project(project_arn)
        validation.name(name, "PolicyName", max_len=128)
        expected = self._revision(revision_id)
        policies.check_document(document)
        new_revision = secrets.token_hex(16)
        outcome = self.repo.put_policy(
            project_arn,
            name,
            expected,
            new_revision,
            document,
            datetime.fromtimestamp(self.clock(), UTC),
            self.limits.max_policies_per_project,
        )
        if outcome == "not_found":
            raise NotFound(f"project {project_arn} does not exist")
        if outcome == "exists":
            raise AlreadyExists(f"policy {name!r} exists; give its PolicyRevisionId to update it")
        if outcome == "revision":
            raise InvalidPolicyRevisionId(f"PolicyRevisionId does not match the current revision of {name!r}")
        if outcome == "limit":
            raise LimitExceeded(
                f"a project may have at most {self.limits.max_policies_per_project} project policies"
            )
        return new_revision

    def delete_policy(self, project_arn: str, name: str, revision_id: str | None) -> None:
        """Deletes a project policy (optionally only at the given revision)."""
        self.get_project(project_arn)
        validation.name(name, "PolicyName", max_len=128)
        outcome = self.repo.delete_policy(project_arn, name, self._revision(revision_id))
        if outcome == "not_found":
            raise NotFound(f"policy {name!r} does not exist in project {project_arn}")
        if outcome == "revision":
            raise InvalidPolicyRevisionId(f"PolicyRevisionId does not match the current revision of {name!r}")

    def list_policies(self, project_arn: str, next_token: str | None, max_results: int) -> Page:
        """Returns a page of a project's policies, by name."""
        self.get_project(project_arn)
        filters = {"project": project_arn}
        return keyset_page(
            self.tokens,
            "ListProjectPolicies",
            filters,
            next_token,
            max_results,
            lambda position, limit: self.repo.list_policies(
                project_arn, str(position[0]) if position else None, limit
            ),
            lambda row: [row.name],
        )
