"""SigV4 at the edge: what is unsigned, forged, expired or tampered with is refused, and nothing leaks.

The clients are boto3 with the wrong settings, or requests signed with botocore's own SigV4Auth and
then altered, sent over a plain HTTP connection.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore import UNSIGNED
from botocore.config import Config as BotoConfig

from tests.edge.conftest import EdgeUnderTest
from tests.edge.util import raises, send, signed


def test_a_request_signed_by_botocore_is_accepted(edge: EdgeUnderTest) -> None:
    status, body = send(edge, signed(edge, "DescribeProjects", {"MaxResults": 1}))
    assert status == 200 and "ProjectDescriptions" in body


def test_an_unsigned_request_is_refused(make_client: Callable[..., Any]) -> None:
    client = make_client(config=BotoConfig(signature_version=UNSIGNED, retries={"total_max_attempts": 1}))
    error = raises("MissingAuthenticationTokenException", client.describe_projects)
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_an_unknown_access_key_is_refused(make_client: Callable[..., Any]) -> None:
    client = make_client(aws_access_key_id="AKCLNOSUCHKEY0000000")
    raises("UnrecognizedClientException", client.describe_projects)


def test_a_wrong_secret_is_refused_and_nothing_is_created(
    make_client: Callable[..., Any], rekognition: Any, unique: str
) -> None:
    client = make_client(aws_secret_access_key="not-the-secret-" + unique)
    raises("InvalidSignatureException", lambda: client.create_project(ProjectName=f"forged-{unique}"))
    assert rekognition.describe_projects(ProjectNames=[f"forged-{unique}"])["ProjectDescriptions"] == []


def test_a_signature_for_another_region_is_refused(make_client: Callable[..., Any]) -> None:
    error = raises("InvalidSignatureException", make_client(region_name="eu-west-1").describe_projects)
    assert "region" in error.response["Error"]["Message"]


def test_a_signature_for_another_service_is_refused(edge: EdgeUnderTest) -> None:
    request = signed(edge, "DescribeProjects", {})
    request.headers.replace_header(
        "Authorization", request.headers["Authorization"].replace("/rekognition/", "/s3/")
    )
    status, body = send(edge, request)
    assert (status, body["__type"]) == (403, "InvalidSignatureException")


@pytest.mark.parametrize("minutes", [-6, 6])
def test_a_stale_or_future_date_is_refused(edge: EdgeUnderTest, minutes: int) -> None:
    request = signed(edge, "DescribeProjects", {}, at=datetime.now(UTC) + timedelta(minutes=minutes))
    status, body = send(edge, request)
    assert (status, body["__type"]) == (403, "InvalidSignatureException")
    assert body["message"].startswith("Signature expired" if minutes < 0 else "Signature not yet current")


def test_a_date_within_the_skew_is_accepted(edge: EdgeUnderTest) -> None:
    status, _ = send(edge, signed(edge, "DescribeProjects", {}, at=datetime.now(UTC) - timedelta(minutes=4)))
    assert status == 200


def test_a_tampered_body_is_refused_and_nothing_is_created(
    edge: EdgeUnderTest, rekognition: Any, unique: str
) -> None:
    request = signed(edge, "CreateProject", {"ProjectName": f"signed-{unique}"})
    status, body = send(edge, request, body=json.dumps({"ProjectName": f"tampered-{unique}"}).encode())
    assert (status, body["__type"]) == (403, "InvalidSignatureException")
    for name in (f"signed-{unique}", f"tampered-{unique}"):
        assert rekognition.describe_projects(ProjectNames=[name])["ProjectDescriptions"] == []


def test_a_signature_replayed_against_another_operation_is_refused(edge: EdgeUnderTest) -> None:
    request = signed(edge, "DescribeProjects", {})
    request.headers.replace_header("X-Amz-Target", "RekognitionService.DeleteProject")
    status, body = send(edge, request)
    assert (status, body["__type"]) == (403, "InvalidSignatureException")


def test_a_payload_hash_header_that_does_not_match_the_body_is_refused(edge: EdgeUnderTest) -> None:
    request = signed(edge, "DescribeProjects", {})
    # botocore trusts this header instead of hashing the body: the edge must check it.
    request.headers["X-Amz-Content-SHA256"] = "0" * 64
    status, body = send(edge, request)
    assert (status, body["__type"]) == (403, "InvalidSignatureException")


def test_malformed_authorization_headers_are_refused(edge: EdgeUnderTest) -> None:
    for header in (
        "AWS4-HMAC-SHA256 Credential=AKCL0000000000000000",
        "Basic dXNlcjpwYXNz",
        "AWS4-HMAC-SHA256",
    ):
        request = signed(edge, "DescribeProjects", {})
        request.headers.replace_header("Authorization", header)
        status, body = send(edge, request)
        assert status == 403
        assert body["__type"] == "IncompleteSignatureException", header


def test_refusals_leak_no_secret_and_the_log_holds_none(
    edge: EdgeUnderTest, make_client: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-secret-value-0123456789"
    error = raises("InvalidSignatureException", make_client(aws_secret_access_key=wrong).describe_projects)
    request = signed(edge, "DescribeProjects", {}, secret=wrong)
    status, body = send(edge, request)
    assert status == 403
    answered = json.dumps(error.response, default=str) + json.dumps(body)
    # Ours only: botocore's own debug log (the client side) prints the signature it made.
    logged = "\n".join(
        f"{record.getMessage()} {vars(record)}"
        for record in caplog.records
        if record.name.startswith("customlabels")
    )
    assert "request" in logged
    signature = request.headers["Authorization"].rsplit("=", 1)[1]
    for secret in (edge.secret_access_key, wrong, signature):
        assert secret not in answered
        assert secret not in logged
    # The message says what is wrong, not what the signature should have been.
    assert "Canonical" not in answered and "StringToSign" not in answered
