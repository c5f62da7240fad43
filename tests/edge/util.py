"""Helpers of the edge tests: requests signed by botocore's own SigV4Auth (then sent as they are or
altered), unsigned requests, and boto3 errors."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.edge.conftest import REGION, EdgeUnderTest


def signed(
    edge: EdgeUnderTest,
    operation: str,
    body: dict[str, Any] | bytes,
    *,
    secret: str | None = None,
    region: str = REGION,
    at: datetime | None = None,
) -> AWSRequest:
    """A request signed by botocore's SigV4Auth exactly as boto3 signs it (optionally at another time).

    `body` is the JSON document, or the raw bytes to sign and send.
    """
    request = AWSRequest(
        method="POST",
        url=edge.endpoint + "/",
        data=body if isinstance(body, bytes) else json.dumps(body).encode(),
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"RekognitionService.{operation}",
        },
    )
    signer = SigV4Auth(
        Credentials(edge.access_key_id, secret or edge.secret_access_key), "rekognition", region
    )
    moment = at or datetime.now(UTC)
    request.context["timestamp"] = moment.strftime("%Y%m%dT%H%M%SZ")
    signer._modify_request_before_signing(request)  # sets X-Amz-Date from the context's timestamp
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    scope = signer.credential_scope(request)
    headers = signer.signed_headers(signer.headers_to_sign(request))
    request.headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={edge.access_key_id}/{scope}, SignedHeaders={headers}, Signature={signature}"
    )
    return request


def send(edge: EdgeUnderTest, request: AWSRequest, body: bytes | None = None) -> tuple[int, dict[str, Any]]:
    """Sends the request (with `body` instead of the signed one, when given); returns status and JSON."""
    url = urlsplit(edge.endpoint)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        payload = request.body if body is None else body
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        connection.request("POST", "/", body=payload, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def raw(edge: EdgeUnderTest, method: str, path: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """An unsigned HTTP request; returns status, headers and body."""
    url = urlsplit(edge.endpoint)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def raises(code: str, call: Callable[[], Any]) -> ClientError:
    """Runs a boto3 call that must fail with `code`; returns the error."""
    with pytest.raises(ClientError) as raised:
        call()
    assert raised.value.response["Error"]["Code"] == code, raised.value.response["Error"]
    return raised.value
