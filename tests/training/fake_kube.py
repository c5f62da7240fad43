"""A FAKE Kubernetes API server for the launcher's tests (not a cluster: no scheduler, no kubelet).

A threaded HTTP server on 127.0.0.1 implementing what services/training/kube.py calls: batch/v1 Jobs
and core/v1 Services (create, get, list by label selector, delete) and core/v1 Pods (get, list by
label selector). It records every request, checks the bearer token, gives created objects a uid,
and lets a test play the controllers: mark a Job succeeded or failed, add failed pods, delete it.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    """One request as the fake server saw it."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    authorization: str


@dataclass
class FakeKube:
    """The fake API server's state (objects by kind and name) and its request log."""

    token: str
    namespace: str = "test"
    objects: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {"jobs": {}, "services": {}, "pods": {}}
    )
    requests: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    created: threading.Condition = field(default_factory=threading.Condition)
    url: str = ""
    _server: ThreadingHTTPServer | None = None

    def start(self) -> FakeKube:
        """Serves on a free port of 127.0.0.1 in a daemon thread."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                body = json.loads(raw) if raw else None
                auth = self.headers.get("Authorization", "")
                with fake.lock:
                    fake.requests.append(Recorded(self.command, parts.path, query, body, auth))
                if auth != f"Bearer {fake.token}":
                    self._send(401, {"kind": "Status", "message": "Unauthorized"})
                    return
                status, doc = fake.route(self.command, parts.path, query, body)
                self._send(status, doc)

            def _send(self, status: int, doc: Any) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stops serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # -- the API ------------------------------------------------------------------------------------

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        """Dispatches /api/v1/namespaces/<ns>/<kind>[/<name>] and /apis/batch/v1/... ."""
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "v1"]:
            rest = parts[2:]
        elif parts[:3] == ["apis", "batch", "v1"]:
            rest = parts[3:]
        else:
            return 404, {"message": f"no route {path}"}
        if len(rest) < 3 or rest[0] != "namespaces" or rest[1] != self.namespace:
            return 404, {"message": f"no route {path}"}
        kind, name = rest[2], (rest[3] if len(rest) > 3 else None)
        if kind not in self.objects:
            return 404, {"message": f"unknown kind {kind}"}
        with self.lock:
            store = self.objects[kind]
            if method == "POST" and name is None:
                obj_name = body["metadata"]["name"]
                if obj_name in store:
                    return 409, {"message": f"{kind} {obj_name} already exists"}
                obj = json.loads(json.dumps(body))
                obj["metadata"]["uid"] = str(uuid.uuid4())
                obj["metadata"]["namespace"] = self.namespace
                obj.setdefault("status", {})
                store[obj_name] = obj
                with self.created:
                    self.created.notify_all()
                return 201, obj
            if method == "GET" and name is None:
                return 200, {"items": [o for o in store.values() if _selected(o, query.get("labelSelector"))]}
            if method == "GET":
                if name not in store:
                    return 404, {"message": f"{kind} {name} not found"}
                return 200, store[name]
            if method == "DELETE" and name is not None:
                if name not in store:
                    return 404, {"message": f"{kind} {name} not found"}
                del store[name]
                return 200, {"kind": "Status", "status": "Success"}
        return 405, {"message": "method not allowed"}

    # -- what a test does as the controllers ---------------------------------------------------------

    def wait_for_job(self, timeout: float = 120.0) -> dict[str, Any]:
        """The first Job created (waits for it)."""
        with self.created:
            assert self.created.wait_for(lambda: bool(self.objects["jobs"]), timeout), "no Job was created"
        with self.lock:
            return json.loads(json.dumps(next(iter(self.objects["jobs"].values()))))

    def set_job_status(self, name: str, status: dict[str, Any]) -> None:
        """What the Job controller would write."""
        with self.lock:
            self.objects["jobs"][name]["status"] = status

    def add_pod(self, pod: dict[str, Any]) -> None:
        """A pod as the Job controller and kubelet would report it."""
        with self.lock:
            self.objects["pods"][pod["metadata"]["name"]] = pod

    def delete_job(self, name: str) -> None:
        """Someone deleted the Job (kubectl delete, a cleanup)."""
        with self.lock:
            self.objects["jobs"].pop(name, None)

    def calls(self, method: str, fragment: str) -> list[Recorded]:
        """The recorded requests of `method` whose path contains `fragment`."""
        with self.lock:
            return [r for r in self.requests if r.method == method and fragment in r.path]


def _selected(obj: dict[str, Any], selector: str | None) -> bool:
    if not selector:
        return True
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in selector.split(","):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True
