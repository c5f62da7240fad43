"""The edge's configuration, read once from the environment into a frozen dataclass.

The addresses of the four services and the region are the same variables every service reads
(services/common/config.py); the access keys that may sign requests come from
CUSTOMLABELS_EDGE_CREDENTIALS (`KEY_ID:SECRET` pairs, comma separated) and/or
CUSTOMLABELS_EDGE_CREDENTIALS_FILE (one `KEY_ID:SECRET` per line, `#` comments). At least one key is
required: the edge never answers unsigned requests.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.common.config import DEFAULT_PORTS, ConfigError, env_number

DEFAULT_PORT = 8080
# DetectCustomLabels takes 4 MB of image and UpdateDatasetEntries 5 MB of JSON Lines, base64 in
# JSON (4/3 larger): 8 MiB holds either with room for the other members.
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
_ACCESS_KEY_ID = re.compile(r"^[A-Za-z0-9]{16,128}$")


def _addr(env: Mapping[str, str], key: str, default: str) -> str:
    value = env.get(key, default).strip()
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"{key} must be host:port, got {value!r}")
    return value


def parse_credentials(text: str, source: str) -> dict[str, str]:
    """Reads `KEY_ID:SECRET` pairs separated by commas or new lines; ConfigError names the bad one."""
    keys: dict[str, str] = {}
    for number, item in enumerate(re.split(r"[,\n]", text), start=1):
        item = item.split("#", 1)[0].strip()
        if not item:
            continue
        key_id, sep, secret = item.partition(":")
        key_id, secret = key_id.strip(), secret.strip()
        # The message names the entry by position: it must never echo a secret.
        if not sep or not _ACCESS_KEY_ID.match(key_id) or not secret:
            raise ConfigError(
                f"{source}: entry {number} is not KEY_ID:SECRET (key id: 16-128 letters/digits)"
            )
        keys[key_id] = secret
    return keys


@dataclass(frozen=True)
class EdgeConfig:
    """Everything the edge process needs to know."""

    listen_addr: str
    service_addrs: dict[str, str]
    region: str
    credentials: dict[str, str] = field(repr=False)
    max_body_bytes: int
    call_timeout_s: float
    read_timeout_s: float
    max_concurrency: int
    max_clock_skew_s: float
    shutdown_grace_s: float
    log_level: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EdgeConfig:
        """Reads the configuration; raises ConfigError on what is missing or malformed."""
        env = os.environ if env is None else env
        credentials = parse_credentials(
            env.get("CUSTOMLABELS_EDGE_CREDENTIALS", ""), "CUSTOMLABELS_EDGE_CREDENTIALS"
        )
        path = env.get("CUSTOMLABELS_EDGE_CREDENTIALS_FILE", "").strip()
        if path:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"CUSTOMLABELS_EDGE_CREDENTIALS_FILE: cannot read {path}: {exc.strerror}"
                ) from None
            credentials.update(parse_credentials(text, path))
        if not credentials:
            raise ConfigError(
                "the edge needs access keys: set CUSTOMLABELS_EDGE_CREDENTIALS=KEY_ID:SECRET "
                "or CUSTOMLABELS_EDGE_CREDENTIALS_FILE"
            )
        region = env.get("CUSTOMLABELS_REGION", "local")
        if not region or not all(c.isalnum() or c == "-" for c in region) or region != region.lower():
            raise ConfigError(f"CUSTOMLABELS_REGION must match [a-z0-9-]+, got {region!r}")
        return cls(
            listen_addr=_addr(env, "CUSTOMLABELS_LISTEN_ADDR", f"127.0.0.1:{DEFAULT_PORT}"),
            service_addrs={
                name: _addr(env, f"CUSTOMLABELS_{name.upper()}_ADDR", f"127.0.0.1:{port}")
                for name, port in DEFAULT_PORTS.items()
            },
            region=region,
            credentials=credentials,
            max_body_bytes=int(
                env_number(env, "CUSTOMLABELS_EDGE_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, 1024)
            ),
            call_timeout_s=env_number(env, "CUSTOMLABELS_EDGE_CALL_TIMEOUT_S", 60.0, 0.1),
            read_timeout_s=env_number(env, "CUSTOMLABELS_EDGE_READ_TIMEOUT_S", 30.0, 0.1),
            max_concurrency=int(env_number(env, "CUSTOMLABELS_EDGE_MAX_CONCURRENCY", 64, 1)),
            max_clock_skew_s=env_number(env, "CUSTOMLABELS_EDGE_MAX_CLOCK_SKEW_S", 300.0, 1),
            shutdown_grace_s=env_number(env, "CUSTOMLABELS_SHUTDOWN_GRACE_S", 10.0, 0),
            log_level=env.get("CUSTOMLABELS_LOG_LEVEL", "INFO").upper(),
        )
