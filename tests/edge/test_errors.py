"""Every error surfaces in boto3 as the ClientError code (and modeled exception class) AWS would give.

First the wire format of every exception name the edge can answer, read back by botocore's own
JSON parser; then each error that the real services raise on their own, provoked through boto3.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.config import Config as BotoConfig
from botocore.parsers import create_parser

from scripts.inprocess import LocalServices
from services.common import errors
from services.common.auth import UnrecognizedClient
from services.common.errors import http_status
from services.edge.app import build_server, error_reply
from tests.edge.conftest import REGION, edge_config
from tests.edge.util import raises

EDGE_ERRORS = {
    "MissingAuthenticationTokenException": 403,
    "IncompleteSignatureException": 403,
    "InvalidSignatureException": 403,
    "UnrecognizedClientException": 403,
    "UnknownOperationException": 400,
    "SerializationException": 400,
    "RequestEntityTooLargeException": 413,
}


@pytest.mark.parametrize(
    "error", sorted({cls for cls in errors.BY_AWS_NAME.values()}, key=lambda cls: cls.aws_name), ids=str
)
def test_each_service_error_reads_back_in_botocore_as_its_aws_exception(
    error: type[errors.ServiceError],
) -> None:
    client = boto3.session.Session().client(
        "rekognition", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="y"
    )
    model = botocore.session.get_session().get_service_model("rekognition")
    modeled = {shape.name for shape in model.error_shapes}
    reply = error_reply(error.aws_name, "something went wrong", http_status(error("x")), "DescribeProjects")
    parsed = create_parser("json").parse(
        {
            "status_code": reply.status,
            "headers": {"content-type": reply.content_type, **dict(reply.headers)},
            "body": reply.body,
        },
        model.operation_model("DescribeProjects").output_shape,
    )
    assert parsed["Error"] == {"Code": error.aws_name, "Message": "something went wrong"}
    assert error.aws_name in modeled
    assert client.exceptions.from_code(error.aws_name).__name__ == error.aws_name
    expected = {"InternalServerError": 500, "ThrottlingException": 503}.get(error.aws_name, 400)
    assert reply.status == expected


@pytest.mark.parametrize("name", sorted(EDGE_ERRORS))
def test_the_edges_own_errors_read_back_in_botocore(name: str) -> None:
    reply = error_reply(name, "refused", EDGE_ERRORS[name])
    parsed = create_parser("json").parse(
        {"status_code": reply.status, "headers": dict(reply.headers), "body": reply.body},
        botocore.session.get_session()
        .get_service_model("rekognition")
        .operation_model("CreateProject")
        .output_shape,
    )
    assert parsed["Error"]["Code"] == name
    assert parsed["ResponseMetadata"]["HTTPStatusCode"] == EDGE_ERRORS[name]


def test_the_grpc_refusal_is_not_a_service_error_a_caller_could_see() -> None:
    # An edge with a wrong token is the edge's fault: its callers get InternalServerError, not this.
    assert UnrecognizedClient.aws_name not in errors.BY_AWS_NAME


@pytest.fixture(scope="module")
def project(rekognition: Any) -> str:
    """A project of this module."""
    return str(rekognition.create_project(ProjectName=f"errors-{uuid.uuid4().hex[:10]}")["ProjectArn"])


def test_unknown_resources_are_not_found(rekognition: Any, project: str) -> None:
    raises(
        "ResourceNotFoundException",
        lambda: rekognition.describe_dataset(DatasetArn=f"{project.rsplit('/', 1)[0]}/dataset/train/1"),
    )
    raises("ResourceNotFoundException", lambda: rekognition.delete_project(ProjectArn=project + "0"))
    error = raises(
        "ResourceNotFoundException", lambda: rekognition.list_tags_for_resource(ResourceArn=project + "9")
    )
    assert isinstance(error, rekognition.exceptions.ResourceNotFoundException)


def test_invalid_parameters_and_tokens(rekognition: Any) -> None:
    # botocore checks types and minimum lengths itself; patterns and maximums are the service's.
    raises("InvalidParameterException", lambda: rekognition.create_project(ProjectName="no spaces allowed"))
    raises("InvalidParameterException", lambda: rekognition.describe_projects(MaxResults=1000))
    raises("InvalidPaginationTokenException", lambda: rekognition.describe_projects(NextToken="forged"))


def test_a_name_in_use_and_a_dataset_that_exists(rekognition: Any, project: str) -> None:
    name = project.split("/")[-2]
    raises("ResourceInUseException", lambda: rekognition.create_project(ProjectName=name))
    rekognition.create_dataset(ProjectArn=project, DatasetType="TRAIN")
    raises(
        "ResourceAlreadyExistsException",
        lambda: rekognition.create_dataset(ProjectArn=project, DatasetType="TRAIN"),
    )


def test_a_manifest_that_cannot_be_read(rekognition: Any, project: str) -> None:
    source = {"GroundTruthManifest": {"S3Object": {"Bucket": f"missing-{uuid.uuid4().hex[:8]}", "Name": "m"}}}
    raises(
        "InvalidS3ObjectException",
        lambda: rekognition.create_dataset(ProjectArn=project, DatasetType="TEST", DatasetSource=source),
    )


def test_project_policy_errors(rekognition: Any, project: str) -> None:
    raises(
        "MalformedPolicyDocumentException",
        lambda: rekognition.put_project_policy(
            ProjectArn=project, PolicyName="p", PolicyDocument="{not json"
        ),
    )
    document = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::111111111111:root"},
                    "Action": "rekognition:CopyProjectVersion",
                    "Resource": "*",
                }
            ],
        }
    )
    rekognition.put_project_policy(ProjectArn=project, PolicyName="copy", PolicyDocument=document)
    raises(
        "ResourceAlreadyExistsException",
        lambda: rekognition.put_project_policy(
            ProjectArn=project, PolicyName="copy", PolicyDocument=document
        ),
    )
    raises(
        "InvalidPolicyRevisionIdException",
        lambda: rekognition.delete_project_policy(
            ProjectArn=project, PolicyName="copy", PolicyRevisionId="0" * 32
        ),
    )


def test_quotas(rekognition: Any, project: str) -> None:
    rekognition.tag_resource(ResourceArn=project, Tags={f"k{i}": "v" for i in range(200)})
    raises(
        "ServiceQuotaExceededException",
        lambda: rekognition.tag_resource(ResourceArn=project, Tags={"one-more": "v"}),
    )
    dataset = rekognition.describe_projects(ProjectNames=[project.split("/")[-2]])["ProjectDescriptions"][0][
        "Datasets"
    ][0]["DatasetArn"]
    oversized = b"x" * (5 * 1024 * 1024 + 1)
    raises(
        "LimitExceededException",
        lambda: rekognition.update_dataset_entries(DatasetArn=dataset, Changes={"GroundTruth": oversized}),
    )
    assert len(base64.b64encode(oversized)) < 8 * 1024 * 1024  # within the edge's own request limit


@pytest.fixture
def lone_client() -> Iterator[Callable[..., Any]]:
    """`lone_client(stack, **config)`: an edge with its own configuration, and a boto3 client of it."""
    started = []

    def make(stack: LocalServices, **overrides: str) -> Any:
        config = edge_config(stack, **overrides)
        running = build_server(config)
        started.append(running)
        ((key_id, secret),) = config.credentials.items()
        return boto3.session.Session().client(
            "rekognition",
            endpoint_url=f"http://127.0.0.1:{running.port}",
            region_name=REGION,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=BotoConfig(retries={"total_max_attempts": 1}),
        )

    yield make
    for running in started:
        running.stop(1)


def test_a_service_that_is_down_is_throttling(stack: LocalServices, lone_client: Callable[..., Any]) -> None:
    from scripts.embedded import free_port

    client = lone_client(stack, CUSTOMLABELS_PROJECT_ADDR=f"127.0.0.1:{free_port()}")
    error = raises("ThrottlingException", client.describe_projects)
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 503


def test_an_edge_the_services_refuse_answers_internal_server_error(
    stack: LocalServices, lone_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUSTOMLABELS_API_TOKEN", secrets.token_urlsafe(16))  # not the services' token
    client = lone_client(stack)
    error = raises("InternalServerError", client.describe_projects)
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert "token" not in error.response["Error"]["Message"].lower()
