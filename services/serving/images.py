"""The image of a DetectCustomLabels call: where it comes from, and the checks of spec/limits.md §1."""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from services.common.errors import ImageTooLarge, InvalidImageFormat, InvalidParameter
from services.serving.config import ServingSettings

# Pillow names a JPEG that carries extra frames (cameras' multi-picture JPEGs) "MPO"; it is a JPEG file,
# decoded as its first frame, and the dataset service accepts it as one.
FORMATS = ("JPEG", "MPO", "PNG")


def check(data: bytes, settings: ServingSettings) -> tuple[int, int]:
    """Checks an encoded image's format and dimensions from its header; returns (width, height).

    Not PNG/JPEG or no image at all → InvalidImageFormatException; a side above the maximum →
    ImageTooLargeException; a side below the minimum or a too-elongated image → InvalidParameterException.
    """
    if not data:
        raise InvalidParameter("Image.Bytes is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                kind, (width, height) = img.format, img.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge("the image has too many pixels") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise InvalidImageFormat("the image is not a PNG or JPEG image") from None
    if kind not in FORMATS:
        raise InvalidImageFormat(f"the image format {kind} is not supported; use PNG or JPEG")
    if max(width, height) > settings.max_image_side:
        raise ImageTooLarge(
            f"the image is {width}x{height} pixels; each side may be at most {settings.max_image_side}"
        )
    if min(width, height) < settings.min_image_side:
        raise InvalidParameter(
            f"the image is {width}x{height} pixels; each side must be at least {settings.min_image_side}"
        )
    if max(width, height) > settings.max_aspect_ratio * min(width, height):
        raise InvalidParameter(
            f"the image is {width}x{height} pixels; the aspect ratio may be at most {settings.max_aspect_ratio:g}:1"
        )
    return width, height
