"""Image inspection and ingest (services/dataset/images.py): generated images only, a real S3 server."""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import threading
import time
import tracemalloc
import uuid
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFile

from services.common.errors import (
    ImageTooLarge,
    InvalidImageFormat,
    InvalidParameter,
    InvalidS3Object,
)
from services.common.storage import ObjectStore
from services.dataset import images
from services.dataset.images import (
    ERROR_INVALID_IMAGE,
    ERROR_INVALID_IMAGE_DIMENSION,
    ImageIngestor,
    ImageLimits,
    ImageRejected,
    Problem,
    check_for_inference,
    content_key,
    inspect,
)

MiB = 1024 * 1024


# ---------------------------------------------------------------------------------------------------
# Generated images
# ---------------------------------------------------------------------------------------------------


def pixels(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Random RGB pixels (distinct per seed)."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def encode(im: Image.Image, fmt: str, **options: Any) -> bytes:
    """`im` saved as `fmt`."""
    out = io.BytesIO()
    im.save(out, fmt, **options)
    return out.getvalue()


def jpeg(width: int = 160, height: int = 120, seed: int = 0, **options: Any) -> bytes:
    """A JPEG of random content."""
    return encode(Image.fromarray(pixels(width, height, seed)), "JPEG", **options)


def png(width: int = 160, height: int = 120, seed: int = 0, mode: str = "RGB", **options: Any) -> bytes:
    """A PNG of random content in `mode`."""
    return encode(Image.fromarray(pixels(width, height, seed)).convert(mode), "PNG", **options)


def chunk(ctype: bytes, body: bytes) -> bytes:
    """A PNG chunk with its CRC."""
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def scanline_bytes(width: int, height: int, bit_depth: int, color_type: int, interlace: int) -> int:
    """Bytes of filtered scanlines a PNG needs (PNG spec 7.2, 8.2), counted pass by pass."""
    bits = bit_depth * CHANNELS[color_type]
    passes = [(width, height)]
    if interlace:
        passes = [(len(range(x0, width, dx)), len(range(y0, height, dy))) for x0, y0, dx, dy in ADAM7]
    return sum(rows * (1 + (cols * bits + 7) // 8) for cols, rows in passes if cols and rows)


def handmade_png(
    width: int,
    height: int,
    *,
    bit_depth: int = 8,
    color_type: int = 0,
    interlace: int = 0,
    idat: bytes | None = None,
    extra: int = 0,
) -> bytes:
    """A PNG written chunk by chunk: black, or with `idat` as the image data chunk's content.

    The zero scanlines are compressed piece by piece, so even a 4096×4096 16-bit RGBA image costs little
    memory; `extra` adds (or, negative, removes) bytes of image data.
    """
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, interlace)
    if idat is None:
        squeeze = zlib.compressobj(9)
        left = scanline_bytes(width, height, bit_depth, color_type, interlace) + extra
        parts = []
        while left > 0:
            parts.append(squeeze.compress(bytes(min(left, MiB))))
            left -= MiB
        idat = b"".join(parts) + squeeze.flush()
    body = chunk(b"IHDR", header)
    if color_type == 3:
        body += chunk(b"PLTE", bytes(range(256)) * 3)
    return images.PNG_SIGNATURE + body + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def chunks_of(data: bytes) -> list[tuple[bytes, bytes]]:
    """The (type, body) chunks of a PNG."""
    out, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        out.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def with_sof_size(data: bytes, width: int, height: int) -> bytes:
    """A JPEG whose frame header (SOF) claims another size; the rest of the file is unchanged."""
    pos = 2
    while True:
        marker = data[pos + 1]
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in (0xC0, 0xC1, 0xC2):
            at = pos + 5  # after FF Cx, length (2), precision (1)
            return data[:at] + struct.pack(">HH", height, width) + data[at + 4 :]
        pos += 2 + length


def rejected(data: bytes, limits: ImageLimits = images.TRAINING_LIMITS, **kwargs: Any) -> ImageRejected:
    """The rejection `inspect` raises for `data` (the test fails when it accepts it)."""
    with pytest.raises(ImageRejected) as caught:
        inspect(data, limits, **kwargs)
    return caught.value


def bounded(fn: Callable[[], Any], *, seconds: float, peak_bytes: int) -> None:
    """Runs fn and checks it stayed within a time and a Python-allocation budget."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        fn()
    finally:
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.3f}s"
    assert peak < peak_bytes, f"allocated {peak} bytes at peak"


# ---------------------------------------------------------------------------------------------------
# Valid images
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "1", "I;16"])
def test_png_of_every_common_mode_is_accepted(mode: str) -> None:
    data = (
        png(300, 200, mode=mode)
        if mode != "I;16"
        else encode(Image.fromarray(pixels(300, 200)[..., 0].astype(np.uint16) * 257), "PNG")
    )
    info = inspect(data)
    assert (info.format, info.width, info.height, info.size) == ("PNG", 300, 200, len(data))
    assert info.mode == mode
    assert info.orientation == 1
    assert info.content_type == "image/png"
    assert info.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("color_type", "bit_depth"),
    [(0, 1), (0, 2), (0, 4), (0, 16), (2, 16), (3, 1), (3, 4), (4, 16), (6, 16)],
)
@pytest.mark.parametrize("interlace", [0, 1])
def test_handmade_png_of_every_depth_and_interlacing_is_accepted(
    color_type: int, bit_depth: int, interlace: int
) -> None:
    data = handmade_png(
        67, 131, bit_depth=bit_depth, color_type=color_type, interlace=interlace
    )  # odd sizes exercise the Adam7 arithmetic
    Image.open(io.BytesIO(data)).load()  # Pillow agrees the file is valid
    info = inspect(data)
    assert (info.width, info.height) == (67, 131)
    # The image data must be exactly as long as the header calls for.
    for extra in (-1, 1):
        exc = rejected(
            handmade_png(
                67, 131, bit_depth=bit_depth, color_type=color_type, interlace=interlace, extra=extra
            )
        )
        assert exc.problem == Problem.CORRUPT


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_of_every_common_mode_is_accepted(mode: str, progressive: bool) -> None:
    data = encode(Image.fromarray(pixels(300, 200)).convert(mode), "JPEG", progressive=progressive)
    info = inspect(data)
    assert (info.format, info.width, info.height, info.mode) == ("JPEG", 300, 200, mode)
    assert info.content_type == "image/jpeg"


def test_animated_png_is_accepted() -> None:
    frames = [Image.fromarray(pixels(120, 90, seed)) for seed in range(3)]
    data = encode(frames[0], "PNG", save_all=True, append_images=frames[1:])
    assert b"acTL" in data and b"fdAT" in data
    info = inspect(data)
    assert (info.format, info.width, info.height) == ("PNG", 120, 90)


def test_format_is_decided_by_content_not_by_name() -> None:
    # inspect never sees a name; the S3 test below stores a PNG as photo.jpg.
    assert inspect(png()).format == "PNG"
    assert inspect(jpeg()).format == "JPEG"


def test_sides_at_the_limits_are_accepted() -> None:
    for width, height in [(64, 64), (1280, 64), (64, 1280), (4096, 205), (4096, 4096)]:
        info = inspect(handmade_png(width, height, bit_depth=1))
        assert (info.width, info.height) == (width, height)


def test_jpeg_with_trailing_bytes_after_its_end_is_accepted() -> None:
    assert inspect(jpeg() + b"\x00" * 100).format == "JPEG"


# ---------------------------------------------------------------------------------------------------
# Not PNG/JPEG
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(encode(Image.fromarray(pixels(100, 100)), "GIF"), id="gif"),
        pytest.param(encode(Image.fromarray(pixels(100, 100)), "BMP"), id="bmp"),
        pytest.param(encode(Image.fromarray(pixels(100, 100)), "WEBP"), id="webp"),
        pytest.param(encode(Image.fromarray(pixels(100, 100)), "TIFF"), id="tiff"),
        pytest.param(b"just some text, not an image\n" * 10, id="text"),
        pytest.param(b"", id="empty"),
        pytest.param(np.random.default_rng(1).bytes(5000), id="random"),
        pytest.param(gzip.compress(bytes(50 * MiB)), id="gzip-bomb"),
        pytest.param(images.PNG_SIGNATURE[:4], id="png-signature-prefix"),
        pytest.param(b"\xff\xd8", id="jpeg-soi-only"),
    ],
)
def test_anything_but_png_or_jpeg_is_invalid_image(data: bytes) -> None:
    exc = rejected(data)
    assert exc.code == ERROR_INVALID_IMAGE
    assert exc.problem == Problem.FORMAT
    assert "not a PNG or JPEG" in exc.message
    assert exc.aws_message == "The image is invalid. Check S3 path and/or image properties."


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(images.PNG_SIGNATURE + b"garbage" * 10, id="png-garbage"),
        pytest.param(images.JPEG_SIGNATURE + b"\xe0garbage" * 10, id="jpeg-garbage"),
        pytest.param(images.JPEG_SIGNATURE + b"\xd9", id="jpeg-eoi-only"),
        pytest.param(handmade_png(100, 100)[:40], id="png-header-only"),
        pytest.param(
            b"".join(
                [images.PNG_SIGNATURE] + [chunk(t, b) for t, b in chunks_of(png(mode="P")) if t != b"PLTE"]
            ),
            id="palette-png-without-palette",
        ),
    ],
)
def test_png_or_jpeg_signature_with_garbage_is_invalid_image(data: bytes) -> None:
    exc = rejected(data)
    assert (exc.code, exc.problem) == (ERROR_INVALID_IMAGE, Problem.CORRUPT)


# ---------------------------------------------------------------------------------------------------
# Dimensions, aspect ratio, bytes
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "problem"),
    [
        (1, 1, Problem.TOO_SMALL),
        (63, 200, Problem.TOO_SMALL),
        (200, 63, Problem.TOO_SMALL),
        (4097, 300, Problem.TOO_LARGE),
        (10_000, 10_000, Problem.TOO_LARGE),
        (60_000, 60_000, Problem.TOO_LARGE),
    ],
)
def test_side_outside_64_to_4096_is_rejected_before_decoding(
    width: int, height: int, problem: Problem
) -> None:
    # A tiny zlib stream for any size: the header claims the size, nothing is ever decoded.
    data = handmade_png(width, height, idat=zlib.compress(b"\x00" * 100))
    exc = rejected(data)
    assert (exc.code, exc.problem) == (ERROR_INVALID_IMAGE, problem)
    assert f"{width}×{height}" in exc.message
    # The caller picks the code for box images.
    exc = rejected(data, dimension_code=ERROR_INVALID_IMAGE_DIMENSION)
    assert exc.code == ERROR_INVALID_IMAGE_DIMENSION
    assert exc.aws_message == "The image dimension(s) do not conform to allowed dimensions."
    bounded(lambda: rejected(data), seconds=0.05, peak_bytes=256 * 1024)


@pytest.mark.parametrize(("width", "height"), [(1, 1), (63, 200), (10_000, 10_000), (60_000, 60_000)])
def test_jpeg_claiming_a_size_outside_the_limits_is_rejected_before_decoding(width: int, height: int) -> None:
    data = with_sof_size(jpeg(160, 120), width, height)
    exc = rejected(data, dimension_code=ERROR_INVALID_IMAGE_DIMENSION)
    assert exc.code == ERROR_INVALID_IMAGE_DIMENSION
    assert exc.problem in (Problem.TOO_SMALL, Problem.TOO_LARGE)
    bounded(lambda: rejected(data), seconds=0.05, peak_bytes=256 * 1024)


def test_aspect_ratio_above_20_to_1_is_invalid_image_even_for_box_images() -> None:
    for width, height in [(1344, 64), (64, 1344), (4096, 195)]:
        exc = rejected(handmade_png(width, height, bit_depth=1), dimension_code=ERROR_INVALID_IMAGE_DIMENSION)
        assert (exc.code, exc.problem) == (ERROR_INVALID_IMAGE, Problem.ASPECT_RATIO)
        assert "aspect ratio" in exc.message


def test_file_over_15_mb_is_invalid_image() -> None:
    data = jpeg() + bytes(15 * MiB)  # a valid JPEG followed by padding: only the byte count is wrong
    exc = rejected(data)
    assert (exc.code, exc.problem) == (ERROR_INVALID_IMAGE, Problem.FILE_TOO_LARGE)
    assert str(15 * MiB) in exc.message
    assert inspect(jpeg() + bytes(MiB)).format == "JPEG"


def test_limits_are_configurable_and_checked() -> None:
    small = ImageLimits(min_side=16, max_side=200, max_aspect_ratio=2, max_bytes=50_000)
    assert inspect(handmade_png(32, 32), small).width == 32
    assert rejected(handmade_png(300, 200), small).problem == Problem.TOO_LARGE
    assert rejected(handmade_png(150, 50), small).problem == Problem.ASPECT_RATIO
    assert rejected(jpeg(190, 190, quality=100), small).problem == Problem.FILE_TOO_LARGE
    with pytest.raises(ValueError):
        ImageLimits(min_side=100, max_side=50)
    with pytest.raises(ValueError):
        ImageLimits(max_bytes=0)


def test_larger_configured_limits_raise_pillows_pixel_guard() -> None:
    before = Image.MAX_IMAGE_PIXELS
    assert before is not None and before >= 4096 * 4096
    try:
        ImageLimits(max_side=6000)
        assert Image.MAX_IMAGE_PIXELS == 6000 * 6000
        info = inspect(handmade_png(5000, 5000, bit_depth=1), ImageLimits(max_side=6000))
        assert info.width == 5000
    finally:
        Image.MAX_IMAGE_PIXELS = before


# ---------------------------------------------------------------------------------------------------
# Truncated, corrupt, bombs
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_truncated_jpeg_is_invalid_image(progressive: bool, keep: float) -> None:
    data = jpeg(640, 480, progressive=progressive)
    exc = rejected(data[: int(len(data) * keep)])
    assert (exc.code, exc.problem) == (ERROR_INVALID_IMAGE, Problem.CORRUPT)
    assert "truncated" in exc.message


def test_jpeg_missing_only_its_end_marker_is_invalid_image() -> None:
    data = jpeg(640, 480)
    assert data.endswith(b"\xff\xd9")
    assert rejected(data[:-2]).problem == Problem.CORRUPT


def test_truncated_jpeg_is_caught_even_when_pillow_is_told_to_load_truncated_images(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = jpeg(640, 480)
    assert rejected(data[: len(data) // 2]).problem == Problem.CORRUPT
    assert inspect(data).width == 640


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
@pytest.mark.parametrize("mode", ["RGB", "P"])
def test_truncated_png_is_invalid_image(keep: float, mode: str) -> None:
    data = png(640, 480, mode=mode)
    exc = rejected(data[: int(len(data) * keep)])
    assert (exc.code, exc.problem) == (ERROR_INVALID_IMAGE, Problem.CORRUPT)
    assert "truncated" in exc.message


def test_png_missing_image_data_but_ending_properly_is_invalid_image() -> None:
    # Drop the second half of the IDAT chunks and keep IEND: every chunk is intact, the picture is not.
    data = png(640, 480)
    parts = chunks_of(data)
    idats = [i for i, (ctype, _) in enumerate(parts) if ctype == b"IDAT"]
    assert len(idats) > 2
    kept = [p for i, p in enumerate(parts) if i not in idats[len(idats) // 2 :]]
    exc = rejected(images.PNG_SIGNATURE + b"".join(chunk(t, b) for t, b in kept))
    assert exc.problem == Problem.CORRUPT
    assert "incomplete" in exc.message or "corrupt" in exc.message


def test_png_with_a_damaged_byte_is_invalid_image() -> None:
    data = bytearray(png(300, 200))
    data[len(data) // 2] ^= 0xFF  # inside an IDAT: its CRC no longer matches
    assert "CRC" in rejected(bytes(data)).message
    # The same damage with a recomputed CRC: zlib's own checks catch it.
    parts = chunks_of(png(300, 200))
    i = next(i for i, (ctype, _) in enumerate(parts) if ctype == b"IDAT")
    body = bytearray(parts[i][1])
    body[len(body) // 2] ^= 0xFF
    parts[i] = (b"IDAT", bytes(body))
    assert rejected(images.PNG_SIGNATURE + b"".join(chunk(t, b) for t, b in parts)).problem == Problem.CORRUPT


def test_png_zlib_bomb_stops_at_the_size_its_header_declares() -> None:
    # 64×64 grey needs 4,160 bytes; the IDAT inflates to 256 MiB of zeros.
    squeeze = zlib.compressobj(9)
    idat = b"".join(squeeze.compress(bytes(MiB)) for _ in range(256)) + squeeze.flush()
    assert len(idat) < 300_000
    data = handmade_png(64, 64, idat=idat)
    exc = rejected(data)
    assert exc.problem == Problem.CORRUPT
    assert "inflates past" in exc.message
    bounded(lambda: rejected(data), seconds=0.5, peak_bytes=4 * MiB)


def test_largest_accepted_png_is_checked_in_constant_memory() -> None:
    data = handmade_png(4096, 4096, color_type=6, bit_depth=16)  # 128 MiB of pixels once inflated
    bounded(lambda: inspect(data), seconds=5, peak_bytes=8 * MiB)


def test_jpeg_with_too_many_scans_is_invalid_image() -> None:
    data = jpeg(300, 200, progressive=True)
    scans = data.count(b"\xff\xda")
    assert scans > 3
    assert rejected(data, ImageLimits(max_jpeg_scans=3)).problem == Problem.CORRUPT
    assert inspect(data, ImageLimits(max_jpeg_scans=scans)).format == "JPEG"


# ---------------------------------------------------------------------------------------------------
# EXIF orientation
# ---------------------------------------------------------------------------------------------------


def with_orientation(fmt: str, orientation: int, width: int = 300, height: int = 200) -> bytes:
    """An image of width×height stored pixels whose EXIF says how to display it."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(Image.fromarray(pixels(width, height)), fmt, exif=exif)


@pytest.mark.parametrize(
    ("orientation", "shown"), [(1, (300, 200)), (3, (300, 200)), (6, (200, 300)), (8, (200, 300))]
)
def test_jpeg_size_is_reported_as_displayed_after_exif_orientation(
    orientation: int, shown: tuple[int, int]
) -> None:
    info = inspect(with_orientation("JPEG", orientation))
    assert info.orientation == orientation
    assert (info.width, info.height) == shown
    assert (info.stored_width, info.stored_height) == (300, 200)


def test_png_exif_orientation_is_ignored_like_rekognition_does() -> None:
    info = inspect(with_orientation("PNG", 6))
    assert (info.orientation, info.width, info.height) == (1, 300, 200)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_broken_exif_does_not_reject_the_image() -> None:
    data = jpeg()
    broken = data[:2] + b"\xff\xe1" + struct.pack(">H", 20) + b"Exif\x00\x00MM\x00*garbage!" + data[2:]
    info = inspect(broken)
    assert (info.orientation, info.width) == (1, 160)


# ---------------------------------------------------------------------------------------------------
# DetectCustomLabels
# ---------------------------------------------------------------------------------------------------


def test_check_for_inference_raises_what_detect_custom_labels_answers() -> None:
    assert check_for_inference(jpeg()).format == "JPEG"
    cases: list[tuple[bytes, type[Exception]]] = [
        (encode(Image.fromarray(pixels(100, 100)), "GIF"), InvalidImageFormat),
        (jpeg(640, 480)[:5000], InvalidImageFormat),
        (handmade_png(5000, 5000, idat=b"x"), ImageTooLarge),
        (handmade_png(32, 32), InvalidParameter),
        (handmade_png(1344, 64, bit_depth=1), InvalidParameter),
        (jpeg() + bytes(4 * MiB), ImageTooLarge),
    ]
    for data, error in cases:
        with pytest.raises(error):
            check_for_inference(data, ImageLimits(max_bytes=4 * MiB))


# ---------------------------------------------------------------------------------------------------
# Concurrency
# ---------------------------------------------------------------------------------------------------


def test_inspect_gives_the_same_answers_from_many_threads() -> None:
    inputs = [jpeg(seed=i) for i in range(10)] + [png(seed=i) for i in range(5)]
    inputs += [b"GIF89a", handmade_png(10, 10), jpeg(640, 480)[:3000]]

    def outcome(data: bytes) -> Any:
        try:
            return inspect(data)
        except ImageRejected as exc:
            return (exc.code, exc.problem)

    expected = [outcome(d) for d in inputs]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(5):
            assert list(pool.map(outcome, inputs)) == expected


class FakeStore:
    """Just enough of ObjectStore for ingest_many's concurrency: slow reads, counted."""

    def __init__(self, blob: bytes) -> None:
        self.blob = blob
        self.started = 0
        self.lock = threading.Lock()
        self.objects: dict[tuple[str, str], bytes] = {}

    def get_bytes(self, bucket: str, key: str, max_bytes: int | None = None) -> bytes:
        with self.lock:
            self.started += 1
        if key.startswith("missing"):
            raise InvalidS3Object(f"cannot access s3://{bucket}/{key}: NoSuchKey")
        time.sleep(0.002)
        return self.blob

    def exists(self, bucket: str, key: str) -> bool:
        return (bucket, key) in self.objects

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str = "") -> None:
        self.objects[(bucket, key)] = data


def test_ingest_many_keeps_order_and_never_runs_far_ahead_of_its_consumer() -> None:
    store = FakeStore(jpeg())
    ingestor = ImageIngestor(store, "images", max_workers=3)  # type: ignore[arg-type]
    refs = [("src", f"missing-{i}" if i % 7 == 3 else f"img-{i}") for i in range(60)]
    seen = []
    for consumed, (ref, result) in enumerate(ingestor.ingest_many(refs), start=1):
        seen.append(ref)
        assert result.ok == (not ref[1].startswith("missing"))
        # Reads started so far: what was consumed plus at most the window (2 × workers).
        assert store.started <= consumed + 2 * 3
        time.sleep(0.001)
    assert seen == refs
    assert len(store.objects) == 1  # the same bytes every time: stored once


def test_ingest_many_stopped_early_leaves_no_work_running() -> None:
    store = FakeStore(jpeg())
    ingestor = ImageIngestor(store, "images", max_workers=2)  # type: ignore[arg-type]
    results = ingestor.ingest_many(("src", f"img-{i}") for i in range(1000))
    for _ in zip(range(5), results, strict=False):
        pass
    results.close()
    started = store.started
    time.sleep(0.05)
    assert store.started == started <= 5 + 2 * 2


# ---------------------------------------------------------------------------------------------------
# Ingest against a real S3 server
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(s3_server: Any) -> ObjectStore:
    """Our object-store client on the session's S3 server."""
    return ObjectStore(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)


@pytest.fixture
def buckets(store: ObjectStore) -> Iterator[tuple[str, str]]:
    """A fresh (source, images) bucket pair."""
    suffix = uuid.uuid4().hex[:12]
    source, target = f"src-{suffix}", f"img-{suffix}"
    store.ensure_bucket(source)
    store.ensure_bucket(target)
    yield source, target


def test_ingest_copies_the_image_under_its_sha256(store: ObjectStore, buckets: tuple[str, str]) -> None:
    source, target = buckets
    data = png(200, 150)
    store.put_bytes(source, "photos/cat.jpg", data)  # a PNG named .jpg: the content decides
    result = ImageIngestor(store, target).ingest(source, "photos/cat.jpg")
    assert result.ok and result.created
    assert result.info is not None
    assert (result.info.format, result.info.width, result.info.height) == ("PNG", 200, 150)
    digest = hashlib.sha256(data).hexdigest()
    assert result.key == content_key(digest) == f"sha256/{digest[:2]}/{digest}"
    assert store.get_bytes(target, result.key) == data
    assert store.client.stat_object(target, result.key).content_type == "image/png"


def test_identical_images_are_stored_once(store: ObjectStore, buckets: tuple[str, str]) -> None:
    source, target = buckets
    data = jpeg(seed=5)
    for key in ("a.jpg", "b/a-copy.jpg", "c.png"):
        store.put_bytes(source, key, data)
    ingestor = ImageIngestor(store, target)
    results = [ingestor.ingest(source, key) for key in ("a.jpg", "b/a-copy.jpg", "c.png")]
    assert len({r.key for r in results}) == 1
    assert [r.created for r in results] == [True, False, False]
    # A new ingestor (nothing cached) rewrites the same immutable copy: still one object, same bytes.
    again = ImageIngestor(store, target).ingest(source, "c.png")
    assert again.key == results[0].key
    assert store.list_keys(target) == [results[0].key]
    assert store.get_bytes(target, again.key) == data


def test_stored_copy_survives_overwrite_and_delete_of_the_source(
    store: ObjectStore, buckets: tuple[str, str]
) -> None:
    source, target = buckets
    original = jpeg(seed=11)
    store.put_bytes(source, "x.jpg", original)
    result = ImageIngestor(store, target).ingest(source, "x.jpg")
    assert result.key is not None
    store.put_bytes(source, "x.jpg", jpeg(seed=12))
    assert store.get_bytes(target, result.key) == original
    store.delete(source, "x.jpg")
    assert store.get_bytes(target, result.key) == original


def test_missing_object_or_bucket_is_invalid_image_with_a_clear_message(
    store: ObjectStore, buckets: tuple[str, str]
) -> None:
    source, target = buckets
    ingestor = ImageIngestor(store, target)
    result = ingestor.ingest(source, "nope.jpg")
    assert not result.ok and result.info is None and result.key is None
    assert result.code == ERROR_INVALID_IMAGE
    assert result.error is not None and result.error.problem == Problem.UNREADABLE
    assert f"s3://{source}/nope.jpg" in (result.message or "")
    assert "NoSuchKey" in (result.message or "")
    result = ingestor.ingest(f"no-such-bucket-{uuid.uuid4().hex[:8]}", "x.jpg")
    assert result.code == ERROR_INVALID_IMAGE
    assert "cannot be read" in (result.message or "")


def test_invalid_or_oversized_objects_are_rejected_and_nothing_is_stored(
    store: ObjectStore, buckets: tuple[str, str]
) -> None:
    source, target = buckets
    store.put_bytes(source, "big.jpg", jpeg() + bytes(15 * MiB))
    store.put_bytes(source, "anim.gif", encode(Image.fromarray(pixels(100, 100)), "GIF"))
    store.put_bytes(source, "cut.jpg", jpeg(640, 480)[:9000])
    store.put_bytes(source, "tiny.png", handmade_png(63, 200))
    ingestor = ImageIngestor(store, target)
    big = ingestor.ingest(source, "big.jpg")
    assert (big.code, big.error and big.error.problem) == (ERROR_INVALID_IMAGE, Problem.FILE_TOO_LARGE)
    assert f"s3://{source}/big.jpg" in (big.message or "")
    assert ingestor.ingest(source, "anim.gif").code == ERROR_INVALID_IMAGE
    assert "truncated" in (ingestor.ingest(source, "cut.jpg").message or "")
    tiny = ingestor.ingest(source, "tiny.png", dimension_code=ERROR_INVALID_IMAGE_DIMENSION)
    assert tiny.code == ERROR_INVALID_IMAGE_DIMENSION
    assert store.list_keys(target) == []


def test_ingest_bytes_stores_an_upload(store: ObjectStore, buckets: tuple[str, str]) -> None:
    _, target = buckets
    data = jpeg(seed=21)
    ingestor = ImageIngestor(store, target)
    result = ingestor.ingest_bytes(data)
    assert result.ok and result.key is not None
    assert store.get_bytes(target, result.key) == data
    assert ingestor.ingest_bytes(b"not an image").code == ERROR_INVALID_IMAGE


def test_ingest_many_keeps_input_order_and_reports_each_error(
    store: ObjectStore, buckets: tuple[str, str]
) -> None:
    source, target = buckets
    expected: list[str | None] = []
    refs = []
    for i in range(40):
        key = f"img/{i:03d}"
        if i % 10 == 3:
            expected.append(ERROR_INVALID_IMAGE)  # never written
        elif i % 10 == 7:
            store.put_bytes(source, key, b"GIF89a" + bytes(100))
            expected.append(ERROR_INVALID_IMAGE)
        elif i % 10 == 9:
            store.put_bytes(source, key, handmade_png(5000, 64, idat=b"x"))
            expected.append(ERROR_INVALID_IMAGE_DIMENSION)
        else:
            store.put_bytes(source, key, jpeg(seed=i % 4))  # four distinct images
            expected.append(None)
        refs.append((source, key))
    ingestor = ImageIngestor(store, target, max_workers=4)
    out = list(ingestor.ingest_many(refs, dimension_code=ERROR_INVALID_IMAGE_DIMENSION))
    assert [ref for ref, _ in out] == refs
    assert [result.code for _, result in out] == expected
    assert all(result.message for _, result in out if not result.ok)
    assert len(store.list_keys(target)) == 4
