"""Tests of the embedded stack, `python -m scripts.stack up|status|down`, run as a subprocess the way
`make up` runs it, against a throwaway data directory and service ports of its own (so it never
collides with a stack that `make up` started on the default ports)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from minio import Minio

from scripts.embedded import (
    REPO_ROOT,
    ProcessRef,
    free_port,
    grpc_health_serving,
    module_available,
    port_is_free,
)
from scripts.stack import INFRA, SERVICES

pytestmark = pytest.mark.slow

ENV_KEYS = {
    "CUSTOMLABELS_PROJECT_ADDR",
    "CUSTOMLABELS_DATASET_ADDR",
    "CUSTOMLABELS_TRAINING_ADDR",
    "CUSTOMLABELS_SERVING_ADDR",
    "CUSTOMLABELS_S3_ENDPOINT",
    "CUSTOMLABELS_S3_ACCESS_KEY",
    "CUSTOMLABELS_S3_SECRET_KEY",
    "CUSTOMLABELS_TRITON_GRPC_ADDR",
    "CUSTOMLABELS_TRITON_HTTP_ADDR",
    "DATABASE_URL",
    "CUSTOMLABELS_REGION",
    "CUSTOMLABELS_ACCOUNT_ID",
}
PRESENT_SERVICES = [spec for spec in SERVICES if module_available(spec.module)]
# The gRPC servers among them (the training worker listens on no port).
SERVERS = [spec for spec in PRESENT_SERVICES if spec.default_port is not None]
SHOULD_RUN = set(INFRA) | {spec.name for spec in PRESENT_SERVICES}


class Stack:
    """Runs the stack script on one data directory with its own service ports."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.env = dict(os.environ)
        for spec in SERVICES:
            if spec.default_port is not None:
                self.env[f"{spec.env_prefix}_PORT"] = str(free_port())

    def run(self, command: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`python -m scripts.stack COMMAND --data-dir DIR`; with `check`, fail the test on a non-zero exit."""
        result = subprocess.run(
            [sys.executable, "-m", "scripts.stack", command, "--data-dir", str(self.data_dir)],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if check:
            assert result.returncode == 0, (
                f"{command} exited {result.returncode}:\n{result.stdout}{result.stderr}"
            )
        return result

    def state(self) -> dict[str, dict[str, int]]:
        """The recorded processes: name -> {pid, start_time, ...}."""
        processes: dict[str, dict[str, int]] = json.loads((self.data_dir / "stack.json").read_text())[
            "processes"
        ]
        return processes

    def pids(self) -> dict[str, int]:
        """Recorded PID of each part."""
        return {name: rec["pid"] for name, rec in self.state().items()}

    def ports(self) -> list[int]:
        """Every infrastructure port the stack saved, plus the service ports."""
        saved = json.loads((self.data_dir / "stack.json").read_text())["ports"]
        ports = [port for part in saved.values() for port in part.values()]
        return ports + [int(self.env[f"{spec.env_prefix}_PORT"]) for spec in SERVERS]

    def sourced_env(self) -> dict[str, str]:
        """stack.env as a shell sees it after sourcing it."""
        out = subprocess.run(
            ["bash", "-c", 'set -a; . "$1"; env -0', "bash", str(self.data_dir / "stack.env")],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)


def status_lines(output: str) -> dict[str, str]:
    """`status` output as part name -> state word."""
    return {m[1]: m[2] for m in re.finditer(r"^(\S+)\s+(\S+)", output, re.MULTILINE)}


def processes_mentioning(text: str) -> list[int]:
    """PIDs of the processes whose command line contains `text`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(proc.name))
    return found


def wait_dead(ref: ProcessRef, timeout: float = 10.0) -> None:
    """Wait until the process is gone (a zombie counts as gone)."""
    deadline = time.monotonic() + timeout
    while ref.is_alive():
        assert time.monotonic() < deadline, f"pid {ref.pid} still alive"
        time.sleep(0.05)


@pytest.fixture
def stack() -> Iterator[Stack]:
    """A stack on a fresh data directory, brought down (and every trace of it removed) at the end."""
    # Not pytest's tmp_path: that sits under a 0700 directory that the postgres user (when we run as
    # root) cannot enter.
    data_dir = Path(tempfile.mkdtemp(prefix="customlabels-stack-test-"))
    data_dir.chmod(0o755)
    stack = Stack(data_dir)
    try:
        yield stack
    finally:
        if (data_dir / "stack.json").exists():
            stack.run("down", check=False)
            # Should `down` have left anything, end it here: only processes started for this test.
            for name, rec in stack.state().items():
                ref = ProcessRef(rec["pid"], rec["start_time"])
                if ref.send_signal(signal.SIGKILL):
                    print(f"killed leftover {name} (pid {ref.pid})")
        shutil.rmtree(data_dir, ignore_errors=True)


def assert_all_gone(stack: Stack, refs: list[ProcessRef]) -> None:
    """Nothing of the stack runs any more: recorded PIDs dead, no process names its directory, ports free."""
    assert not [ref.pid for ref in refs if ref.is_alive()]
    assert processes_mentioning(str(stack.data_dir)) == []
    assert [port for port in stack.ports() if not port_is_free(port)] == []


def test_status_and_down_of_a_stack_never_started(stack: Stack) -> None:
    status = stack.run("status")
    states = status_lines(status.stdout)
    assert {states[name] for name in SHOULD_RUN} == {"stopped"}

    down = stack.run("down")
    assert "not running" in down.stdout


