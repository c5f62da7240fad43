"""Object / logo localization: an FCOS-style detector on EfficientNet-Lite0, trained on a CPU in minutes.

Architecture (anchor-free, FCOS: Tian et al. 2019)
- Backbone: EfficientNet-Lite0 with ImageNet weights (backbone.py); its stride-8/16/32 feature maps feed a
  small FPN (P3–P5) plus a stride-64 level P6 for objects that fill the image.
- One head shared by all levels: a classification tower (sigmoid per label, focal loss) and a regression
  tower (l, t, r, b distances in units of the level's stride, GIoU loss) with a centerness output (BCE).
  Towers are depthwise-separable so the head stays cheap on a CPU at 5,000+ locations per image.
- Decoding: score = sqrt(sigmoid(cls) · sigmoid(centerness)) per location and label (FCOS's ranking), then
  class-wise NMS in numpy (`postprocess`), shared verbatim by `predict` and serving.

Training from small datasets on a CPU
1. Every training image is turned into `views` pre-augmented views (zoom-in crops, zoom-out onto a grey
   canvas, aspect jitter, horizontal flip, colour jitter), each `train_size` pixels square.
2. The frozen backbone runs once per view; its stride-8/16/32 outputs are cached in float16.
3. The FPN and head train on the cache for many epochs (AdamW, cosine schedule, EMA of the weights): a step
   costs only the head, not the backbone.
4. If the plan and the time budget allow, blocks 5–15 of the backbone are fine-tuned together with the head,
   starting from the cached stride-8 map (block 4's output), so the frozen front is never recomputed.

Input size and resize policy
- Serving resizes the whole image to `input_size` × `input_size` with PIL bilinear (antialiased), a plain
  stretch — no letterbox, the aspect ratio is not kept. Box ratios are then invariant: a box's ratio in the
  resized image is its ratio in the original. Training views are cut in that same stretched frame, so the
  model only ever sees the distortion serving produces.
- `input_size` comes from the training boxes: the 10th percentile of sqrt(box area) should span at least
  `min_object_px` pixels, within [320, 512]. Fruit-sized objects give 320; flickr-logos' small logos give 512.
  Training views stay `train_size` (320) pixels even then: for a 512 model they are crops at the 512 scale
  (zoom jittered around it), so caching and head steps cost a 320 image while small objects keep the
  resolution serving sees. The network is fully convolutional, so one set of weights serves both sizes.

Performance notes
- glibc's allocator returns big freed blocks to the OS and re-faults them on the next batch; with large CPU
  batches that dominates (issue 4: 51 → 19 ms per image). Start the training process with
  MALLOC_MMAP_THRESHOLD_=1000000000000 and MALLOC_TRIM_THRESHOLD_=1000000000000 in the environment (glibc
  reads them only at process start; `MALLOC_ENV` below, bench/detection_probe.py re-executes itself with them).
- torch runs with one thread per usable CPU (runtime.configure_torch).
- With a GPU (DetectorConfig.device, else runtime.training_device(): CUSTOMLABELS_TRAINING_DEVICE or CUDA
  when present) the backbone, the cache and both phases run there; views are still cut on the CPU. The
  trained network comes back on the CPU, where evaluation and the ONNX export run.

Determinism: everything random draws from generators seeded by `seed`; the number of steps comes from the
data (not from measured speed), so two runs with the same seed and a budget that does not bind give the same
weights. When the budget binds, the remaining schedule is compressed to end on time (and fine-tuning is
skipped), which depends on the machine's speed.
"""

from __future__ import annotations

import copy
import io
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance
from torch import nn

from services.common import modelio
from services.training.models import backbone as bb
from services.training.models.runtime import configure_torch, synchronize, training_device

__all__ = [
    "MALLOC_ENV",
    "MODEL_TYPE",
    "RESIZE_POLICY",
    "DetectorConfig",
    "DetectorNet",
    "TrainedDetector",
    "choose_input_size",
    "postprocess",
    "prepare_image",
    "train_detector",
]

MODEL_TYPE = modelio.OBJECT_LOCALIZATION
# Whole image → input_size × input_size with PIL bilinear; no letterbox (see the module docstring).
RESIZE_POLICY = "stretch"
STRIDES = (8, 16, 32, 64)
# Environment a training process should start with (glibc reads it only at start-up).
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "1000000000000", "MALLOC_TRIM_THRESHOLD_": "1000000000000"}
# Grey the zoom-out canvas is filled with: mid-range in the backbone's [-1, 1] input scale.
_FILL = (124, 116, 104)

# A ground-truth box: (label, left, top, width, height), ratios of the image.
GroundTruthBox = tuple[str, float, float, float, float]
# A prediction: (label, confidence 0–1, left, top, width, height), ratios of the image.
Detection = tuple[str, float, float, float, float, float]


@dataclass(frozen=True)
class DetectorConfig:
    """Hyper-parameters of one training run; the defaults are what bench/detection_probe.py measured."""

    input_size: int | None = None  # None: chosen from the boxes (choose_input_size)
    train_size: int = 320  # side of each cached training view
    min_object_px: float = 32.0  # the 10th-percentile object should span this many input pixels
    max_input_size: int = 512
    strides: tuple[int, ...] | None = None  # pyramid levels; None: from the boxes (choose_strides)
    assign_scale: float = 8.0  # a level takes boxes whose largest l,t,r,b is in [scale/2, scale] strides
    quality: str = "iou"  # classification target of positives: "iou" (quality focal) or "focal" (1)
    c5_source: str = "block"  # stride-32 FPN input: "features" (1280-ch conv head) or "block" (320-ch)
    views: int | None = None  # views per image; None: from the dataset size (_plan)
    max_total_views: int = 4000  # caps caching time and memory (≈ 280 KB per view)
    zoom: tuple[float, float] = (0.6, 1.6)  # view pixels per serving pixel, log-uniform
    flip: bool = True
    fpn_channels: int = 128
    tower_depth: int = 1
    batch_size: int = 32
    head_epochs: float | None = None  # None: from the dataset size (_plan)
    head_lr: float = 2e-3
    weight_decay: float = 1e-4
    finetune_from_block: int = bb.STRIDE8_BLOCK + 1  # first backbone block fine-tuned (5)
    finetune_epochs: float | None = None  # None: from the dataset size; 0 disables fine-tuning
    finetune_lr: float = 3e-4
    ema_decay: float = 0.998
    score_threshold: float = 0.01
    nms_iou: float = 0.5
    max_detections: int = 100
    pre_nms_top_k: int = 1000
    device: str | None = None  # None: runtime.training_device() (CUDA when there is one)


