"""Stored images for the console (GetDatasetImage): the content-addressed copy as stored, or a JPEG
thumbnail of it, cached in the images bucket.

Only keys of the form `sha256/<2 hex>/<sha256>` are ever read (`digest_of_key`), so a caller cannot
reach uploads, thumbnails or any other object through a crafted key.

Thumbnails:
- the longer side is one of `THUMBNAIL_SIDES` (a fixed set keeps the cache bounded), never upscaled;
- the image is checked again with `images.inspect` before Pillow decodes it: ingest checked it, but a
  stored object is not trusted blindly, and that check bounds what the decode can cost (dimensions
  from the header first, zlib bombs stopped, JPEG scans capped);
- JPEGs decode in draft mode (libjpeg scales by 1/2, 1/4 or 1/8 while decoding), then the EXIF
  orientation is applied, as images.py defines the displayed frame (PNGs are never rotated);
- every mode becomes RGB: CMYK and palettes converted, 16-bit greyscale scaled to 8 bits (Pillow
  would clip it), alpha composited on a neutral grey;
- the result is written to `thumbnails/<side>/<2 hex>/<sha256>.jpg` with one PUT (atomic in S3, so a
  concurrent reader sees no object or the whole one) and read from there afterwards.

At most `max_decodes` thumbnails are decoded at once, each request holding one decoded image, so
memory stays bounded however many requests arrive together.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from services.common.errors import InvalidImageFormat, InvalidParameter, InvalidS3Object, NotFound
from services.common.storage import ObjectStore
from services.dataset import images
from services.dataset.images import ImageLimits, ImageRejected

THUMBNAIL_SIDES = (128, 256, 512, 1024)
CHUNK_BYTES = images.MiB
JPEG_QUALITY = 80
BACKGROUND = (128, 128, 128)
_ORIENTATION_TAG = 0x0112
_KEY = re.compile(r"sha256/([0-9a-f]{2})/([0-9a-f]{64})")
_SIXTEEN_BIT = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})


@dataclass(frozen=True)
class ServedImage:
    """What GetDatasetImage sends: the header's fields and the bytes."""

    content_type: str
    width: int
    height: int
    etag: str
    data: bytes

    def chunks(self, size: int = CHUNK_BYTES) -> Iterator[bytes]:
        """The bytes in pieces of at most `size`."""
        for start in range(0, len(self.data), size):
            yield self.data[start : start + size]


def digest_of_key(key: str) -> str:
    """The sha256 of a stored copy's key; InvalidParameter unless it is exactly `sha256/<2 hex>/<64 hex>`."""
    match = _KEY.fullmatch(key)
    if match is None or match.group(2)[:2] != match.group(1):
        raise InvalidParameter("ImageKey must be the key of a stored image: sha256/<2 hex>/<64 hex>")
    return match.group(2)


def thumbnail_key(digest: str, max_side: int) -> str:
    """Where the thumbnail of an image with this digest is cached in the images bucket."""
    return f"thumbnails/{max_side}/{digest[:2]}/{digest}.jpg"


def check_max_side(max_side: int) -> None:
    """InvalidParameter unless `max_side` is 0 (the original) or one of THUMBNAIL_SIDES."""
    if max_side != 0 and max_side not in THUMBNAIL_SIDES:
        sides = ", ".join(map(str, THUMBNAIL_SIDES))
        raise InvalidParameter(f"MaxSide must be 0 (the stored image) or one of {sides}; got {max_side}")


def content_type(data: bytes) -> str:
    """image/png or image/jpeg by magic bytes; InvalidImageFormat for anything else."""
    if data.startswith(images.PNG_SIGNATURE):
        return "image/png"
    if data.startswith(images.JPEG_SIGNATURE):
        return "image/jpeg"
    raise InvalidImageFormat("the stored object is not a PNG or JPEG image")


def displayed_size(data: bytes) -> tuple[int, int]:
    """(width, height) as displayed, read from the header only: JPEGs swapped for EXIF orientations 5-8."""
    try:
        with Image.open(io.BytesIO(data), formats=["PNG", "JPEG", "MPO"]) as im:
            width, height = im.size
            if im.format == "PNG":
                return width, height
            try:
                orientation = im.getexif().get(_ORIENTATION_TAG, 1)
            except Exception:  # a broken EXIF block: shown unrotated, as images.py treats it
                orientation = 1
    except Exception as exc:
        raise InvalidImageFormat(f"the stored image cannot be read ({type(exc).__name__})") from None
    return (height, width) if isinstance(orientation, int) and 5 <= orientation <= 8 else (width, height)


