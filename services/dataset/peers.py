"""The dataset service's view of the project service, over gRPC."""

from __future__ import annotations

from customlabels.project.v1 import project_service_pb2 as pj
from customlabels.project.v1 import project_service_pb2_grpc as pj_grpc

from services.common import clients


class ProjectClient:
    """Checks projects and stores tags through the project service."""

    def __init__(self, project_addr: str) -> None:
        self._channel = clients.channel(project_addr)
        self.stub = pj_grpc.ProjectServiceStub(self._channel)

    def close(self) -> None:
        """Closes the channel."""
        self._channel.close()

    def project_status(self, project_arn: str) -> str:
        """Returns the project's status (CREATED, DELETING); ResourceNotFoundException when it does not exist."""
        response = clients.call(self.stub.GetProject, pj.GetProjectRequest(project_arn=project_arn))
        return pj.ProjectStatus.Name(response.status).removeprefix("PROJECT_STATUS_")

    def set_tags(self, resource_arn: str, tags: dict[str, str]) -> None:
        """Stores the tags given when a dataset was created."""
        clients.call(
            self.stub.SetResourceTags, pj.SetResourceTagsRequest(resource_arn=resource_arn, tags=tags)
        )

    def forget_tags(self, resource_arn: str) -> None:
        """Drops the tags of a deleted dataset."""
        clients.call(self.stub.DeleteResourceTags, pj.DeleteResourceTagsRequest(resource_arn=resource_arn))
