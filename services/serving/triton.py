"""Triton: the model repository in the object store, model control and inference over gRPC.

A deployed version is one Triton model named after its ARN (`model_name`), laid out in the
repository as Triton reads it (`s3://bucket/prefix/<name>/...`):

    config.pbtxt        python backend, max_batch_size, dynamic batching, instance_group count =
                        units × instances per unit (CPU: 2 single-threaded sessions per unit)
    1/model.py          services/serving/triton_model.py
    1/modelio.py        services/common/modelio.py (decoding and output decoding, as training evaluates)
    1/model.onnx        the graph training exported (copied inside the object store)
    1/model.json        its ModelSpec

Triton runs with `--model-control-mode=explicit`: nothing loads until `load` is called, so a Triton
that restarts comes back empty and the serving service's reconciliation loads what should run.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as tgrpc
from minio.commonconfig import CopySource
from minio.error import S3Error
from tritonclient.utils import InferenceServerException

from services.common import modelio
from services.common.storage import ObjectStore
from services.serving.config import ServingSettings

MODEL_PY = Path(__file__).with_name("triton_model.py")
MODELIO_PY = Path(modelio.__file__)
VERSION = "1"
BAD_IMAGE = "InvalidImageFormatException"


class TritonUnavailable(Exception):
    """Triton cannot be reached, or does not have the model loaded (retryable)."""


class TritonFailed(Exception):
    """Triton refused a request or a load; the message says why."""


class BadImage(Exception):
    """The model could not decode the image it was sent."""


def model_prefix(installation: str) -> str:
    """What the names of an installation's models start with (see `model_name`)."""
    return f"cl_{installation}_"


def model_name(version_arn: str, installation: str) -> str:
    """A Triton model name for a version: readable, a safe folder name, unique on a Triton that several
    installations share (the installation's id, then a digest of the ARN)."""
    tail = version_arn.split(":project/", 1)[-1]
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", tail.replace("/version/", "."))[:60].strip("._")
    return f"{model_prefix(installation)}{hashlib.sha256(version_arn.encode()).hexdigest()[:16]}_{readable}"


def config_pbtxt(name: str, spec: modelio.ModelSpec, units: int, settings: ServingSettings) -> str:
    """config.pbtxt of a deployed version (see module docstring) running `units` inference units."""
    size = spec.input_size
    kind = "KIND_GPU" if settings.device == "gpu" else "KIND_CPU"
    parameters = {
        "python_path": settings.python_path,
        "intra_op_threads": str(settings.intra_op_threads),
        "allow_spinning": "1" if settings.allow_spinning else "0",
        "device": settings.device,
    }
    params = "\n".join(
        f'parameters {{ key: "{k}" value {{ string_value: {json.dumps(v)} }} }}'
        for k, v in parameters.items()
    )
    return f"""name: "{name}"
backend: "python"
max_batch_size: {settings.max_batch_size}
input [
  {{ name: "IMAGE" data_type: TYPE_STRING dims: [ 1 ] optional: true }},
  {{ name: "PIXELS" data_type: TYPE_UINT8 dims: [ {size}, {size}, 3 ] optional: true }},
  {{ name: "SIZE" data_type: TYPE_INT32 dims: [ 2 ] optional: true }}
]
output [
  {{ name: "LABEL" data_type: TYPE_INT32 dims: [ -1 ] }},
  {{ name: "CONFIDENCE" data_type: TYPE_FP32 dims: [ -1 ] }},
  {{ name: "BOX" data_type: TYPE_FP32 dims: [ -1, 4 ] }}
]
instance_group [ {{ count: {settings.instances(units)} kind: {kind} }} ]
dynamic_batching {{ max_queue_delay_microseconds: {settings.batch_delay_us} }}
{params}
"""


