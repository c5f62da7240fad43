"""The AWS JSON 1.1 protocol of the edge: the operation table against botocore's own Rekognition model,
protocol errors, limits, health and metrics."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from botocore.model import Shape
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.timestamp_pb2 import Timestamp

from scripts.inprocess import LocalServices
from services.cli.operations import public_operations
from services.common import awsjson, enums
from services.edge.app import build_server
from tests.edge.conftest import EdgeUnderTest, edge_config
from tests.edge.util import raises, raw, send, signed

# spec/api.md: the 20 Custom Labels operations and the 3 tagging ones.
CUSTOM_LABELS_OPERATIONS = {
    "CreateProject",
    "DescribeProjects",
    "DeleteProject",
    "CreateDataset",
    "DescribeDataset",
    "DeleteDataset",
    "ListDatasetEntries",
    "ListDatasetLabels",
    "UpdateDatasetEntries",
    "DistributeDatasetEntries",
    "CreateProjectVersion",
    "DescribeProjectVersions",
    "DeleteProjectVersion",
    "CopyProjectVersion",
    "StartProjectVersion",
    "StopProjectVersion",
    "DetectCustomLabels",
    "PutProjectPolicy",
    "ListProjectPolicies",
    "DeleteProjectPolicy",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
}
SCALARS = {
    "string": {FieldDescriptor.CPPTYPE_STRING, FieldDescriptor.CPPTYPE_ENUM},
    "blob": {FieldDescriptor.CPPTYPE_STRING},
    "boolean": {FieldDescriptor.CPPTYPE_BOOL},
    "integer": {FieldDescriptor.CPPTYPE_INT32, FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT32},
    "long": {FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64},
    "float": {FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE},
    "double": {FieldDescriptor.CPPTYPE_DOUBLE},
}


def _mismatches(shape: Shape, message: Descriptor, path: str) -> Iterator[str]:
    """Every member of a botocore structure that our message lacks or types differently."""
    fields = awsjson.members(message)
    for name, member in shape.members.items():
        field = fields.get(name)
        if field is None:
            yield f"{path}.{name}: no field"
            continue
        if member.type_name == "list":
            if not field.is_repeated or awsjson.is_map(field):
                yield f"{path}.{name}: a list, but the field is not repeated"
            else:
                yield from _value_mismatches(member.member, field, f"{path}.{name}[]")
        elif member.type_name == "map":
            if not awsjson.is_map(field):
                yield f"{path}.{name}: a map, but the field is not"
            else:
                value = field.message_type.fields_by_name["value"]
                yield from _value_mismatches(member.value, value, f"{path}.{name}{{}}")
        elif field.is_repeated:
            yield f"{path}.{name}: repeated, but botocore's shape is a {member.type_name}"
        else:
            yield from _value_mismatches(member, field, f"{path}.{name}")


def _value_mismatches(shape: Shape, field: FieldDescriptor, path: str) -> Iterator[str]:
    if shape.type_name == "structure":
        if field.cpp_type != FieldDescriptor.CPPTYPE_MESSAGE:
            yield f"{path}: a structure, but the field is a scalar"
        else:
            yield from _mismatches(shape, field.message_type, path)
    elif shape.type_name == "timestamp":
        if field.cpp_type != FieldDescriptor.CPPTYPE_MESSAGE or field.message_type != Timestamp.DESCRIPTOR:
            yield f"{path}: a timestamp, but the field is not a google.protobuf.Timestamp"
    elif field.cpp_type not in SCALARS[shape.type_name] or (
        (shape.type_name == "blob") != (field.type == FieldDescriptor.TYPE_BYTES)
    ):
        yield f"{path}: botocore's {shape.type_name} does not fit field type {field.type}"
    elif field.cpp_type == FieldDescriptor.CPPTYPE_ENUM:
        ours = {enums.to_aws(field.enum_type, value.number) for value in field.enum_type.values}
        missing = set(shape.enum or ()) - ours
        if missing:
            yield f"{path}: enum values {sorted(missing)} are missing"


def test_every_custom_labels_operation_matches_botocores_rekognition_model() -> None:
    model = botocore.session.get_session().get_service_model("rekognition")
    assert model.metadata["protocol"] == "json" and model.metadata["targetPrefix"] == "RekognitionService"
    served = public_operations()
    assert set(served) >= CUSTOM_LABELS_OPERATIONS
    problems = []
    for name in sorted(CUSTOM_LABELS_OPERATIONS):
        operation = model.operation_model(name)
        method = served[name].method
        problems += _mismatches(operation.input_shape, method.input_type, f"{name} input")
        problems += _mismatches(operation.output_shape, method.output_type, f"{name} output")
    assert problems == []


def test_internal_rpcs_are_not_served() -> None:
    assert not {"GetProject", "UpdateVersionStatus", "GetModelArtifact", "ExportDatasetEntries"} & set(
        public_operations()
    )


def test_an_unknown_operation_is_refused(edge: EdgeUnderTest) -> None:
    status, body = send(edge, signed(edge, "DetectFaces", {}))
    assert (status, body["__type"]) == (400, "UnknownOperationException")


def test_an_internal_rpc_is_an_unknown_operation(edge: EdgeUnderTest) -> None:
    status, body = send(edge, signed(edge, "UpdateVersionStatus", {}))
    assert (status, body["__type"]) == (400, "UnknownOperationException")


@pytest.mark.parametrize("payload", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_is_a_serialization_error(
    edge: EdgeUnderTest, payload: bytes
) -> None:
    status, body = send(edge, signed(edge, "DescribeProjects", payload))
    assert (status, body["__type"]) == (400, "SerializationException")


def test_a_wrong_member_is_an_invalid_parameter_naming_it(edge: EdgeUnderTest) -> None:
    status, body = send(edge, signed(edge, "DescribeProjects", {"MaxResults": "ten"}))
    assert (status, body["__type"]) == (400, "InvalidParameterException")
    assert "MaxResults" in body["message"]


def test_a_body_over_the_limit_is_refused_unread(stack: LocalServices) -> None:
    small = build_server(edge_config(stack, CUSTOMLABELS_EDGE_MAX_BODY_BYTES="2048"))
    try:
        config = small.edge.config
        ((key_id, secret),) = config.credentials.items()
        edge = EdgeUnderTest(small, f"http://127.0.0.1:{small.port}", key_id, secret)
        request = signed(edge, "DescribeProjects", {"NextToken": "x" * 4096})
        status, body = send(edge, request)
        assert (status, body["__type"]) == (413, "RequestEntityTooLargeException")
    finally:
        small.stop(1)


def test_a_client_that_stops_sending_is_disconnected(stack: LocalServices) -> None:
    quick = build_server(edge_config(stack, CUSTOMLABELS_EDGE_READ_TIMEOUT_S="0.2"))
    try:
        with socket.create_connection(("127.0.0.1", quick.port), timeout=30) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            # The edge gives up on the body and closes: the read ends with EOF, not with our timeout.
            assert sock.recv(1024) == b""
    finally:
        quick.stop(1)


def test_health_answers(edge: EdgeUnderTest) -> None:
    status, headers, body = raw(edge, "GET", "/health")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    assert headers["Server"] == "customlabels-edge"


def test_post_elsewhere_than_root_is_not_found(edge: EdgeUnderTest) -> None:
    status, _, body = raw(edge, "POST", "/v1/projects", b"{}")
    assert status == 404 and json.loads(body)["__type"] == "UnknownOperationException"


def test_metrics_count_requests_errors_and_latency_per_operation(
    edge: EdgeUnderTest, rekognition: Any, make_client: Callable[..., Any]
) -> None:
    rekognition.describe_projects(MaxResults=1)
    with pytest.raises(ClientError):
        rekognition.describe_dataset(
            DatasetArn="arn:aws:rekognition:local:000000000000:project/x/dataset/train/1"
        )
    with pytest.raises(ClientError):
        make_client(aws_secret_access_key="wrong").describe_projects()
    status, headers, body = raw(edge, "GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    assert samples['customlabels_edge_requests_total{operation="DescribeProjects",status="200"}'] >= 1
    assert samples['customlabels_edge_requests_total{operation="DescribeDataset",status="400"}'] >= 1
    assert (
        samples[
            'customlabels_edge_errors_total{operation="DescribeDataset",error="ResourceNotFoundException"}'
        ]
        >= 1
    )
    assert (
        samples[
            'customlabels_edge_errors_total{operation="DescribeProjects",error="InvalidSignatureException"}'
        ]
        >= 1
    )
    count = samples['customlabels_edge_request_duration_seconds_count{operation="DescribeProjects"}']
    assert (
        samples['customlabels_edge_request_duration_seconds_bucket{operation="DescribeProjects",le="+Inf"}']
        == count
    )
    assert "# TYPE customlabels_edge_request_duration_seconds histogram" in text
    assert samples["customlabels_edge_requests_in_flight"] == 0


def test_boto3_reads_a_request_over_the_limit_as_413(rekognition: Any) -> None:
    dataset = "arn:aws:rekognition:local:000000000000:project/x/dataset/train/1"
    error = raises(
        "RequestEntityTooLargeException",
        lambda: rekognition.update_dataset_entries(
            DatasetArn=dataset, Changes={"GroundTruth": b"x" * (9 * 1024 * 1024)}
        ),
    )
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 413


def test_requests_over_the_concurrency_limit_are_throttled_until_a_slot_frees(
    stack: LocalServices,
) -> None:
    limited = build_server(edge_config(stack, CUSTOMLABELS_EDGE_MAX_CONCURRENCY="2"))
    try:
        config = limited.edge.config
        ((key_id, secret),) = config.credentials.items()
        edge = EdgeUnderTest(limited, f"http://127.0.0.1:{limited.port}", key_id, secret)
        client = boto3.session.Session().client(
            "rekognition",
            endpoint_url=edge.endpoint,
            region_name="local",
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=BotoConfig(retries={"total_max_attempts": 1}),
        )
        client.describe_projects(MaxResults=1)
        # Two requests in flight hold both slots (taken here as a slow call would take them).
        slots = limited._server.slots
        assert slots.acquire(blocking=False) and slots.acquire(blocking=False)
        try:
            error = raises("ThrottlingException", lambda: client.describe_projects(MaxResults=1))
            assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 503
            # The refusal is cheap and leaves no slot taken: the same happens again.
            raises("ThrottlingException", lambda: client.describe_projects(MaxResults=1))
        finally:
            slots.release()
        # One slot free: calls go through again, one after another.
        client.describe_projects(MaxResults=1)
        client.describe_projects(MaxResults=1)
        slots.release()
        _, _, body = raw(edge, "GET", "/metrics")
        assert (
            'customlabels_edge_errors_total{operation="DescribeProjects",error="ThrottlingException"} 2'
            in body.decode()
        )
    finally:
        limited.stop(1)
