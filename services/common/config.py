"""Service configuration, read once from the environment into a frozen dataclass.

Nothing in a service knows whether it runs on the embedded stack or in Kubernetes: endpoints,
credentials and sizes all come from these variables (README lists them).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field


class ConfigError(RuntimeError):
    """Raised at start-up when a required variable is missing or malformed."""


DEFAULT_PORTS = {"project": 50051, "dataset": 50052, "training": 50053, "serving": 50054}


def address(env: Mapping[str, str], key: str, default: str) -> str:
    """A host:port setting (default when unset); ConfigError names a malformed one."""
    value = env.get(key, default).strip()
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"{key} must be host:port, got {value!r}")
    return value


def region_and_account(env: Mapping[str, str]) -> tuple[str, str]:
    """CUSTOMLABELS_REGION and CUSTOMLABELS_ACCOUNT_ID, the parts of every ARN; ConfigError when malformed."""
    region = env.get("CUSTOMLABELS_REGION", "local")
    if not region or not all(c.isalnum() or c == "-" for c in region) or region != region.lower():
        raise ConfigError(f"CUSTOMLABELS_REGION must match [a-z0-9-]+, got {region!r}")
    account_id = env.get("CUSTOMLABELS_ACCOUNT_ID", "000000000000")
    if not (account_id.isdigit() and len(account_id) == 12):
        raise ConfigError(f"CUSTOMLABELS_ACCOUNT_ID must be 12 digits, got {account_id!r}")
    return region, account_id


def env_number(env: Mapping[str, str], key: str, default: float, minimum: float = 0) -> float:
    """A number from the environment (default when unset or empty); ConfigError names a bad value."""
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{key} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{key} must be >= {minimum:g}, got {raw}")
    return value


def _int(env: Mapping[str, str], key: str, default: int, minimum: int = 0) -> int:
    value = env_number(env, key, default, minimum)
    if value != int(value):
        raise ConfigError(f"{key} must be an integer, got {env[key]!r}")
    return int(value)


@dataclass(frozen=True)
class Config:
    """Everything a service process needs to know about its surroundings."""

    service: str
    listen_addr: str
    database_url: str
    s3_endpoint: str
    s3_access_key: str = field(repr=False)
    s3_secret_key: str = field(repr=False)
    s3_region: str
    triton_grpc_addr: str
    triton_http_addr: str
    project_addr: str
    dataset_addr: str
    training_addr: str
    serving_addr: str
    region: str
    account_id: str
    page_token_secret: bytes = field(repr=False)
    images_bucket: str
    models_bucket: str
    triton_bucket: str
    triton_prefix: str
    db_pool_min: int
    db_pool_max: int
    grpc_workers: int
    shutdown_grace_s: float
    log_level: str

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None) -> Config:
        """Reads the configuration of `service`; raises ConfigError on what is missing or malformed."""
        env = os.environ if env is None else env
        if service not in DEFAULT_PORTS:
            raise ConfigError(f"unknown service {service!r}")
        database_url = env.get("DATABASE_URL", "")
        if not database_url:
            raise ConfigError("DATABASE_URL is required (postgresql://user:password@host:port/db)")
        region, account_id = region_and_account(env)
        secret = env.get("CUSTOMLABELS_PAGE_TOKEN_SECRET", "")
        # Without an explicit secret every replica must still agree on one: derive it from what
        # they all share (the database), so tokens survive restarts and work across replicas.
        token_secret = (
            secret.encode() or hashlib.sha256(b"customlabels-pages|" + database_url.encode()).digest()
        )
        ports = {name: f"127.0.0.1:{port}" for name, port in DEFAULT_PORTS.items()}
        return cls(
            service=service,
            listen_addr=address(env, "CUSTOMLABELS_LISTEN_ADDR", f"127.0.0.1:{DEFAULT_PORTS[service]}"),
            database_url=database_url,
            s3_endpoint=env.get("CUSTOMLABELS_S3_ENDPOINT", "http://127.0.0.1:8333"),
            s3_access_key=env.get("CUSTOMLABELS_S3_ACCESS_KEY", ""),
            s3_secret_key=env.get("CUSTOMLABELS_S3_SECRET_KEY", ""),
            s3_region=env.get("CUSTOMLABELS_S3_REGION", "us-east-1"),
            triton_grpc_addr=env.get("CUSTOMLABELS_TRITON_GRPC_ADDR", "127.0.0.1:8001"),
            triton_http_addr=env.get("CUSTOMLABELS_TRITON_HTTP_ADDR", "127.0.0.1:8000"),
            project_addr=address(env, "CUSTOMLABELS_PROJECT_ADDR", ports["project"]),
            dataset_addr=address(env, "CUSTOMLABELS_DATASET_ADDR", ports["dataset"]),
            training_addr=address(env, "CUSTOMLABELS_TRAINING_ADDR", ports["training"]),
            serving_addr=address(env, "CUSTOMLABELS_SERVING_ADDR", ports["serving"]),
            region=region,
            account_id=account_id,
            page_token_secret=token_secret,
            images_bucket=env.get("CUSTOMLABELS_IMAGES_BUCKET", "customlabels-images"),
            models_bucket=env.get("CUSTOMLABELS_MODELS_BUCKET", "customlabels-models"),
            triton_bucket=env.get("CUSTOMLABELS_TRITON_BUCKET", "customlabels-triton"),
            triton_prefix=env.get("CUSTOMLABELS_TRITON_PREFIX", "repository").strip("/"),
            db_pool_min=_int(env, "CUSTOMLABELS_DB_POOL_MIN", 1, minimum=0),
            db_pool_max=_int(env, "CUSTOMLABELS_DB_POOL_MAX", 10, minimum=1),
            grpc_workers=_int(env, "CUSTOMLABELS_GRPC_WORKERS", 16, minimum=1),
            shutdown_grace_s=float(_int(env, "CUSTOMLABELS_SHUTDOWN_GRACE_S", 10)),
            log_level=env.get("CUSTOMLABELS_LOG_LEVEL", "INFO").upper(),
        )
