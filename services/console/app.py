"""The web console: a Starlette application in front of the four services, served by uvicorn.

    GET  /signin, POST /signin, POST /signout    sign-in page (server-rendered) and session cookie
    GET  /health                                 probe (no session)
    GET  /api/session                            who is signed in, the CSRF token, the expiry
    POST /api/op/<Operation>                     one operation in AWS JSON (the public Rekognition
                                                 operations, the extensions, and the console's own:
                                                 SaveDatasetEntries, ListLabels, AddLabels, ...)
    POST /api/upload                             browser upload (multipart) → UploadImages
    GET  /api/image?dataset=&ref=&size=          an entry's image or thumbnail, streamed from the
    GET  /api/image?key=&size=                   dataset service (never a public or presigned URL)
    GET  /api/files?version=&file=               a model's evaluation or validation file (download)
    GET  /assets/*, GET /*                       the single-page application (services/console/web)

Everything except /signin, /health and /static requires a session; every POST also requires the
session's CSRF token in the `X-CSRF-Token` header. Errors are AWS's `{"__type", "message"}` with
the service's exception name. The browser never sees the API token: the console's gRPC channels
carry it (services/common/auth.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import uvicorn
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from jinja2 import Environment, FileSystemLoader, select_autoescape
from psycopg_pool import ConnectionPool
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common import db, errors, logs
from services.common.auth import GrpcSecurity
from services.common.server import wait_for_shutdown_signal
from services.common.storage import ObjectStore
from services.console.backends import Backends
from services.console.config import ConsoleConfig
from services.console.evaluation import Evaluations
from services.console.labeling import Labeling
from services.console.repository import ConsoleRepository
from services.console.sessions import (
    COOKIE_NAME,
    FailureCounter,
    NotSignedIn,
    Session,
    SessionExpired,
    Sessions,
    SignInRefused,
)
from services.console.uploads import Upload, parse_labels, parse_target, upload

log = logging.getLogger("customlabels.console")

SCHEMA = "console"
MIGRATIONS = Path(__file__).parent / "migrations"
TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
SIGNIN_COOKIE = "cl_signin"
NONCE = re.compile(r"[A-Za-z0-9_-]{32}")
CSRF_HEADER = "x-csrf-token"
THUMBNAIL_SIDES = frozenset({0, 128, 256, 512, 1024})
PURGE_EVERY_S = 600.0

# Same-origin everything: scripts and styles come from the console itself, images from it or from
# blob: URLs of files the user picked. Annotorious sets inline style attributes, hence 'unsafe-inline'
# for styles only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' blob: data:;"
    " connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self';"
    " frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class RequestTooLarge(errors.ServiceError):
    """A request body above the configured limit."""

    aws_name = "RequestEntityTooLargeException"


class SerializationError(errors.InvalidParameter):
    """A body that is not a JSON object."""

    aws_name = "SerializationException"


def error_status(error: errors.ServiceError) -> int:
    """The HTTP status of a refusal: AWS's (errors.http_status) except for sessions, CSRF and conflicts."""
    if isinstance(error, NotSignedIn | SessionExpired | SignInRefused):
        return 401
    if isinstance(error, errors.AccessDenied):
        return 403
    if isinstance(error, errors.Conflict):
        return 409
    if isinstance(error, errors.NotFound):
        return 404
    if isinstance(error, RequestTooLarge):
        return 413
    return errors.http_status(error)


def error_response(error: errors.ServiceError) -> JSONResponse:
    """AWS's error document, `x-amzn-ErrorType` as the edge sends it."""
    return JSONResponse(
        {"__type": error.aws_name, "message": error.message},
        status_code=error_status(error),
        headers={"x-amzn-ErrorType": error.aws_name, "cache-control": "no-store"},
    )


