"""Image decoding, resizing and training-time augmentation shared by training and prediction.

The model's input contract is services/common/modelio.py (also written into the exported
metadata): RGB, EXIF orientation applied, the whole image resized to size×size with bilinear
interpolation (no crop, aspect ratio not kept).
"""

from __future__ import annotations

import math
from typing import TypeAlias

import numpy as np
from PIL import Image

from services.common import modelio

ImageInput: TypeAlias = bytes | Image.Image | np.ndarray

RESIZE = modelio.RESIZE


def decode(image: ImageInput, min_size: int | None = None) -> Image.Image:
    """Returns an RGB PIL image from encoded bytes, a PIL image or an HWC uint8 array.

    With min_size, a JPEG is decoded at the smallest power-of-two reduction that keeps both sides
    at least min_size (libjpeg's DCT scaling): several times faster for big photos, and the
    result is resized to min_size anyway.
    """
    if isinstance(image, bytes):
        return modelio.decode(image, min_size)[0]
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an HWC uint8 RGB array, got {image.dtype} {image.shape}")
        img = Image.fromarray(image)
    else:
        img = image
    return img if img.mode == "RGB" else img.convert("RGB")


def resize(img: Image.Image, size: int) -> np.ndarray:
    """The model's input: the whole image stretched to size×size, as an HWC uint8 array."""
    return modelio.resize(img, size)


def augment(img: Image.Image, size: int, rng: np.random.Generator, min_scale: float) -> np.ndarray:
    """A random view: crop (min_scale–1 of the area, aspect 3:4–4:3), flip, colour jitter.

    The crop is resized straight from the full-resolution image (PIL's `box`), so zoomed views
    keep their detail instead of upsampling an already shrunk picture.
    """
    w, h = img.size
    area = w * h * rng.uniform(min_scale, 1.0)
    ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
    cw = min(w, max(1, round(math.sqrt(area * ratio))))
    ch = min(h, max(1, round(math.sqrt(area / ratio))))
    x0 = int(rng.integers(0, w - cw + 1))
    y0 = int(rng.integers(0, h - ch + 1))
    view = img.resize((size, size), RESIZE, box=(x0, y0, x0 + cw, y0 + ch))
    if rng.random() < 0.5:
        view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return colour_jitter(np.asarray(view), rng)


def colour_jitter(rgb: np.ndarray, rng: np.random.Generator, strength: float = 0.25) -> np.ndarray:
    """Random brightness, contrast and saturation (each a factor in 1 ± strength)."""
    x = rgb.astype(np.float32)
    x *= rng.uniform(1 - strength, 1 + strength)
    mean = x.mean()
    x = (x - mean) * rng.uniform(1 - strength, 1 + strength) + mean
    grey = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    x = (x - grey[..., None]) * rng.uniform(1 - strength, 1 + strength) + grey[..., None]
    return np.clip(x, 0, 255).astype(np.uint8)
