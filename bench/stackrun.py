"""An embedded stack (`python -m scripts.stack up`) in a data directory of its own, for campaigns.

bench/chaos.py and bench/load.py run against every part as its own process, the way `make up` runs
it: this starts the stack on free ports (so it never meets a stack a developer has up), reads the
endpoints it wrote to `stack.env`, and knows each part's recorded process.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from scripts import stack as stack_script
from scripts.embedded import REPO_ROOT, ManagedProcess, S3Endpoint, free_port


class EmbeddedStack:
    """The stack of `data_dir`; `up` starts it, `down` stops it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.env: dict[str, str] = {}

    @staticmethod
    def free_ports() -> dict[str, str]:
        """A free port for every service, the edge and the console (`CUSTOMLABELS_<PART>_PORT`)."""
        return {
            f"{spec.env_prefix}_PORT": str(free_port())
            for spec in (*stack_script.SERVICES, *stack_script.HTTP_PARTS)
            if spec.default_port is not None
        }

    def up(self, env: Mapping[str, str], timeout: float = 240.0) -> None:
        """Starts every part with `env` over this process's environment; RuntimeError when one fails."""
        done = subprocess.run(
            [sys.executable, "-m", "scripts.stack", "up", "--data-dir", str(self.data_dir)]
            + ["--timeout", str(timeout)],
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            self.down()
            raise RuntimeError(f"the stack did not come up:\n{done.stdout}\n{done.stderr}")
        for line in (self.data_dir / "stack.env").read_text().splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                self.env[key] = " ".join(shlex.split(value))

    def down(self) -> str:
        """Stops the stack's processes; returns what `down` printed."""
        done = subprocess.run(
            [sys.executable, "-m", "scripts.stack", "down", "--data-dir", str(self.data_dir)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        )
        return done.stdout + done.stderr

    def pids(self) -> dict[str, int]:
        """Part name -> PID, as the stack recorded them."""
        state = json.loads((self.data_dir / "stack.json").read_text())
        return {name: rec["pid"] for name, rec in state["processes"].items()}

    def part(self, name: str) -> ManagedProcess:
        """The part as recorded now (adopted: it can be probed, signalled and started again)."""
        for part, _, _ in stack_script.Stack(self.data_dir).all_parts():
            if part.name == name:
                return part
        raise KeyError(name)

    @property
    def s3(self) -> S3Endpoint:
        """The stack's S3 server."""
        env = self.env
        return S3Endpoint(
            env["CUSTOMLABELS_S3_ENDPOINT"],
            env["CUSTOMLABELS_S3_ACCESS_KEY"],
            env["CUSTOMLABELS_S3_SECRET_KEY"],
        )