class SecurityHeaders:
    """Adds the security headers to every response, and gives each request an id for the logs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = str(uuid.uuid4())
        started = time.perf_counter()
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"server"]
                headers += [*SECURITY_HEADERS, (b"x-amzn-requestid", request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        token = logs.request_id.set(request_id)
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            log.info(
                "request",
                extra={
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            logs.request_id.reset(token)


@dataclass
class Deps:
    """What the console is built from; tests pass their own."""

    pool: ConnectionPool
    store: ObjectStore
    backends: Backends


@dataclass
class Console:
    """The console's handlers, independent of the server that runs them."""

    config: ConsoleConfig
    deps: Deps
    sessions: Sessions = field(init=False)

    def __post_init__(self) -> None:
        repo = ConsoleRepository(self.deps.pool)
        failures = FailureCounter(self.config.signin_max_failures, self.config.signin_window_s)
        self.sessions = Sessions(
            repo, self.config.credentials, self.config.session_idle_s, self.config.session_max_s, failures
        )
        self.labeling = Labeling(self.deps.backends, repo)
        self.evaluations = Evaluations(self.deps.backends, self.deps.store)
        self.local_operations: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "SaveDatasetEntries": self.labeling.save,
            "ListLabels": self.labeling.list_labels,
            "AddLabels": self.labeling.add_labels,
            "ImportLabels": self.labeling.import_labels,
            "RenameLabel": self.labeling.rename_label,
            "DeleteLabel": self.labeling.delete_label,
            "GetEvaluation": self.evaluations.evaluation,
        }
        self.templates = Environment(
            loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), auto_reload=False
        )

    # -- helpers ----------------------------------------------------------------------------------

    def _secure(self, request: Request) -> bool:
        if self.config.secure_cookies != "auto":
            return self.config.secure_cookies == "always"
        forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        return request.url.scheme == "https" or forwarded == "https"

    async def _session(self, request: Request, *, csrf: bool) -> Session:
        session = await run_in_threadpool(self.sessions.session, request.cookies.get(COOKIE_NAME))
        if csrf:
            self.sessions.check_csrf(session, request.headers.get(CSRF_HEADER))
        return session

    @staticmethod
    def _safe_next(value: str | None) -> str:
        """Where to go after sign-in: a path of this site only (no open redirect)."""
        if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
            return "/"
        if any(ord(c) < 32 for c in value) or value.startswith("/signin"):
            return "/"
        return value

    # -- sign-in ----------------------------------------------------------------------------------

    def _signin_page(
        self, request: Request, status: int = 200, error: errors.ServiceError | None = None, **values: str
    ) -> HTMLResponse:
        # One nonce per browser, not per page view: a second tab (or a favicon request that lands here)
        # must not invalidate the form of the first.
        nonce = request.cookies.get(SIGNIN_COOKIE, "")
        if not NONCE.fullmatch(nonce):
            nonce = secrets.token_urlsafe(24)
        page = self.templates.get_template("signin.html").render(
            nonce=nonce,
            next=self._safe_next(values.get("next") or request.query_params.get("next")),
            error=error,
            notice=values.get("notice", ""),
            access_key_id=values.get("access_key_id", ""),
            region=self.config.region,
        )
        response = HTMLResponse(page, status_code=status, headers={"cache-control": "no-store"})
        response.set_cookie(
            SIGNIN_COOKIE,
            nonce,
            max_age=3600,
            httponly=True,
            samesite="strict",
            secure=self._secure(request),
            path="/signin",
        )
        return response

    async def signin_form(self, request: Request) -> Response:
        """GET /signin: the form; a signed-in user goes straight on."""
        try:
            await self._session(request, csrf=False)
        except errors.ServiceError as exc:
            notice = "Your session has expired. Sign in again." if isinstance(exc, SessionExpired) else ""
            return self._signin_page(request, notice=notice)
        return RedirectResponse(self._safe_next(request.query_params.get("next")), status_code=303)

    async def signin(self, request: Request) -> Response:
        """POST /signin: checks the key pair, starts a session, sets the cookie."""
        try:
            form = await request.form(max_files=0, max_fields=8, max_part_size=4096)
        except Exception:  # noqa: BLE001 - any malformed form gets the same answer
            return self._signin_page(
                request, 400, errors.InvalidParameter("The sign-in form could not be read.")
            )
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        next_path = self._safe_next(values.get("next"))
        nonce = request.cookies.get(SIGNIN_COOKIE, "")
        if not nonce or not secrets.compare_digest(nonce, values.get("csrf", "")):
            return self._signin_page(
                request,
                403,
                errors.AccessDenied("The sign-in form expired or was not sent by this page. Try again."),
                next=next_path,
            )
        client = request.client.host if request.client else "unknown"
        try:
            session_id, session = await run_in_threadpool(
                self.sessions.sign_in,
                values.get("access_key_id", "")[:256],
                values.get("secret_access_key", "")[:1024],
                client,
            )
        except errors.ServiceError as exc:
            return self._signin_page(
                request,
                error_status(exc) if not isinstance(exc, errors.Throttling) else 429,
                exc,
                next=next_path,
                access_key_id=values.get("access_key_id", "")[:128],
            )
        log.info("signed in", extra={"access_key_id": session.access_key_id})
        response = RedirectResponse(next_path, status_code=303)
        response.set_cookie(
            COOKIE_NAME,
            session_id,
            max_age=int(self.config.session_max_s),
            httponly=True,
            samesite="lax",
            secure=self._secure(request),
            path="/",
        )
        response.delete_cookie(SIGNIN_COOKIE, path="/signin")
        return response

    async def signout(self, request: Request) -> Response:
        """POST /signout: ends the session (the CSRF token comes in the header or the form)."""
        try:
            session = await run_in_threadpool(self.sessions.session, request.cookies.get(COOKIE_NAME))
        except errors.ServiceError:
            session = None
        if session is not None:
            token = request.headers.get(CSRF_HEADER)
            if token is None:
                form = await request.form(max_files=0, max_fields=4, max_part_size=1024)
                value = form.get("csrf")
                token = value if isinstance(value, str) else None
            try:
                self.sessions.check_csrf(session, token)
            except errors.ServiceError as exc:
                return error_response(exc)
            await run_in_threadpool(self.sessions.sign_out, session)
        response = RedirectResponse("/signin", status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/")
        return response

    async def health(self, request: Request) -> Response:
        """GET /health: answers while the process runs."""
        return JSONResponse({"status": "ok"})

    # -- the API ----------------------------------------------------------------------------------

    async def api_session(self, request: Request) -> Response:
        """GET /api/session: the signed-in key, the CSRF token and when the session ends."""
        try:
            session = await self._session(request, csrf=False)
        except errors.ServiceError as exc:
            return error_response(exc)
        return JSONResponse(
            {
                "AccessKeyId": session.access_key_id,
                "CsrfToken": session.csrf_token,
                "ExpiresAt": session.expires_at.timestamp(),
                "IdleExpiresAt": session.idle_expires_at.timestamp(),
                "IdleTimeoutSeconds": self.config.session_idle_s,
                "Region": self.config.region,
                "AccountId": self.config.account_id,
            },
            headers={"cache-control": "no-store"},
        )

    async def _body(self, request: Request, limit: int) -> bytes:
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            raise errors.InvalidParameter("Send a Content-Length")
        if int(length) > limit:
            raise RequestTooLarge(f"Request size {length} exceeded {limit} bytes")
        return await request.body()

    async def operation(self, request: Request) -> Response:
        """POST /api/op/<Operation>: AWS JSON in, AWS JSON out."""
        name = request.path_params["name"]
        try:
            await self._session(request, csrf=True)
            body = await self._body(request, self.config.max_body_bytes)
            try:
                document = json.loads(body or b"{}")
            except (UnicodeDecodeError, ValueError) as exc:
                raise SerializationError(f"The request body is not valid JSON: {exc}") from None
            if not isinstance(document, dict):
                raise SerializationError("The request body must be a JSON object")
            local = self.local_operations.get(name)
            if local is not None:
                result = await run_in_threadpool(local, document)
            else:
                result = await run_in_threadpool(self.deps.backends.invoke, name, document)
        except errors.ServiceError as exc:
            if error_status(exc) >= 500:
                log.warning("operation failed", extra={"operation": name, "error": exc.aws_name})
            return error_response(exc)
        return JSONResponse(result, headers={"cache-control": "no-store"})

    async def upload(self, request: Request) -> Response:
        """POST /api/upload: multipart files → one UploadImages stream; per-file outcomes."""
        form = None
        try:
            await self._session(request, csrf=True)
            length = request.headers.get("content-length")
            if length is None or not length.isdigit():
                raise errors.InvalidParameter("Send a Content-Length")
            if int(length) > self.config.max_upload_bytes:
                raise RequestTooLarge(
                    f"The upload is {int(length) / 1048576:.0f} MB; send at most"
                    f" {self.config.max_upload_bytes // 1048576} MB per request"
                )
            try:
                form = await request.form(
                    max_files=self.config.max_upload_files, max_fields=8, max_part_size=4 * 1024 * 1024
                )
            except ClientDisconnect:
                raise
            except Exception as exc:  # noqa: BLE001 - the multipart parser's refusals
                raise errors.InvalidParameter(f"The upload could not be read: {exc}") from None
            files = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
            target = parse_target(form.get("target"))
            labels = parse_labels(form.get("labels"), len(files))
            uploads = [
                Upload(f.filename or "", names, f.size if f.size is not None else 0, f.file)
                for f, names in zip(files, labels, strict=True)
            ]
            result = await run_in_threadpool(upload, self.deps.backends, target, uploads)
        except errors.ServiceError as exc:
            return error_response(exc)
        finally:
            if form is not None:
                await form.close()
        return JSONResponse(result, headers={"cache-control": "no-store"})

    async def image(self, request: Request) -> Response:
        """GET /api/image: streams an image or thumbnail from the dataset service."""
        params = request.query_params
        try:
            await self._session(request, csrf=False)
            size_text = params.get("size", "0")
            if not size_text.isdigit() or int(size_text) not in THUMBNAIL_SIDES:
                raise errors.InvalidParameter(f"size must be one of {sorted(THUMBNAIL_SIDES)}")
            by_key = "key" in params
            request_pb = (
                ds.GetDatasetImageRequest(image_key=params["key"], max_side=int(size_text))
                if by_key
                else ds.GetDatasetImageRequest(
                    dataset_arn=params.get("dataset", ""),
                    source_ref=params.get("ref", ""),
                    max_side=int(size_text),
                )
            )
            stream = self.deps.backends.stream("GetDatasetImage", request_pb)
            first = await run_in_threadpool(next, stream, None)
        except errors.ServiceError as exc:
            return error_response(exc)
        if first is None or not first.HasField("header"):
            stream.close()
            return error_response(errors.InternalServerError("the dataset service sent no image"))
        header = first.header
        etag = f'"{header.etag}"' if header.etag else None
        cache = "private, max-age=31536000, immutable" if by_key else "private, max-age=60"
        if etag and request.headers.get("if-none-match") == etag:
            stream.close()
            return Response(status_code=304, headers={"etag": etag, "cache-control": cache})
        content_type = (
            header.content_type
            if header.content_type in ("image/jpeg", "image/png")
            else "application/octet-stream"
        )
        headers = {
            "cache-control": cache,
            "x-image-width": str(header.width),
            "x-image-height": str(header.height),
        }
        if etag:
            headers["etag"] = etag
        if header.size_bytes:
            headers["content-length"] = str(header.size_bytes)

        def chunks() -> Iterator[bytes]:
            try:
                for message in stream:
                    yield message.chunk
            except errors.ServiceError:
                log.warning("image stream broke off", extra={"path": request.url.path})
            finally:
                stream.close()

        return StreamingResponse(chunks(), media_type=content_type, headers=headers)

    async def files(self, request: Request) -> Response:
        """GET /api/files?version=<arn>&file=<name>: a training output file as a download."""
        try:
            await self._session(request, csrf=False)
            download = await run_in_threadpool(
                self.evaluations.download,
                request.query_params.get("version", ""),
                request.query_params.get("file", ""),
            )
        except errors.ServiceError as exc:
            return error_response(exc)
        headers = {
            "content-disposition": f"attachment; filename*=UTF-8''{quote(download.file_name)}",
            "cache-control": "no-store",
        }
        if download.size is not None:
            headers["content-length"] = str(download.size)
        media = "application/zip" if download.file_name.endswith(".zip") else "application/json"
        return StreamingResponse(download.chunks, media_type=media, headers=headers)

    # -- the application --------------------------------------------------------------------------

    async def _page_session(self, request: Request) -> Response | None:
        """None when signed in; else the redirect to the sign-in page."""
        try:
            await self._session(request, csrf=False)
        except errors.ServiceError:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse("/signin?" + urlencode({"next": target}), status_code=303)
        return None

    async def asset(self, request: Request) -> Response:
        """GET /assets/<file>: the application's scripts and styles (content-hashed names)."""
        redirect = await self._page_session(request)
        if redirect is not None:
            return redirect
        root = (self.config.static_dir / "assets").resolve()
        path = (root / request.path_params["path"]).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return JSONResponse(
                {"__type": "ResourceNotFoundException", "message": "Not Found"}, status_code=404
            )
        return FileResponse(path, headers={"cache-control": "private, max-age=31536000, immutable"})

    async def public_static(self, request: Request) -> Response:
        """GET /static/<file>: what the sign-in page needs (no data in it)."""
        path = (STATIC / request.path_params["path"]).resolve()
        if not path.is_relative_to(STATIC.resolve()) or not path.is_file():
            return JSONResponse(
                {"__type": "ResourceNotFoundException", "message": "Not Found"}, status_code=404
            )
        return FileResponse(path, headers={"cache-control": "public, max-age=3600"})

    async def favicon(self, request: Request) -> Response:
        """GET /favicon.ico: the console's icon (public, like the sign-in page's styles)."""
        return FileResponse(
            STATIC / "favicon.svg",
            media_type="image/svg+xml",
            headers={"cache-control": "public, max-age=86400"},
        )

    async def index(self, request: Request) -> Response:
        """Every other GET: the single-page application, for a signed-in user."""
        if request.url.path.startswith("/api/"):
            return JSONResponse(
                {"__type": "UnknownOperationException", "message": "Not Found"}, status_code=404
            )
        redirect = await self._page_session(request)
        if redirect is not None:
            return redirect
        index = self.config.static_dir / "index.html"
        if not index.is_file():
            return HTMLResponse(
                "<h1>The console is not built</h1><p>Run <code>make install</code> (npm ci and npm run build in"
                " services/console/web).</p>",
                status_code=503,
            )
        return FileResponse(index, headers={"cache-control": "no-store"})


def build_app(config: ConsoleConfig, deps: Deps) -> Starlette:
    """The ASGI application."""
    console = Console(config, deps)
    routes = [
        Route("/health", console.health, methods=["GET"]),
        Route("/signin", console.signin_form, methods=["GET"]),
        Route("/signin", console.signin, methods=["POST"]),
        Route("/signout", console.signout, methods=["POST"]),
        Route("/static/{path:path}", console.public_static, methods=["GET"]),
        Route("/favicon.ico", console.favicon, methods=["GET"]),
        Route("/api/session", console.api_session, methods=["GET"]),
        Route("/api/op/{name}", console.operation, methods=["POST"]),
        Route("/api/upload", console.upload, methods=["POST"]),
        Route("/api/image", console.image, methods=["GET"]),
        Route("/api/files", console.files, methods=["GET"]),
        Route("/assets/{path:path}", console.asset, methods=["GET"]),
        Route("/{path:path}", console.index, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.console = console
    app.add_middleware(SecurityHeaders)
    return app


@dataclass
class RunningConsole:
    """A started console: its port, and what stops it."""

    port: int
    server: uvicorn.Server
    thread: threading.Thread
    console: Console
    _stop: threading.Event = field(default_factory=threading.Event)

    def stop(self, grace: float) -> None:
        """Stops accepting, gives requests in flight up to `grace` seconds, then ends."""
        self._stop.set()
        self.server.config.timeout_graceful_shutdown = grace
        self.server.should_exit = True
        self.thread.join(grace + 5)


def build_server(config: ConsoleConfig, deps: Deps) -> RunningConsole:
    """Starts the console on config.listen_addr (port 0 allowed) in a thread."""
    host, _, port = config.listen_addr.rpartition(":")
    sock = socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: uvicorn writes a response's head and body separately, and with
    # Nagle on, every keep-alive request after the first waited ~40 ms for the client's delayed ACK
    # (measured: 44 ms → 1 ms per request, which is most of a gallery page's 50 thumbnails).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host.strip("[]"), int(port)))
    sock.listen(128)
    sock.set_inheritable(True)
    app = build_app(config, deps)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            server_header=False,
            date_header=True,
            timeout_keep_alive=30,
            timeout_graceful_shutdown=int(config.shutdown_grace_s),
            limit_concurrency=256,
        )
    )
    # Run in a thread, uvicorn leaves the process's signal handlers alone (main() owns them).
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), name="console-http", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the console's HTTP server did not start")
        time.sleep(0.02)
    running = RunningConsole(sock.getsockname()[1], server, thread, app.state.console)
    purger = threading.Thread(target=_purge, args=(running,), name="console-sessions", daemon=True)
    purger.start()
    return running


