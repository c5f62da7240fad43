"""Server bootstrap shared by every service.

`create_server` builds a sync gRPC server with our interceptors, health and reflection, bound to
a port (0 in tests); `serve` runs it until SIGTERM/SIGINT and shuts down gracefully: health goes
NOT_SERVING first so load balancers stop sending, then the server takes no new call and in-flight
calls get `grace` seconds (CUSTOMLABELS_SHUTDOWN_GRACE_S).

Clients balance calls over every replica themselves (services/common/clients.py: round_robin over
the addresses a headless Service's DNS name resolves to). A client re-resolves only when a connection
ends, so the server ends each connection after MAX_CONNECTION_AGE_MS (with a grace for the calls on
it): replicas added by scaling get their share within minutes.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common.auth import GrpcSecurity
from services.common.interceptors import ServiceInterceptor

log = logging.getLogger("customlabels.server")

# Images travel in requests (DetectCustomLabels: 4 MB raw; UpdateDatasetEntries: 5 MB), so the
# default 4 MiB gRPC cap is too small; 16 MiB leaves room for protobuf overhead.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Connections live at most 5 minutes (gRPC adds ±10 % jitter), then get a GOAWAY; calls on them have
# 60 s more to finish (longer than any deadline of ours but training uploads').
MAX_CONNECTION_AGE_MS = 5 * 60 * 1000
MAX_CONNECTION_AGE_GRACE_MS = 60 * 1000
# Client keepalive pings (clients.py) come at most every 30 s; the server accepts them, even without
# calls in flight, instead of answering "too many pings" with a GOAWAY.
MIN_PING_INTERVAL_MS = 30 * 1000
SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.so_reuseport", 0),
    ("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_MS),
    ("grpc.max_connection_age_grace_ms", MAX_CONNECTION_AGE_GRACE_MS),
    ("grpc.keepalive_time_ms", 60 * 1000),
    ("grpc.keepalive_timeout_ms", 20 * 1000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", MIN_PING_INTERVAL_MS),
    ("grpc.http2.max_ping_strikes", 0),
]


@dataclass
class RunningServer:
    """A started server with what is needed to stop it cleanly."""

    server: grpc.Server
    port: int
    health: health.HealthServicer
    service_names: Sequence[str]
    on_stop: list[Callable[[], None]] = field(default_factory=list)

    def set_serving(self, serving: bool) -> None:
        """Flips the health status of the server and of each of its services."""
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self.service_names):
            self.health.set(name, status)

    def stop(self, grace: float) -> None:
        """Health NOT_SERVING, then stops taking calls and waits up to `grace` seconds for in-flight ones,
        then releases resources."""
        self.set_serving(False)
        _end_health_watches(self.health)
        # New calls are refused from here on; clients' round_robin moves them to the other replicas.
        self.server.stop(grace).wait()
        for callback in reversed(self.on_stop):
            try:
                callback()
            except Exception:  # noqa: BLE001 - shutdown must go on
                log.exception("error during shutdown")


def _end_health_watches(servicer: health.HealthServicer) -> None:
    """Ends the health Watch streams once they have sent NOT_SERVING: as calls in flight they would
    otherwise hold the shutdown for the whole grace. grpc_health has no public way to do it; a `None`
    sent to a watcher's callback closes its stream."""
    callbacks = getattr(servicer, "_send_response_callbacks", {})
    with getattr(servicer, "_lock", threading.Lock()):
        watchers = [callback for group in callbacks.values() for callback in group]
    for callback in watchers:
        callback(None)


def create_server(
    listen_addr: str,
    register: Iterable[Callable[[grpc.Server], None]],
    service_names: Sequence[str],
    workers: int = 16,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
    security: GrpcSecurity | None = None,
) -> RunningServer:
    """Builds and starts a server on `listen_addr` (port 0 = any free port); health starts NOT_SERVING.

    `register` are the generated `add_XServicer_to_server` partials; `service_names` the full
    names of those services, for health and reflection. The caller flips health to SERVING once
    its dependencies (the DB pool) are ready. `security` (default: read from the environment,
    services/common/auth.py) decides the token check and mutual TLS.
    """
    security = GrpcSecurity.from_env() if security is None else security
    if not security.token and not security.tls:
        log.warning("gRPC authentication is off: set CUSTOMLABELS_API_TOKEN to require a token")
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rpc"),
        interceptors=[ServiceInterceptor(), *security.server_interceptors(), *interceptors],
        options=SERVER_OPTIONS,
    )
    for add in register:
        add(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    credentials = security.server_credentials()
    if credentials is None:
        port = server.add_insecure_port(listen_addr)
    else:
        port = server.add_secure_port(listen_addr, credentials)
    if port == 0:
        raise RuntimeError(f"cannot bind {listen_addr}")
    server.start()
    running = RunningServer(server=server, port=port, health=health_servicer, service_names=service_names)
    running.set_serving(False)
    return running


# How often the main thread looks for a shutdown signal (see wait_for_shutdown_signal).
SIGNAL_POLL_S = 0.2


def wait_for_shutdown_signal() -> None:
    """Blocks until SIGTERM or SIGINT arrives (call it from the main thread).

    Python runs a signal's handler in the main thread, and only once that thread runs Python code
    again; the kernel may hand the signal to any thread, and one taken by another thread does not wake
    a main thread asleep in `Event.wait()` without a timeout. That was seen (tests/test_sigterm.py):
    a project or training service whose RPC threads were busy never began its shutdown after SIGTERM,
    so Kubernetes would have killed it mid-call. Waiting in short slices runs the handler within
    SIGNAL_POLL_S.
    """
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(SIGNAL_POLL_S):
        pass


def serve(running: RunningServer, grace: float) -> None:
    """Blocks until SIGTERM or SIGINT, then stops the server gracefully."""
    log.info("serving", extra={"port": running.port, "services": list(running.service_names)})
    wait_for_shutdown_signal()
    log.info("shutting down", extra={"grace_s": grace})
    running.stop(grace)
    log.info("stopped")
