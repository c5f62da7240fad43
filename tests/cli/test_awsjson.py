"""The protobuf <-> AWS JSON mapping: names, presence, enums, timestamps, blobs, maps, and its errors."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from customlabels.common.v1 import types_pb2 as common
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.project.v1 import project_service_pb2 as pb
from customlabels.serving.v1 import serving_service_pb2 as sv
from customlabels.training.v1 import training_service_pb2 as tr
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from services.common import awsjson
from services.common.errors import InvalidParameter

FILES = [common.DESCRIPTOR, pb.DESCRIPTOR, ds.DESCRIPTOR, tr.DESCRIPTOR, sv.DESCRIPTOR]
API_SPEC = Path("/work/shared/spec/api.md")


def all_messages() -> list[Descriptor]:
    """Every message of our protos, nested ones included (map entries excepted)."""
    found: list[Descriptor] = []

    def walk(descriptor: Descriptor) -> None:
        if not descriptor.GetOptions().map_entry:
            found.append(descriptor)
        for nested in descriptor.nested_types:
            walk(nested)

    for file in FILES:
        for descriptor in file.message_types_by_name.values():
            walk(descriptor)
    return found


def populate(message: Message, depth: int = 0) -> Message:
    """Sets every field of `message` (the first member of each real oneof) to a non-default value."""
    taken: set[str] = set()
    for field in message.DESCRIPTOR.fields:
        oneof = field.containing_oneof
        if oneof is not None and not oneof.name.startswith("_"):
            if oneof.name in taken:
                continue
            taken.add(oneof.name)
        target = getattr(message, field.name)
        if awsjson.is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                populate(target["k"], depth + 1)
            else:
                target["k"] = sample(value_field)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in [target.add(), target.add()] if field.is_repeated else [target]:
                if field.message_type.full_name == "google.protobuf.Timestamp":
                    item.seconds, item.nanos = 1690000000, 250_000_000
                else:
                    item.SetInParent()
                    populate(item, depth + 1)
        elif field.is_repeated:
            target.extend([sample(field), sample(field)])
        else:
            setattr(message, field.name, sample(field))
    return message


def sample(field: FieldDescriptor) -> Any:
    """A non-default value of a scalar field's type (float32-exact for floats)."""
    if field.type == FieldDescriptor.TYPE_ENUM:
        return field.enum_type.values[-1].number
    if field.type == FieldDescriptor.TYPE_BYTES:
        return b"\x00\xffbytes"
    if field.type == FieldDescriptor.TYPE_STRING:
        return "text"
    if field.type == FieldDescriptor.TYPE_BOOL:
        return True
    if field.cpp_type in (FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE):
        return 0.75
    return 7


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("message", "field", "expected"),
    [
        (pb.CreateProjectResponse, "project_arn", "ProjectArn"),
        (common.GroundTruthManifest, "s3_object", "S3Object"),
        (common.OutputConfig, "s3_key_prefix", "S3KeyPrefix"),
        (tr.EvaluationResult, "f1_score", "F1Score"),
        (tr.ProjectVersionDescription, "billable_training_time_in_seconds", "BillableTrainingTimeInSeconds"),
        (sv.Point, "x", "X"),
    ],
)
def test_aws_name_is_the_pascal_case_of_the_field(message: type[Message], field: str, expected: str) -> None:
    assert awsjson.aws_name(message.DESCRIPTOR.fields_by_name[field]) == expected


def test_every_field_has_a_distinct_aws_name_that_maps_back() -> None:
    for descriptor in all_messages():
        names = awsjson.members(descriptor)
        assert len(names) == len(descriptor.fields), descriptor.full_name
        for name, field in names.items():
            assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", name), field.full_name
            assert name.lower() == field.name.replace("_", ""), field.full_name


