"""The HTTP edge: Rekognition's AWS JSON 1.1 protocol in front of the gRPC services.

    POST /   X-Amz-Target: RekognitionService.<Operation>   Content-Type: application/x-amz-json-1.1

Each request is authenticated (SigV4, services/edge/sigv4.py), its JSON body turned into the
operation's protobuf request (services/common/awsjson.py), sent to the service that owns the
operation over gRPC, and the response turned back into AWS JSON. Every failure is answered as AWS
does: `{"__type": "<exception name>", "message": "..."}` with HTTP 400 for the caller's errors, 403
for authentication, 500 for InternalServerError and 503 for ThrottlingException (both of which AWS
SDKs retry). `GET /health` answers while the edge runs; `GET /metrics` is Prometheus text.

The operation table is every public unary RPC of the four services (services/cli/operations.py):
the 23 Rekognition Custom Labels and tagging operations plus our import extensions, so an
operation works here as soon as its service implements it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.message import Message

from services.cli.operations import SERVICES, Operation, public_operations
from services.common import awsjson, clients, errors, logs
from services.common.auth import GrpcSecurity
from services.common.server import wait_for_shutdown_signal
from services.edge import metrics as metrics_text
from services.edge.config import EdgeConfig
from services.edge.metrics import Metrics
from services.edge.sigv4 import AuthError, Verifier

log = logging.getLogger("customlabels.edge")

TARGET_PREFIX = "RekognitionService."
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
# AWS SDKs send 1.1; 1.0 and plain JSON are what hand-written clients (curl) tend to send.
ACCEPTED_CONTENT_TYPES = frozenset({JSON_CONTENT_TYPE, "application/x-amz-json-1.0", "application/json"})
UNKNOWN_OPERATION = "unknown"


@dataclass(frozen=True)
class Reply:
    """One HTTP answer, and what the metrics and the log say about it."""

    status: int
    body: bytes
    content_type: str = JSON_CONTENT_TYPE
    operation: str = UNKNOWN_OPERATION
    error: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


def json_reply(document: Mapping[str, Any], operation: str) -> Reply:
    """A 200 with an AWS JSON document."""
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Reply(200, body, operation=operation)


def error_reply(aws_name: str, message: str, status: int, operation: str = UNKNOWN_OPERATION) -> Reply:
    """An AWS JSON error: `__type` is what botocore reads as the ClientError code."""
    body = json.dumps({"__type": aws_name, "message": message}, ensure_ascii=False).encode("utf-8")
    return Reply(status, body, operation=operation, error=aws_name, headers=(("x-amzn-ErrorType", aws_name),))


@dataclass
class Edge:
    """The protocol translation, independent of the HTTP server: `handle` turns a request into a Reply."""

    config: EdgeConfig
    security: GrpcSecurity | None = None
    metrics: Metrics = field(default_factory=Metrics)

    def __post_init__(self) -> None:
        self.verifier = Verifier(self.config.credentials, self.config.region, self.config.max_clock_skew_s)
        self.operations = public_operations()
        self._channels = {
            service.key: clients.channel(self.config.service_addrs[service.key], self.security)
            for service in SERVICES
        }
        self._stubs = {service.key: service.stub(self._channels[service.key]) for service in SERVICES}

    def close(self) -> None:
        """Closes the channels to the services."""
        for channel in self._channels.values():
            channel.close()

    def operation(self, target: str) -> Operation | None:
        """The public operation an X-Amz-Target names, or None."""
        name = target.removeprefix(TARGET_PREFIX) if target.startswith(TARGET_PREFIX) else ""
        return self.operations.get(name)

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """Answers one `POST /` (headers keyed by lower-case name)."""
        target = headers.get("x-amz-target", "")
        op = self.operation(target)
        label = op.name if op else UNKNOWN_OPERATION
        try:
            self.verifier.verify(method, path, headers, body)
        except AuthError as exc:
            return error_reply(exc.aws_name, exc.message, exc.status, label)
        if op is None:
            return error_reply("UnknownOperationException", f"Unknown operation {target!r}", 400)
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in ACCEPTED_CONTENT_TYPES:
            return error_reply(
                "SerializationException", f"Content-Type must be {JSON_CONTENT_TYPE}", 400, label
            )
        try:
            document = json.loads(body or b"{}")
        except (UnicodeDecodeError, ValueError) as exc:
            return error_reply(
                "SerializationException", f"The request body is not valid JSON: {exc}", 400, label
            )
        if not isinstance(document, dict):
            return error_reply("SerializationException", "The request body must be a JSON object", 400, label)
        try:
            request = awsjson.from_aws(document, op.request_class)
            response = self._call(op, request)
        except errors.ServiceError as exc:
            status = errors.http_status(exc)
            if status >= 500:
                log.warning("operation failed", extra={"operation": op.name, "error": exc.aws_name})
            return error_reply(exc.aws_name, exc.message, status, label)
        return json_reply(awsjson.to_aws(response), label)

    def _call(self, op: Operation, request: Message) -> Message:
        method: Callable[..., Message] = getattr(self._stubs[op.service.key], op.name)
        return clients.call(method, request, timeout=self.config.call_timeout_s)


class _Handler(BaseHTTPRequestHandler):
    """Reads one HTTP request, hands it to the Edge, writes the Reply. Keep-alive, as the SDKs expect."""

    protocol_version = "HTTP/1.1"
    server_version = "customlabels-edge"
    # TCP_NODELAY: the head and the body of a reply are two writes; with Nagle on, every keep-alive
    # request after the first waited ~40 ms for the client's delayed ACK (boto3 DescribeProjects: 48 → 5.6 ms).
    disable_nagle_algorithm = True
    server: _HttpServer

    def setup(self) -> None:
        # A client that stops sending (or an idle keep-alive connection) is dropped after this.
        self.timeout = self.server.edge.config.read_timeout_s
        super().setup()

    def version_string(self) -> str:
        """The Server header: our name, without the Python version."""
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Silences the stderr access log: each request is logged once, as JSON, by `_answer`."""

    def do_GET(self) -> None:
        """`/health` and `/metrics`."""
        if self.path == "/health":
            self._write(Reply(200, b'{"status":"ok"}', content_type="application/json"))
        elif self.path == "/metrics":
            body = self.server.edge.metrics.render().encode()
            self._write(Reply(200, body, content_type=metrics_text.CONTENT_TYPE))
        else:
            self._write(Reply(404, b'{"message":"Not Found"}', content_type="application/json"))

    def do_POST(self) -> None:
        """One AWS JSON call."""
        edge = self.server.edge
        request_id = str(uuid.uuid4())
        token = logs.request_id.set(request_id)
        started = time.perf_counter()
        edge.metrics.started()
        reply: Reply | None = None
        # Counted until the reply is written: shutdown waits for it, so a reply is never cut off by
        # the process ending (tests/test_sigterm.py).
        self.server.in_flight.enter()
        try:
            reply = self._post(edge)
        except Exception:  # noqa: BLE001 - the caller gets InternalServerError, the log the traceback
            log.exception("unhandled error")
            reply = error_reply(
                "InternalServerError", "internal error; retry later or report the request id", 500
            )
        finally:
            elapsed = time.perf_counter() - started
            if reply is None:  # the connection broke while reading the request
                edge.metrics.observe(UNKNOWN_OPERATION, 408, "RequestTimeout", elapsed)
            else:
                edge.metrics.observe(reply.operation, reply.status, reply.error, elapsed)
                self._write(reply, request_id)
                log.info(
                    "request",
                    extra={
                        "operation": reply.operation,
                        "status": reply.status,
                        "error": reply.error,
                        "ms": round(elapsed * 1000, 2),
                    },
                )
            logs.request_id.reset(token)
            self.server.in_flight.leave()

    def _post(self, edge: Edge) -> Reply | None:
        if self.path != "/":
            self.close_connection = True  # the body was not read
            return error_reply("UnknownOperationException", f"Unknown path {self.path!r}; POST to /", 404)
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            return error_reply(
                "LengthRequiredException", "Send a Content-Length; chunked bodies are refused", 411
            )
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            return error_reply("SerializationException", "Content-Length is not a number", 400)
        if length > edge.config.max_body_bytes:
            self.close_connection = True  # the body is left unread
            return error_reply(
                "RequestEntityTooLargeException",
                f"Request size {length} exceeded {edge.config.max_body_bytes} bytes",
                413,
            )
        try:
            body = self.rfile.read(length)
        except (TimeoutError, OSError):
            self.close_connection = True
            return None
        if len(body) != length:
            self.close_connection = True
            return None
        if not self.server.slots.acquire(blocking=False):
            # Counted under the operation it names (a known one only: metric labels stay bounded).
            op = edge.operation(self.headers.get("X-Amz-Target", ""))
            return error_reply(
                "ThrottlingException",
                "Too many concurrent requests; retry later",
                503,
                op.name if op else UNKNOWN_OPERATION,
            )
        try:
            headers = {
                name.lower(): ",".join(self.headers.get_all(name, [])) for name in set(self.headers.keys())
            }
            return edge.handle("POST", self.path, headers, body)
        finally:
            self.server.slots.release()

    def _write(self, reply: Reply, request_id: str | None = None) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            if request_id:
                self.send_header("x-amzn-RequestId", request_id)
            for name, value in reply.headers:
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:
            self.close_connection = True  # the client went away: nothing to answer


