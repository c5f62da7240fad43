"""Where the CLI finds each service: flags > environment > stack.env > the default ports.

`make up` writes `.data/stack.env` (KEY=VALUE lines) with the addresses of the stack it started;
the CLI finds it under the current directory or one of its parents, up to the repository root,
so `customlabels ...` talks to the running stack from anywhere in the checkout.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path

from services.common.config import DEFAULT_PORTS

STACK_ENV = Path(".data") / "stack.env"


def env_key(service: str) -> str:
    """Returns the variable that holds a service's address, e.g. CUSTOMLABELS_PROJECT_ADDR."""
    return f"CUSTOMLABELS_{service.upper()}_ADDR"


def find_stack_env(start: Path) -> Path | None:
    """Returns the first `.data/stack.env` in `start` or its parents, stopping at the repository root."""
    for folder in (start, *start.parents):
        candidate = folder / STACK_ENV
        if candidate.is_file():
            return candidate
        if (folder / ".git").exists():
            return None
    return None


def read_env_file(path: Path) -> dict[str, str]:
    """Reads KEY=VALUE lines (blank lines, `#` comments, `export` and shell quoting allowed).

    Raises ValueError naming the line that is not shell-parsable.
    """
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep:
            continue
        try:
            words = shlex.split(value, comments=True)
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: {exc}") from None
        values[key.strip()] = words[0] if words else ""
    return values


def resolve(service: str, flag: str | None, environ: Mapping[str, str], stack_env: Mapping[str, str]) -> str:
    """Returns the address of `service`: the flag, else the environment, else stack.env, else the default."""
    key = env_key(service)
    return flag or environ.get(key) or stack_env.get(key) or f"127.0.0.1:{DEFAULT_PORTS[service]}"
