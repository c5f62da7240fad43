"""AWS Signature Version 4 verification of incoming requests, with botocore's own signing code.

The request is rebuilt as a botocore `AWSRequest` holding exactly the headers the client says it
signed, and `SigV4Auth` computes the signature the client must have sent with the secret of the
claimed access key; the two are compared in constant time. Checks before that (all answered with
the AWS exception names): an Authorization header at all (MissingAuthenticationTokenException), its
shape (IncompleteSignatureException), a known access key (UnrecognizedClientException), the
credential scope's date, region and service, the clock skew, a payload hash header that matches
the body (InvalidSignatureException). Host and X-Amz-Target must be signed, so a captured request
cannot be replayed against another operation.

Messages never contain a secret, the expected signature or the canonical request.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "rekognition"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
REQUIRED_SIGNED_HEADERS = ("host", "x-amz-date", "x-amz-target")


class AuthError(Exception):
    """A request that is not authenticated: the AWS exception name, HTTP status and message."""

    def __init__(self, aws_name: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.aws_name = aws_name
        self.message = message
        self.status = status


def _invalid(message: str) -> AuthError:
    return AuthError("InvalidSignatureException", message)


def _incomplete(message: str) -> AuthError:
    return AuthError("IncompleteSignatureException", message)


@dataclass(frozen=True)
class Authorization:
    """The parts of an `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`."""

    access_key_id: str
    date: str
    region: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str

    @classmethod
    def parse(cls, header: str) -> Authorization:
        """Splits the header; IncompleteSignatureException when a part is missing or malformed."""
        algorithm, _, rest = header.strip().partition(" ")
        if algorithm != ALGORITHM:
            raise _incomplete(f"Unsupported signature algorithm; only {ALGORITHM} is accepted.")
        parts: dict[str, str] = {}
        for item in rest.split(","):
            name, sep, value = item.strip().partition("=")
            if sep:
                parts[name] = value.strip()
        missing = [name for name in ("Credential", "SignedHeaders", "Signature") if not parts.get(name)]
        if missing:
            raise _incomplete(f"Authorization header requires {', '.join(missing)}.")
        scope = parts["Credential"].split("/")
        if len(scope) != 5 or not all(scope):
            raise _incomplete(
                "Credential must have the form <key id>/<yyyymmdd>/<region>/<service>/aws4_request."
            )
        return cls(
            access_key_id=scope[0],
            date=scope[1],
            region=scope[2],
            service=scope[3],
            terminator=scope[4],
            signed_headers=tuple(parts["SignedHeaders"].split(";")),
            signature=parts["Signature"],
        )


class Verifier:
    """Verifies SigV4 signatures for one region against a fixed set of access keys."""

    def __init__(
        self, credentials: Mapping[str, str], region: str, max_skew_s: float = 300.0, service: str = SERVICE
    ) -> None:
        self._credentials = dict(credentials)
        self.region = region
        self.service = service
        self.max_skew = timedelta(seconds=max_skew_s)

    def verify(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        now: datetime | None = None,
    ) -> str:
        """Returns the access key id that signed the request; raises AuthError otherwise.

        `path` is the request target as received (path and query); `headers` maps lower-case
        names to values (repeated headers joined by commas).
        """
        header = headers.get("authorization")
        if not header:
            raise AuthError("MissingAuthenticationTokenException", "Missing Authentication Token")
        auth = Authorization.parse(header)
        secret = self._credentials.get(auth.access_key_id)
        if secret is None:
            raise AuthError(
                "UnrecognizedClientException", "The security token included in the request is invalid."
            )
        amz_date = headers.get("x-amz-date", "")
        try:
            signed_at = datetime.strptime(amz_date, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            raise _incomplete(
                "Authorization header requires an X-Amz-Date header (yyyymmddThhmmssZ)."
            ) from None
        self._check_scope(auth, amz_date)
        self._check_clock(signed_at, now or datetime.now(UTC))
        for name in REQUIRED_SIGNED_HEADERS:
            if name not in auth.signed_headers:
                raise _invalid(f"The {name} header must be signed.")
        missing = [name for name in auth.signed_headers if name not in headers]
        if missing:
            raise _invalid(f"Signed headers are missing from the request: {', '.join(missing)}.")
        claimed_hash = headers.get("x-amz-content-sha256")
        # botocore signs a payload hash header as given, without hashing the body: check it here.
        if claimed_hash is not None and not hmac.compare_digest(
            claimed_hash, hashlib.sha256(body).hexdigest()
        ):
            raise _invalid("The X-Amz-Content-Sha256 header does not match the request body.")

        request = AWSRequest(
            method=method,
            url=f"http://{headers['host']}{path}",
            headers={name: headers[name] for name in auth.signed_headers},
            data=body,
        )
        request.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(auth.access_key_id, secret), self.service, self.region)
        if signer.signed_headers(signer.headers_to_sign(request)) != ";".join(sorted(auth.signed_headers)):
            # A header botocore never signs (User-Agent, ...) is in the list: we cannot verify it.
            raise _invalid("SignedHeaders lists a header that cannot be signed.")
        expected = signer.signature(
            signer.string_to_sign(request, signer.canonical_request(request)), request
        )
        if not hmac.compare_digest(expected.encode(), auth.signature.encode()):
            raise _invalid(
                "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method."
            )
        return auth.access_key_id

    def _check_scope(self, auth: Authorization, amz_date: str) -> None:
        if auth.date != amz_date[:8]:
            raise _invalid(
                f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                f"'{auth.date}' != '{amz_date[:8]}'."
            )
        if auth.region != self.region:
            raise _invalid(f"Credential should be scoped to a valid region, not '{auth.region}'.")
        if auth.service != self.service:
            raise _invalid(f"Credential should be scoped to correct service: '{self.service}'.")
        if auth.terminator != "aws4_request":
            raise _invalid("Credential should be scoped with a valid terminator: 'aws4_request'.")

    def _check_clock(self, signed_at: datetime, now: datetime) -> None:
        stamp = signed_at.strftime(AMZ_DATE_FORMAT)
        if signed_at < now - self.max_skew:
            earliest = (now - self.max_skew).strftime(AMZ_DATE_FORMAT)
            raise _invalid(f"Signature expired: {stamp} is now earlier than {earliest}.")
        if signed_at > now + self.max_skew:
            latest = (now + self.max_skew).strftime(AMZ_DATE_FORMAT)
            raise _invalid(f"Signature not yet current: {stamp} is still later than {latest}.")
