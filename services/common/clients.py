"""Channels and calls to other services of ours.

`call` runs one RPC and turns a peer's rich error back into the same ServiceError, so an error
raised three services away reaches the user with its original AWS exception name. The request
id of the call being served travels along in metadata, so logs of every hop can be joined.
Channels send the API token and present the client certificate that services/common/auth.py reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import grpc

from services.common import errors, logs
from services.common.auth import GrpcSecurity
from services.common.interceptors import REQUEST_ID_KEY
from services.common.server import MAX_MESSAGE_BYTES

Resp = TypeVar("Resp")

DEFAULT_TIMEOUT_S = 30.0


def channel(addr: str, security: GrpcSecurity | None = None) -> grpc.Channel:
    """Opens a channel to a peer service at host:port (connects lazily, reconnects by itself).

    `security` (default: read from the environment, services/common/auth.py) decides the token
    sent with every call and the client certificate.
    """
    security = GrpcSecurity.from_env() if security is None else security
    return security.open_channel(
        addr,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )


def metadata() -> tuple[tuple[str, str], ...] | None:
    """The metadata a call to a peer carries: the request id of the call being served, if any."""
    return ((REQUEST_ID_KEY, logs.request_id.get()),) if logs.request_id.get() else None


def call(method: Callable[..., Resp], request: object, timeout: float = DEFAULT_TIMEOUT_S) -> Resp:
    """Calls `method(request)` with the current request id; peer errors come back as ServiceError."""
    try:
        return method(request, timeout=timeout, metadata=metadata())
    except grpc.RpcError as exc:
        raise errors.from_rpc_error(exc) from None
