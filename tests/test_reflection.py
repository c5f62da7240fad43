"""Every service answers reflection with all its methods, and health."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from customlabels.serving.v1 import serving_service_pb2 as sv
from customlabels.serving.v1 import serving_service_pb2_grpc as sv_grpc
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

EXPECTED = {
    "project": (
        "customlabels.project.v1.ProjectService",
        {
            "CreateProject",
            "DescribeProjects",
            "DeleteProject",
            "TagResource",
            "UntagResource",
            "ListTagsForResource",
            "PutProjectPolicy",
            "ListProjectPolicies",
            "DeleteProjectPolicy",
        },
    ),
    "dataset": (
        "customlabels.dataset.v1.DatasetService",
        {
            "CreateDataset",
            "DescribeDataset",
            "DeleteDataset",
            "ListDatasetEntries",
            "ListDatasetLabels",
            "UpdateDatasetEntries",
            "DistributeDatasetEntries",
        },
    ),
    "training": (
        "customlabels.training.v1.TrainingService",
        {"CreateProjectVersion", "DescribeProjectVersions", "DeleteProjectVersion", "CopyProjectVersion"},
    ),
    "serving": (
        "customlabels.serving.v1.ServingService",
        {"StartProjectVersion", "StopProjectVersion", "DetectCustomLabels"},
    ),
}


def _reflect(channel: grpc.Channel, request: reflection_pb2.ServerReflectionRequest):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    return next(iter(stub.ServerReflectionInfo(iter([request]))))


def methods_via_reflection(channel: grpc.Channel, service: str) -> set[str]:
    reply = _reflect(channel, reflection_pb2.ServerReflectionRequest(file_containing_symbol=service))
    package, _, name = service.rpartition(".")
    for blob in reply.file_descriptor_response.file_descriptor_proto:
        proto = descriptor_pb2.FileDescriptorProto.FromString(blob)
        if proto.package == package:
            for svc in proto.service:
                if svc.name == name:
                    return {m.name for m in svc.method}
    raise AssertionError(f"{service} not described")


@pytest.fixture(scope="module")
def channels(stack, peers) -> Iterator[dict[str, grpc.Channel]]:
    """A channel to each of the four services."""
    opened = {
        "project": grpc.insecure_channel(stack.project_addr),
        "dataset": grpc.insecure_channel(stack.dataset_addr),
        "training": grpc.insecure_channel(stack.training_addr),
    }
    yield {**opened, **{k: v.channel for k, v in peers.items()}}
    for channel in opened.values():
        channel.close()


def test_reflection_lists_each_service_with_all_its_aws_methods(channels):
    for key, (service, aws_methods) in EXPECTED.items():
        channel = channels[key]
        listed = _reflect(channel, reflection_pb2.ServerReflectionRequest(list_services=""))
        names = {s.name for s in listed.list_services_response.service}
        assert {service, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names
        assert aws_methods <= methods_via_reflection(channel, service)


def test_health_is_serving(channels):
    for key, (service, _) in EXPECTED.items():
        health = health_pb2_grpc.HealthStub(channels[key])
        for name in ("", service):
            assert (
                health.Check(health_pb2.HealthCheckRequest(service=name)).status
                == health_pb2.HealthCheckResponse.SERVING
            )


def test_an_empty_detect_request_is_an_invalid_parameter(peers):
    serving = sv_grpc.ServingServiceStub(peers["serving"].channel)
    with pytest.raises(grpc.RpcError) as info:
        serving.DetectCustomLabels(sv.DetectCustomLabelsRequest())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
