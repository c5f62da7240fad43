"""The ServingService gRPC adapter: validate the wire shape, call the domain, map the result."""

from __future__ import annotations

import grpc
from customlabels.serving.v1 import serving_service_pb2 as pb
from customlabels.serving.v1 import serving_service_pb2_grpc as pb_grpc
from customlabels.training.v1 import training_service_pb2 as tr

from services.common import enums, validation
from services.common.errors import InvalidParameter
from services.serving.deployments import Deployments, ImageSource

STATUS = tr.ProjectVersionStatus.DESCRIPTOR


def _label(result: tuple[object, ...]) -> pb.CustomLabel:
    label = pb.CustomLabel(name=str(result[0]), confidence=float(result[1]) * 100.0)  # type: ignore[arg-type]
    if len(result) == 6:
        left, top, width, height = (float(v) for v in result[2:])  # type: ignore[arg-type]
        label.geometry.bounding_box.CopyFrom(pb.BoundingBox(width=width, height=height, left=left, top=top))
        label.geometry.polygon.extend(
            pb.Point(x=x, y=y)
            for x, y in ((left, top), (left + width, top), (left + width, top + height), (left, top + height))
        )
    return label


class ServingServicer(pb_grpc.ServingServiceServicer):
    """Serves StartProjectVersion, StopProjectVersion and DetectCustomLabels (spec/api.md §4, §5)."""

    def __init__(self, deployments: Deployments) -> None:
        self.deployments = deployments

    def StartProjectVersion(
        self, request: pb.StartProjectVersionRequest, context: grpc.ServicerContext
    ) -> pb.StartProjectVersionResponse:
        """Deploys a trained version; answers STARTING."""
        status = self.deployments.start(
            request.project_version_arn,
            request.min_inference_units,
            request.max_inference_units if request.HasField("max_inference_units") else None,
        )
        return pb.StartProjectVersionResponse(status=enums.from_aws(STATUS, status))  # type: ignore[arg-type]

    def StopProjectVersion(
        self, request: pb.StopProjectVersionRequest, context: grpc.ServicerContext
    ) -> pb.StopProjectVersionResponse:
        """Undeploys a running version; answers STOPPING."""
        status = self.deployments.stop(request.project_version_arn)
        return pb.StopProjectVersionResponse(status=enums.from_aws(STATUS, status))  # type: ignore[arg-type]

    def DetectCustomLabels(
        self, request: pb.DetectCustomLabelsRequest, context: grpc.ServicerContext
    ) -> pb.DetectCustomLabelsResponse:
        """Labels one image with a running version."""
        which = request.image.WhichOneof("source")
        if which == "bytes":
            source = ImageSource(data=request.image.bytes)
        elif which == "s3_object":
            obj = request.image.s3_object
            if not obj.bucket or not obj.name:
                raise InvalidParameter("Image.S3Object needs Bucket and Name")
            validation.bucket(obj.bucket, "Image.S3Object.Bucket")
            validation.object_key(obj.name, "Image.S3Object.Name")
            source = ImageSource(bucket=obj.bucket, key=obj.name, version=obj.version or None)
        else:
            raise InvalidParameter("Image needs Bytes or S3Object")
        results = self.deployments.detect(
            request.project_version_arn,
            source,
            request.min_confidence if request.HasField("min_confidence") else None,
            request.max_results if request.HasField("max_results") else None,
        )
        return pb.DetectCustomLabelsResponse(custom_labels=[_label(r) for r in results])
