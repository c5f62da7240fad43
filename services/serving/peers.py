"""The serving service's view of the training service: model artifacts and the versions' run state."""

from __future__ import annotations

from dataclasses import dataclass

from customlabels.training.v1 import training_service_pb2 as tr
from customlabels.training.v1 import training_service_pb2_grpc as tr_grpc

from services.common import clients, enums
from services.common.errors import NotReady

STATUS = tr.ProjectVersionStatus.DESCRIPTOR


@dataclass(frozen=True)
class Artifact:
    """Where a version's exported model is, and the version's status."""

    version_arn: str
    status: str
    onnx_bucket: str
    onnx_key: str
    metadata_bucket: str
    metadata_key: str


class TrainingClient:
    """GetModelArtifact and UpdateVersionStatus of the training service, over gRPC."""

    def __init__(self, training_addr: str) -> None:
        self._channel = clients.channel(training_addr)
        self._stub = tr_grpc.TrainingServiceStub(self._channel)

    def close(self) -> None:
        """Closes the channel."""
        self._channel.close()

    def artifact(self, version_arn: str) -> Artifact:
        """The version's model; ResourceNotFound when there is no such version, NotReady without a model."""
        a = clients.call(
            self._stub.GetModelArtifact, tr.GetModelArtifactRequest(project_version_arn=version_arn)
        )
        return Artifact(
            a.project_version_arn,
            enums.to_aws(STATUS, a.status) or "",
            a.onnx_model.bucket,
            a.onnx_model.name,
            a.model_metadata.bucket,
            a.model_metadata.name,
        )

    def artifact_status(self, version_arn: str) -> str:
        """The version's status for an error message; ResourceNotFound when there is no such version."""
        try:
            return self.artifact(version_arn).status
        except NotReady:
            return "not trained"

    def set_status(
        self,
        version_arn: str,
        status: str,
        expected: tuple[str, ...] = (),
        message: str = "",
        units: tuple[int, int | None] | None = None,
    ) -> str:
        """Compare-and-set of the version's run state; ResourceInUse when it is not in `expected`.

        Returns the status the version had before."""
        request = tr.UpdateVersionStatusRequest(
            project_version_arn=version_arn,
            status=enums.from_aws(STATUS, status),  # type: ignore[arg-type]
            status_message=message,
            expected_statuses=[enums.from_aws(STATUS, s) for s in expected],  # type: ignore[misc]
        )
        if units is not None:
            request.min_inference_units = units[0]
            if units[1] is not None:
                request.max_inference_units = units[1]
        response = clients.call(self._stub.UpdateVersionStatus, request)
        return enums.to_aws(STATUS, response.previous_status) or ""
