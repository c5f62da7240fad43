"""The console's configuration, read once from the environment into a frozen dataclass.

The service addresses, the region, the object store and the database are the variables every
service reads (services/common/config.py); the access keys a user signs in with are the edge's
(services/common/accesskeys.py). What is the console's own starts with CUSTOMLABELS_CONSOLE_.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.common.accesskeys import access_keys
from services.common.config import DEFAULT_PORTS, ConfigError, address, env_number, region_and_account

DEFAULT_PORT = 8081
MiB = 1024 * 1024
# The built single-page application (services/console/web, `npm run build`).
DEFAULT_STATIC_DIR = Path(__file__).resolve().parent / "web" / "dist"
SECURE_COOKIE_MODES = ("auto", "always", "never")


@dataclass(frozen=True)
class ConsoleConfig:
    """Everything the console process needs to know."""

    listen_addr: str
    database_url: str = field(repr=False)
    service_addrs: dict[str, str]
    s3_endpoint: str
    s3_access_key: str = field(repr=False)
    s3_secret_key: str = field(repr=False)
    s3_region: str
    region: str
    account_id: str
    credentials: dict[str, str] = field(repr=False)
    # A session ends after this long without a request, and this long after sign-in in any case.
    session_idle_s: float
    session_max_s: float
    # `auto`: the Secure attribute when the request came over HTTPS (directly or per X-Forwarded-Proto).
    secure_cookies: str
    # Failed sign-ins per client address within the window before further attempts are refused.
    signin_max_failures: int
    signin_window_s: float
    call_timeout_s: float
    max_body_bytes: int
    max_upload_bytes: int
    max_upload_files: int
    static_dir: Path
    shutdown_grace_s: float
    log_level: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ConsoleConfig:
        """Reads the configuration; raises ConfigError on what is missing or malformed."""
        env = os.environ if env is None else env
        database_url = env.get("DATABASE_URL", "")
        if not database_url:
            raise ConfigError("DATABASE_URL is required (the console keeps its sessions in Postgres)")
        region, account_id = region_and_account(env)
        secure = env.get("CUSTOMLABELS_CONSOLE_SECURE_COOKIES", "auto").strip().lower() or "auto"
        if secure not in SECURE_COOKIE_MODES:
            raise ConfigError(f"CUSTOMLABELS_CONSOLE_SECURE_COOKIES must be one of {SECURE_COOKIE_MODES}")
        idle = env_number(env, "CUSTOMLABELS_CONSOLE_SESSION_IDLE_S", 3600.0, 1)
        maximum = env_number(env, "CUSTOMLABELS_CONSOLE_SESSION_MAX_S", 12 * 3600.0, 1)
        return cls(
            listen_addr=address(env, "CUSTOMLABELS_LISTEN_ADDR", f"127.0.0.1:{DEFAULT_PORT}"),
            database_url=database_url,
            service_addrs={
                name: address(env, f"CUSTOMLABELS_{name.upper()}_ADDR", f"127.0.0.1:{port}")
                for name, port in DEFAULT_PORTS.items()
            },
            s3_endpoint=env.get("CUSTOMLABELS_S3_ENDPOINT", "http://127.0.0.1:8333"),
            s3_access_key=env.get("CUSTOMLABELS_S3_ACCESS_KEY", ""),
            s3_secret_key=env.get("CUSTOMLABELS_S3_SECRET_KEY", ""),
            s3_region=env.get("CUSTOMLABELS_S3_REGION", "us-east-1"),
            region=region,
            account_id=account_id,
            credentials=access_keys(env),
            session_idle_s=idle,
            session_max_s=max(maximum, idle),
            secure_cookies=secure,
            signin_max_failures=int(env_number(env, "CUSTOMLABELS_CONSOLE_SIGNIN_MAX_FAILURES", 10, 1)),
            signin_window_s=env_number(env, "CUSTOMLABELS_CONSOLE_SIGNIN_WINDOW_S", 300.0, 1),
            call_timeout_s=env_number(env, "CUSTOMLABELS_CONSOLE_CALL_TIMEOUT_S", 60.0, 0.1),
            # DetectCustomLabels' 4 MB image, base64 in JSON, with room for the other members.
            max_body_bytes=int(env_number(env, "CUSTOMLABELS_CONSOLE_MAX_BODY_BYTES", 8 * MiB, 1024)),
            max_upload_bytes=int(env_number(env, "CUSTOMLABELS_CONSOLE_MAX_UPLOAD_BYTES", 512 * MiB, MiB)),
            max_upload_files=int(env_number(env, "CUSTOMLABELS_CONSOLE_MAX_UPLOAD_FILES", 250, 1)),
            static_dir=Path(env.get("CUSTOMLABELS_CONSOLE_STATIC_DIR", "") or DEFAULT_STATIC_DIR),
            shutdown_grace_s=env_number(env, "CUSTOMLABELS_SHUTDOWN_GRACE_S", 10.0, 0),
            log_level=env.get("CUSTOMLABELS_LOG_LEVEL", "INFO").upper(),
        )