@pytest.mark.skipif(not API_SPEC.exists(), reason="spec/api.md is not checked out here")
def test_the_aws_names_of_the_spec_need_no_override() -> None:
    # A member name of spec/api.md that one of our fields spells the same way, case aside, must
    # come out of the mechanical mapping exactly (prose like "ARN" aside: some spelling must match).
    spellings: dict[str, set[str]] = {}
    for word in re.findall(r"\b[A-Z][A-Za-z0-9]+\b", API_SPEC.read_text()):
        spellings.setdefault(word.lower(), set()).add(word)
    for descriptor in all_messages():
        for name, field in awsjson.members(descriptor).items():
            if name.lower() in spellings:
                assert name in spellings[name.lower()], field.full_name


def test_override_table_wins_over_the_mechanical_name(monkeypatch: pytest.MonkeyPatch) -> None:
    field = common.OutputConfig.DESCRIPTOR.fields_by_name["s3_bucket"]
    monkeypatch.setitem(awsjson.AWS_NAME_OVERRIDES, field.full_name, "S3BucketName")
    assert awsjson.aws_name(field) == "S3BucketName"


# --------------------------------------------------------------------------- to AWS


def test_describe_projects_response_has_the_aws_shape() -> None:
    response = pb.DescribeProjectsResponse(
        project_descriptions=[
            pb.ProjectDescription(
                project_arn="arn:aws:rekognition:local:000000000000:project/p/1",
                status=pb.PROJECT_STATUS_CREATED,
                feature=common.CUSTOMIZATION_FEATURE_CUSTOM_LABELS,
            )
        ]
    )
    response.project_descriptions[0].creation_timestamp.FromNanoseconds(1_690_000_000_500_000_000)
    assert awsjson.to_aws(response) == {
        "ProjectDescriptions": [
            {
                "ProjectArn": "arn:aws:rekognition:local:000000000000:project/p/1",
                "CreationTimestamp": 1690000000.5,
                "Status": "CREATED",
                "Datasets": [],
                "Feature": "CUSTOM_LABELS",
            }
        ]
    }


def test_empty_lists_and_maps_are_emitted_and_empty_strings_are_not() -> None:
    assert awsjson.to_aws(pb.DescribeProjectsResponse()) == {"ProjectDescriptions": []}
    assert awsjson.to_aws(pb.ListTagsForResourceResponse()) == {"Tags": {}}
    page = ds.ListDatasetEntriesResponse(dataset_entries=["{}"], next_token="t")
    assert awsjson.to_aws(page) == {"DatasetEntries": ["{}"], "NextToken": "t"}


def test_numbers_and_booleans_are_emitted_even_when_zero() -> None:
    stats = ds.DatasetStats(total_entries=3)
    assert awsjson.to_aws(stats) == {
        "LabeledEntries": 0,
        "TotalEntries": 3,
        "TotalLabels": 0,
        "ErrorEntries": 0,
    }
    assert awsjson.to_aws(pb.AuthorizeCopyProjectVersionResponse()) == {"Allowed": False}


def test_optional_fields_are_emitted_only_when_present() -> None:
    absent = tr.ProjectVersionDescription()
    present = tr.ProjectVersionDescription(min_inference_units=0, mean_average_precision=0.0)
    assert "MinInferenceUnits" not in awsjson.to_aws(absent)
    assert awsjson.to_aws(present)["MinInferenceUnits"] == 0
    assert awsjson.to_aws(present)["MeanAveragePrecision"] == 0.0
    assert awsjson.to_aws(common.TestingData(auto_create=False)) == {"Assets": [], "AutoCreate": False}
    assert awsjson.to_aws(common.TestingData()) == {"Assets": []}


def test_float32_fields_print_their_shortest_decimal() -> None:
    result = tr.EvaluationResult(f1_score=0.9)
    assert result.f1_score != 0.9  # float32 storage
    assert awsjson.to_aws(result) == {"F1Score": 0.9}
    assert json.dumps(awsjson.to_aws(sv.CustomLabel(name="cat", confidence=87.3))) == (
        '{"Name": "cat", "Confidence": 87.3}'
    )