class TritonRepository:
    """Writes and removes models in the Triton repository (a bucket/prefix of the object store)."""

    def __init__(self, store: ObjectStore, bucket: str, prefix: str, settings: ServingSettings) -> None:
        self.store = store
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.settings = settings

    def ensure(self) -> None:
        """Creates the bucket, and a placeholder object, since Triton refuses an empty repository."""
        self.store.ensure_bucket(self.bucket)
        if not self.store.list_keys(self.bucket, f"{self.prefix}/", recursive=False):
            self.store.put_bytes(self.bucket, f"{self.prefix}/.keep", b"")

    def _key(self, name: str, path: str) -> str:
        return f"{self.prefix}/{name}/{path}"

    def write(self, name: str, spec_json: dict[str, Any], onnx: tuple[str, str], units: int) -> None:
        """Writes the whole model: version folder first, config last (a model without config is none)."""
        try:
            self.store.client.copy_object(
                self.bucket, self._key(name, f"{VERSION}/model.onnx"), CopySource(onnx[0], onnx[1])
            )
        except S3Error:
            # Some S3 servers refuse server-side copies between buckets: go through this process.
            data = self.store.get_bytes(onnx[0], onnx[1])
            self.store.put_bytes(self.bucket, self._key(name, f"{VERSION}/model.onnx"), data)
        self.store.put_bytes(
            self.bucket, self._key(name, f"{VERSION}/model.json"), json.dumps(spec_json).encode()
        )
        self.store.put_bytes(self.bucket, self._key(name, f"{VERSION}/model.py"), MODEL_PY.read_bytes())
        self.store.put_bytes(self.bucket, self._key(name, f"{VERSION}/modelio.py"), MODELIO_PY.read_bytes())
        self.write_config(name, spec_json, units)

    def write_config(self, name: str, spec_json: dict[str, Any], units: int) -> None:
        """Writes config.pbtxt with `units` instances."""
        text = config_pbtxt(name, modelio.ModelSpec.from_json(spec_json), units, self.settings)
        self.store.put_bytes(self.bucket, self._key(name, "config.pbtxt"), text.encode())

    def has(self, name: str) -> bool:
        """Whether the model's files are in the repository."""
        return self.store.exists(self.bucket, self._key(name, "config.pbtxt"))

    def remove(self, name: str) -> None:
        """Deletes the model's files."""
        for key in self.store.list_keys(self.bucket, f"{self.prefix}/{name}/"):
            self.store.delete(self.bucket, key)


@dataclass(frozen=True)
class Statistics:
    """Cumulative inference statistics of one model (Triton's counters since it loaded)."""

    requests: int = 0
    executions: int = 0
    queue_ns: int = 0
    infer_ns: int = 0


def statistics_of(stats: dict[str, Any]) -> Statistics:
    """Sums Triton's statistics JSON (GetModelStatistics, as_json) over the model's versions.

    Queue time is per request; compute time is taken per execution from batch_stats, because a
    batched execution charges its whole duration to every request in it."""
    requests = executions = queue_ns = infer_ns = 0
    for model in stats.get("model_stats", []):
        inference = model.get("inference_stats", {})
        requests += int(inference.get("success", {}).get("count", 0))
        executions += int(model.get("execution_count", 0))
        queue_ns += int(inference.get("queue", {}).get("ns", 0))
        infer_ns += sum(int(b.get("compute_infer", {}).get("ns", 0)) for b in model.get("batch_stats", []))
    return Statistics(requests, executions, queue_ns, infer_ns)


@dataclass(frozen=True)
class Candidates:
    """What the model returned for one image: label indices, confidences 0–1, boxes, best first."""

    labels: np.ndarray
    confidences: np.ndarray
    boxes: np.ndarray


def _unavailable(exc: InferenceServerException) -> bool:
    status = (exc.status() or "").upper()
    text = (exc.message() or "").lower()
    return (
        "UNAVAILABLE" in status
        or "DEADLINE" in status
        or "not found" in text
        or "unknown model" in text
        or "not ready" in text
        or "unavailable" in text
    )


