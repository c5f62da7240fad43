"""The console on a throwaway stack, in one process: for the browser tests, the console benchmark and
front-end work.

`console_on(services, ...)` starts the console in front of running services (LocalServices of
scripts/inprocess.py); `console_stack()` also starts Postgres, S3, Triton, the four services and a
training worker. `python -m scripts.console_stack [--port N] [--seed]` runs the latter until Ctrl-C
and prints the URL and the sign-in keys.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from scripts.inprocess import LocalServices, embedded_stack, training_worker
from services.common import db
from services.common.auth import GrpcSecurity
from services.common.storage import ObjectStore
from services.console import app as console_app
from services.console.backends import Backends
from services.console.config import ConsoleConfig

# Headless chromium on a closed network: no first-run, sync, update or other background traffic.
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
]


@dataclass(frozen=True)
class RunningConsoleStack:
    """A console and what a browser needs to sign in to it."""

    url: str
    access_key_id: str
    secret_access_key: str
    services: LocalServices
    console: console_app.RunningConsole


class ConsoleClient:
    """The console's HTTP API with a session of its own, for setting up data and for security tests."""

    def __init__(self, console: RunningConsoleStack) -> None:
        self.console = console
        self.http = httpx.Client(base_url=console.url, follow_redirects=False, timeout=60)
        form = self.http.get("/signin")
        nonce = self.http.cookies.get("cl_signin")
        response = self.http.post(
            "/signin",
            data={
                "access_key_id": console.access_key_id,
                "secret_access_key": console.secret_access_key,
                "csrf": nonce or "",
                "next": "/",
            },
        )
        assert form.status_code == 200 and response.status_code == 303, response.text
        self.csrf = self.http.get("/api/session").json()["CsrfToken"]

    def op(self, name: str, body: dict | None = None, *, csrf: bool = True) -> httpx.Response:
        """POST /api/op/<name>."""
        headers = {"X-CSRF-Token": self.csrf} if csrf else {}
        return self.http.post(f"/api/op/{name}", json=body or {}, headers=headers)

    def ok(self, name: str, body: dict | None = None) -> dict:
        """POST /api/op/<name>, asserting success; the JSON answer."""
        response = self.op(name, body)
        assert response.status_code == 200, response.text
        return response.json()

    def close(self) -> None:
        self.http.close()


def new_key_pair() -> tuple[str, str]:
    """An access key pair in AWS's shapes."""
    return "AKCL" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)


@contextmanager
def console_on(
    services: LocalServices, database_url: str, port: int = 0, **overrides: str
) -> Iterator[RunningConsoleStack]:
    """The console in-process in front of `services`, with a fresh key pair; `overrides` are variables."""
    key_id, secret = new_key_pair()
    env = {
        **services.env,
        "DATABASE_URL": database_url,
        "CUSTOMLABELS_LISTEN_ADDR": f"127.0.0.1:{port}",
        "CUSTOMLABELS_EDGE_CREDENTIALS": f"{key_id}:{secret}",
        # A build of the web application elsewhere than services/console/web/dist (front-end work).
        "CUSTOMLABELS_CONSOLE_STATIC_DIR": os.environ.get("CUSTOMLABELS_CONSOLE_STATIC_DIR", ""),
        **overrides,
    }
    config = ConsoleConfig.from_env(env)
    db.migrate(database_url, console_app.SCHEMA, console_app.MIGRATIONS)
    pool = db.create_pool(database_url, console_app.SCHEMA, 1, 8)
    store = ObjectStore(config.s3_endpoint, config.s3_access_key, config.s3_secret_key)
    backends = Backends(config.service_addrs, GrpcSecurity.from_env(), config.call_timeout_s)
    running = console_app.build_server(config, console_app.Deps(pool, store, backends))
    try:
        yield RunningConsoleStack(f"http://127.0.0.1:{running.port}", key_id, secret, services, running)
    finally:
        running.stop(2)
        backends.close()
        pool.close()


@contextmanager
def console_stack(port: int = 0, *, triton: bool = True, **overrides: str) -> Iterator[RunningConsoleStack]:
    """Postgres, S3, (Triton and serving,) the services, a training worker and the console, all throwaway."""
    os.environ.setdefault("CUSTOMLABELS_API_TOKEN", secrets.token_urlsafe(24))
    with (
        embedded_stack("customlabels-console-", triton=triton, serving=triton) as stack,
        training_worker(stack.services, stack.database_url),
        console_on(stack.services, stack.database_url, port, **overrides) as running,
    ):
        yield running


def main() -> None:
    """Runs a console stack until Ctrl-C."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=0, help="the console's port (default: a free one)")
    parser.add_argument("--no-triton", action="store_true", help="no Triton (models cannot start)")
    parser.add_argument("--info", type=Path, help="also write URL and keys to this file (KEY=value lines)")
    parser.add_argument(
        "--static-dir", type=Path, help="serve this build of the web application (default: web/dist)"
    )
    args = parser.parse_args()
    if args.static_dir:
        os.environ["CUSTOMLABELS_CONSOLE_STATIC_DIR"] = str(args.static_dir.resolve())
    with console_stack(args.port, triton=not args.no_triton) as running:
        lines = {
            "CONSOLE_URL": running.url,
            "CONSOLE_ACCESS_KEY_ID": running.access_key_id,
            "CONSOLE_SECRET_ACCESS_KEY": running.secret_access_key,
            "S3_ENDPOINT": running.services.s3.endpoint,
            "S3_ACCESS_KEY": running.services.s3.access_key,
            "S3_SECRET_KEY": running.services.s3.secret_key,
        }
        text = "".join(f"{k}={v}\n" for k, v in lines.items())
        if args.info:
            args.info.write_text(text)
        print(text, flush=True)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()


if __name__ == "__main__":
    main()
