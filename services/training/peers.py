"""The training service's view of the project and dataset services, over gRPC."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.dataset.v1 import dataset_service_pb2_grpc as ds_grpc
from customlabels.project.v1 import project_service_pb2 as pj
from customlabels.project.v1 import project_service_pb2_grpc as pj_grpc

from services.common import clients
from services.common.errors import from_rpc_error


@dataclass(frozen=True)
class ProjectInfo:
    """What training needs to know of a project."""

    arn: str
    name: str
    status: str  # CREATED or DELETING


@dataclass(frozen=True)
class DatasetInfo:
    """What training needs to know of a dataset."""

    arn: str
    dataset_type: str  # TRAIN or TEST
    status: str


class Peers:
    """Project checks, tags, copy authorisation, and dataset snapshots."""

    def __init__(self, project_addr: str, dataset_addr: str) -> None:
        self._channels = [clients.channel(project_addr), clients.channel(dataset_addr)]
        self._projects = pj_grpc.ProjectServiceStub(self._channels[0])
        self._datasets = ds_grpc.DatasetServiceStub(self._channels[1])

    def close(self) -> None:
        """Closes the channels."""
        for channel in self._channels:
            channel.close()

    def project(self, project_arn: str) -> ProjectInfo:
        """Returns a project; ResourceNotFoundException when it does not exist."""
        p = clients.call(self._projects.GetProject, pj.GetProjectRequest(project_arn=project_arn))
        return ProjectInfo(
            p.project_arn, p.project_name, pj.ProjectStatus.Name(p.status).removeprefix("PROJECT_STATUS_")
        )

    def set_tags(self, resource_arn: str, tags: dict[str, str]) -> None:
        """Stores a new version's tags."""
        clients.call(
            self._projects.SetResourceTags, pj.SetResourceTagsRequest(resource_arn=resource_arn, tags=tags)
        )

    def forget_tags(self, resource_arn: str) -> None:
        """Drops a deleted version's tags."""
        clients.call(
            self._projects.DeleteResourceTags, pj.DeleteResourceTagsRequest(resource_arn=resource_arn)
        )

    def copy_allowed(self, source_project: str, source_version: str, destination_project: str) -> bool:
        """Asks the project service whether a project policy (or the same account) allows the copy."""
        response = clients.call(
            self._projects.AuthorizeCopyProjectVersion,
            pj.AuthorizeCopyProjectVersionRequest(
                source_project_arn=source_project,
                source_project_version_arn=source_version,
                destination_project_arn=destination_project,
            ),
        )
        return response.allowed

    def datasets(self, project_arn: str) -> list[DatasetInfo]:
        """Returns the project's datasets."""
        response = clients.call(
            self._datasets.ListProjectDatasets, ds.ListProjectDatasetsRequest(project_arns=[project_arn])
        )
        return [
            DatasetInfo(
                d.dataset_arn,
                ds.DatasetType.Name(d.dataset_type).removeprefix("DATASET_TYPE_"),
                ds.DatasetStatus.Name(d.status).removeprefix("DATASET_STATUS_"),
            )
            for group in response.projects
            for d in group.datasets
        ]

    def export(self, dataset_arn: str) -> Iterator[ds.ExportedDatasetEntry]:
        """Streams a consistent snapshot of a dataset's entries (error and unlabeled ones included)."""
        request = ds.ExportDatasetEntriesRequest(
            dataset_arn=dataset_arn, include_error_entries=True, include_unlabeled=True
        )
        try:
            for batch in self._datasets.ExportDatasetEntries(request, timeout=600):
                yield from batch.entries
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
