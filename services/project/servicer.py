"""The ProjectService gRPC adapter: validate the wire shape, call the domain, map the result."""

from __future__ import annotations

import grpc
from customlabels.common.v1 import types_pb2 as common
from customlabels.project.v1 import project_service_pb2 as pb
from customlabels.project.v1 import project_service_pb2_grpc as pb_grpc

from services.common import enums
from services.common.pagination import max_results
from services.common.timestamps import timestamp
from services.project.projects import ProjectService
from services.project.repository import ProjectRow

FEATURE = common.CustomizationFeature.DESCRIPTOR
AUTO_UPDATE = common.ProjectAutoUpdate.DESCRIPTOR
STATUS = pb.ProjectStatus.DESCRIPTOR


def _description(row: ProjectRow, datasets: list[object]) -> pb.ProjectDescription:
    return pb.ProjectDescription(
        project_arn=row.arn,
        creation_timestamp=timestamp(row.created_ms),
        status=enums.from_aws(STATUS, row.status),  # type: ignore[arg-type]
        datasets=datasets,  # type: ignore[arg-type]
        feature=enums.from_aws(FEATURE, row.feature),  # type: ignore[arg-type]
        auto_update=enums.from_aws(AUTO_UPDATE, row.auto_update) if row.auto_update else 0,  # type: ignore[arg-type]
    )


class ProjectServicer(pb_grpc.ProjectServiceServicer):
    """Serves the project operations of spec/api.md §2, §6, §7 and the internal calls of other services."""

    def __init__(self, service: ProjectService) -> None:
        self.service = service

    def CreateProject(
        self, request: pb.CreateProjectRequest, context: grpc.ServicerContext
    ) -> pb.CreateProjectResponse:
        """Creates a project."""
        arn = self.service.create_project(
            request.project_name,
            enums.to_aws(FEATURE, request.feature),
            enums.to_aws(AUTO_UPDATE, request.auto_update),
            dict(request.tags),
        )
        return pb.CreateProjectResponse(project_arn=arn)

    def DescribeProjects(
        self, request: pb.DescribeProjectsRequest, context: grpc.ServicerContext
    ) -> pb.DescribeProjectsResponse:
        """Lists projects oldest first, with their datasets."""
        features = [enums.to_aws(FEATURE, f) or "CUSTOM_LABELS" for f in request.features]
        page = self.service.describe_projects(
            list(request.project_names),
            features,
            request.next_token,
            max_results(request.max_results, request.HasField("max_results"), 100),
        )
        return pb.DescribeProjectsResponse(
            project_descriptions=[_description(p.row, p.datasets) for p in page.items],
            next_token=page.next_token or "",
        )

    def DeleteProject(
        self, request: pb.DeleteProjectRequest, context: grpc.ServicerContext
    ) -> pb.DeleteProjectResponse:
        """Deletes a project that has no datasets and no versions."""
        status = self.service.delete_project(request.project_arn)
        return pb.DeleteProjectResponse(status=enums.from_aws(STATUS, status))  # type: ignore[arg-type]

    def TagResource(
        self, request: pb.TagResourceRequest, context: grpc.ServicerContext
    ) -> pb.TagResourceResponse:
        """Adds or overwrites tags."""
        self.service.tag_resource(request.resource_arn, dict(request.tags))
        return pb.TagResourceResponse()

    def UntagResource(
        self, request: pb.UntagResourceRequest, context: grpc.ServicerContext
    ) -> pb.UntagResourceResponse:
        """Removes tags."""
        self.service.untag_resource(request.resource_arn, list(request.tag_keys))
        return pb.UntagResourceResponse()

    def ListTagsForResource(
        self, request: pb.ListTagsForResourceRequest, context: grpc.ServicerContext
    ) -> pb.ListTagsForResourceResponse:
        """Returns the tags of a resource."""
        return pb.ListTagsForResourceResponse(tags=self.service.list_tags(request.resource_arn))

    def PutProjectPolicy(
        self, request: pb.PutProjectPolicyRequest, context: grpc.ServicerContext
    ) -> pb.PutProjectPolicyResponse:
        """Creates or updates a project policy."""
        revision = self.service.put_policy(
            request.project_arn,
            request.policy_name,
            request.policy_revision_id or None,
            request.policy_document,
        )
        return pb.PutProjectPolicyResponse(policy_revision_id=revision)

    def ListProjectPolicies(
        self, request: pb.ListProjectPoliciesRequest, context: grpc.ServicerContext
    ) -> pb.ListProjectPoliciesResponse:
        """Lists a project's policies."""
        page = self.service.list_policies(
            request.project_arn,
            request.next_token,
            max_results(request.max_results, request.HasField("max_results"), 5),
        )
        return pb.ListProjectPoliciesResponse(
            project_policies=[
                pb.ProjectPolicy(
                    project_arn=p.project_arn,
                    policy_name=p.name,
                    policy_revision_id=p.revision_id,
                    policy_document=p.document,
                    creation_timestamp=timestamp(p.created_at),
                    last_updated_timestamp=timestamp(p.updated_at),
                )
                for p in page.items
            ],
            next_token=page.next_token or "",
        )

    def DeleteProjectPolicy(
        self, request: pb.DeleteProjectPolicyRequest, context: grpc.ServicerContext
    ) -> pb.DeleteProjectPolicyResponse:
        """Deletes a project policy."""
        self.service.delete_policy(
            request.project_arn, request.policy_name, request.policy_revision_id or None
        )
        return pb.DeleteProjectPolicyResponse()

    def GetProject(
        self, request: pb.GetProjectRequest, context: grpc.ServicerContext
    ) -> pb.GetProjectResponse:
        """Returns one project (internal: other services check a project ARN with it)."""
        row = self.service.get_project(request.project_arn)
        return pb.GetProjectResponse(
            project_arn=row.arn,
            project_name=row.name,
            creation_timestamp=timestamp(row.created_ms),
            status=enums.from_aws(STATUS, row.status),  # type: ignore[arg-type]
            feature=enums.from_aws(FEATURE, row.feature),  # type: ignore[arg-type]
            auto_update=enums.from_aws(AUTO_UPDATE, row.auto_update) if row.auto_update else 0,  # type: ignore[arg-type]
        )

    def SetResourceTags(
        self, request: pb.SetResourceTagsRequest, context: grpc.ServicerContext
    ) -> pb.SetResourceTagsResponse:
        """Replaces the tags of a resource created by another service (internal)."""
        self.service.set_resource_tags(request.resource_arn, dict(request.tags))
        return pb.SetResourceTagsResponse()

    def DeleteResourceTags(
        self, request: pb.DeleteResourceTagsRequest, context: grpc.ServicerContext
    ) -> pb.DeleteResourceTagsResponse:
        """Forgets the tags of a removed resource (internal)."""
        self.service.delete_resource_tags(request.resource_arn)
        return pb.DeleteResourceTagsResponse()

    def AuthorizeCopyProjectVersion(
        self, request: pb.AuthorizeCopyProjectVersionRequest, context: grpc.ServicerContext
    ) -> pb.AuthorizeCopyProjectVersionResponse:
        """Tells whether a version may be copied into the destination project (internal)."""
        policy = self.service.authorize_copy(
            request.source_project_arn, request.source_project_version_arn, request.destination_project_arn
        )
        if policy is None:
            return pb.AuthorizeCopyProjectVersionResponse(allowed=False)
        return pb.AuthorizeCopyProjectVersionResponse(allowed=True, policy_name=policy)
