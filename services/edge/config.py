"""The edge's configuration, read once from the environment into a frozen dataclass.

The addresses of the four services and the region are the same variables every service reads
(services/common/config.py); the access keys that may sign requests come from
CUSTOMLABELS_EDGE_CREDENTIALS (`KEY_ID:SECRET` pairs, comma separated) and/or
CUSTOMLABELS_EDGE_CREDENTIALS_FILE (one `KEY_ID:SECRET` per line, `#` comments). At least one key is
required: the edge never answers unsigned requests.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from services.common.accesskeys import access_keys
from services.common.config import DEFAULT_PORTS, ConfigError, address, env_number

DEFAULT_PORT = 8080
# DetectCustomLabels takes 4 MB of image and UpdateDatasetEntries 5 MB of JSON Lines, base64 in
# JSON (4/3 larger): 8 MiB holds either with room for the other members.
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024


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
        credentials = access_keys(env)
        region = env.get("CUSTOMLABELS_REGION", "local")
        if not region or not all(c.isalnum() or c == "-" for c in region) or region != region.lower():
            raise ConfigError(f"CUSTOMLABELS_REGION must match [a-z0-9-]+, got {region!r}")
        return cls(
            listen_addr=address(env, "CUSTOMLABELS_LISTEN_ADDR", f"127.0.0.1:{DEFAULT_PORT}"),
            service_addrs={
                name: address(env, f"CUSTOMLABELS_{name.upper()}_ADDR", f"127.0.0.1:{port}")
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
