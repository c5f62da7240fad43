"""The bridge between the training pipeline and the model families: `fit` picks the family the use
case needs, trains it, and returns predictions and an ONNX export in the shape the pipeline expects.

Image classification (single- and multi-label) trains a head on frozen EfficientNet-Lite0 features
of several augmented views per image; object localization uses the detector (models/detector.py).
"""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import nn

from services.training import evaluation
from services.training.models import backbone as lite0
from services.training.pipeline import FitResult

log = logging.getLogger("customlabels.training.model")

INPUT_SIZE = 224
# Views per training image: the plain resize, its mirror, and random crops (cheap augmentation
# whose features are computed once; the head then trains on all of them for many epochs).
CROPS = 2


def _to_tensor(image: Image.Image, size: int = INPUT_SIZE) -> torch.Tensor:
    array = np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def _views(image: Image.Image, rng: np.random.Generator) -> list[torch.Tensor]:
    out = [_to_tensor(image), _to_tensor(ImageOps.mirror(image))]
    w, h = image.size
    for _ in range(CROPS):
        scale = rng.uniform(0.65, 0.95)
        cw, ch = max(1, int(w * scale)), max(1, int(h * scale))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = image.crop((x, y, x + cw, y + ch))
        out.append(_to_tensor(ImageOps.mirror(crop) if rng.random() < 0.5 else crop))
    return out


class Classifier(nn.Module):
    """uint8 NHWC image → probabilities: normalisation, the backbone and the trained head in one graph."""

    def __init__(self, net: lite0.EfficientNetLite0, head: nn.Module, multi_label: bool) -> None:
        super().__init__()
        self.net = net
        self.head = head
        self.multi_label = multi_label

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 1280) pooled features of an NCHW 0–255 batch."""
        return self.net.forward_head(
            self.net.forward_blocks(self.net.forward_stem(lite0.normalize(images)), 0, lite0.NUM_BLOCKS)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, L) confidences 0–1 of a uint8 NHWC batch at INPUT_SIZE."""
        logits = self.head(self.features(images.permute(0, 3, 1, 2)))
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=1)


@torch.inference_mode()
def _features(model: Classifier, batch: list[torch.Tensor], on_batch: Callable[[int], None]) -> torch.Tensor:
    out = []
    for start in range(0, len(batch), 32):
        chunk = torch.stack(batch[start : start + 32]).float()
        out.append(model.features(chunk))
        on_batch(min(len(batch), start + 32))
    return torch.cat(out) if out else torch.zeros(0, lite0.FEATURE_DIM)


