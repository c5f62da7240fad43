"""The Triton python model that serves one trained version: copied as `<model>/1/model.py`.

Beside it in the version folder: `model.onnx` and `model.json` (what training exported) and
`modelio.py` (services/common/modelio.py), so the preprocessing and the output decoding are the very
code training's evaluation used. One instance = one inference unit = one onnxruntime session.

Inputs (each request carries one of the two forms; both are optional in config.pbtxt):
- IMAGE (BYTES, [1]): the encoded PNG/JPEG, decoded and resized here (`modelio.prepare`);
- PIXELS (UINT8, [S, S, 3]) + SIZE (INT32, [2]: the image's width, height): already prepared.
Outputs per request, best first, every candidate (the caller applies MinConfidence / MaxResults):
- LABEL (INT32, [-1]): label indices into model.json's labels;
- CONFIDENCE (FP32, [-1]): 0–1;
- BOX (FP32, [-1, 4]): left, top, width, height ratios (zeros for classifiers).

Parameters of config.pbtxt: `python_path` (folders put on sys.path before numpy is imported: the
python stub ignores PYTHONPATH; the PYTHONPATH variable is read too), `intra_op_threads` (0: as many as
CPUs), `allow_spinning` (0/1: onnxruntime's busy-waiting threads) and `device` (cpu or gpu: gpu asks onnxruntime for its CUDA provider).
Heavy imports (onnxruntime) happen in `initialize`, so Triton's config auto-complete pass stays cheap.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

# Set in initialize (imports that need python_path on sys.path first).
np: Any = None
pb_utils: Any = None
modelio: Any = None

BAD_IMAGE = "InvalidImageFormatException"


def _extend_path(extra: str) -> None:
    for folder in reversed([p for p in extra.split(os.pathsep) if p]):
        if folder not in sys.path:
            sys.path.insert(0, folder)


def _configured_path() -> str:
    """python_path of config.pbtxt (next to the version folder), read before anything imports numpy:
    the stub imports triton_python_backend_utils, which needs numpy, right after this module."""
    try:
        text = (Path(__file__).resolve().parent.parent / "config.pbtxt").read_text()
    except OSError:
        return ""
    found = re.search(r'key:\s*"python_path"\s*value\s*\{\s*string_value:\s*"((?:[^"\\]|\\.)*)"', text)
    return json.loads(f'"{found.group(1)}"') if found else ""


_extend_path(_configured_path() + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _parameter(config: dict[str, Any], key: str, default: str) -> str:
    value = config.get("parameters", {}).get(key, {}).get("string_value")
    return default if value is None or value == "" else str(value)


class TritonPythonModel:
    """One instance of a deployed version: an onnxruntime session plus modelio."""

    def initialize(self, args: dict[str, str]) -> None:
        """Loads model.json and the ONNX graph of this version folder."""
        global np, pb_utils, modelio
        config = json.loads(args["model_config"])
        folder = Path(args["model_repository"]) / args["model_version"]
        sys.path.insert(0, str(folder))
        import modelio as contract
        import numpy
        import onnxruntime as ort
        import triton_python_backend_utils

        np, pb_utils, modelio = numpy, triton_python_backend_utils, contract
        self.spec = modelio.ModelSpec.from_json((folder / "model.json").read_bytes())
        self.index = {label: i for i, label in enumerate(self.spec.labels)}
        # Every instance may use every core: without spinning, the threads of an idle instance cost
        # nothing, and a lone request runs as fast as on a dedicated session.
        threads = int(_parameter(config, "intra_op_threads", "0")) or os.cpu_count() or 1
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle onnxruntime threads otherwise spin for a while after each run, burning the CPU that
        # Triton, the serving service and the other instances need between batches.
        spin = _parameter(config, "allow_spinning", "0")
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        options.add_session_config_entry("session.inter_op.allow_spinning", spin)
        providers = ["CPUExecutionProvider"]
        on_gpu = args.get("model_instance_kind") == "GPU" or _parameter(config, "device", "cpu") == "gpu"
        if on_gpu and "CUDAExecutionProvider" in ort.get_available_providers():
            device = int(args.get("model_instance_device_id") or 0)
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": device}))  # type: ignore[arg-type]
        self.session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=providers)
        self.outputs = list(self.spec.outputs) if self.spec.detects else [self.spec.outputs[0]]
        # The first run allocates onnxruntime's buffers: pay it here, not in the first request.
        size = self.spec.input_size
        self.session.run(self.outputs, {self.spec.input_name: np.zeros((1, size, size, 3), np.uint8)})

    def _pixels(self, request: Any) -> tuple[Any, tuple[int, int]]:
        encoded = pb_utils.get_input_tensor_by_name(request, "IMAGE")
        if encoded is not None:
            data = encoded.as_numpy().reshape(-1)[0]
            return modelio.prepare(bytes(data), self.spec.input_size)  # type: ignore[no-any-return]
        pixels = pb_utils.get_input_tensor_by_name(request, "PIXELS").as_numpy()
        size = pb_utils.get_input_tensor_by_name(request, "SIZE").as_numpy().reshape(-1)
        return pixels.reshape(pixels.shape[-3:]), (int(size[0]), int(size[1]))

    def execute(self, requests: list[Any]) -> list[Any]:
        """Runs every request of the dynamic batch through the graph at once."""
        responses: list[Any] = [None] * len(requests)
        batch, dims, slots = [], [], []
        for slot, request in enumerate(requests):
            try:
                pixels, size = self._pixels(request)
            except Exception as exc:  # noqa: BLE001 - a bad image fails its own request only
                responses[slot] = pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(f"{BAD_IMAGE}: the image cannot be decoded ({exc})")
                )
                continue
            batch.append(pixels)
            dims.append(size)
            slots.append(slot)
        if batch:
            outputs = self.session.run(self.outputs, {self.spec.input_name: np.stack(batch)})
            for i, slot in enumerate(slots):
                responses[slot] = self._response(outputs, i, *dims[i])
        return responses

    def _response(self, outputs: list[Any], i: int, width: int, height: int) -> Any:
        if self.spec.detects:
            found = modelio.detections(self.spec, outputs[0][i], outputs[1][i], width, height)
            boxes = np.asarray([d[2:] for d in found], dtype=np.float32).reshape(-1, 4)
        else:
            found = modelio.classifications(self.spec, outputs[0][i])
            boxes = np.zeros((len(found), 4), dtype=np.float32)
        labels = np.asarray([self.index[d[0]] for d in found], dtype=np.int32)
        confidences = np.asarray([d[1] for d in found], dtype=np.float32)
        return pb_utils.InferenceResponse(
            [
                pb_utils.Tensor("LABEL", labels[None]),
                pb_utils.Tensor("CONFIDENCE", confidences[None]),
                pb_utils.Tensor("BOX", boxes[None]),
            ]
        )

    def finalize(self) -> None:
        """Releases the session."""
        self.session = None
