"""The contract between a trained model and whoever runs it: training's evaluation, serving, Triton.

Every version training exports is two objects in the models bucket: `model.onnx` and `model.json`
(the `ModelSpec` below). Evaluation predicts through the functions of this module, and so does
serving, so what a user reads in the evaluation is what DetectCustomLabels answers.

Input: encoded image bytes → `decode` (JPEG decoded at the smallest DCT scale that keeps both sides
≥ the input size, EXIF orientation applied as the labeling tools display it, RGB) → `prepare`
(the whole image stretched to size × size, PIL bilinear; no crop, no letterbox, so box ratios of the
input are ratios of the image) → uint8 NHWC into the graph. Normalisation is inside the graph.

Output: classification graphs give "scores" (batch, labels) in 0–1 (softmax, or one sigmoid per
label for multi-label); detection graphs give "boxes" (batch, locations, 4: x1, y1, x2, y2 ratios)
and "scores" (batch, locations, labels), decoded by `detections` (score threshold, top-k, class-wise
NMS). This module needs only numpy and Pillow: it is copied next to the Triton model.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageOps

FORMAT_VERSION = 1
IMAGE_CLASSIFICATION = "IMAGE_CLASSIFICATION"
MULTI_LABEL_CLASSIFICATION = "MULTI_LABEL_CLASSIFICATION"
OBJECT_LOCALIZATION = "OBJECT_LOCALIZATION"
MODEL_TYPES = (IMAGE_CLASSIFICATION, MULTI_LABEL_CLASSIFICATION, OBJECT_LOCALIZATION)
INPUT_NAME = "images"
RESIZE = Image.Resampling.BILINEAR

# (label, confidence 0–1) of a classification; (label, confidence, left, top, width, height) ratios
# of a detection.
Classification = tuple[str, float]
Detection = tuple[str, float, float, float, float, float]


@dataclass(frozen=True)
class ModelSpec:
    """What model.json says about a graph: its type, labels, thresholds, input and decoding."""

    model_type: str
    labels: list[str]
    input_size: int
    thresholds: dict[str, float] = field(default_factory=dict)
    input_name: str = INPUT_NAME
    outputs: tuple[str, ...] = ("scores",)
    # Detection decoding (ignored by classifiers).
    score_threshold: float = 0.01
    nms_iou: float = 0.5
    max_detections: int = 100
    pre_nms_top_k: int = 1000

    @property
    def detects(self) -> bool:
        return self.model_type == OBJECT_LOCALIZATION

    def to_json(self) -> dict[str, Any]:
        """The contract part of model.json (the exporter adds how the model was trained)."""
        doc: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "model_type": self.model_type,
            "labels": list(self.labels),
            "thresholds": dict(self.thresholds),
            "input": {
                "name": self.input_name,
                "dtype": "uint8",
                "layout": "NHWC",
                "shape": [-1, self.input_size, self.input_size, 3],
                "color": "RGB",
                "exif_orientation": "applied",
                "jpeg_draft": True,
                "resize": {
                    "mode": "stretch",
                    "filter": "bilinear",
                    "width": self.input_size,
                    "height": self.input_size,
                },
                "normalization": {"in_graph": True},
            },
            "outputs": list(self.outputs),
        }
        if self.detects:
            doc["postprocess"] = {
                "score_threshold": self.score_threshold,
                "nms_iou": self.nms_iou,
                "max_detections": self.max_detections,
                "pre_nms_top_k": self.pre_nms_top_k,
            }
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any] | bytes | str) -> ModelSpec:
        """Reads model.json; ValueError when it is not a model this code can run."""
        if isinstance(doc, (bytes, str)):
            doc = json.loads(doc)
        if not isinstance(doc, dict):
            raise ValueError("model.json is not an object")
        try:
            model_type = doc["model_type"]
            labels = [str(label) for label in doc["labels"]]
            shape = doc["input"]["shape"]
            size = int(shape[1])
            if model_type not in MODEL_TYPES or not labels or size <= 0 or int(shape[2]) != size:
                raise ValueError
            post = doc.get("postprocess", {})
            return cls(
                model_type=model_type,
                labels=labels,
                input_size=size,
                thresholds={str(k): float(v) for k, v in (doc.get("thresholds") or {}).items()},
                input_name=str(doc["input"].get("name", INPUT_NAME)),
                outputs=tuple(doc.get("outputs") or ("scores",)),
                score_threshold=float(post.get("score_threshold", 0.01)),
                nms_iou=float(post.get("nms_iou", 0.5)),
                max_detections=int(post.get("max_detections", 100)),
                pre_nms_top_k=int(post.get("pre_nms_top_k", 1000)),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"model.json is not a model of format {FORMAT_VERSION}") from exc


# -- input -----------------------------------------------------------------------------------------


def decode(data: bytes | Image.Image, min_side: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """The image as displayed (EXIF orientation applied), RGB, and its full (width, height).

    With min_side, a JPEG is decoded at the smallest power-of-two reduction that keeps both sides at
    least min_side (libjpeg's DCT scaling): several times faster for big photos. Raises whatever
    Pillow raises for bytes that are not an image.
    """
    if isinstance(data, Image.Image):
        img = data
        size = img.size
    else:
        img = Image.open(io.BytesIO(data))
        size = img.size
        if min_side is not None and img.format == "JPEG":
            img.draft("RGB", (min_side, min_side))
        img.load()
        orientation = img.getexif().get(0x0112, 1)
        if orientation != 1:
            img = ImageOps.exif_transpose(img)
            if orientation in (5, 6, 7, 8):
                size = (size[1], size[0])
    return (img if img.mode == "RGB" else img.convert("RGB")), size


def resize(img: Image.Image, size: int) -> np.ndarray:
    """The graph's input for one image: stretched to size × size (bilinear), HWC uint8."""
    return np.asarray(img.resize((size, size), RESIZE), dtype=np.uint8)


def prepare(data: bytes | Image.Image, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """decode + resize: the HWC uint8 input of one image and the image's (width, height)."""
    img, dims = decode(data, size)
    return resize(img, size), dims


# -- output ----------------------------------------------------------------------------------------


def classifications(spec: ModelSpec, scores: np.ndarray) -> list[Classification]:
    """Every label with its confidence for ONE image's score row, best first (ties by label order)."""
    row = np.asarray(scores, dtype=np.float32).reshape(-1)
    order = np.argsort(-row, kind="stable")
    return [(spec.labels[i], float(row[i])) for i in order]


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy NMS; boxes (n, 4) x1,y1,x2,y2 sorted by descending score. Returns the kept indices."""
    x1, y1, x2, y2 = boxes.T
    area = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    keep: list[int] = []
    alive = np.ones(len(boxes), dtype=bool)
    for i in range(len(boxes)):
        if not alive[i]:
            continue
        keep.append(i)
        rest = np.nonzero(alive[i + 1 :])[0] + i + 1
        if not len(rest):
            break
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        overlap = inter / np.maximum(area[i] + area[rest] - inter, 1e-12)
        alive[rest[overlap > iou]] = False
    return np.asarray(keep, dtype=np.int64)


def decode_boxes(
    boxes: np.ndarray,
    scores: np.ndarray,
    width: int,
    height: int,
    labels: list[str],
    *,
    score_threshold: float = 0.01,
    iou_threshold: float = 0.5,
    max_detections: int = 100,
    pre_nms_top_k: int = 1000,
) -> list[Detection]:
    """Detections of ONE image from the graph's outputs (boxes [.., K, 4], scores [.., K, L]), best first.

    Candidates are (location, label) pairs with score ≥ score_threshold, the best `pre_nms_top_k` kept,
    then NMS per label and the best `max_detections` overall. Boxes are ratios of the image; width and
    height only serve to drop boxes less than a pixel wide in the original.
    """
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    s = np.asarray(scores, dtype=np.float32).reshape(b.shape[0], -1)
    loc, cls = np.nonzero(s >= score_threshold)
    if not len(loc):
        return []
    conf = s[loc, cls]
    order = np.argsort(-conf, kind="stable")[:pre_nms_top_k]
    loc, cls, conf = loc[order], cls[order], conf[order]
    cand = b[loc]
    wide = ((cand[:, 2] - cand[:, 0]) * width >= 1.0) & ((cand[:, 3] - cand[:, 1]) * height >= 1.0)
    cls, conf, cand = cls[wide], conf[wide], cand[wide]
    # Class-wise NMS in one pass: shifting each label's boxes into its own unit square keeps labels apart.
    keep = _nms(cand + 2.0 * cls[:, None].astype(np.float32), conf, iou_threshold)[:max_detections]
    return [
        (
            labels[int(cls[i])],
            float(conf[i]),
            float(cand[i, 0]),
            float(cand[i, 1]),
            float(cand[i, 2] - cand[i, 0]),
            float(cand[i, 3] - cand[i, 1]),
        )
        for i in keep
    ]


def detections(
    spec: ModelSpec, boxes: np.ndarray, scores: np.ndarray, width: int, height: int
) -> list[Detection]:
    """`decode_boxes` with the decoding parameters of the model."""
    return decode_boxes(
        boxes,
        scores,
        width,
        height,
        spec.labels,
        score_threshold=spec.score_threshold,
        iou_threshold=spec.nms_iou,
        max_detections=spec.max_detections,
        pre_nms_top_k=spec.pre_nms_top_k,
    )


def select(
    spec: ModelSpec,
    results: list[Classification] | list[Detection],
    min_confidence: float | None,
    max_results: int | None,
) -> list[Any]:
    """What DetectCustomLabels returns: confidence ≥ MinConfidence/100 (or, without one, ≥ each
    label's assumed threshold), best first, at most max_results."""
    if min_confidence is None:
        kept = [r for r in results if r[1] >= spec.thresholds.get(r[0], 0.5)]
    else:
        kept = [r for r in results if r[1] * 100.0 >= min_confidence]
    kept.sort(key=lambda r: -r[1])
    return kept if max_results is None else kept[:max_results]