def _process_group() -> object | None:
    """Joins the torch.distributed group when launched by torchrun (WORLD_SIZE > 1): gloo on CPU, nccl on GPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.group.WORLD


def _all_rows(mine: torch.Tensor, total: int, rank: int, world: int) -> torch.Tensor:
    """Reassembles rows computed as `rows[rank::world]` by every process, in their original order."""
    size = (total + world - 1) // world
    padded = torch.zeros(size, mine.shape[1])
    padded[: len(mine)] = mine
    parts = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    out = torch.zeros(total, mine.shape[1])
    for r in range(world):
        count = len(range(r, total, world))
        out[r::world] = parts[r][:count]
    return out


def fit_classifier(
    images: Sequence[Image.Image],
    targets: Sequence[set[str]],
    on_progress: Callable[[float], None],
    time_budget_s: float,
    seed: int = 0,
) -> FitResult:
    """Trains an image classifier (multi-label when some image carries several labels)."""
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    rng = np.random.default_rng(seed)
    labels = sorted({label for t in targets for label in t})
    index = {label: i for i, label in enumerate(labels)}
    multi = any(len(t) > 1 for t in targets)
    net = lite0.load_backbone()
    model = Classifier(net, nn.Linear(lite0.FEATURE_DIM, len(labels)), multi).eval()

    views: list[torch.Tensor] = []
    owners: list[int] = []
    for i, image in enumerate(images):
        for view in _views(image, rng):
            views.append(view)
            owners.append(i)
    total = len(views)
    group = _process_group()
    if group is None:
        feats = _features(model, views, lambda done: on_progress(0.8 * done / max(1, total)))
    else:
        # Each process computes the features of its share of the views; all of them get every row.
        rank, world = dist.get_rank(), dist.get_world_size()
        mine = _features(
            model, views[rank::world], lambda done: on_progress(0.8 * done * world / max(1, total))
        )
        feats = _all_rows(mine, total, rank, world)
    target = torch.zeros(len(images), len(labels))
    for i, t in enumerate(targets):
        for label in t:
            target[i, index[label]] = 1.0
    y = target[torch.tensor(owners)]

    # Class-balanced weights: rare labels count as much as frequent ones.
    counts = target.sum(0).clamp(min=1)
    weights = (counts.sum() / (len(labels) * counts)).clamp(max=10.0)
    head = nn.Linear(lite0.FEATURE_DIM, len(labels))
    mean, std = feats.mean(0, keepdim=True), feats.std(0, keepdim=True).clamp(min=1e-3)
    x = (feats - mean) / std
    trained: nn.Module = head
    if group is not None:
        # Data parallel: each process steps on its share of the rows; DDP averages the gradients,
        # which is the full-batch step of a single process (and the weights stay identical).
        trained = nn.parallel.DistributedDataParallel(head)
        rank, world = dist.get_rank(), dist.get_world_size()
        x, y = x[rank::world], y[rank::world]
    optimizer = torch.optim.AdamW(trained.parameters(), lr=3e-3, weight_decay=1e-3)
    epochs, started = 300, time.monotonic()
    for epoch in range(epochs):
        optimizer.zero_grad()
        logits = trained(F.dropout(x, 0.2, training=True))
        if multi:
            loss = F.binary_cross_entropy_with_logits(logits, y, pos_weight=weights)
        else:
            loss = F.cross_entropy(logits, y.argmax(1), weight=weights, label_smoothing=0.1)
        loss.backward()
        optimizer.step()
        if epoch % 10 == 0:
            on_progress(0.8 + 0.2 * epoch / epochs)
        # Every process must run the same number of steps (DDP all-reduces in each), so only the
        # single-process run stops early on the time budget.
        if group is None and time.monotonic() - started > max(5.0, time_budget_s / 4):
            break
    # Fold the feature standardisation into the exported linear layer.
    with torch.no_grad():
        folded = nn.Linear(lite0.FEATURE_DIM, len(labels))
        folded.weight.copy_(head.weight / std)
        folded.bias.copy_(head.bias - (head.weight * (mean / std)).sum(1))
    model.head = folded
    on_progress(1.0)

    def predict(test: Sequence[Image.Image]) -> np.ndarray:
        with torch.inference_mode():
            out = []
            for start in range(0, len(test), 32):
                batch = torch.stack([_to_tensor(im).permute(1, 2, 0) for im in test[start : start + 32]])
                flipped = torch.stack(
                    [_to_tensor(ImageOps.mirror(im)).permute(1, 2, 0) for im in test[start : start + 32]]
                )
                out.append(((model(batch) + model(flipped)) / 2).numpy())
            return np.concatenate(out) if out else np.zeros((0, len(labels)), np.float32)

    def export(thresholds: dict[str, float]) -> tuple[bytes, dict[str, Any]]:
        buffer = io.BytesIO()
        example = torch.zeros(1, INPUT_SIZE, INPUT_SIZE, 3, dtype=torch.uint8)
        torch.onnx.export(
            model,
            (example,),
            buffer,
            input_names=["image"],
            output_names=["scores"],
            dynamic_axes={"image": {0: "batch"}, "scores": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
        metadata = {
            "model_type": "MULTI_LABEL_CLASSIFICATION" if multi else "IMAGE_CLASSIFICATION",
            "labels": labels,
            "input": {
                "name": "image",
                "layout": "NHWC",
                "dtype": "uint8",
                "height": INPUT_SIZE,
                "width": INPUT_SIZE,
                "resize": "stretch",
                "color": "RGB",
            },
            "normalization": {
                "mean": list(lite0.MEAN),
                "std": list(lite0.STD),
                "scale": 255.0,
                "in_graph": True,
            },
            "output": {"name": "scores", "activation": "sigmoid" if multi else "softmax"},
        }
        return buffer.getvalue(), metadata

    return FitResult(labels=labels, predict=predict, export=export)


def fit(
    use_case: str,
    images: Sequence[Image.Image],
    targets: Sequence[Any],
    on_progress: Callable[[float], None],
    time_budget_s: float,
) -> FitResult:
    """Trains the model family of `use_case`; what the training pipeline calls."""
    if use_case == evaluation.IMAGE_LEVEL_LABELS:
        return fit_classifier(images, targets, on_progress, time_budget_s)
    from services.training.models import detector

    trained = detector.train_detector(list(images), list(targets), on_progress, time_budget_s)

    def predict(test: Sequence[Image.Image]) -> list[list[evaluation.PredictedBox]]:
        return [
            [
                evaluation.PredictedBox(label, conf, left, top, width, height)
                for label, conf, left, top, width, height in boxes
            ]
            for boxes in trained.predict(list(test))
        ]

    def export(thresholds: dict[str, float]) -> tuple[bytes, dict[str, Any]]:
        return trained.export_onnx(), trained.metadata()

    return FitResult(labels=list(trained.labels), predict=predict, export=export)
