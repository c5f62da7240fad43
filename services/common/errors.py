"""The error hierarchy: each error carries its gRPC code and its AWS exception name.

The error interceptor turns an `ServiceError` into a `google.rpc.Status` whose `ErrorInfo.reason`
is the AWS exception name, so the HTTP edge (and any gRPC client) can answer exactly as AWS would.
`from_rpc_error` is the inverse, used by clients of other services to re-raise what a peer said.
"""

from __future__ import annotations

from typing import ClassVar

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "customlabels.rekognition"


class ServiceError(Exception):
    """Base of every error a service reports to its caller on purpose."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    aws_name: ClassVar[str] = "InternalServerError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_status(self) -> grpc.Status:
        """Returns the rich gRPC status (code, message, ErrorInfo with the AWS name)."""
        info = error_details_pb2.ErrorInfo(reason=self.aws_name, domain=ERROR_DOMAIN)
        detail = any_pb2.Any()
        detail.Pack(info)
        proto = status_pb2.Status(code=self.code.value[0], message=self.message, details=[detail])
        return rpc_status.to_status(proto)


class InternalServerError(ServiceError):
    """A service-side failure; the caller may retry."""


class AccessDenied(ServiceError):
    """The caller is not allowed to do this."""

    code = grpc.StatusCode.PERMISSION_DENIED
    aws_name = "AccessDeniedException"


class Throttling(ServiceError):
    """The service is temporarily unable to process the request."""

    code = grpc.StatusCode.UNAVAILABLE
    aws_name = "ThrottlingException"


class ProvisionedThroughputExceeded(ServiceError):
    """The request rate is above what was provisioned."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    aws_name = "ProvisionedThroughputExceededException"


class InvalidParameter(ServiceError):
    """An input violates a constraint."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    aws_name = "InvalidParameterException"


class InvalidPaginationToken(ServiceError):
    """A NextToken is forged, expired or belongs to another request."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    aws_name = "InvalidPaginationTokenException"


class InvalidS3Object(ServiceError):
    """A referenced object cannot be read."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    aws_name = "InvalidS3ObjectException"


class InvalidImageFormat(ServiceError):
    """An image is not a PNG or JPEG, or cannot be decoded."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    aws_name = "InvalidImageFormatException"


class ImageTooLarge(ServiceError):
    """An image exceeds a size limit."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    aws_name = "ImageTooLargeException"


class LimitExceeded(ServiceError):
    """A service limit was exceeded."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    aws_name = "LimitExceededException"


class ServiceQuotaExceeded(ServiceError):
    """A quota was exceeded."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    aws_name = "ServiceQuotaExceededException"


class NotFound(ServiceError):
    """A referenced resource does not exist."""

    code = grpc.StatusCode.NOT_FOUND
    aws_name = "ResourceNotFoundException"


class AlreadyExists(ServiceError):
    """A resource with that identity already exists."""

    code = grpc.StatusCode.ALREADY_EXISTS
    aws_name = "ResourceAlreadyExistsException"


class InUse(ServiceError):
    """A resource is busy, or in a state that forbids the call."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    aws_name = "ResourceInUseException"


class NotReady(ServiceError):
    """A resource is not ready (e.g. a model that is not running)."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    aws_name = "ResourceNotReadyException"


class Conflict(ServiceError):
    """A change was made from a stale copy: someone else changed the resource since it was read."""

    code = grpc.StatusCode.ABORTED
    aws_name = "ConflictException"


class InvalidPolicyRevisionId(ServiceError):
    """A project-policy revision id does not match the current one."""

    code = grpc.StatusCode.ABORTED
    aws_name = "InvalidPolicyRevisionIdException"


class MalformedPolicyDocument(ServiceError):
    """A project-policy document is not a valid policy."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    aws_name = "MalformedPolicyDocumentException"


class PeerUnimplemented(InternalServerError):
    """A peer service answered UNIMPLEMENTED: the operation belongs to a later release."""


def _all_subclasses(cls: type[ServiceError]) -> list[type[ServiceError]]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


BY_AWS_NAME: dict[str, type[ServiceError]] = {
    c.aws_name: c for c in [ServiceError, *_all_subclasses(ServiceError)] if c is not ServiceError
}
BY_AWS_NAME["InternalServerError"] = InternalServerError


def aws_name_of(error: grpc.RpcError) -> str | None:
    """Returns the AWS exception name carried in an RPC error's details, if any."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return None


def from_rpc_error(error: grpc.RpcError) -> ServiceError:
    """Rebuilds the ServiceError a peer service raised, so it passes through to our own caller.

    A peer that is down, or that failed without our error details, becomes InternalServerError
    (AWS's retryable fault) rather than leaking transport details to the user.
    """
    name = aws_name_of(error)
    details = error.details() if hasattr(error, "details") else None  # type: ignore[attr-defined]
    cls = BY_AWS_NAME.get(name or "")
    if cls is not None:
        return cls(details or name or "")
    code = error.code() if hasattr(error, "code") else None  # type: ignore[attr-defined]
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return PeerUnimplemented(details or "operation not implemented by a dependent service")
    if code == grpc.StatusCode.UNAVAILABLE:
        return Throttling("a dependent service is unavailable; retry later")
    return InternalServerError("a dependent service failed; retry later")


def http_status(error: ServiceError) -> int:
    """The HTTP status AWS answers an exception with: 500/503 for the retryable faults, else 400."""
    if isinstance(error, Throttling):
        return 503
    if error.aws_name == InternalServerError.aws_name:
        return 500
    return 400