class TritonClient:
    """Model control (load, unload, readiness, statistics) and inference, over Triton's gRPC API."""

    def __init__(self, grpc_addr: str) -> None:
        self.addr = grpc_addr
        self._client = tgrpc.InferenceServerClient(grpc_addr)

    def close(self) -> None:
        """Closes the channel."""
        self._client.close()

    def live(self) -> bool:
        """Whether Triton answers."""
        try:
            return bool(self._client.is_server_live(client_timeout=2.0))
        except InferenceServerException:
            return False

    def loaded(self) -> dict[str, str]:
        """Model name -> state (READY, LOADING, UNAVAILABLE …) of every model Triton knows."""
        try:
            index = self._client.get_model_repository_index(as_json=True, client_timeout=10.0)
        except InferenceServerException as exc:
            raise TritonUnavailable(exc.message() or str(exc)) from None
        return {m["name"]: m.get("state", "") for m in index.get("models", [])}

    def ready(self, name: str) -> bool:
        """Whether the model is loaded and ready."""
        try:
            return bool(self._client.is_model_ready(name, client_timeout=5.0))
        except InferenceServerException:
            return False

    def load(self, name: str, timeout_s: float) -> None:
        """Loads (or reloads with its current config) a model; TritonFailed with Triton's reason."""
        try:
            self._client.load_model(name, client_timeout=timeout_s)
        except InferenceServerException as exc:
            if "UNAVAILABLE" in (exc.status() or "").upper():
                raise TritonUnavailable(exc.message() or str(exc)) from None
            raise TritonFailed(exc.message() or str(exc)) from None

    def unload(self, name: str) -> None:
        """Unloads a model (a model Triton does not have is not an error)."""
        try:
            self._client.unload_model(name, client_timeout=30.0)
        except InferenceServerException as exc:
            if "UNAVAILABLE" in (exc.status() or "").upper():
                raise TritonUnavailable(exc.message() or str(exc)) from None

    def instances(self, name: str) -> int | None:
        """The instance count of the loaded model's configuration; None when Triton does not say."""
        try:
            config = self._client.get_model_config(name, as_json=True, client_timeout=5.0)
        except InferenceServerException:
            return None
        return sum(int(g.get("count", 0)) for g in config.get("config", {}).get("instance_group", []))

    def statistics(self, name: str) -> Statistics:
        """The model's cumulative counters (zeros when it is not loaded)."""
        try:
            stats = self._client.get_inference_statistics(name, as_json=True, client_timeout=5.0)
        except InferenceServerException:
            return Statistics()
        return statistics_of(stats)

    def infer(
        self,
        name: str,
        timeout_s: float,
        *,
        encoded: bytes | None = None,
        pixels: np.ndarray | None = None,
        size: tuple[int, int] = (0, 0),
    ) -> Candidates:
        """Runs one image: encoded bytes (decoded in Triton) or prepared HWC uint8 pixels plus the image size."""
        if encoded is not None:
            tensor = tgrpc.InferInput("IMAGE", [1, 1], "BYTES")
            tensor.set_data_from_numpy(np.array([[encoded]], dtype=np.object_))
            inputs = [tensor]
        else:
            assert pixels is not None
            tensor = tgrpc.InferInput("PIXELS", [1, *pixels.shape], "UINT8")
            tensor.set_data_from_numpy(pixels[None])
            dims = tgrpc.InferInput("SIZE", [1, 2], "INT32")
            dims.set_data_from_numpy(np.array([size], dtype=np.int32))
            inputs = [tensor, dims]
        try:
            result = self._client.infer(name, inputs, client_timeout=timeout_s)
        except InferenceServerException as exc:
            message = exc.message() or str(exc)
            if BAD_IMAGE in message:
                raise BadImage(message.split(BAD_IMAGE, 1)[1].lstrip(": ")) from None
            if _unavailable(exc):
                raise TritonUnavailable(message) from None
            raise TritonFailed(message) from None
        return Candidates(
            labels=result.as_numpy("LABEL")[0],
            confidences=result.as_numpy("CONFIDENCE")[0],
            boxes=result.as_numpy("BOX")[0],
        )
