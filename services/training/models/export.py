"""Exports a trained model as one ONNX graph plus the metadata serving needs.

The graph takes raw pixels: input "images", uint8, shape (batch, size, size, 3), RGB, the whole
decoded image resized to size×size (bilinear, no crop, no EXIF rotation); the cast, the
channel transpose and the [-1, 1] normalisation are inside the graph. Serving therefore only
decodes and resizes, and cannot get the normalisation wrong (the EfficientNet-Lite weights need
mean 0.5 / std 0.5, not the usual ImageNet values). Output "scores": float32 (batch, labels),
confidences in [0, 1] (softmax, or one sigmoid per label for multi-label models), columns in the
order of metadata["labels"]. The batch dimension is dynamic.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import torch

from services.common import modelio
from services.training.models import backbone as bb
from services.training.models.classifier import TrainedModel

INPUT_NAME = modelio.INPUT_NAME
OUTPUT_NAME = "scores"
# Opset 17 is read by every onnxruntime and Triton release of the last years.
OPSET = 17


def metadata(model: TrainedModel) -> dict[str, Any]:
    """model.json: the modelio contract (labels, thresholds, input) plus how the model was trained."""
    spec = modelio.ModelSpec(
        model_type=modelio.MULTI_LABEL_CLASSIFICATION if model.multi_label else modelio.IMAGE_CLASSIFICATION,
        labels=list(model.labels),
        input_size=model.input_size,
        # Per-label assumed thresholds; the training pipeline replaces these with evaluation's.
        thresholds=dict(zip(model.labels, model.thresholds, strict=True)),
        input_name=INPUT_NAME,
        outputs=(OUTPUT_NAME,),
    )
    doc = spec.to_json()
    # Applied inside the graph; written down for anyone running the backbone alone.
    doc["input"]["normalization"].update(scale=1 / 255, mean=list(bb.MEAN), std=list(bb.STD))
    doc["output"] = {
        "name": OUTPUT_NAME,
        "dtype": "float32",
        "shape": [-1, len(model.labels)],
        "activation": "sigmoid" if model.multi_label else "softmax",
    }
    doc["backbone"] = "efficientnet-lite0"
    doc["training"] = dict(model.info)
    return doc


def export_onnx(model: TrainedModel) -> tuple[bytes, dict[str, Any]]:
    """The model as ONNX bytes (see module doc for the graph's contract) and its metadata."""
    net = model.net.eval()
    example = torch.zeros(1, model.input_size, model.input_size, 3, dtype=torch.uint8)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the dynamo one, which needs the
        # onnxscript package and minutes of tracing; for this static graph both give the same
        # operators. The trace also turns the padding arithmetic of strided convolutions into
        # constants, which is right: the spatial size is fixed by the input contract.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (example,),
            buffer,
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=True,
        )
    return buffer.getvalue(), metadata(model)
