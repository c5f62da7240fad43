"""Authentication between our processes: a bearer token on every RPC, and optional mutual TLS.

One `GrpcSecurity`, read from the environment, says both what a server demands and what a client
presents, since every process of a deployment shares the same settings:

- `CUSTOMLABELS_API_TOKEN`: the shared token. Servers refuse every call without
  `authorization: Bearer <token>` (UNAUTHENTICATED, AWS name UnrecognizedClientException);
  clients send it. Without a token the gRPC API is open: the embedded stack and the Kubernetes
  manifests always configure one, so only a bare `python -m services.<name>` runs open (it says so
  in its log).
- `CUSTOMLABELS_TLS_CERT_FILE`, `CUSTOMLABELS_TLS_KEY_FILE`, `CUSTOMLABELS_TLS_CA_FILE` (all three
  or none): mutual TLS. A server listens with its certificate and requires a client certificate
  signed by the CA; a client presents the same certificate and checks the server's against the CA.
  `CUSTOMLABELS_TLS_SERVER_NAME` overrides the name a client expects in the server's certificate.

Health checks and reflection stay open (no token), so probes and grpcurl work; with mutual TLS they
still need a certificate, since TLS is below every method.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from services.common import errors
from services.common.config import ConfigError

AUTHORIZATION_KEY = "authorization"
BEARER = "Bearer "
OPEN_METHOD_PREFIXES = ("/grpc.health.", "/grpc.reflection.")
_TLS_KEYS = ("CUSTOMLABELS_TLS_CERT_FILE", "CUSTOMLABELS_TLS_KEY_FILE", "CUSTOMLABELS_TLS_CA_FILE")


class UnrecognizedClient(errors.ServiceError):
    """The call carries no token, or not the configured one."""

    code = grpc.StatusCode.UNAUTHENTICATED
    aws_name = "UnrecognizedClientException"


@dataclass(frozen=True)
class GrpcSecurity:
    """What a server demands and a client presents: a bearer token and/or mutual TLS material (PEM)."""

    token: str | None = field(default=None, repr=False)
    cert: bytes | None = None
    key: bytes | None = field(default=None, repr=False)
    ca: bytes | None = None
    server_name: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GrpcSecurity:
        """Reads the settings (see the module docstring); ConfigError on a partial or unreadable TLS set."""
        env = os.environ if env is None else env
        paths = [env.get(key, "").strip() for key in _TLS_KEYS]
        if any(paths) and not all(paths):
            raise ConfigError(f"mutual TLS needs all of {', '.join(_TLS_KEYS)}")
        cert = key = ca = None
        if all(paths):
            try:
                cert, key, ca = (Path(path).read_bytes() for path in paths)
            except OSError as exc:
                raise ConfigError(f"cannot read TLS file {exc.filename}: {exc.strerror}") from None
        return cls(
            token=env.get("CUSTOMLABELS_API_TOKEN", "").strip() or None,
            cert=cert,
            key=key,
            ca=ca,
            server_name=env.get("CUSTOMLABELS_TLS_SERVER_NAME", "").strip() or None,
        )

    @property
    def tls(self) -> bool:
        """Whether mutual TLS is configured."""
        return self.cert is not None

    def server_credentials(self) -> grpc.ServerCredentials | None:
        """TLS credentials that require a client certificate signed by the CA; None without TLS."""
        if not self.tls:
            return None
        assert self.key is not None and self.cert is not None
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)], root_certificates=self.ca, require_client_auth=True
        )

    def server_interceptors(self) -> list[grpc.ServerInterceptor]:
        """The token check, when a token is configured."""
        return [TokenInterceptor(self.token)] if self.token else []

    def open_channel(self, addr: str, options: list[tuple[str, Any]]) -> grpc.Channel:
        """A channel to `addr` that presents the client certificate and sends the token, as configured."""
        if self.tls:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
            )
            if self.server_name:
                options = [*options, ("grpc.ssl_target_name_override", self.server_name)]
            channel = grpc.secure_channel(addr, credentials, options=options)
        else:
            channel = grpc.insecure_channel(addr, options=options)
        if self.token:
            channel = grpc.intercept_channel(channel, BearerToken(self.token))
        return channel


def bearer_token(metadata: Any) -> str | None:
    """Returns the token of an `authorization: Bearer <token>` entry of call metadata, if any."""
    for key, value in metadata or ():
        if key == AUTHORIZATION_KEY and isinstance(value, str) and value.startswith(BEARER):
            return value[len(BEARER) :]
    return None


class TokenInterceptor(grpc.ServerInterceptor):
    """Refuses every call but health and reflection whose bearer token is not the configured one.

    It goes inside ServiceInterceptor, which turns the refusal into the rich UNAUTHENTICATED status.
    """

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    def _accepts(self, metadata: Any) -> bool:
        given = bearer_token(metadata)
        # compare_digest: the time taken tells nothing about how much of a guess was right.
        return given is not None and hmac.compare_digest(given.encode(), self._token)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_METHOD_PREFIXES):
            return handler
        if self._accepts(handler_call_details.invocation_metadata):  # type: ignore[attr-defined]
            return handler

        def refuse(request_or_iterator: Any, context: grpc.ServicerContext) -> Any:
            # Raised inside ServiceInterceptor, which logs the refusal with the request id.
            raise UnrecognizedClient("the request carries no valid API token")

        # The refusing handler keeps the kind (unary/stream) and the (de)serializers of the real one.
        kinds = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
        return handler._replace(**{kind: refuse for kind in kinds if getattr(handler, kind)})


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, details: grpc.ClientCallDetails, metadata: list[tuple[str, str]]) -> None:
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = metadata
        self.credentials = details.credentials
        self.wait_for_ready = getattr(details, "wait_for_ready", None)
        self.compression = getattr(details, "compression", None)


class BearerToken(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds `authorization: Bearer <token>` to every call of a channel."""

    def __init__(self, token: str) -> None:
        self._entry = (AUTHORIZATION_KEY, BEARER + token)

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return _CallDetails(details, [*(details.metadata or ()), self._entry])

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request_iterator)