class _HttpServer(ThreadingHTTPServer):
    """A thread per connection; `slots` bounds the requests handled at once."""

    daemon_threads = True

    def __init__(self, addr: tuple[str, int], edge: Edge) -> None:
        self.edge = edge
        self.slots = threading.BoundedSemaphore(edge.config.max_concurrency)
        self.in_flight = InFlight()
        super().__init__(addr, _Handler)


class InFlight:
    """Counts the POSTs between their first byte read and their reply written."""

    def __init__(self) -> None:
        self._count = 0
        self._changed = threading.Condition()

    def enter(self) -> None:
        with self._changed:
            self._count += 1

    def leave(self) -> None:
        with self._changed:
            self._count -= 1
            self._changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Waits up to `timeout` seconds for none to be in flight; False when some still are."""
        with self._changed:
            return self._changed.wait_for(lambda: self._count == 0, timeout)


@dataclass
class RunningEdge:
    """A started edge: its port, and what stops it."""

    edge: Edge
    port: int
    _server: _HttpServer
    _thread: threading.Thread

    def stop(self, grace: float) -> None:
        """Stops accepting, gives requests in flight up to `grace` seconds, then closes everything."""
        self._server.shutdown()
        self._thread.join()
        self._server.in_flight.wait_idle(grace)
        self._server.server_close()
        self.edge.close()


def build_server(config: EdgeConfig, security: GrpcSecurity | None = None) -> RunningEdge:
    """Starts the edge on config.listen_addr (port 0 allowed); `security` defaults to the environment's."""
    host, _, port = config.listen_addr.rpartition(":")
    edge = Edge(config, security)
    try:
        server = _HttpServer((host.strip("[]"), int(port)), edge)
    except OSError:
        edge.close()
        raise
    thread = threading.Thread(target=server.serve_forever, name="edge-http", daemon=True)
    thread.start()
    return RunningEdge(edge, server.server_address[1], server, thread)


def main() -> None:
    """Runs the edge process until SIGTERM/SIGINT."""
    config = EdgeConfig.from_env()
    logs.setup("edge", config.log_level)
    running = build_server(config)
    log.info("serving", extra={"port": running.port, "operations": len(running.edge.operations)})
    wait_for_shutdown_signal()
    log.info("shutting down", extra={"grace_s": config.shutdown_grace_s})
    running.stop(config.shutdown_grace_s)
    log.info("stopped")
