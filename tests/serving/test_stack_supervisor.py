"""The embedded stack (`make up`) restarts a Triton that was killed: its supervisor part brings it back
on the same ports and records the new process, so `status` and `down` keep working."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from scripts.embedded import ProcessRef
from tests.test_stack import Stack, assert_all_gone, status_lines

pytestmark = pytest.mark.slow


def test_the_stack_restarts_a_killed_triton() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="customlabels-supervisor-test-"))
    data_dir.chmod(0o755)
    stack = Stack(data_dir)
    try:
        stack.run("up")
        before = stack.state()
        assert "supervisor" in before
        env = stack.sourced_env()
        killed = ProcessRef(before["triton"]["pid"], before["triton"]["start_time"])
        os.kill(killed.pid, signal.SIGKILL)

        deadline = time.monotonic() + 90
        while True:
            triton = stack.state()["triton"]
            if triton["pid"] != killed.pid and ProcessRef(triton["pid"], triton["start_time"]).is_alive():
                try:
                    url = f"http://{env['CUSTOMLABELS_TRITON_HTTP_ADDR']}/v2/health/ready"
                    with urllib.request.urlopen(url, timeout=2) as ready:
                        if ready.status == 200:
                            break
                except OSError:
                    pass
            assert time.monotonic() < deadline, "Triton was not restarted"
            time.sleep(0.25)
        # Same endpoints; every part runs; only Triton's record changed.
        assert stack.sourced_env() == env
        status = stack.run("status")
        assert set(status_lines(status.stdout).values()) <= {"running", "absent"}, status.stdout
        after = stack.state()
        assert {k: v for k, v in after.items() if k != "triton"} == {
            k: v for k, v in before.items() if k != "triton"
        }
        refs = [ProcessRef(rec["pid"], rec["start_time"]) for rec in after.values()]
        stack.run("down")
        assert_all_gone(stack, refs)
    finally:
        if (data_dir / "stack.json").exists():
            stack.run("down", check=False)
            for rec in stack.state().values():
                ProcessRef(rec["pid"], rec["start_time"]).send_signal(signal.SIGKILL)
        shutil.rmtree(data_dir, ignore_errors=True)
