"""GetDatasetImage over real gRPC, Postgres and S3: originals as stored, thumbnails of every image
mode with EXIF orientation applied, the thumbnail cache in the images bucket, and every refusal."""

from __future__ import annotations

import hashlib
import io
import struct
import uuid
import zlib
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from PIL import Image

from services.dataset import thumbnails
from tests.dataset.util import cls_line, create_from_lines, new_project, put, wait
from tests.helpers import expect_error

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
MiB = 1024 * 1024


def gradient(width: int, height: int) -> np.ndarray:
    """An RGB gradient (compresses like a photo, unlike noise)."""
    x = np.linspace(0, 255, width, dtype=np.float64)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float64)[:, None]
    return np.stack(
        [
            np.broadcast_to(x, (height, width)),
            np.broadcast_to(y, (height, width)),
            (x + y) / 2 * np.ones((height, 1)),
        ],
        axis=-1,
    ).astype(np.uint8)


def encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def rotated_jpeg() -> bytes:
    """600×400 as stored, red top half and blue bottom half, EXIF orientation 6 (displayed 400×600)."""
    pixels = np.zeros((400, 600, 3), dtype=np.uint8)
    pixels[:200, :, 0] = 255
    pixels[200:, :, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(Image.fromarray(pixels), "JPEG", quality=90, exif=exif)


def rgba_png() -> bytes:
    """300×200: opaque white left half, fully transparent right half."""
    pixels = np.zeros((200, 300, 4), dtype=np.uint8)
    pixels[:, :150] = (255, 255, 255, 255)
    return encode(Image.fromarray(pixels), "PNG")


def gray16_png() -> bytes:
    """300×200 16-bit greyscale spanning 0-65535 left to right."""
    row = np.linspace(0, 65535, 300).astype(np.uint16)
    return encode(Image.fromarray(np.repeat(row[None, :], 200, axis=0)), "PNG")


def palette_png() -> bytes:
    """200×200 palette image whose index 0 is transparent."""
    im = Image.new("P", (200, 200), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.paste(1, (0, 0, 100, 200))
    return encode(im, "PNG", transparency=0)


IMAGES = {
    "photo.jpg": encode(Image.fromarray(gradient(600, 400)), "JPEG", quality=90),
    "rotated.jpg": rotated_jpeg(),
    "cmyk.jpg": encode(Image.fromarray(gradient(300, 200)).convert("CMYK"), "JPEG"),
    "gray16.png": gray16_png(),
    "alpha.png": rgba_png(),
    "palette.png": palette_png(),
    "small.png": encode(Image.fromarray(gradient(100, 80)), "PNG"),
    # Noise does not compress: well over 1 MiB, so it streams in several chunks.
    "large.png": encode(
        Image.fromarray(np.random.default_rng(1).integers(0, 255, (700, 900, 3), dtype=np.uint8)), "PNG"
    ),
    "broken.jpg": b"\xff\xd8\xff\xe0 this is not really a JPEG",
}


@dataclass(frozen=True)
class Fixture:
    dataset_arn: str
    refs: dict[str, str]  # file name -> source-ref


@pytest.fixture(scope="module")
def dataset(stack) -> Fixture:
    bucket = f"imgs-{uuid.uuid4().hex[:8]}"
    refs = {name: put(stack.store, bucket, name, data) for name, data in IMAGES.items()}
    project = new_project(stack, "images")
    arn = create_from_lines(stack, project, [cls_line(ref, "thing") for ref in refs.values()])
    assert wait(stack, arn).status == ds.DATASET_STATUS_CREATE_COMPLETE
    return Fixture(arn, refs)


def key_of(data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    return f"sha256/{digest[:2]}/{digest}"


def fetch(stack, **request: object) -> tuple[ds.DatasetImageHeader, bytes, list[int]]:
    """The header, the joined bytes and the chunk sizes of one GetDatasetImage stream."""
    messages = list(stack.dataset.GetDatasetImage(ds.GetDatasetImageRequest(**request)))
    assert messages[0].WhichOneof("payload") == "header"
    assert all(m.WhichOneof("payload") == "chunk" for m in messages[1:])
    chunks = [m.chunk for m in messages[1:]]
    data = b"".join(chunks)
    assert messages[0].header.size_bytes == len(data)
    return messages[0].header, data, [len(c) for c in chunks]


def decoded(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


# -- originals ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["photo.jpg", "alpha.png"])
def test_original_is_the_stored_copy_byte_for_byte(stack, dataset, name):
    data = IMAGES[name]
    header, body, _ = fetch(stack, dataset_arn=dataset.dataset_arn, source_ref=dataset.refs[name])
    assert body == data == stack.store.get_bytes(stack.images_bucket, key_of(data))
    assert header.content_type == ("image/png" if name.endswith(".png") else "image/jpeg")
    assert (header.width, header.height) == decoded(data).size
    assert header.etag == hashlib.sha256(data).hexdigest()
    by_key, body_by_key, _ = fetch(stack, image_key=key_of(data))
    assert body_by_key == data and by_key == header


def test_original_reports_the_displayed_size_of_an_exif_rotated_jpeg(stack, dataset):
    by_entry, _, _ = fetch(stack, dataset_arn=dataset.dataset_arn, source_ref=dataset.refs["rotated.jpg"])
    by_key, _, _ = fetch(stack, image_key=key_of(IMAGES["rotated.jpg"]))
    assert (by_entry.width, by_entry.height) == (by_key.width, by_key.height) == (400, 600)


def test_a_large_original_streams_in_chunks_of_at_most_1_mib(stack, dataset):
    assert len(IMAGES["large.png"]) > 1.5 * MiB
    _, body, sizes = fetch(stack, dataset_arn=dataset.dataset_arn, source_ref=dataset.refs["large.png"])
    assert body == IMAGES["large.png"]
    assert len(sizes) >= 2 and max(sizes) <= MiB


# -- thumbnails ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("side", [128, 256, 512, 1024])
def test_thumbnail_has_the_requested_longer_side_and_is_never_upscaled(stack, dataset, side):
    header, body, _ = fetch(
        stack, dataset_arn=dataset.dataset_arn, source_ref=dataset.refs["photo.jpg"], max_side=side
    )
    im = decoded(body)
    assert im.format == "JPEG" and im.mode == "RGB"
    assert max(im.size) == min(side, 600)
    assert abs(im.width / im.height - 1.5) < 0.02
    assert (header.width, header.height) == im.size
    assert header.content_type == "image/jpeg"
    assert header.etag == f"{hashlib.sha256(IMAGES['photo.jpg']).hexdigest()}-{side}"


def test_thumbnail_of_an_image_smaller_than_the_side_keeps_its_size(stack, dataset):
    _, body, _ = fetch(stack, image_key=key_of(IMAGES["small.png"]), max_side=128)
    assert decoded(body).size == (100, 80)


def test_thumbnail_of_an_exif_rotated_jpeg_is_rotated(stack, dataset):
    header, body, _ = fetch(stack, image_key=key_of(IMAGES["rotated.jpg"]), max_side=256)
    im = decoded(body)
    assert im.height == 256 and im.width in (170, 171)
    assert (header.width, header.height) == im.size
    # Orientation 6 turns the stored top (red) to the displayed right, the bottom (blue) to the left.
    right = im.getpixel((im.width * 3 // 4, im.height // 2))
    left = im.getpixel((im.width // 4, im.height // 2))
    assert right[0] > 200 and right[2] < 60
    assert left[2] > 200 and left[0] < 60
    assert not decoded(body).getexif().get(0x0112)


def test_thumbnails_of_cmyk_16_bit_and_palette_images_are_rgb(stack, dataset):
    for name, size in [("cmyk.jpg", (256, 171)), ("gray16.png", (256, 171)), ("palette.png", (200, 200))]:
        _, body, _ = fetch(
            stack, dataset_arn=dataset.dataset_arn, source_ref=dataset.refs[name], max_side=256
        )
        im = decoded(body)
        assert im.mode == "RGB", name
        assert abs(im.width - size[0]) <= 1 and im.height == size[1], (name, im.size)
    # 16 bits are scaled to 8, not clipped: dark on the left, bright on the right.
    _, body, _ = fetch(stack, image_key=key_of(IMAGES["gray16.png"]), max_side=128)
    pixels = np.asarray(decoded(body).convert("L"), dtype=np.int64)
    assert pixels[:, :10].mean() < 30 and pixels[:, -10:].mean() > 225
    assert 100 < pixels.mean() < 155


def test_transparent_pixels_are_composited_on_a_neutral_background(stack, dataset):
    for name in ("alpha.png", "palette.png"):
        _, body, _ = fetch(stack, image_key=key_of(IMAGES[name]), max_side=128)
        im = decoded(body)
        transparent = np.asarray(im, dtype=np.int64)[:, -20:]
        assert np.abs(transparent - thumbnails.BACKGROUND[0]).max() <= 8, name
    _, body, _ = fetch(stack, image_key=key_of(IMAGES["alpha.png"]), max_side=128)
    assert np.asarray(decoded(body), dtype=np.int64)[:, :20].min() >= 240  # the opaque white half


def test_second_request_is_served_from_the_cached_thumbnail(stack, dataset):
    digest = hashlib.sha256(IMAGES["cmyk.jpg"]).hexdigest()
    cached_key = f"thumbnails/512/{digest[:2]}/{digest}.jpg"
    stack.store.delete(stack.images_bucket, cached_key)
    _, first, _ = fetch(stack, image_key=key_of(IMAGES["cmyk.jpg"]), max_side=512)
    assert stack.store.get_bytes(stack.images_bucket, cached_key) == first
    # Replace the cached object: the next answer is that object, so it was not made again.
    marker = encode(Image.new("RGB", (64, 32), (1, 2, 3)), "JPEG")
    stack.store.put_bytes(stack.images_bucket, cached_key, marker, content_type="image/jpeg")
    header, second, _ = fetch(
        stack, dataset_arn=dataset.dataset_arn, source_ref=dataset.refs["cmyk.jpg"], max_side=512
    )
    assert second == marker and (header.width, header.height) == (64, 32)
    assert header.etag == f"{digest}-512"
    stack.store.delete(stack.images_bucket, cached_key)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims `width`×`height` (a decompression bomb's shape), with a token IDAT."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_a_stored_object_that_is_a_decompression_bomb_is_not_decoded(stack):
    data = png_header_only(60000, 60000)
    key = key_of(data)
    stack.store.put_bytes(stack.images_bucket, key, data)  # as if written behind the service's back
    error = expect_error(
        lambda: fetch(stack, image_key=key, max_side=256), INVALID, "InvalidImageFormatException"
    )
    assert "60000" in error.details()
    assert not stack.store.exists(stack.images_bucket, thumbnails.thumbnail_key(key.rsplit("/", 1)[1], 256))


# -- refusals -----------------------------------------------------------------------------------------


def test_unknown_dataset_is_not_found(stack, dataset):
    unknown = dataset.dataset_arn.rsplit("/", 1)[0] + "/1234567890123"
    expect_error(
        lambda: fetch(stack, dataset_arn=unknown, source_ref=dataset.refs["photo.jpg"]),
        NOT_FOUND,
        "ResourceNotFoundException",
    )
    expect_error(
        lambda: fetch(stack, dataset_arn="not-an-arn", source_ref="s3://b/k.jpg"),
        INVALID,
        "InvalidParameterException",
    )


def test_a_dataset_whose_creation_failed_is_not_ready(stack):
    project = new_project(stack, "failed")
    arn = create_from_lines(stack, project, ["{not json", "[]"])
    assert wait(stack, arn).status == ds.DATASET_STATUS_CREATE_FAILED
    expect_error(
        lambda: fetch(stack, dataset_arn=arn, source_ref="s3://b/k.jpg"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "ResourceNotReadyException",
    )


def test_unknown_source_ref_is_not_found(stack, dataset):
    expect_error(
        lambda: fetch(stack, dataset_arn=dataset.dataset_arn, source_ref="s3://nowhere/missing.jpg"),
        NOT_FOUND,
        "ResourceNotFoundException",
    )


def test_an_entry_whose_image_failed_validation_is_not_found_with_its_error(stack, dataset):
    error = expect_error(
        lambda: fetch(stack, dataset_arn=dataset.dataset_arn, source_ref=dataset.refs["broken.jpg"]),
        NOT_FOUND,
        "ResourceNotFoundException",
    )
    assert "ERROR_INVALID_IMAGE" in error.details()


@pytest.mark.parametrize(
    "key",
    [
        "../" + key_of(b"x"),
        key_of(b"x") + "/..",
        key_of(b"x") + ".jpg",
        "sha256/00/" + hashlib.sha256(b"x").hexdigest(),  # the prefix does not match the digest
        key_of(b"x").upper().replace("SHA256", "sha256"),
        "sha256/" + hashlib.sha256(b"x").hexdigest(),
        f"thumbnails/256/{hashlib.sha256(b'x').hexdigest()[:2]}/{hashlib.sha256(b'x').hexdigest()}.jpg",
        "uploads/0123/photo.jpg",
        "/" + key_of(b"x"),
    ],
)
def test_a_key_that_is_not_a_stored_copys_is_refused(stack, key):
    expect_error(lambda: fetch(stack, image_key=key), INVALID, "InvalidParameterException")


def test_a_well_formed_key_that_does_not_exist_is_not_found(stack):
    for side in (0, 128):
        expect_error(
            lambda side=side: fetch(stack, image_key=key_of(uuid.uuid4().bytes), max_side=side),
            NOT_FOUND,
            "ResourceNotFoundException",
        )


def test_both_or_neither_selector_is_refused(stack, dataset):
    ref, key = dataset.refs["photo.jpg"], key_of(IMAGES["photo.jpg"])
    for fields in [
        {},
        {"max_side": 256},
        {"source_ref": ref},
        {"dataset_arn": dataset.dataset_arn},
        {"dataset_arn": dataset.dataset_arn, "source_ref": ref, "image_key": key},
        {"source_ref": ref, "image_key": key},
    ]:
        expect_error(lambda fields=fields: fetch(stack, **fields), INVALID, "InvalidParameterException")


@pytest.mark.parametrize("side", [-1, 1, 100, 127, 2048])
def test_a_side_outside_the_fixed_set_is_refused(stack, dataset, side):
    expect_error(
        lambda: fetch(
            stack, dataset_arn=dataset.dataset_arn, source_ref=dataset.refs["photo.jpg"], max_side=side
        ),
        INVALID,
        "InvalidParameterException",
    )
