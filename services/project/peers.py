"""The project service's view of the dataset and training services, over gRPC.

A peer that answers UNIMPLEMENTED is a service of a later release that does not hold the kind of
resource asked about yet, so it is read as "none". Every other failure passes through.
"""

from __future__ import annotations

from typing import Any

from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.dataset.v1 import dataset_service_pb2_grpc as ds_grpc
from customlabels.training.v1 import training_service_pb2 as tr
from customlabels.training.v1 import training_service_pb2_grpc as tr_grpc

from services.common import clients
from services.common.errors import NotFound, PeerUnimplemented


class GrpcPeers:
    """Implements projects.Peers with the dataset and training gRPC clients."""

    def __init__(self, dataset_addr: str, training_addr: str) -> None:
        self._dataset_channel = clients.channel(dataset_addr)
        self._training_channel = clients.channel(training_addr)
        self.datasets = ds_grpc.DatasetServiceStub(self._dataset_channel)
        self.training = tr_grpc.TrainingServiceStub(self._training_channel)

    def close(self) -> None:
        """Closes both channels."""
        self._dataset_channel.close()
        self._training_channel.close()

    def datasets_of(self, project_arns: list[str]) -> dict[str, list[Any]]:
        """Returns each project's DatasetMetadata list."""
        try:
            response = clients.call(
                self.datasets.ListProjectDatasets, ds.ListProjectDatasetsRequest(project_arns=project_arns)
            )
        except PeerUnimplemented:
            return {}
        return {group.project_arn: list(group.datasets) for group in response.projects}

    def has_versions(self, project_arn: str) -> bool:
        """Tells whether the project has model versions (DELETING ones included)."""
        try:
            response = clients.call(
                self.training.CountProjectVersions, tr.CountProjectVersionsRequest(project_arn=project_arn)
            )
        except PeerUnimplemented:
            return False
        return response.version_count > 0

    def dataset_exists(self, dataset_arn: str) -> bool:
        """Tells whether the dataset exists."""
        try:
            clients.call(self.datasets.DescribeDataset, ds.DescribeDatasetRequest(dataset_arn=dataset_arn))
        except (NotFound, PeerUnimplemented):
            return False
        return True

    def version_exists(self, project_arn: str, version_arn: str) -> bool:
        """Tells whether the model version exists in the project."""
        try:
            response = clients.call(
                self.training.GetProjectVersion, tr.GetProjectVersionRequest(project_version_arn=version_arn)
            )
        except (NotFound, PeerUnimplemented):
            return False
        return response.project_arn == project_arn
