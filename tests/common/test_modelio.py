"""The model contract shared by evaluation and serving (services/common/modelio.py)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import skimage.data
from PIL import Image

from services.common import modelio


def _jpeg(array: np.ndarray, orientation: int = 1, quality: int = 92) -> bytes:
    image = Image.fromarray(array)
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, exif=exif.tobytes())
    return out.getvalue()


def test_exif_orientation_is_applied_and_the_size_is_the_displayed_one():
    # A 300×200 photo stored sideways: orientation 6 says "rotate 90° clockwise to display".
    photo = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((300, 200)))
    stored = np.ascontiguousarray(np.rot90(photo, k=1))  # 200 wide, 300 high as stored
    img, size = modelio.decode(_jpeg(stored, orientation=6))
    assert size == (300, 200) and img.size == (300, 200)
    # The displayed pixels are the original photo again (JPEG noise aside).
    assert np.abs(np.asarray(img, np.int16) - photo.astype(np.int16)).mean() < 6


def test_big_jpegs_decode_at_a_reduced_scale_that_keeps_the_input_size():
    photo = np.asarray(Image.fromarray(skimage.data.chelsea()).resize((1600, 1200)))
    data = _jpeg(photo)
    img, size = modelio.decode(data, 224)
    assert size == (1600, 1200)
    assert min(img.size) >= 224 and img.size[0] < 1600  # DCT-scaled, never below the input size
    pixels, dims = modelio.prepare(data, 224)
    assert pixels.shape == (224, 224, 3) and pixels.dtype == np.uint8 and dims == (1600, 1200)


def test_png_and_palette_images_become_rgb():
    out = io.BytesIO()
    Image.fromarray(skimage.data.coffee()).convert("P").save(out, "PNG")
    pixels, dims = modelio.prepare(out.getvalue(), 96)
    assert pixels.shape == (96, 96, 3) and dims == (600, 400)


def test_not_an_image_raises():
    with pytest.raises(Exception):  # noqa: B017 - Pillow's own error types; serving maps them
        modelio.decode(b"not an image at all")


def _spec(**kw) -> modelio.ModelSpec:
    base = dict(
        model_type=modelio.IMAGE_CLASSIFICATION,
        labels=["cat", "dog", "fox"],
        input_size=224,
        thresholds={"cat": 0.7, "dog": 0.2, "fox": 0.5},
    )
    return modelio.ModelSpec(**{**base, **kw})


def test_spec_round_trips_through_json_and_refuses_foreign_documents():
    spec = _spec(model_type=modelio.OBJECT_LOCALIZATION, outputs=("boxes", "scores"), nms_iou=0.4)
    again = modelio.ModelSpec.from_json(json.dumps(spec.to_json()).encode())
    assert again == spec
    for bad in ({}, {"model_type": "X", "labels": ["a"], "input": {"shape": [-1, 9, 9, 3]}}, [], "null"):
        with pytest.raises(ValueError):
            modelio.ModelSpec.from_json(bad if isinstance(bad, str) else json.dumps(bad))


def test_select_uses_assumed_thresholds_without_min_confidence():
    spec = _spec()
    results = modelio.classifications(spec, np.array([0.6, 0.3, 0.1], np.float32))
    assert [r[0] for r in results] == ["cat", "dog", "fox"]
    # cat 0.6 < its 0.7 threshold; dog 0.3 ≥ 0.2; fox 0.1 < 0.5.
    assert [r[0] for r in modelio.select(spec, results, None, None)] == ["dog"]
    # A MinConfidence replaces every threshold; equal is returned; MaxResults keeps the best.
    assert [r[0] for r in modelio.select(spec, results, 30.0, None)] == ["cat", "dog"]
    assert [r[0] for r in modelio.select(spec, results, 0.0, 1)] == ["cat"]
    assert modelio.select(spec, results, 0.0, 0) == []


def test_detections_are_classwise_nms_in_ratios():
    boxes = np.array(
        [[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.5, 0.52], [0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]]
    )
    scores = np.zeros((4, 2), np.float32)
    scores[0, 0], scores[1, 0], scores[2, 1], scores[3, 0] = 0.9, 0.8, 0.7, 0.005
    spec = _spec(model_type=modelio.OBJECT_LOCALIZATION, labels=["a", "b"], outputs=("boxes", "scores"))
    found = modelio.detections(spec, boxes[None], scores[None], 640, 480)
    assert [(d[0], round(d[1], 2)) for d in found] == [("a", 0.9), ("b", 0.7)]
    assert tuple(round(v, 3) for v in found[0][2:]) == (0.1, 0.1, 0.4, 0.4)
    # A box under one pixel wide in the original image is dropped.
    tiny = np.array([[[0.5, 0.5, 0.5004, 0.6]]], np.float32)
    assert modelio.detections(spec, tiny, np.array([[[0.9, 0.0]]], np.float32), 1000, 1000) == []
