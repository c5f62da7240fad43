"""The console's clients of the four services: the same channels, operation table and AWS JSON
mapping as the CLI and the edge (services/cli/operations.py, services/common/awsjson.py).

`invoke` runs one public operation from an AWS JSON document and answers AWS JSON, so the browser
speaks exactly the Rekognition shapes boto3 speaks; `call` runs an RPC by name with a protobuf
request, for the console's own composite operations (saving labels, reading an evaluation).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
from google.protobuf.message import Message

from services.cli.operations import SERVICES, Operation, operations, public_operations
from services.common import awsjson, clients, errors
from services.common.auth import GrpcSecurity


class UnknownOperation(errors.ServiceError):
    """The browser named an operation the console does not serve."""

    code = grpc.StatusCode.UNIMPLEMENTED
    aws_name = "UnknownOperationException"


class Backends:
    """One channel per service, opened once; every call carries the API token and the request id."""

    def __init__(
        self, service_addrs: dict[str, str], security: GrpcSecurity | None = None, timeout_s: float = 60.0
    ) -> None:
        self.timeout_s = timeout_s
        self.public = public_operations()
        self._all = {op.name: op for op in operations()}
        self._channels = {s.key: clients.channel(service_addrs[s.key], security) for s in SERVICES}
        self._stubs = {s.key: s.stub(self._channels[s.key]) for s in SERVICES}

    def close(self) -> None:
        """Closes the channels."""
        for channel in self._channels.values():
            channel.close()

    def operation(self, name: str) -> Operation:
        """A public operation by AWS name; UnknownOperation otherwise."""
        op = self.public.get(name)
        if op is None:
            raise UnknownOperation(f"Unknown operation {name!r}")
        return op

    def invoke(self, name: str, document: Any) -> dict[str, Any]:
        """Runs a public operation on an AWS JSON request; returns the AWS JSON response."""
        op = self.operation(name)
        if not isinstance(document, dict):
            raise errors.InvalidParameter("The request body must be a JSON object")
        request = awsjson.from_aws(document, op.request_class)
        return awsjson.to_aws(self.call(name, request))

    def call(self, name: str, request: Message, timeout_s: float | None = None) -> Any:
        """Runs any unary RPC by name (public or internal); peer errors come back as ServiceError."""
        op = self._all[name]
        method = getattr(self._stubs[op.service.key], name)
        return clients.call(method, request, timeout=timeout_s or self.timeout_s)

    def stream(self, name: str, request: Any, timeout_s: float | None = None) -> Iterator[Any]:
        """Calls a client- or server-streaming RPC by name; errors are raised as ServiceError.

        For a client-streaming RPC `request` is an iterator of messages and the single response is
        yielded; for a server-streaming one each response message is.
        """
        service = next(s for s in SERVICES if name in s.descriptor.methods_by_name)
        method = getattr(self._stubs[service.key], name)
        descriptor = service.descriptor.methods_by_name[name]
        try:
            if descriptor.server_streaming:
                yield from method(request, timeout=timeout_s or self.timeout_s, metadata=clients.metadata())
            else:
                yield method(request, timeout=timeout_s or self.timeout_s, metadata=clients.metadata())
        except grpc.RpcError as exc:
            raise errors.from_rpc_error(exc) from None