def make_thumbnail(data: bytes, max_side: int, limits: ImageLimits = images.TRAINING_LIMITS) -> ServedImage:
    """A JPEG whose longer side is `max_side` (the image's own when smaller): RGB, displayed orientation."""
    try:
        info = images.inspect(data, limits)
    except ImageRejected as exc:
        raise InvalidImageFormat(f"the stored image cannot be thumbnailed: {exc.message}") from None
    with Image.open(io.BytesIO(data), formats=["PNG"] if info.format == "PNG" else ["JPEG", "MPO"]) as source:
        im = _decodable(source)
        # For a JPEG still unloaded, thumbnail() sets draft mode first: decoded at ≥ 2× the target size.
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=2.0)
        if info.format == "JPEG":
            im = ImageOps.exif_transpose(im)
        im = _rgb(im)
        out = io.BytesIO()
        im.save(out, "JPEG", quality=JPEG_QUALITY)  # inside: an image already small enough is still lazy
    return ServedImage("image/jpeg", im.width, im.height, f"{info.sha256}-{max_side}", out.getvalue())


def _decodable(im: Image.Image) -> Image.Image:
    """The image in a mode Pillow resizes well: palettes expanded, 16 bits scaled to 8, keys as alpha."""
    if im.mode in _SIXTEEN_BIT:
        # Pillow's own conversion clips everything above 255 to white; scale instead.
        pixels = np.clip(np.asarray(im, dtype=np.int64 if im.mode == "I" else None), 0, 65535)
        return Image.fromarray((pixels >> 8).astype(np.uint8))
    if im.mode in ("P", "PA") or (im.mode in ("L", "RGB") and "transparency" in im.info):
        return im.convert("RGBA")
    if im.mode == "1":
        return im.convert("L")
    return im


def _rgb(im: Image.Image) -> Image.Image:
    """RGB, with any alpha composited on BACKGROUND."""
    if im.mode == "RGB":
        return im
    if "A" in im.getbands() or "a" in im.getbands():
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


class ImageReader:
    """Reads stored copies and serves them or their cached thumbnails. Thread-safe."""

    def __init__(
        self,
        store: ObjectStore,
        bucket: str,
        limits: ImageLimits = images.TRAINING_LIMITS,
        max_decodes: int = 4,
    ) -> None:
        if max_decodes < 1:
            raise ValueError("max_decodes must be >= 1")
        self.store = store
        self.bucket = bucket
        self.limits = limits
        self._decodes = threading.BoundedSemaphore(max_decodes)

    def _read(self, key: str) -> bytes:
        try:
            # Stored copies passed the size limit at ingest; a larger object is not one of ours.
            return self.store.get_bytes(self.bucket, key, max_bytes=self.limits.max_bytes)
        except InvalidS3Object:
            if not self.store.exists(self.bucket, key):
                raise NotFound(f"no stored image has the key {key}") from None
            raise

    def original(self, key: str, size: tuple[int, int] | None = None) -> ServedImage:
        """The stored copy unchanged; `size` (displayed width, height) when the caller knows it."""
        digest = digest_of_key(key)
        data = self._read(key)
        width, height = size or displayed_size(data)
        return ServedImage(content_type(data), width, height, digest, data)

    def thumbnail(self, key: str, max_side: int) -> ServedImage:
        """The cached thumbnail of the stored copy, made and cached first when missing."""
        digest = digest_of_key(key)
        check_max_side(max_side)
        cached_key = thumbnail_key(digest, max_side)
        try:
            cached = self.store.get_bytes(self.bucket, cached_key)
        except InvalidS3Object:
            cached = None
        if cached is not None:
            with Image.open(io.BytesIO(cached), formats=["JPEG"]) as im:
                width, height = im.size
            return ServedImage("image/jpeg", width, height, f"{digest}-{max_side}", cached)
        data = self._read(key)
        with self._decodes:
            thumb = make_thumbnail(data, max_side, self.limits)
        del data
        self.store.put_bytes(self.bucket, cached_key, thumb.data, content_type="image/jpeg")
        return thumb