def _purge(running: RunningConsole) -> None:
    while not running._stop.wait(PURGE_EVERY_S):
        try:
            removed = running.console.sessions.purge()
        except Exception:  # noqa: BLE001 - the next round tries again
            log.exception("purging sessions failed")
            continue
        if removed:
            log.info("expired sessions removed", extra={"count": removed})


def main() -> None:
    """Runs the console process until SIGTERM/SIGINT."""
    config = ConsoleConfig.from_env()
    logs.setup("console", config.log_level)
    db.migrate(config.database_url, SCHEMA, MIGRATIONS)
    pool = db.create_pool(config.database_url, SCHEMA)
    store = ObjectStore(config.s3_endpoint, config.s3_access_key, config.s3_secret_key, config.s3_region)
    backends = Backends(config.service_addrs, GrpcSecurity.from_env(), config.call_timeout_s)
    running = build_server(config, Deps(pool, store, backends))
    if not (config.static_dir / "index.html").is_file():
        log.warning("the web application is not built", extra={"static_dir": str(config.static_dir)})
    log.info("serving", extra={"port": running.port})
    wait_for_shutdown_signal()
    log.info("shutting down", extra={"grace_s": config.shutdown_grace_s})
    running.stop(config.shutdown_grace_s)
    backends.close()
    pool.close()
    log.info("stopped")
