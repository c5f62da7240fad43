"""Channels and calls to other services of ours.

`call` runs one RPC and turns a peer's rich error back into the same ServiceError, so an error
raised three services away reaches the user with its original AWS exception name. The request
id of the call being served travels along in metadata, so logs of every hop can be joined.
Channels send the API token and present the client certificate that services/common/auth.py reads.

A target with a scheme balances its calls over every address it resolves to (round_robin): in
Kubernetes a peer is `dns:///<svc>-headless.<ns>.svc.cluster.local:50051`, whose DNS name lists every
ready pod, and servers end connections after a few minutes (services/common/server.py) so the channel
resolves again and reaches new replicas; `ipv4:10.0.0.1:50051,10.0.0.2:50051` lists addresses by hand.
A plain `host:port` (one peer: the embedded stack, a ClusterIP Service) keeps gRPC's pick_first, which
reconnects at the first call after its peer restarted, where round_robin would fail calls fast while
its only address waits out a reconnect backoff.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from services.common import errors, logs
from services.common.auth import GrpcSecurity
from services.common.interceptors import REQUEST_ID_KEY
from services.common.server import MAX_MESSAGE_BYTES

Resp = TypeVar("Resp")

DEFAULT_TIMEOUT_S = 30.0
# round_robin: one subchannel per resolved address, calls spread over the ready ones. A service config
# a DNS TXT record might carry is ignored, so this one holds.
SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
BALANCED_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.service_config", SERVICE_CONFIG),
    ("grpc.service_config_disable_resolution", 1),
]
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # A peer that vanished without closing (a node lost) is found within ~80 s, not at the OS's hours.
    ("grpc.keepalive_time_ms", 60 * 1000),
    ("grpc.keepalive_timeout_ms", 20 * 1000),
    ("grpc.keepalive_permit_without_calls", 0),
    # Reconnect quickly after a replica went away (gRPC's default backoff grows to 120 s).
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 10 * 1000),
]


def channel(addr: str, security: GrpcSecurity | None = None) -> grpc.Channel:
    """Opens a channel to a peer service at `addr`, a host:port or any gRPC target such as
    `dns:///host:port` (connects lazily, reconnects by itself; a target with a scheme balances its
    calls over every address, see the module docstring).

    `security` (default: read from the environment, services/common/auth.py) decides the token
    sent with every call and the client certificate.
    """
    security = GrpcSecurity.from_env() if security is None else security
    options = [*CHANNEL_OPTIONS, *(BALANCED_OPTIONS if balanced(addr) else [])]
    return security.open_channel(addr, options=options)


def balanced(addr: str) -> bool:
    """Whether a target gets round_robin: one with a resolver scheme (`dns:`, `ipv4:`, `ipv6:`, `unix:`)."""
    return "://" in addr or addr.startswith(("dns:", "ipv4:", "ipv6:", "unix:"))


def metadata() -> tuple[tuple[str, str], ...] | None:
    """The metadata a call to a peer carries: the request id of the call being served, if any."""
    return ((REQUEST_ID_KEY, logs.request_id.get()),) if logs.request_id.get() else None


def call(method: Callable[..., Resp], request: object, timeout: float = DEFAULT_TIMEOUT_S) -> Resp:
    """Calls `method(request)` with the current request id; peer errors come back as ServiceError."""
    try:
        return method(request, timeout=timeout, metadata=metadata())
    except grpc.RpcError as exc:
        raise errors.from_rpc_error(exc) from None