# -- network -------------------------------------------------------------------------------------------


# Pseudo block index of the backbone's 1×1 conv head (1280 channels, stride 32, ReLU6): its most
# ImageNet-semantic map, which makes a better stride-32 input than block 15's linear 320-channel output.
HEAD_FEATURES = bb.NUM_BLOCKS
MAP_CHANNELS = {
    bb.STRIDE8_BLOCK: 40,
    bb.STRIDE16_BLOCK: 112,
    bb.STRIDE32_BLOCK: 320,
    HEAD_FEATURES: bb.FEATURE_DIM,
}


def map_block(stride: int, c5_source: str = "block") -> int:
    """The backbone block whose output feeds the FPN at `stride` (8, 16 or 32)."""
    if stride == 32:
        return HEAD_FEATURES if c5_source == "features" else bb.STRIDE32_BLOCK
    return {8: bb.STRIDE8_BLOCK, 16: bb.STRIDE16_BLOCK}[stride]


def run_backbone(
    backbone: bb.EfficientNetLite0, x: torch.Tensor, start: int, keep: Sequence[int]
) -> dict[int, torch.Tensor]:
    """Outputs of the blocks in `keep`, running blocks start… on x (a normalised image when start is 0,
    else the output of block start − 1); index HEAD_FEATURES is the 1×1 conv head after block 15."""
    if start == 0:
        x = backbone.forward_stem(x)
    out: dict[int, torch.Tensor] = {}
    for i in range(start, max(keep) + 1):
        x = backbone._blocks[i](x) if i < bb.NUM_BLOCKS else F.relu6(backbone._bn1(backbone._conv_head(x)))
        if i in keep:
            out[i] = x
    return out


class _SeparableConv(nn.Sequential):
    """Depthwise 3×3 + pointwise 1×1 + GroupNorm + ReLU: a 3×3 receptive field at ~1/9 of a full conv's cost.

    GroupNorm, not BatchNorm, because the head's weights are shared across pyramid levels whose
    statistics differ (the FCOS choice); it also behaves the same for a batch of 1 at serving time.
    """

    def __init__(self, channels: int) -> None:
        super().__init__(
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.GroupNorm(16, channels),
            nn.ReLU(inplace=True),
        )