def test_bytes_are_base64() -> None:
    changes = ds.DatasetChanges(ground_truth=b'{"source-ref": "s3://b/k"}\n')
    assert awsjson.to_aws(changes) == {"GroundTruth": "eyJzb3VyY2UtcmVmIjogInMzOi8vYi9rIn0K"}


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("descriptor", all_messages(), ids=lambda d: d.full_name)
def test_every_message_round_trips_fully_populated(descriptor: Descriptor) -> None:
    message = populate(message_factory.GetMessageClass(descriptor)())
    document = awsjson.to_aws(message)
    assert json.loads(json.dumps(document)) == document  # plain JSON only
    assert awsjson.from_aws(document, type(message)) == message


def test_nested_request_round_trips() -> None:
    request = tr.CreateProjectVersionRequest(
        project_arn="arn:p",
        version_name="v1",
        output_config=common.OutputConfig(s3_bucket="out", s3_key_prefix="runs/"),
        training_data=common.TrainingData(
            assets=[
                common.Asset(
                    ground_truth_manifest=common.GroundTruthManifest(
                        s3_object=common.S3Object(bucket="b", name="train.manifest")
                    )
                )
            ]
        ),
        testing_data=common.TestingData(auto_create=True),
        tags={"team": "vision"},
        feature_config=common.CustomizationFeatureConfig(),
    )
    document = awsjson.to_aws(request)
    assert document["TrainingData"] == {
        "Assets": [{"GroundTruthManifest": {"S3Object": {"Bucket": "b", "Name": "train.manifest"}}}]
    }
    assert document["FeatureConfig"] == {}  # present though empty
    back = awsjson.from_aws(document, tr.CreateProjectVersionRequest)
    assert back == request
    assert back.HasField("feature_config")


def test_timestamps_keep_fractions_and_accept_iso_8601() -> None:
    document = {"CreationTimestamp": 1690000000.25, "LastUpdatedTimestamp": "2023-07-22T04:26:40+00:00"}
    policy = awsjson.from_aws(document, pb.ProjectPolicy)
    assert (policy.creation_timestamp.seconds, policy.creation_timestamp.nanos) == (1690000000, 250_000_000)
    assert policy.last_updated_timestamp.seconds == 1690000000
    assert awsjson.to_aws(policy)["LastUpdatedTimestamp"] == 1690000000.0


def test_blobs_take_base64_or_raw_text_or_bytes() -> None:
    assert awsjson.from_aws({"GroundTruth": "aGk="}, ds.DatasetChanges).ground_truth == b"hi"
    assert (
        awsjson.from_aws({"GroundTruth": "aGk="}, ds.DatasetChanges, raw_blobs=True).ground_truth == b"aGk="
    )
    assert awsjson.from_aws({"GroundTruth": b"\x00"}, ds.DatasetChanges).ground_truth == b"\x00"


def test_null_members_are_absent() -> None:
    request = awsjson.from_aws(
        {"ProjectArn": "arn:p", "MaxResults": None, "NextToken": None}, pb.ListProjectPoliciesRequest
    )
    assert request == pb.ListProjectPoliciesRequest(project_arn="arn:p")
    assert not request.HasField("max_results")


def test_enums_and_repeated_enums_use_the_aws_strings() -> None:
    request = awsjson.from_aws(
        {"Features": ["CUSTOM_LABELS", "CONTENT_MODERATION"]}, pb.DescribeProjectsRequest
    )
    assert list(request.features) == [
        common.CUSTOMIZATION_FEATURE_CUSTOM_LABELS,
        common.CUSTOMIZATION_FEATURE_CONTENT_MODERATION,
    ]
    assert awsjson.to_aws(request)["Features"] == ["CUSTOM_LABELS", "CONTENT_MODERATION"]


