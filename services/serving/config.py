"""Settings of the serving service beyond the shared Config, read once from the environment.

Every limit of spec/limits.md that DetectCustomLabels enforces is here, so a deployment can change it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from services.common.config import ConfigError, env_number

DEVICES = ("cpu", "gpu")
DECODERS = ("service", "triton")


def _choice(env: Mapping[str, str], key: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.get(key, "").strip().lower() or default
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
    return value


@dataclass(frozen=True)
class ServingSettings:
    """How models run on Triton, how they scale, and the image limits of DetectCustomLabels."""

    # Triton model configuration.
    device: str = "cpu"
    max_batch_size: int = 8
    batch_delay_us: int = 0
    python_path: str = ""
    # Triton instances per inference unit; 0: 2 on CPU (two onnxruntime sessions carry ~35 % more
    # images under load than one, bench/serving.py), 1 on GPU.
    instances_per_unit: int = 0
    intra_op_threads: int = 0
    allow_spinning: bool = False
    # Where images are decoded and resized: in Triton (encoded bytes go there; measured faster on CPU,
    # bench/results/serving.md) or in this service (uint8 pixels go to Triton).
    decode: str = "triton"
    # Quota: inference units of all running versions together (LimitExceededException past it).
    max_total_units: int = 16
    # The control loop: reconciliation with Triton and auto-scaling.
    reconcile_s: float = 2.0
    scale_up_queue_ms: float = 10.0
    scale_down_idle_s: float = 30.0
    load_timeout_s: float = 120.0
    # This replica's name in the replicas table (default: host name and process id; empty: that plus a
    # random suffix, so replicas in one process differ), and how long a silent replica counts as live.
    replica_id: str = ""
    replica_ttl_s: float = 15.0
    infer_timeout_s: float = 30.0
    # DetectCustomLabels limits (spec/limits.md §1).
    max_image_bytes: int = 4 * 1024 * 1024
    max_s3_image_bytes: int = 15 * 1024 * 1024
    min_image_side: int = 64
    max_image_side: int = 4096
    max_aspect_ratio: float = 20.0

    def instances(self, units: int) -> int:
        """The Triton instance count of `units` inference units."""
        per_unit = self.instances_per_unit or (1 if self.device == "gpu" else 2)
        return units * per_unit

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServingSettings:
        """Reads the CUSTOMLABELS_TRITON_* and CUSTOMLABELS_SERVING_* variables (README lists them)."""
        env = os.environ if env is None else env
        d = cls()
        return cls(
            device=_choice(env, "CUSTOMLABELS_TRITON_DEVICE", d.device, DEVICES),
            max_batch_size=int(env_number(env, "CUSTOMLABELS_TRITON_MAX_BATCH_SIZE", d.max_batch_size, 1)),
            batch_delay_us=int(env_number(env, "CUSTOMLABELS_TRITON_BATCH_DELAY_US", d.batch_delay_us)),
            python_path=env.get("CUSTOMLABELS_TRITON_PYTHONPATH", d.python_path),
            instances_per_unit=int(
                env_number(env, "CUSTOMLABELS_TRITON_INSTANCES_PER_UNIT", d.instances_per_unit)
            ),
            intra_op_threads=int(env_number(env, "CUSTOMLABELS_TRITON_INTRA_OP_THREADS", d.intra_op_threads)),
            allow_spinning=env.get("CUSTOMLABELS_TRITON_ALLOW_SPINNING", "0").strip().lower()
            in ("1", "true", "yes"),
            decode=_choice(env, "CUSTOMLABELS_SERVING_DECODE", d.decode, DECODERS),
            max_total_units=int(
                env_number(env, "CUSTOMLABELS_SERVING_MAX_INFERENCE_UNITS", d.max_total_units, 1)
            ),
            reconcile_s=env_number(env, "CUSTOMLABELS_SERVING_RECONCILE_S", d.reconcile_s, 0.1),
            scale_up_queue_ms=env_number(env, "CUSTOMLABELS_SERVING_SCALE_UP_QUEUE_MS", d.scale_up_queue_ms),
            scale_down_idle_s=env_number(env, "CUSTOMLABELS_SERVING_SCALE_DOWN_IDLE_S", d.scale_down_idle_s),
            load_timeout_s=env_number(env, "CUSTOMLABELS_SERVING_LOAD_TIMEOUT_S", d.load_timeout_s, 1),
            replica_id=env.get("CUSTOMLABELS_SERVING_REPLICA_ID", "").strip()
            or f"{socket.gethostname()}-{os.getpid()}",
            replica_ttl_s=env_number(env, "CUSTOMLABELS_SERVING_REPLICA_TTL_S", d.replica_ttl_s, 1),
            infer_timeout_s=env_number(env, "CUSTOMLABELS_SERVING_INFER_TIMEOUT_S", d.infer_timeout_s, 0.1),
            max_image_bytes=int(
                env_number(env, "CUSTOMLABELS_SERVING_MAX_IMAGE_BYTES", d.max_image_bytes, 1)
            ),
            max_s3_image_bytes=int(
                env_number(env, "CUSTOMLABELS_SERVING_MAX_S3_IMAGE_BYTES", d.max_s3_image_bytes, 1)
            ),
            min_image_side=int(env_number(env, "CUSTOMLABELS_SERVING_MIN_IMAGE_SIDE", d.min_image_side, 1)),
            max_image_side=int(env_number(env, "CUSTOMLABELS_SERVING_MAX_IMAGE_SIDE", d.max_image_side, 1)),
            max_aspect_ratio=env_number(env, "CUSTOMLABELS_SERVING_MAX_ASPECT_RATIO", d.max_aspect_ratio, 1),
        )