def test_up_status_down_up_keeps_the_data(stack: Stack) -> None:
    began = time.monotonic()
    stack.run("up")
    up_seconds = time.monotonic() - began
    first = stack.state()
    assert first.keys() >= SHOULD_RUN
    refs = [ProcessRef(rec["pid"], rec["start_time"]) for rec in first.values()]

    status = stack.run("status")
    states = status_lines(status.stdout)
    assert {states[name] for name in SHOULD_RUN} == {"running"}, status.stdout

    # stack.env has every endpoint, a shell can source it, and every endpoint answers.
    assert (stack.data_dir / "stack.env").stat().st_mode & 0o077 == 0
    assert (stack.data_dir / "stack.json").stat().st_mode & 0o077 == 0
    env = stack.sourced_env()
    assert env.keys() >= ENV_KEYS
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("CREATE TABLE survivor (word text)")
        conn.execute("INSERT INTO survivor VALUES ('kept')")
    s3 = Minio(
        env["CUSTOMLABELS_S3_ENDPOINT"].removeprefix("http://"),
        env["CUSTOMLABELS_S3_ACCESS_KEY"],
        env["CUSTOMLABELS_S3_SECRET_KEY"],
        secure=False,
    )
    assert {"customlabels-images", "customlabels-models", "customlabels-triton"} <= {
        bucket.name for bucket in s3.list_buckets()
    }
    s3.put_object("customlabels-images", "survivor.txt", io.BytesIO(b"kept"), 4)
    with urllib.request.urlopen(f"http://{env['CUSTOMLABELS_TRITON_HTTP_ADDR']}/v2/health/ready") as ready:
        assert ready.status == 200
    host, port = env["CUSTOMLABELS_TRITON_GRPC_ADDR"].rsplit(":", 1)
    socket.create_connection((host, int(port)), timeout=2).close()
    for spec in SERVERS:
        assert grpc_health_serving(env[f"{spec.env_prefix}_ADDR"]), spec.name
    for url in (env["CUSTOMLABELS_EDGE_ENDPOINT"], env["CUSTOMLABELS_CONSOLE_URL"]):
        with urllib.request.urlopen(f"{url}/health") as health:
            assert health.status == 200, url
    # The console signs users in with the stack's development key pair.
    with httpx.Client(base_url=env["CUSTOMLABELS_CONSOLE_URL"]) as console:
        console.get("/signin")
        signed_in = console.post(
            "/signin",
            data={
                "access_key_id": env["CUSTOMLABELS_AWS_ACCESS_KEY_ID"],
                "secret_access_key": env["CUSTOMLABELS_AWS_SECRET_ACCESS_KEY"],
                "csrf": console.cookies.get("cl_signin") or "",
            },
        )
        assert signed_in.status_code == 303, signed_in.text
        assert console.get("/api/session").json()["AccessKeyId"] == env["CUSTOMLABELS_AWS_ACCESS_KEY_ID"]

    # A second `up` leaves everything running as it is.
    again = stack.run("up")
    assert stack.state() == first
    assert "started" not in again.stdout

    # A part that dies is reported.
    killed = ProcessRef(first["postgres"]["pid"], first["postgres"]["start_time"])
    os.kill(killed.pid, signal.SIGKILL)
    wait_dead(killed)
    status = stack.run("status", check=False)
    assert status.returncode != 0
    assert status_lines(status.stdout)["postgres"] == "dead"

    began = time.monotonic()
    stack.run("down")
    down_seconds = time.monotonic() - began
    status = stack.run("status")
    assert {status_lines(status.stdout)[name] for name in SHOULD_RUN} == {"stopped"}
    assert stack.state() == {}
    assert_all_gone(stack, refs)

    # Up again: the row and the object written before are still there.
    stack.run("up")
    env = stack.sourced_env()
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        assert conn.execute("SELECT word FROM survivor").fetchall() == [("kept",)]
    assert s3.get_object("customlabels-images", "survivor.txt").read() == b"kept"
    refs = [ProcessRef(rec["pid"], rec["start_time"]) for rec in stack.state().values()]
    stack.run("down")
    assert_all_gone(stack, refs)
    print(f"up {up_seconds:.1f} s, down {down_seconds:.1f} s")


def test_up_restarts_only_the_part_that_died(stack: Stack) -> None:
    stack.run("up")
    before = stack.state()
    endpoints = stack.sourced_env()
    killed = ProcessRef(before["s3"]["pid"], before["s3"]["start_time"])
    os.kill(killed.pid, signal.SIGKILL)
    wait_dead(killed)

    up = stack.run("up")
    after = stack.state()
    assert after["s3"]["pid"] != before["s3"]["pid"]
    assert {name: rec for name, rec in after.items() if name != "s3"} == {
        name: rec for name, rec in before.items() if name != "s3"
    }, up.stdout
    # The S3 server came back on its old ports, so nothing that points at it had to change.
    assert stack.sourced_env() == endpoints
    assert stack.run("status").returncode == 0

    refs = [ProcessRef(rec["pid"], rec["start_time"]) for rec in after.values()]
    stack.run("down")
    assert_all_gone(stack, refs)


def test_up_names_the_part_that_cannot_start(stack: Stack) -> None:
    spec = SERVERS[0]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(stack.env[f"{spec.env_prefix}_PORT"])))
        squatter.listen()
        up = stack.run("up", check=False)
    assert up.returncode != 0
    assert f"{spec.name}: port" in up.stderr
    # The parts that did start are recorded, so `down` still ends them all.
    refs = [ProcessRef(rec["pid"], rec["start_time"]) for rec in stack.state().values()]
    assert set(INFRA) <= stack.state().keys()
    stack.run("down")
    assert_all_gone(stack, refs)