class DetectionHead(nn.Module):
    """FPN (P3 or P4 up to P6) over backbone maps and the shared FCOS head.

    `map_blocks` are the backbone outputs it reads, fine to coarse, one per level below P6 (block indices;
    HEAD_FEATURES for the 1280-channel 1×1 head of the backbone). Returns, for a batch, the per-location
    outputs of all levels concatenated in stride order, each level flattened row-major: class logits
    (N, L, K), distances l,t,r,b in units of the stride (N, L, 4) and centerness logits (N, L).
    """

    def __init__(
        self,
        num_classes: int,
        strides: Sequence[int] = STRIDES,
        channels: int = 128,
        depth: int = 1,
        c5_source: str = "block",
    ) -> None:
        super().__init__()
        if tuple(strides) not in (STRIDES[i:] for i in range(3)):
            raise ValueError(
                f"strides must be a suffix of {STRIDES} with at least 64, 32 and 16, got {strides}"
            )
        self.num_classes = num_classes
        self.strides = tuple(strides)
        self.map_blocks = tuple(map_block(s, c5_source) for s in self.strides if s < 64)
        self.lateral = nn.ModuleList(nn.Conv2d(MAP_CHANNELS[b], channels, 1) for b in self.map_blocks)
        self.smooth = nn.ModuleList(_SeparableConv(channels) for _ in self.map_blocks)
        # P6 from P5 by a strided conv: objects spanning most of the image get cells of their size.
        self.p6 = nn.Sequential(nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.ReLU(inplace=True))
        self.cls_tower = nn.Sequential(*(_SeparableConv(channels) for _ in range(depth)))
        self.reg_tower = nn.Sequential(*(_SeparableConv(channels) for _ in range(depth)))
        self.cls_out = nn.Conv2d(channels, num_classes, 1)
        self.reg_out = nn.Conv2d(channels, 4, 1)
        self.ctr_out = nn.Conv2d(channels, 1, 1)
        # Per-level scale of the distances (FCOS): levels share the head but not their box sizes.
        self.scales = nn.Parameter(torch.ones(len(self.strides)))
        for out in (self.cls_out, self.reg_out, self.ctr_out):
            nn.init.normal_(out.weight, std=0.01)
            nn.init.zeros_(out.bias)
        # Focal-loss prior (RetinaNet): start predicting "background" with p = 0.01 so the first
        # steps are not swamped by the loss of thousands of easy negatives.
        nn.init.constant_(self.cls_out.bias, -math.log((1 - 0.01) / 0.01))

    def forward(self, features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Runs FPN and head on the backbone maps of `backbone_strides` (fine to coarse) of one batch."""
        merged = [lat(c) for lat, c in zip(self.lateral, features, strict=True)]
        # Top-down pathway: each level adds the upsampled coarser one (semantics for the fine levels).
        for i in range(len(merged) - 2, -1, -1):
            merged[i] = merged[i] + F.interpolate(merged[i + 1], size=merged[i].shape[-2:], mode="nearest")
        pyramid = [smooth(m) for smooth, m in zip(self.smooth, merged, strict=True)]
        pyramid.append(self.p6(pyramid[-1]))
        cls, reg, ctr = [], [], []
        for i, p in enumerate(pyramid):
            ct = self.cls_tower(p)
            rt = self.reg_tower(p)
            n = p.shape[0]
            cls.append(self.cls_out(ct).reshape(n, self.num_classes, -1))
            reg.append(F.relu(self.reg_out(rt) * self.scales[i]).reshape(n, 4, -1))
            ctr.append(self.ctr_out(rt).reshape(n, -1))
        return (
            torch.cat(cls, dim=2).transpose(1, 2),
            torch.cat(reg, dim=2).transpose(1, 2),
            torch.cat(ctr, dim=1),
        )


def level_sizes(size: int, strides: Sequence[int] = STRIDES) -> list[int]:
    """Side of each level's feature map for a square input (TF "SAME" padding: ceil at every stride 2)."""
    return [math.ceil(size / s) for s in strides]


def locations(size: int, strides: Sequence[int] = STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres (L, 2) in input pixels and the stride of each location (L,), in head output order."""
    points, per_location = [], []
    for stride, n in zip(strides, level_sizes(size, strides), strict=True):
        c = (np.arange(n, dtype=np.float32) + 0.5) * stride
        ys, xs = np.meshgrid(c, c, indexing="ij")
        points.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        per_location.append(np.full(n * n, stride, dtype=np.float32))
    return np.concatenate(points), np.concatenate(per_location)


class DetectorNet(nn.Module):
    """The exported graph: uint8 RGB [N, S, S, 3] → boxes [N, L, 4] (x1, y1, x2, y2 ratios), scores [N, L, K].

    Everything except NMS is inside: normalisation, backbone, FPN, head and the decoding of distances to
    boxes, so serving only resizes the image and runs `postprocess`.
    """

    def __init__(self, backbone: bb.EfficientNetLite0, head: DetectionHead, input_size: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.input_size = input_size
        points, strides = locations(input_size, head.strides)
        self.register_buffer("points", torch.from_numpy(points), persistent=False)
        self.register_buffer("strides", torch.from_numpy(strides)[:, None], persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Boxes and scores of a uint8 NHWC batch already resized to input_size (RESIZE_POLICY)."""
        x = bb.normalize(images.permute(0, 3, 1, 2))
        maps = run_backbone(self.backbone, x, 0, self.head.map_blocks)
        cls, reg, ctr = self.head([maps[b] for b in self.head.map_blocks])
        d = reg * self.strides
        xy = self.points
        boxes = torch.cat([xy - d[..., :2], xy + d[..., 2:]], dim=-1) / float(self.input_size)
        scores = torch.sqrt(torch.sigmoid(cls) * torch.sigmoid(ctr)[..., None])
        return boxes.clamp(0.0, 1.0), scores


# -- postprocessing (numpy, shared with serving) -----------------------------------------------------


def postprocess(
    raw_outputs: Sequence[np.ndarray],
    orig_w: int,
    orig_h: int,
    labels: Sequence[str],
    *,
    score_threshold: float = 0.01,
    iou_threshold: float = 0.5,
    max_detections: int = 100,
    pre_nms_top_k: int = 1000,
) -> list[Detection]:
    """Detections of ONE image from the graph's outputs (boxes [1, K, 4], scores [1, K, L]): modelio's
    decoding (score threshold, top-k, class-wise NMS), which serving runs too."""
    return modelio.decode_boxes(
        raw_outputs[0],
        raw_outputs[1],
        orig_w,
        orig_h,
        list(labels),
        score_threshold=score_threshold,
        iou_threshold=iou_threshold,
        max_detections=max_detections,
        pre_nms_top_k=pre_nms_top_k,
    )


def prepare_image(image: Image.Image, size: int) -> np.ndarray:
    """The model input of one image: RGB, stretched to size × size with PIL bilinear, uint8 HWC."""
    return modelio.resize(image if image.mode == "RGB" else image.convert("RGB"), size)


# -- the trained model ---------------------------------------------------------------------------------


class TrainedDetector:
    """A trained detector: predict in PyTorch, export to ONNX, and the metadata serving needs."""

    def __init__(
        self, net: DetectorNet, labels: list[str], config: DetectorConfig, info: dict[str, Any]
    ) -> None:
        self.net = net.eval()
        self.labels = labels
        self.config = config
        self.input_size = net.input_size
        self.info = info  # how training went: timings, steps, whether fine-tuning ran

    def raw_outputs(
        self, images: Sequence[Image.Image], batch_size: int = 8
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """The graph's outputs per image (boxes [1, L, 4], scores [1, L, K]) in PyTorch."""
        out: list[tuple[np.ndarray, np.ndarray]] = []
        with torch.inference_mode():
            for i in range(0, len(images), batch_size):
                batch = np.stack([prepare_image(im, self.input_size) for im in images[i : i + batch_size]])
                boxes, scores = self.net(torch.from_numpy(batch))
                out.extend((boxes[j : j + 1].numpy(), scores[j : j + 1].numpy()) for j in range(len(batch)))
        return out

    def postprocess(self, raw_outputs: Sequence[np.ndarray], orig_w: int, orig_h: int) -> list[Detection]:
        """The detections of one image's graph outputs, decoded as serving decodes them (modelio)."""
        return modelio.detections(self.spec(), raw_outputs[0], raw_outputs[1], orig_w, orig_h)

    def predict(self, images: Sequence[Image.Image]) -> list[list[Detection]]:
        """Up to max_detections boxes per image: (label, confidence, left, top, width, height) ratios."""
        raws = self.raw_outputs(images)
        return [self.postprocess(raw, im.width, im.height) for raw, im in zip(raws, images, strict=True)]

    def export_onnx(self) -> bytes:
        """One ONNX graph: input "images" uint8 [N, S, S, 3] → "boxes" [N, K, 4], "scores" [N, K, L]."""
        s = self.input_size
        buffer = io.BytesIO()
        net = copy.deepcopy(self.net).eval()
        with warnings.catch_warnings():
            # The TorchScript exporter is deprecated in favour of the dynamo one, which needs onnxscript.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                (torch.zeros(1, s, s, 3, dtype=torch.uint8),),
                buffer,
                dynamo=False,
                input_names=[modelio.INPUT_NAME],
                output_names=["boxes", "scores"],
                dynamic_axes={
                    modelio.INPUT_NAME: {0: "batch"},
                    "boxes": {0: "batch"},
                    "scores": {0: "batch"},
                },
                opset_version=17,
                do_constant_folding=True,
            )
        return buffer.getvalue()

    def spec(self, thresholds: dict[str, float] | None = None) -> modelio.ModelSpec:
        """The modelio contract of the exported graph."""
        c = self.config
        return modelio.ModelSpec(
            model_type=MODEL_TYPE,
            labels=list(self.labels),
            input_size=self.input_size,
            thresholds=dict(thresholds or {}),
            outputs=("boxes", "scores"),
            score_threshold=c.score_threshold,
            nms_iou=c.nms_iou,
            max_detections=c.max_detections,
            pre_nms_top_k=c.pre_nms_top_k,
        )

    def metadata(self, thresholds: dict[str, float] | None = None) -> dict[str, Any]:
        """model.json: the modelio contract plus the architecture and how training went."""
        n_locations = sum(n * n for n in level_sizes(self.input_size, self.net.head.strides))
        doc = self.spec(thresholds).to_json()
        # Applied inside the graph; documented so other runtimes can reproduce it.
        doc["input"]["normalization"].update(scale=1 / 255, mean=list(bb.MEAN), std=list(bb.STD))
        doc["output_shapes"] = {
            "boxes": {"shape": [-1, n_locations, 4], "format": "x1,y1,x2,y2 ratios of the image"},
            "scores": {"shape": [-1, n_locations, len(self.labels)], "format": "confidence 0-1 per label"},
        }
        doc["architecture"] = "fcos-efficientnet-lite0"
        doc["strides"] = list(self.net.head.strides)
        doc["training"] = {k: v for k, v in self.info.items() if k != "config"}
        return doc


# -- training data: augmented views and FCOS targets -------------------------------------------------


def choose_input_size(boxes: Sequence[Sequence[GroundTruthBox]], config: DetectorConfig) -> int:
    """Serving input side from the training boxes (a multiple of 64 in [train_size, max_input_size]).

    The 10th percentile of sqrt(width·height) (ratios) should cover `min_object_px` pixels: small logos push
    the size up, while objects that are already large keep the cheap 320 (images are stretched to a square,
    so ratios of width and height both scale with the side).
    """
    if config.input_size is not None:
        return config.input_size
    sides = [math.sqrt(max(w, 0.0) * max(h, 0.0)) for per_image in boxes for (_, _, _, w, h) in per_image]
    if not sides:
        return config.train_size
    p10 = float(np.percentile(sides, 10))
    wanted = config.min_object_px / max(p10, 1e-3)
    size = 64 * math.ceil(wanted / 64)
    return int(min(max(size, config.train_size), config.max_input_size))


@dataclass
class _View:
    pixels: np.ndarray  # uint8 (train_size, train_size, 3)
    boxes: np.ndarray  # (n, 4) x1, y1, x2, y2 in view pixels
    classes: np.ndarray  # (n,) int
    ignore: np.ndarray  # (m, 4) boxes of objects mostly cut away: neither object nor background


def _jitter_colour(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Brightness, contrast and saturation ±25 %: lighting varies more than anything in small datasets."""
    for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhance(image).enhance(float(rng.uniform(0.75, 1.25)))
    return image


def _make_view(
    image: Image.Image,
    boxes: np.ndarray,
    classes: np.ndarray,
    input_size: int,
    config: DetectorConfig,
    rng: np.random.Generator,
    plain: bool,
    flip: bool,
) -> _View:
    """One training view: a region of the image in the serving frame (stretched to input_size²), resized.

    `plain` views show the whole image at the serving scale (the exact serving input when train_size equals
    input_size). Others pick a zoom z (view pixels per serving pixel) and aspect jitter: a region smaller
    than the image is a crop — placed on a random object most of the time, so small objects are not
    mostly cropped away — and a larger one puts the whole image on a grey canvas (zoom-out).
    """
    t = config.train_size
    w, h = image.size
    sx, sy = input_size / w, input_size / h  # original pixels → serving frame
    if plain:
        z = t / input_size
        aspect = 1.0
    else:
        lo, hi = config.zoom
        z = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        aspect = math.exp(rng.uniform(-0.2, 0.2))
    # Region side in the serving frame (may exceed input_size: zoom-out).
    rw, rh = t / z * aspect, t / z / aspect
    if rw <= input_size and rh <= input_size:
        if len(boxes) and rng.random() < 0.8:
            k = int(rng.integers(len(boxes)))
            bx = (boxes[k, 0] + boxes[k, 2]) / 2 * sx
            by = (boxes[k, 1] + boxes[k, 3]) / 2 * sy
            x0 = float(np.clip(bx - rng.uniform(0.15, 0.85) * rw, 0, input_size - rw))
            y0 = float(np.clip(by - rng.uniform(0.15, 0.85) * rh, 0, input_size - rh))
        else:
            x0 = float(rng.uniform(0, input_size - rw))
            y0 = float(rng.uniform(0, input_size - rh))
        region = (x0 / sx, y0 / sy, (x0 + rw) / sx, (y0 + rh) / sy)  # original pixels
        view = image.resize((t, t), Image.Resampling.BILINEAR, box=region)
        ox, oy, kx, ky = region[0], region[1], t / (region[2] - region[0]), t / (region[3] - region[1])
    else:
        # Zoom-out: the whole image occupies (iw, ih) view pixels at a random place on a grey canvas.
        iw = max(1, round(min(input_size / rw, 1.0) * t))
        ih = max(1, round(min(input_size / rh, 1.0) * t))
        px, py = int(rng.integers(0, t - iw + 1)), int(rng.integers(0, t - ih + 1))
        view = Image.new("RGB", (t, t), _FILL)
        view.paste(image.resize((iw, ih), Image.Resampling.BILINEAR), (px, py))
        kx, ky = iw / w, ih / h
        ox, oy = -px / kx, -py / ky
    if not plain:
        view = _jitter_colour(view, rng)
    out = np.empty((len(boxes), 4), dtype=np.float32)
    out[:, [0, 2]] = (boxes[:, [0, 2]] - ox) * kx
    out[:, [1, 3]] = (boxes[:, [1, 3]] - oy) * ky
    clipped = out.copy()
    clipped[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, t)
    clipped[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, t)
    area = np.maximum(out[:, 2] - out[:, 0], 1e-6) * np.maximum(out[:, 3] - out[:, 1], 1e-6)
    visible = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1]) / area
    # A box mostly cut away is no target, but its visible part is ignored rather than called background:
    # the network should not learn that a large part of an object is "nothing".
    big = (clipped[:, 2] - clipped[:, 0] >= 2) & (clipped[:, 3] - clipped[:, 1] >= 2)
    keep = (visible >= 0.4) & big
    ignore = clipped[~keep & big & (visible > 0)]
    clipped, cls = clipped[keep], classes[keep]
    pixels = np.asarray(view, dtype=np.uint8)
    if flip:
        pixels = pixels[:, ::-1].copy()
        clipped, ignore = (
            np.stack([t - b[:, 2], b[:, 1], t - b[:, 0], b[:, 3]], axis=1) for b in (clipped, ignore)
        )
    return _View(pixels, clipped.reshape(-1, 4), cls, ignore.reshape(-1, 4))


def _targets(
    boxes: np.ndarray,
    classes: np.ndarray,
    points: np.ndarray,
    strides: np.ndarray,
    ignore: np.ndarray | None = None,
    scale: float = 8.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FCOS targets of one view: label per location, l,t,r,b / stride, centerness.

    Labels: class index for positives, -1 background, -2 ignored (inside an `ignore` box and not positive).

    A location is positive for a box when it lies inside the box, within 1.5 strides of its centre (centre
    sampling) and the box's largest distance fits the level (between scale/2 and scale strides, open at
    the ends);
    among several boxes the smallest wins. A box that no location claims this way (a thin or off-grid
    box) gets the location closest to its centre on the level that fits its size, so every object trains.
    """
    n_loc = len(points)
    labels = np.full(n_loc, -1, dtype=np.int64)
    reg = np.zeros((n_loc, 4), dtype=np.float32)
    ctr = np.zeros(n_loc, dtype=np.float32)
    if ignore is not None and len(ignore):
        x, y = points[:, 0:1], points[:, 1:2]
        inside_ignored = (
            (x > ignore[:, 0]) & (x < ignore[:, 2]) & (y > ignore[:, 1]) & (y < ignore[:, 3])
        ).any(1)
        labels[inside_ignored] = -2
    if not len(boxes):
        return labels, reg, ctr
    px, py = points[:, 0:1], points[:, 1:2]
    ltrb = np.stack(
        [px - boxes[:, 0], py - boxes[:, 1], boxes[:, 2] - px, boxes[:, 3] - py], axis=2
    )  # (L,n,4)
    inside = ltrb.min(axis=2) > 0
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    radius = 1.5 * strides[:, None]
    near = (np.abs(px - cx) < radius) & (np.abs(py - cy) < radius)
    reach = ltrb.max(axis=2)
    s = strides[:, None]
    lo = np.where(s == strides.min(), 0.0, scale / 2 * s)
    hi = np.where(s == strides.max(), np.inf, scale * s)
    fits = (reach >= lo) & (reach <= hi)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    candidate = inside & near & fits
    # Fallback for boxes without any location: nearest centre on the level matching the box's half-size.
    for j in np.nonzero(~candidate.any(axis=0))[0]:
        half = max(boxes[j, 2] - boxes[j, 0], boxes[j, 3] - boxes[j, 1]) / 2
        levels = sorted({float(v) for v in np.unique(strides)})
        level_stride = next((st for st in levels if half <= scale * st), levels[-1])
        on_level = np.nonzero(strides == level_stride)[0]
        d = (points[on_level, 0] - cx[j]) ** 2 + (points[on_level, 1] - cy[j]) ** 2
        candidate[on_level[int(np.argmin(d))], j] = True
    cost = np.where(candidate, area[None, :], np.inf)
    best = cost.argmin(axis=1)
    pos = np.isfinite(cost[np.arange(n_loc), best])
    labels[pos] = classes[best[pos]]
    d = ltrb[np.arange(n_loc), best][pos]
    # Fallback locations may sit just outside their box: keep distances positive.
    d = np.maximum(d, 0.25)
    reg[pos] = d / strides[pos, None]
    lr = np.minimum(d[:, 0], d[:, 2]) / np.maximum(d[:, 0], d[:, 2])
    tb = np.minimum(d[:, 1], d[:, 3]) / np.maximum(d[:, 1], d[:, 3])
    ctr[pos] = np.sqrt(lr * tb)
    return labels, reg, ctr


# -- losses --------------------------------------------------------------------------------------------


def _focal_loss(
    logits: torch.Tensor, labels: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Sigmoid focal loss summed over locations and labels; labels -1 background, -2 ignored."""
    target = torch.zeros_like(logits)
    pos = labels >= 0
    target[pos, labels[pos]] = 1.0
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    a_t = alpha * target + (1 - alpha) * (1 - target)
    loss = a_t * ce * (1 - p_t) ** gamma
    return (loss * (labels != -2).unsqueeze(-1)).sum()


def _iou_giou(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU and GIoU per location of boxes given as l,t,r,b distances from the same point."""
    pl, pt, pr, pb = pred.unbind(-1)
    tl, tt, tr, tb = target.unbind(-1)
    p_area = (pl + pr) * (pt + pb)
    t_area = (tl + tr) * (tt + tb)
    iw = torch.minimum(pl, tl) + torch.minimum(pr, tr)
    ih = torch.minimum(pt, tt) + torch.minimum(pb, tb)
    inter = iw.clamp(min=0) * ih.clamp(min=0)
    union = p_area + t_area - inter
    iou = inter / union.clamp(min=1e-6)
    cw = torch.maximum(pl, tl) + torch.maximum(pr, tr)
    ch = torch.maximum(pt, tt) + torch.maximum(pb, tb)
    enclose = (cw * ch).clamp(min=1e-6)
    return iou, iou - (enclose - union) / enclose


def _quality_focal_loss(logits: torch.Tensor, labels: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """Quality focal loss (GFL, Li et al. 2020): a positive's target is the IoU its box reaches.

    Scores then rank well-placed boxes above offset duplicates of the same object, which plain focal
    loss (target 1 for every positive, however bad its box) does not. Labels -1 background, -2 ignored.
    """
    target = torch.zeros_like(logits)
    pos = labels >= 0
    target[pos, labels[pos]] = quality
    p = torch.sigmoid(logits)
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none") * (target - p).abs().pow(2.0)
    return (loss * (labels != -2).unsqueeze(-1)).sum()


def _losses(
    cls: torch.Tensor,
    reg: torch.Tensor,
    ctr: torch.Tensor,
    labels: torch.Tensor,
    reg_t: torch.Tensor,
    ctr_t: torch.Tensor,
    quality: str = "iou",
) -> torch.Tensor:
    """Classification + centerness-weighted GIoU + centerness BCE, each normalised by the positives (FCOS).

    quality "iou": quality focal loss with the IoU of each positive's (detached) box as its target;
    "focal": FCOS's sigmoid focal loss with target 1.
    """
    pos = labels >= 0
    n_pos = max(float(pos.sum()), 1.0)
    if not pos.any():
        return _focal_loss(cls, labels) / n_pos
    iou, giou = _iou_giou(reg[pos], reg_t[pos])
    if quality == "iou":
        loss = _quality_focal_loss(cls, labels, iou.detach().clamp(min=0.0)) / n_pos
    else:
        loss = _focal_loss(cls, labels) / n_pos
    w = ctr_t[pos]
    loss = loss + ((1 - giou) * w).sum() / w.sum().clamp(min=1e-6)
    return loss + F.binary_cross_entropy_with_logits(ctr[pos], w, reduction="sum") / n_pos


# -- training ------------------------------------------------------------------------------------------


@dataclass
class _Cache:
    """Frozen-backbone outputs (float16, by producing block index) and FCOS targets of all views."""

    maps: dict[int, torch.Tensor]
    labels: torch.Tensor
    reg: torch.Tensor
    ctr: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class _Plan:
    views: int
    head_epochs: float
    finetune_epochs: float


def _plan(n_images: int, config: DetectorConfig) -> _Plan:
    """Views per image and epochs from the dataset size only (never from measured speed: determinism).

    Small datasets get many views and epochs (augmentation is all they have); large ones fewer views,
    capped by max_total_views, so caching stays a fraction of the run.
    """
    views = config.views or int(np.clip(config.max_total_views // max(n_images, 1), 4, 12))
    total = n_images * views
    head = config.head_epochs if config.head_epochs is not None else float(np.clip(30_000 / total, 6, 40))
    tune = (
        config.finetune_epochs
        if config.finetune_epochs is not None
        else float(np.clip(3_000 / total, 0.5, 4))
    )
    return _Plan(views, head, tune)


def choose_strides(
    boxes: Sequence[Sequence[GroundTruthBox]], input_size: int, config: DetectorConfig | None = None
) -> tuple[int, ...]:
    """Pyramid levels: P3 only when small objects need it, P4–P6 otherwise.

    P3 has 4× the locations of P4 and dominates the head's cost; for objects whose 10th-percentile size
    spans 4+ cells of P4 (64+ input pixels) it would hold almost no positives.
    """
    if config is not None and config.strides is not None:
        return tuple(config.strides)
    sides = [math.sqrt(max(w, 0.0) * max(h, 0.0)) for per_image in boxes for (_, _, _, w, h) in per_image]
    small = float(np.percentile(sides, 10)) * input_size if sides else input_size
    return STRIDES if small < 4 * 16 else STRIDES[1:]


class _Clock:
    """Progress reporting and the time budget."""

    def __init__(self, budget_s: float, on_progress: Callable[[float], None]) -> None:
        self.start = time.monotonic()
        self.budget = budget_s
        self.on_progress = on_progress
        self.reported = 0.0

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.budget - self.elapsed()

    def report(self, fraction: float) -> None:
        # Monotone and below 1 until training has really ended, whatever the estimates do.
        self.reported = max(self.reported, min(max(fraction, 0.0), 0.999))
        self.on_progress(self.reported)


def _cache_views(
    backbone: bb.EfficientNetLite0,
    images: Sequence[Image.Image],
    boxes: Sequence[np.ndarray],
    classes: Sequence[np.ndarray],
    input_size: int,
    strides: tuple[int, ...],
    keep_blocks: Sequence[int],
    plan: _Plan,
    config: DetectorConfig,
    rng: np.random.Generator,
    tick: Callable[[int], None],
    clock: _Clock,
    until: float,
) -> _Cache:
    """Builds every view, runs the frozen backbone on it once and computes its FCOS targets.

    `keep_blocks` are the backbone blocks whose outputs are stored (the head's maps and the input of the
    first fine-tuned block). Before each round of views after the first, the measured time per round
    decides: a round that would end after `until` (seconds on `clock`) is not started.
    """
    t = config.train_size
    points, per_location = locations(t, strides)
    n = len(images) * plan.views
    # The cache lives where training runs: on a GPU no step copies anything from the host.
    device = next(backbone.parameters()).device
    maps: dict[int, torch.Tensor] = {}
    labels = torch.empty((n, len(points)), dtype=torch.int16)
    reg = torch.empty((n, len(points), 4), dtype=torch.float16)
    ctr = torch.empty((n, len(points)), dtype=torch.float16)
    batch: list[np.ndarray] = []
    done = 0

    def flush() -> None:
        nonlocal done
        pixels = torch.from_numpy(np.stack(batch)).to(device, non_blocking=True)
        x = bb.normalize(pixels.permute(0, 3, 1, 2))
        k = len(batch)
        with torch.inference_mode():
            for i, y in run_backbone(backbone, x, 0, keep_blocks).items():
                if i not in maps:
                    maps[i] = torch.empty((n, *y.shape[1:]), dtype=torch.float16, device=device)
                maps[i][done : done + k] = y.half()
        done += k
        batch.clear()
        tick(done)

    rgb = [im if im.mode == "RGB" else im.convert("RGB") for im in images]
    i = 0
    # View-major order (view 0 of every image, then view 1, ...): if the deadline cuts caching short,
    # every image still has the same number of views, give or take one.
    started = clock.elapsed()
    for v in range(plan.views):
        if v >= 1 and clock.elapsed() + (clock.elapsed() - started) / v > until:
            break
        for image, b, c in zip(rgb, boxes, classes, strict=True):
            # View 0 is the plain serving view, view 1 its mirror image (when flips are on); the rest
            # are random.
            plain = v == 0 or (v == 1 and config.flip)
            flip = config.flip and (v == 1 or (v > 1 and bool(rng.random() < 0.5)))
            view = _make_view(image, b, c, input_size, config, rng, plain=plain, flip=flip)
            lab, r, ct = _targets(
                view.boxes, view.classes, points, per_location, view.ignore, config.assign_scale
            )
            labels[i] = torch.from_numpy(lab.astype(np.int16))
            reg[i] = torch.from_numpy(r).half()
            ctr[i] = torch.from_numpy(ct).half()
            batch.append(view.pixels)
            i += 1
            # Small backbone batches: progress at least every second even on a loaded machine.
            if len(batch) == 8:
                flush()
    if batch:
        flush()
    if done < n:
        maps = {k: m[:done].clone() for k, m in maps.items()}
        labels, reg, ctr = labels[:done].clone(), reg[:done].clone(), ctr[:done].clone()
    return _Cache(maps, labels.to(device), reg.to(device), ctr.to(device))


class _Ema:
    """Exponential moving average of parameters and buffers: a smoother model wherever training stops."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}
        self.updates = 0

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.updates += 1
        # Short memory at first (the early weights are random), `decay` once warmed up.
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in module.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)

    def copy_to(self, module: nn.Module) -> None:
        module.load_state_dict(self.shadow)


def _lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up then cosine decay to 5 % of the base rate."""
    if step < warmup:
        return (step + 1) / warmup
    p = min((step - warmup) / max(total - warmup, 1), 1.0)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p))


Forward = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def _run_phase(
    name: str,
    params: list[dict[str, Any]],
    modules: list[nn.Module],
    forward: Forward,
    cache: _Cache,
    epochs: float,
    config: DetectorConfig,
    generator: torch.Generator,
    clock: _Clock,
    deadline: float,
    progress: tuple[float, float],
    info: dict[str, Any],
) -> None:
    """One training phase: AdamW + warm-up/cosine, EMA weights at the end, stopping by `deadline`.

    Once the speed is measured, if the planned steps would end after `deadline` (seconds since training
    started) the total is cut to what fits and the cosine decays over that: an early stop that still ends
    with a small learning rate (and EMA weights) instead of mid-schedule.
    """
    n = len(cache)
    bs = min(config.batch_size, n)
    total = max(1, round(epochs * n / bs))
    planned = total
    warmup = min(50, max(1, total // 10))
    optimizer = torch.optim.AdamW(params, weight_decay=config.weight_decay)
    base = [g["lr"] for g in optimizer.param_groups]
    emas = [_Ema(m, config.ema_decay) for m in modules]
    order = torch.randperm(n, generator=generator)
    cursor = 0
    started = clock.elapsed()
    step = 0
    losses: list[float] = []
    while step < total:
        if cursor + bs > n:
            order = torch.randperm(n, generator=generator)
            cursor = 0
        idx = order[cursor : cursor + bs].to(cache.labels.device)
        cursor += bs
        factor = _lr_factor(step, total, warmup)
        for g, lr in zip(optimizer.param_groups, base, strict=True):
            g["lr"] = lr * factor
        cls, reg, ctr = forward(idx)
        loss = _losses(
            cls,
            reg,
            ctr,
            cache.labels[idx].long(),
            cache.reg[idx].float(),
            cache.ctr[idx].float(),
            config.quality,
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_([p for g in params for p in g["params"]], 10.0)
        optimizer.step()
        for ema, m in zip(emas, modules, strict=True):
            ema.update(m)
        losses.append(float(loss.detach()))
        step += 1
        if step >= 3:
            per_step = (clock.elapsed() - started) / step
            fit = step + int((deadline - clock.elapsed()) / per_step)
            if fit < total:
                total = max(step, fit)
        low, high = progress
        clock.report(low + (high - low) * step / max(total, 1))
    for ema, m in zip(emas, modules, strict=True):
        ema.copy_to(m)
    info[name] = {
        "steps": step,
        "planned_steps": planned,
        "batch_size": bs,
        "epochs": round(step * bs / n, 2),
        "seconds": round(clock.elapsed() - started, 1),
        "first_loss": round(float(np.mean(losses[:20])), 4) if losses else None,
        "last_loss": round(float(np.mean(losses[-20:])), 4) if losses else None,
    }


def _step_seconds(forward: Forward, modules: Sequence[nn.Module], cache: _Cache, batch: int) -> float:
    """Seconds of one forward + backward on a batch (the second of two, past allocation warm-up).

    No optimiser step and gradients are dropped: the model is unchanged, so measuring keeps runs with
    the same seed identical. GroupNorm in the head and eval-mode batch-norm in the backbone mean the
    forward passes change no statistics either.
    """
    idx = torch.arange(min(batch, len(cache)), device=cache.labels.device)
    took = 0.0
    for _ in range(2):
        start = time.monotonic()
        cls, reg, ctr = forward(idx)
        (cls.float().mean() + reg.float().mean() + ctr.float().mean()).backward()
        synchronize(idx.device)
        took = time.monotonic() - start
    for m in modules:
        m.zero_grad(set_to_none=True)
    return took


def _share_budget(
    head_forward: Forward,
    tuned_forward: Forward,
    head: nn.Module,
    tail: nn.Module,
    cache: _Cache,
    plan: _Plan,
    config: DetectorConfig,
    clock: _Clock,
    budget_s: float,
    info: dict[str, Any],
) -> tuple[float, bool]:
    """Splits what is left of the budget between the head phase and fine-tuning, from measured speeds.

    A head step costs a few times less than a fine-tuning step, and the head's epochs matter more, so
    when both do not fit the head keeps its whole schedule and fine-tuning gets the rest (or is skipped
    when that rest is under a third of its schedule). Returns the head phase's deadline and whether to
    fine-tune.
    """
    n = len(cache)
    bs = min(config.batch_size, n)
    for p in tail.parameters():
        p.requires_grad_(True)
    per_tune = _step_seconds(tuned_forward, [tail, head], cache, bs)
    for p in tail.parameters():
        p.requires_grad_(False)
    per_head = _step_seconds(head_forward, [head], cache, bs)
    need_head = per_head * round(plan.head_epochs * n / bs)
    need_tune = per_tune * round(plan.finetune_epochs * n / bs)
    left = budget_s * 0.97 - clock.elapsed()
    info["step_seconds"] = {"head": round(per_head, 3), "finetune": round(per_tune, 3)}
    if need_head + need_tune <= left:
        return budget_s * 0.97 - need_tune, True
    if left - need_head >= need_tune / 3:
        return clock.elapsed() + need_head, True
    info["finetune_skipped"] = f"needs {need_tune:.0f} s, {max(left - need_head, 0):.0f} s left"
    return budget_s * 0.97, False


def train_detector(
    images: list[Image.Image],
    boxes: list[list[GroundTruthBox]],
    on_progress: Callable[[float], None],
    time_budget_s: float,
    seed: int = 0,
    config: DetectorConfig | None = None,
) -> TrainedDetector:
    """Trains a detector on images with boxes (label, left, top, width, height as ratios of the image).

    Images without boxes are kept as pure background. Stops within `time_budget_s` (the schedule is
    compressed when the machine is slower than planned) and reports progress (0–1) after every batch.
    """
    if len(images) != len(boxes):
        raise ValueError("images and boxes differ in length")
    config = config or DetectorConfig()
    labels = sorted({b[0] for per_image in boxes for b in per_image})
    if not labels:
        raise ValueError("no boxes to train on")
    configure_torch()
    device = torch.device(config.device or training_device())
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    clock = _Clock(time_budget_s, on_progress)
    index = {label: i for i, label in enumerate(labels)}
    px_boxes, classes = [], []
    for image, per_image in zip(images, boxes, strict=True):
        w, h = image.size
        arr = [[le * w, tp * h, (le + wd) * w, (tp + ht) * h] for (_, le, tp, wd, ht) in per_image]
        px_boxes.append(np.asarray(arr, dtype=np.float32).reshape(-1, 4))
        classes.append(np.asarray([index[b[0]] for b in per_image], dtype=np.int64))
    input_size = choose_input_size(boxes, config)
    strides = choose_strides(boxes, input_size, config)
    plan = _plan(len(images), config)
    info: dict[str, Any] = {
        "input_size": input_size,
        "strides": list(strides),
        "views_per_image": plan.views,
        "labels": len(labels),
        "device": str(device),
    }

    backbone = bb.load_backbone().to(device)
    for p in backbone.parameters():
        p.requires_grad_(False)
    head = (
        DetectionHead(len(labels), strides, config.fpn_channels, config.tower_depth, config.c5_source)
        .to(device)
        .train()
    )
    head_blocks = list(head.map_blocks)
    tune_from = config.finetune_from_block
    finetune = plan.finetune_epochs > 0 and 0 < tune_from < bb.NUM_BLOCKS
    keep = sorted(set(head_blocks) | ({tune_from - 1} if finetune else set()))

    n_views = len(images) * plan.views
    # Share of the progress bar for caching; it only has to move steadily, the phases rescale the rest.
    cache_share = 0.3
    t0 = clock.elapsed()
    cache = _cache_views(
        backbone,
        images,
        px_boxes,
        classes,
        input_size,
        strides,
        keep,
        plan,
        config,
        rng,
        lambda done: clock.report(cache_share * done / n_views),
        clock,
        0.4 * time_budget_s,
    )
    info["views_cached"] = len(cache)
    info["cache_seconds"] = round(clock.elapsed() - t0, 1)

    def head_forward(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return head([cache.maps[b][idx].float() for b in head_blocks])

    tail = nn.ModuleList([*backbone._blocks[tune_from:], backbone._conv_head, backbone._bn1])
    # Backbone batch-norm stays in eval mode: statistics of 32 correlated views are noisier than the
    # ImageNet ones; its affine parameters still train.
    tail.eval()

    def tuned_forward(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        outputs = {b: cache.maps[b][idx].float() for b in head_blocks if b < tune_from}
        outputs.update(run_backbone(backbone, cache.maps[tune_from - 1][idx].float(), tune_from, head_blocks))
        return head([outputs[b] for b in head_blocks])

    head_deadline = time_budget_s * 0.97
    if finetune:
        head_deadline, finetune = _share_budget(
            head_forward, tuned_forward, head, tail, cache, plan, config, clock, time_budget_s, info
        )
    _run_phase(
        "head",
        [{"params": list(head.parameters()), "lr": config.head_lr}],
        [head],
        head_forward,
        cache,
        plan.head_epochs,
        config,
        generator,
        clock,
        head_deadline,
        (cache_share, 0.8 if finetune else 1.0),
        info,
    )

    if finetune and clock.left() > 0.05 * time_budget_s:
        for p in tail.parameters():
            p.requires_grad_(True)
        _run_phase(
            "finetune",
            [
                {"params": list(tail.parameters()), "lr": config.finetune_lr},
                {"params": list(head.parameters()), "lr": config.finetune_lr},
            ],
            [tail, head],
            tuned_forward,
            cache,
            plan.finetune_epochs,
            config,
            generator,
            clock,
            time_budget_s * 0.98,
            (0.8, 1.0),
            info,
        )
        for p in tail.parameters():
            p.requires_grad_(False)

    info["train_seconds"] = round(clock.elapsed(), 1)
    info["config"] = asdict(config)
    # Evaluation and export run on the CPU, as serving's contract is checked there.
    net = DetectorNet(backbone.to("cpu").eval(), head.to("cpu").eval(), input_size).eval()
    clock.on_progress(1.0)
    return TrainedDetector(net, labels, config, info)
