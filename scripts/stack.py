"""The embedded stack: `python -m scripts.stack up|down|status [--data-dir .data]` (what `make up` runs).

One machine, no Docker: a private Postgres cluster, a SeaweedFS S3 server and Triton as local processes,
then the services (those whose module exists) on 127.0.0.1:50051-50054, the HTTP edge (AWS JSON, for
boto3 and the AWS CLI) on 127.0.0.1:8080 and the web console on 127.0.0.1:8081, each on a free port when
its own is taken. The services demand the stack's API token; the edge and the console accept the stack's
development access key. Both are made on the first `up` and kept. Everything lives under the data directory:

    stack.json   ports, PIDs and generated credentials (mode 0600)
    stack.env    the endpoints as KEY=value lines a shell can source
    postgres/    the cluster          s3/  SeaweedFS data          triton/  Triton's backends
    logs/<part>.log                   each process's stdout and stderr

`up` is idempotent: a part still running from an earlier `up` with the same configuration is left alone;
a dead one is started again on its saved ports when they are free. `down` stops exactly the processes
that `up` recorded (checked by PID and start time) and keeps the data, so the next `up` finds it again.
`status` prints one line per part and exits non-zero when a part that should run is not running.
The `supervisor` part (`python -m scripts.stack supervise`) restarts Triton on its ports whenever it
dies, as Kubernetes would; the serving service then loads again the models that should run.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import secrets
import shlex
import signal
import string
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scripts.embedded import (
    LOOPBACK,
    REPO_ROOT,
    WEED_PORT_FLAGS,
    AdoptedProcess,
    ManagedProcess,
    PartFailed,
    Postgres,
    ProcessRef,
    S3Endpoint,
    SeaweedS3,
    ServiceProcess,
    Triton,
    ensure_buckets,
    free_port,
    module_available,
    port_is_free,
    stop_all,
    wait_all_ready,
)


@dataclass(frozen=True)
class ServiceSpec:
    """A process of ours that the stack runs: `python -m module`, on `default_port` unless overridden."""

    name: str
    module: str
    default_port: int | None

    @property
    def env_prefix(self) -> str:
        """`CUSTOMLABELS_<NAME>`, the stem of its PORT (override) and ADDR (for the others) variables."""
        return "CUSTOMLABELS_" + self.name.upper().replace("-", "_")

    def port(self) -> int | None:
        """The port to listen on: CUSTOMLABELS_<NAME>_PORT, else the default (None: not a server)."""
        if self.default_port is None:
            return None
        return int(os.environ.get(f"{self.env_prefix}_PORT", self.default_port))


# The service processes, started in this order and stopped in the reverse one. A module that does not
# exist yet is skipped, so the stack runs while the services are being written.
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("project", "services.project", 50051),
    ServiceSpec("dataset", "services.dataset", 50052),
    ServiceSpec("training", "services.training", 50053),
    ServiceSpec("serving", "services.serving", 50054),
    ServiceSpec("training-worker", "services.training.worker", None),
)

# The HTTP parts: the edge (AWS JSON) and the web console, started after the gRPC services they call,
# ready when GET /health answers. They are not in SERVICES, whose entries are gRPC servers. An explicit
# CUSTOMLABELS_<NAME>_PORT must be free; a default port gives way to a free one (8080 and 8081 are
# popular ports on a developer's machine).
EDGE = ServiceSpec("edge", "services.edge", 8080)
CONSOLE = ServiceSpec("console", "services.console", 8081)
HTTP_PARTS = (EDGE, CONSOLE)

# Extra environment per process. Large CPU batches in training are dominated by glibc allocation
# below these thresholds (measured in issue 4), and they must be set before the process starts
# (the values of services/training/models/runtime.py MALLOC_ENV, which the images set too).
PROCESS_ENV = {
    "training-worker": {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296"},
}

INFRA = ("postgres", "s3", "triton")
# The process that restarts a dead Triton (Kubernetes does that in production); the serving service
# then loads again what should run.
SUPERVISOR = "supervisor"
SUPERVISE_INTERVAL = 1.0
IMAGES_BUCKET = "customlabels-images"
MODELS_BUCKET = "customlabels-models"
TRITON_BUCKET = "customlabels-triton"
BUCKETS = (IMAGES_BUCKET, MODELS_BUCKET, TRITON_BUCKET)
TRITON_PREFIX = "repository"
DATABASE = "customlabels"
DATABASE_USER = "customlabels"
READY_TIMEOUT = 60.0


# ---------------------------------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------------------------------


@dataclass
class Record:
    """A process the stack started: enough to find it again and to tell if its configuration changed."""

    pid: int
    start_time: int
    fingerprint: str

    @property
    def ref(self) -> ProcessRef:
        """The process itself (PID plus start time)."""
        return ProcessRef(self.pid, self.start_time)


@dataclass
class State:
    """What `stack.json` holds."""

    secrets: dict[str, str]
    ports: dict[str, dict[str, int]] = field(default_factory=dict)
    processes: dict[str, Record] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> State:
        """Read the state, or make a fresh one (with new credentials) when there is none."""
        if not path.exists():
            return cls(
                secrets={
                    "pg_superuser_password": secrets.token_hex(16),
                    "pg_password": secrets.token_hex(16),
                    "s3_access_key": "cl" + secrets.token_hex(9),
                    "s3_secret_key": secrets.token_hex(20),
                    **_api_secrets(),
                }
            )
        raw = json.loads(path.read_text())
        return cls(
            # A stack made before the token and the edge existed gets them once, then keeps them.
            secrets={**_api_secrets(), **raw["secrets"]},
            ports=raw.get("ports", {}),
            processes={name: Record(**rec) for name, rec in raw.get("processes", {}).items()},
        )

    def save(self, path: Path) -> None:
        """Write the state atomically, readable by its owner only (it holds credentials)."""
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(
                {
                    "secrets": self.secrets,
                    "ports": self.ports,
                    "processes": {name: asdict(rec) for name, rec in self.processes.items()},
                },
                handle,
                indent=2,
            )
        os.replace(tmp, path)

    def record(self, part: ManagedProcess) -> None:
        """Remember a part we just started."""
        assert part.ref is not None
        self.processes[part.name] = Record(part.ref.pid, part.ref.start_time, part.fingerprint())


_KEY_ID_LETTERS = string.ascii_uppercase + string.digits


def _api_secrets() -> dict[str, str]:
    """New credentials of the API: the services' bearer token and the edge's development key pair."""
    return {
        "api_token": secrets.token_urlsafe(32),
        # The shapes of AWS keys (20 upper-case letters/digits, 40 characters), which SDKs expect.
        "edge_access_key_id": "AKCL" + "".join(secrets.choice(_KEY_ID_LETTERS) for _ in range(16)),
        "edge_secret_access_key": secrets.token_urlsafe(30),
    }


class HttpServiceProcess(ServiceProcess):
    """A service of ours that speaks HTTP: ready when `GET /health` answers 200."""

    def probe(self) -> bool:
        """`GET /health` answers 200."""
        with urllib.request.urlopen(f"http://{self.addr}/health", timeout=1.0) as response:
            return bool(response.status == 200)


class Supervisor(ManagedProcess):
    """`python -m scripts.stack supervise`: restarts Triton on its ports whenever it dies (see cmd_supervise)."""

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        super().__init__(SUPERVISOR, log_path)
        self.data_dir = data_dir

    def command(self) -> list[str]:
        """This script's `supervise` command on the stack's data directory."""
        return [sys.executable, "-m", "scripts.stack", "supervise", "--data-dir", str(self.data_dir)]

    def cwd(self) -> Path:
        """The repository root, so `scripts.stack` imports from the working tree."""
        return REPO_ROOT

    def environment(self) -> dict[str, str]:
        """Unbuffered, so its messages reach its log at once."""
        return {"PYTHONUNBUFFERED": "1"}

    def probe(self) -> bool:
        """Up for half a second."""
        return time.monotonic() - self._started_at >= 0.5


# ---------------------------------------------------------------------------------------------------
# The parts
# ---------------------------------------------------------------------------------------------------


class Stack:
    """The parts of one stack, built from its data directory and state."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.state_path = data_dir / "stack.json"
        self.env_path = data_dir / "stack.env"
        self.logs = data_dir / "logs"
        self.state = State.load(self.state_path)

    # Ports ------------------------------------------------------------------------------------------

    def running(self, name: str) -> bool:
        """Whether the process recorded under `name` still runs."""
        rec = self.state.processes.get(name)
        return rec is not None and rec.ref.is_alive()

    def _ports(self, name: str, pick: Callable[[], dict[str, int]], *, choose: bool) -> dict[str, int]:
        """The part's saved ports; with `choose`, new ones when a saved one is taken (or none are saved).

        A running part keeps its ports (they are taken by itself)."""
        saved = self.state.ports.get(name)
        if not choose:
            return saved or {}
        if saved and (self.running(name) or all(port_is_free(p) for p in saved.values())):
            return saved
        self.state.ports[name] = pick()
        return self.state.ports[name]

    # Parts ------------------------------------------------------------------------------------------

    def postgres(self, *, choose_ports: bool = False) -> Postgres:
        """The Postgres part."""
        ports = self._ports("postgres", lambda: {"port": free_port()}, choose=choose_ports)
        return Postgres(
            self.data_dir / "postgres",
            ports.get("port", 0),
            self.state.secrets["pg_superuser_password"],
            self.logs / "postgres.log",
        )

    def s3(self, *, choose_ports: bool = False) -> SeaweedS3:
        """The S3 part."""
        ports = self._ports("s3", SeaweedS3.pick_ports, choose=choose_ports)
        return SeaweedS3(
            self.data_dir / "s3",
            ports or dict.fromkeys(WEED_PORT_FLAGS, 0),
            self.state.secrets["s3_access_key"],
            self.state.secrets["s3_secret_key"],
            self.logs / "s3.log",
        )

    def triton(self, s3: S3Endpoint, *, choose_ports: bool = False) -> Triton:
        """The Triton part, reading its repository from `s3`."""
        ports = self._ports("triton", Triton.pick_ports, choose=choose_ports)
        return Triton(
            self.data_dir / "triton",
            ports or {"http": 0, "grpc": 0, "metrics": 0},
            s3,
            TRITON_BUCKET,
            TRITON_PREFIX,
            self.logs / "triton.log",
        )

    def service_env(self, pg: Postgres, s3: SeaweedS3, triton: Triton) -> dict[str, str]:
        """What every service (and a user's shell, through stack.env) needs to reach the others."""
        env = {
            "DATABASE_URL": pg.url(DATABASE_USER, self.state.secrets["pg_password"], DATABASE),
            "CUSTOMLABELS_S3_ENDPOINT": s3.endpoint,
            "CUSTOMLABELS_S3_ACCESS_KEY": s3.s3.access_key,
            "CUSTOMLABELS_S3_SECRET_KEY": s3.s3.secret_key,
            "CUSTOMLABELS_TRITON_GRPC_ADDR": triton.grpc_addr,
            "CUSTOMLABELS_TRITON_HTTP_ADDR": triton.http_addr,
            "CUSTOMLABELS_IMAGES_BUCKET": IMAGES_BUCKET,
            "CUSTOMLABELS_MODELS_BUCKET": MODELS_BUCKET,
            "CUSTOMLABELS_TRITON_BUCKET": TRITON_BUCKET,
            # Triton reads s3://TRITON_BUCKET/TRITON_PREFIX; serving writes the models there.
            "CUSTOMLABELS_TRITON_PREFIX": TRITON_PREFIX,
            "CUSTOMLABELS_REGION": os.environ.get("CUSTOMLABELS_REGION", "local"),
            "CUSTOMLABELS_ACCOUNT_ID": os.environ.get("CUSTOMLABELS_ACCOUNT_ID", "000000000000"),
            "CUSTOMLABELS_API_TOKEN": self.state.secrets["api_token"],
        }
        for spec in SERVICES:
            port = spec.port()
            if port is not None:
                env[f"{spec.env_prefix}_ADDR"] = f"{LOOPBACK}:{port}"
        return env

    def services(self, env: dict[str, str]) -> list[tuple[ServiceSpec, ServiceProcess]]:
        """Every service of the table (present or not) as a part."""
        parts = []
        for spec in SERVICES:
            port = spec.port()
            addr = None if port is None else f"{LOOPBACK}:{port}"
            log = self.logs / f"{spec.name}.log"
            process_env = {**env, **PROCESS_ENV.get(spec.name, {})}
            parts.append((spec, ServiceProcess(spec.name, spec.module, process_env, log, addr=addr)))
        return parts

    def http_port(self, spec: ServiceSpec, *, choose: bool = False) -> int:
        """An HTTP part's port: CUSTOMLABELS_<NAME>_PORT, else its saved one, else its default when free,
        else a free one."""
        explicit = os.environ.get(f"{spec.env_prefix}_PORT")
        if explicit:
            return int(explicit)
        default = spec.default_port
        assert default is not None
        return self._ports(
            spec.name, lambda: {"port": default if port_is_free(default) else free_port()}, choose=choose
        ).get("port", default)

    def http_part(self, spec: ServiceSpec, env: dict[str, str], port: int) -> HttpServiceProcess:
        """The edge or the console, with the services' environment and the development key pair (the edge
        checks signatures with it, the console signs users in with it)."""
        secrets_ = self.state.secrets
        part_env = {
            **env,
            "CUSTOMLABELS_EDGE_CREDENTIALS": f"{secrets_['edge_access_key_id']}:{secrets_['edge_secret_access_key']}",
        }
        return HttpServiceProcess(
            spec.name, spec.module, part_env, self.logs / f"{spec.name}.log", addr=f"{LOOPBACK}:{port}"
        )

    def user_env(self, env: dict[str, str], ports: dict[str, int]) -> dict[str, str]:
        """stack.env: the services' environment plus what an AWS client of the edge and a user of the
        console need."""
        secrets_ = self.state.secrets
        out = {
            **env,
            "CUSTOMLABELS_AWS_ACCESS_KEY_ID": secrets_["edge_access_key_id"],
            "CUSTOMLABELS_AWS_SECRET_ACCESS_KEY": secrets_["edge_secret_access_key"],
        }
        if EDGE.name in ports:
            out["CUSTOMLABELS_EDGE_ENDPOINT"] = f"http://{LOOPBACK}:{ports[EDGE.name]}"
        if CONSOLE.name in ports:
            out["CUSTOMLABELS_CONSOLE_URL"] = f"http://{LOOPBACK}:{ports[CONSOLE.name]}"
        return out

    def supervisor(self) -> Supervisor:
        """The supervisor part."""
        return Supervisor(self.data_dir, self.logs / f"{SUPERVISOR}.log")

    def all_parts(self) -> list[tuple[ManagedProcess, bool, str]]:
        """(part, should it run, endpoint) for every part in start order, adopted where recorded."""
        pg, s3 = self.postgres(), self.s3()
        triton = self.triton(s3.s3)
        env = self.service_env(pg, s3, triton)
        rows: list[tuple[ManagedProcess, bool, str]] = [
            (pg, True, _masked(env["DATABASE_URL"], self.state.secrets)),
            (s3, True, s3.endpoint),
            (triton, True, f"grpc {triton.grpc_addr}  http {triton.http_addr}"),
        ]
        for spec, service in self.services(env):
            rows.append((service, module_available(spec.module), service.addr or "(no port)"))
        for spec in HTTP_PARTS:
            part = self.http_part(spec, env, self.http_port(spec))
            rows.append((part, module_available(spec.module), f"http://{part.addr}"))
        rows.append((self.supervisor(), True, "restarts a dead Triton"))
        known = {part.name for part, _, _ in rows}
        # A recorded process that the table no longer lists is still ours to report and stop.
        rows += [
            (AdoptedProcess(name, self.logs / f"{name}.log"), False, "")
            for name in self.state.processes
            if name not in known
        ]
        for part, _, _ in rows:
            rec = self.state.processes.get(part.name)
            if rec is not None:
                part.adopt(rec.ref)
        return rows


@contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    """Serialise `up` and `down` on one data directory."""
    with open(data_dir / "stack.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _say(message: str) -> None:
    print(message, flush=True)


# ---------------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------------


def _ensure(stack: Stack, part: ManagedProcess) -> str:
    """Start the part unless it already runs with the same configuration; say what was done."""
    rec = stack.state.processes.get(part.name)
    if rec is not None and rec.ref.is_alive():
        part.adopt(rec.ref)
        if rec.fingerprint == part.fingerprint():
            return "already running"
        # Its configuration changed (e.g. a part it depends on moved to other ports): restart it.
        part.stop()
        action = "restarted"
    else:
        action = "started"
    try:
        part.start()
    except PartFailed:
        raise
    except Exception as error:
        raise part.failure(f"could not be started: {error}") from error
    stack.state.record(part)
    stack.state.save(stack.state_path)
    return action


def _ready(part: ManagedProcess, deadline: float) -> None:
    """Wait for the part; one that we cannot get healthy is stopped rather than left half-way."""
    try:
        part.wait_ready(max(deadline - time.monotonic(), 1.0))
    except PartFailed:
        part.stop()
        raise


def _report(part: ManagedProcess, action: str, endpoint: str) -> None:
    _say(f"  {part.name:<10} {action:<16} pid {part.pid!s:<8} {endpoint}")


def _bring_up(stack: Stack, deadline: float) -> dict[str, str]:
    """Start (or find running) every part in dependency order; return what stack.env holds."""
    secrets_ = stack.state.secrets
    # S3 is launched first so that it boots while initdb runs.
    s3 = stack.s3(choose_ports=True)
    s3_action = _ensure(stack, s3)
    pg = stack.postgres(choose_ports=True)
    pg_action = _ensure(stack, pg)
    _ready(s3, deadline)
    try:
        ensure_buckets(s3.s3, BUCKETS)
    except Exception as error:
        raise s3.failure(f"could not create the buckets: {error}") from error
    _report(s3, s3_action, s3.endpoint)
    # Triton needs its repository bucket, so it starts once S3 answers.
    triton = stack.triton(s3.s3, choose_ports=True)
    triton_action = _ensure(stack, triton)
    _ready(pg, deadline)
    try:
        pg.ensure_database(DATABASE, DATABASE_USER, secrets_["pg_password"])
    except Exception as error:
        raise pg.failure(f"could not create the database: {error}") from error
    env = stack.service_env(pg, s3, triton)
    _report(pg, pg_action, _masked(env["DATABASE_URL"], secrets_))
    _ready(triton, deadline)
    _report(triton, triton_action, f"grpc {triton.grpc_addr}  http {triton.http_addr}")
    supervisor = stack.supervisor()
    supervisor_action = _ensure(stack, supervisor)
    _ready(supervisor, deadline)
    _report(supervisor, supervisor_action, "restarts a dead Triton")

    services: list[tuple[ServiceProcess, str]] = []
    for spec, service in stack.services(env):
        if not module_available(spec.module):
            _say(f"  {spec.name:<10} {'absent':<16} ({spec.module} does not exist yet)")
            continue
        port = spec.port()
        if not stack.running(spec.name) and port is not None and not port_is_free(port):
            raise PartFailed(
                spec.name, f"port {port} is taken by another process (set {spec.env_prefix}_PORT)"
            )
        services.append((service, _ensure(stack, service)))
    failures = wait_all_ready([service for service, _ in services], max(deadline - time.monotonic(), 1.0))
    failed = {failure.part for failure in failures}
    for service, action in services:
        if service.name in failed:
            service.stop()
        else:
            _report(service, action, service.addr or "")
    if failures:
        if len(failures) == 1:
            raise failures[0]
        raise PartFailed(", ".join(sorted(failed)), "\n\n".join(str(failure) for failure in failures))
    return stack.user_env(env, _bring_up_http(stack, env, deadline))


def _bring_up_http(stack: Stack, env: dict[str, str], deadline: float) -> dict[str, int]:
    """Start (or find running) the edge and the console once the services answer; return their ports."""
    ports: dict[str, int] = {}
    parts: list[tuple[HttpServiceProcess, str]] = []
    for spec in HTTP_PARTS:
        if not module_available(spec.module):
            continue
        port = stack.http_port(spec, choose=True)
        if not stack.running(spec.name) and not port_is_free(port):
            raise PartFailed(
                spec.name, f"port {port} is taken by another process (set {spec.env_prefix}_PORT)"
            )
        part = stack.http_part(spec, env, port)
        parts.append((part, _ensure(stack, part)))
        ports[spec.name] = port
    for part, action in parts:
        _ready(part, deadline)
        _report(part, action, f"http://{part.addr}")
    return ports


def _masked(text: str, secrets_: dict[str, str]) -> str:
    """The text with the passwords and the S3 secret key replaced by ***."""
    for key, secret in secrets_.items():
        if key not in ("s3_access_key", "edge_access_key_id"):
            text = text.replace(secret, "***")
    return text


def cmd_up(data_dir: Path, timeout: float) -> int:
    """Start every part that is not running, wait until all are healthy, write stack.env."""
    began = time.monotonic()
    stack = Stack(data_dir)
    stack.state.save(stack.state_path)  # the credentials are kept from the very first moment
    try:
        env = _bring_up(stack, began + timeout)
    except PartFailed as failure:
        stack.state.save(stack.state_path)
        print(f"error: {failure}", file=sys.stderr)
        print(
            "parts that did start are still running; `python -m scripts.stack down` stops them",
            file=sys.stderr,
        )
        return 1
    write_env(stack.env_path, env)
    _say(f"stack up in {time.monotonic() - began:.1f} s; endpoints written to {stack.env_path}:")
    for key, value in env.items():
        hidden = "SECRET" in key or "TOKEN" in key
        _say(f"  {key}={'***' if hidden else _masked(value, stack.state.secrets)}")
    return 0


def write_env(path: Path, env: dict[str, str]) -> None:
    """Write KEY=value lines (quoted for a shell where needed), readable by the owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("# Written by `python -m scripts.stack up`; source it: set -a; . .data/stack.env\n")
        for key, value in env.items():
            handle.write(f"{key}={shlex.quote(value)}\n")


def cmd_down(data_dir: Path) -> int:
    """Stop every recorded process: services first, then Triton, S3, Postgres. Data stays."""
    began = time.monotonic()
    stack = Stack(data_dir)
    if not stack.state.processes:
        _say("stack is not running")
        return 0
    rows = stack.all_parts()
    services = [part for part, _, _ in rows if part.name not in INFRA]
    by_name = {part.name: part for part, _, _ in rows}
    stages = [list(reversed(services))] + [[by_name[name]] for name in reversed(INFRA)]
    for stage in stages:
        recorded = [part for part in stage if part.name in stack.state.processes]
        alive = [part for part in recorded if part.is_alive()]
        stage_began = time.monotonic()
        stop_all(alive)
        for part in recorded:
            if part.is_alive():
                what = "did not stop"
            else:
                what = "stopped" if part in alive else "was not running"
                del stack.state.processes[part.name]
            _say(f"  {part.name:<10} {what:<16} pid {part.pid}  ({time.monotonic() - stage_began:.1f} s)")
        stack.state.save(stack.state_path)
    left = sorted(stack.state.processes)
    if left:
        print(f"error: still running: {', '.join(left)}", file=sys.stderr)
        return 1
    _say(f"stack down in {time.monotonic() - began:.1f} s (data kept in {data_dir})")
    return 0


def cmd_status(data_dir: Path) -> int:
    """One line per part: running / unhealthy / dead / stopped / absent; non-zero if one should run but doesn't."""
    stack = Stack(data_dir)
    stack_up = bool(stack.state.processes)
    problems = 0
    for part, should_run, endpoint in stack.all_parts():
        recorded = part.name in stack.state.processes
        if recorded and part.is_alive():
            state = "running" if part.healthy() else "unhealthy"
        elif recorded:
            state = "dead"
        elif not should_run and not isinstance(part, AdoptedProcess):
            state, endpoint = "absent", f"({getattr(part, 'module', '')} does not exist yet)"
        else:
            state = "stopped"
        if state in ("unhealthy", "dead") or (state == "stopped" and stack_up and should_run):
            problems += 1
        if part.name in INFRA and part.name not in stack.state.ports:
            endpoint = ""  # never started: it has no ports yet
        pid = f"pid {part.pid}" if recorded else ""
        _say(f"{part.name:<10} {state:<10} {pid:<10} {endpoint}")
    return 1 if problems else 0


def _supervise_once(data_dir: Path, children: list[ManagedProcess]) -> None:
    """Restart Triton on its saved ports if it is recorded and dead; skipped while `up` or `down` works."""
    for child in list(children):
        if not child.is_alive():  # reaps a Triton we started that died again
            children.remove(child)
    with open(data_dir / "stack.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        stack = Stack(data_dir)
        rec = stack.state.processes.get("triton")
        if rec is None or rec.ref.is_alive():
            return
        triton = stack.triton(stack.s3().s3)
        triton.start()
        children.append(triton)
        stack.state.record(triton)
        stack.state.save(stack.state_path)
    _say(f"{time.strftime('%H:%M:%S')} triton was dead: restarted (pid {triton.pid})")
    triton.wait_ready(READY_TIMEOUT)
    _say(f"{time.strftime('%H:%M:%S')} triton ready")


def cmd_supervise(data_dir: Path) -> int:
    """Every second, restart Triton if it died (what `up` starts as the `supervisor` part); until SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    children: list[ManagedProcess] = []
    while not stop.wait(SUPERVISE_INTERVAL):
        try:
            _supervise_once(data_dir, children)
        except Exception as error:  # noqa: BLE001 - e.g. S3 is down too: try again next round
            print(f"supervisor: {error}", file=sys.stderr, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run `up`, `down`, `status` or `supervise`."""
    parser = argparse.ArgumentParser(prog="python -m scripts.stack", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("up", "down", "status", "supervise"))
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / ".data", help="default: <repo>/.data")
    parser.add_argument("--timeout", type=float, default=READY_TIMEOUT, help="seconds `up` waits for health")
    args = parser.parse_args(argv)
    data_dir: Path = args.data_dir.resolve()
    if args.command == "status":
        return cmd_status(data_dir)
    if args.command == "supervise":
        return cmd_supervise(data_dir)
    if args.command == "down" and not (data_dir / "stack.json").exists():
        _say("stack is not running")
        return 0
    if not data_dir.exists():
        # Readable by others: as root, the postgres user must pass through it to reach its cluster.
        data_dir.mkdir(parents=True)
        data_dir.chmod(0o755)
    with _locked(data_dir):
        if args.command == "up":
            return cmd_up(data_dir, args.timeout)
        return cmd_down(data_dir)


if __name__ == "__main__":
    # The service modules are looked up (and run) from the repository, whatever the caller's cwd.
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    sys.exit(main())