def test_integral_floats_are_accepted_for_integers() -> None:
    assert awsjson.from_aws({"MaxResults": 5.0}, pb.DescribeProjectsRequest).max_results == 5


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("message", "document", "expected"),
    [
        (
            pb.CreateProjectRequest,
            {"ProjectNam": "x"},
            r"^ProjectNam: unknown member; expected one of ProjectName, ",
        ),
        (pb.CreateProjectRequest, {"project_name": "x"}, r"^project_name: unknown member"),
        (pb.CreateProjectRequest, {"ProjectName": 5}, r"^ProjectName: expected a string, got a number \(5\)"),
        (
            pb.CreateProjectRequest,
            {"Feature": "FACES"},
            r"^Feature: 'FACES' is not a valid CustomizationFeature",
        ),
        (pb.CreateProjectRequest, {"Feature": "UNSPECIFIED"}, r"^Feature: 'UNSPECIFIED' is not a valid"),
        (pb.CreateProjectRequest, {"Tags": ["a=b"]}, r"^Tags: expected a JSON object, got a list"),
        (pb.CreateProjectRequest, {"Tags": {"team": 1}}, r"^Tags\.team: expected a string"),
        (pb.DescribeProjectsRequest, {"MaxResults": "5"}, r"^MaxResults: expected a number, got a string"),
        (pb.DescribeProjectsRequest, {"MaxResults": True}, r"^MaxResults: expected a number, got a boolean"),
        (pb.DescribeProjectsRequest, {"MaxResults": 2.5}, r"^MaxResults: expected an integer, got 2\.5"),
        (pb.DescribeProjectsRequest, {"MaxResults": 2**31}, r"^MaxResults: 2147483648 is out of range"),
        (
            pb.DescribeProjectsRequest,
            {"ProjectNames": "a"},
            r"^ProjectNames: expected a JSON list, got a string",
        ),
        (
            pb.DescribeProjectsRequest,
            {"Features": ["CUSTOM_LABELS", 1]},
            r"^Features\[1\]: expected a string",
        ),
        (
            ds.ListDatasetEntriesRequest,
            {"Labeled": "true"},
            r"^Labeled: expected true or false, got a string",
        ),
        (ds.DatasetChanges, {"GroundTruth": "not base64!"}, r"^GroundTruth: not valid base64"),
        (ds.DatasetChanges, {"GroundTruth": 12}, r"^GroundTruth: expected a base64 string"),
        (
            ds.CreateDatasetRequest,
            {"DatasetSource": {"GroundTruthManifest": {"S3Object": {"Bucket": ["b"]}}}},
            r"^DatasetSource\.GroundTruthManifest\.S3Object\.Bucket: expected a string, got a list",
        ),
        (ds.CreateDatasetRequest, {"DatasetSource": "s3://b/k"}, r"^DatasetSource: expected a JSON object"),
        (
            ds.DistributeDatasetEntriesRequest,
            {"Datasets": [{"Arn": "a"}, {"Arn": "b", "Extra": 1}]},
            r"^Datasets\[1\]\.Extra: unknown member; expected one of Arn$",
        ),
        (
            sv.DetectCustomLabelsRequest,
            {"Image": {"Bytes": "aGk=", "S3Object": {"Bucket": "b", "Name": "k"}}},
            r"^Image\.S3Object: only one of Bytes and S3Object may be given",
        ),
        (
            pb.ProjectPolicy,
            {"CreationTimestamp": "yesterday"},
            r"^CreationTimestamp: expected epoch seconds or an ISO",
        ),
        (
            pb.ProjectPolicy,
            {"CreationTimestamp": 1e300},
            r"^CreationTimestamp: .* out of the timestamp range",
        ),
        (
            pb.ProjectPolicy,
            {"CreationTimestamp": {}},
            r"^CreationTimestamp: expected epoch seconds, got an object",
        ),
        (pb.CreateProjectRequest, ["ProjectName"], r"^request: expected a JSON object, got a list"),
    ],
)
def test_bad_input_is_invalid_parameter_naming_the_member(
    message: type[Message], document: Any, expected: str
) -> None:
    with pytest.raises(InvalidParameter) as info:
        awsjson.from_aws(document, message)
    assert re.search(expected, info.value.message), info.value.message
    assert info.value.aws_name == "InvalidParameterException"


def test_optional_presence_and_proto3_optional_are_not_oneofs() -> None:
    # `optional` fields sit in synthetic oneofs; two of them together are fine.
    request = awsjson.from_aws(
        {"Labeled": False, "HasErrors": False, "SourceRefContains": ""}, ds.ListDatasetEntriesRequest
    )
    assert (
        request.HasField("labeled")
        and request.HasField("has_errors")
        and request.HasField("source_ref_contains")
    )
