"""Sample images made by the project: shapes ("logos") drawn onto the real photos scikit-image ships.

Used by `make demo`, the benchmarks and tests, so none of them needs ../shared. Deterministic for a
seed. Classification images carry one large shape; detection images carry 1–3 shapes with their
boxes (pixels of the written file).
"""

from __future__ import annotations

import io
import json
import math
import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "star")
_PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "colorwheel",
    "camera",
    "coins",
    "moon",
    "grass",
    "gravel",
    "brick",
    "horse",
    "clock",
)


@cache
def _photos() -> list[Image.Image]:
    import skimage.data

    out = []
    for name in _PHOTOS:
        pixels = np.asarray(getattr(skimage.data, name)())
        if pixels.dtype != np.uint8:
            pixels = (pixels * 255).astype(np.uint8) if pixels.max() <= 1 else pixels.astype(np.uint8)
        out.append(Image.fromarray(pixels).convert("RGB"))
    return out


def _background(rng: random.Random, width: int, height: int) -> Image.Image:
    photo = rng.choice(_photos())
    scale = rng.uniform(0.5, 1.0)
    cw, ch = int(photo.width * scale), int(photo.height * scale)
    x, y = rng.randint(0, photo.width - cw), rng.randint(0, photo.height - ch)
    return photo.crop((x, y, x + cw, y + ch)).resize((width, height), Image.BILINEAR)


def _draw(
    draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], color: tuple[int, int, int]
) -> None:
    left, top, right, bottom = box
    outline = tuple(255 - c for c in color)
    if shape == "circle":
        draw.ellipse(box, fill=color, outline=outline, width=3)
    elif shape == "square":
        draw.rectangle(box, fill=color, outline=outline, width=3)
    elif shape == "triangle":
        draw.polygon(
            [((left + right) // 2, top), (right, bottom), (left, bottom)], fill=color, outline=outline
        )
    else:
        cx, cy, r = (left + right) / 2, (top + bottom) / 2, (right - left) / 2
        points = [
            (
                cx + (r if i % 2 == 0 else r * 0.45) * math.sin(i * math.pi / 5),
                cy - (r if i % 2 == 0 else r * 0.45) * math.cos(i * math.pi / 5),
            )
            for i in range(10)
        ]
        draw.polygon(points, fill=color, outline=outline)


def _color(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randint(40, 255), rng.randint(40, 255), rng.randint(40, 255))


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


@dataclass(frozen=True)
class Sample:
    """One generated image: file name, JPEG bytes, labels, and boxes (label, left, top, width, height)."""

    file_name: str
    data: bytes
    labels: tuple[str, ...]
    boxes: tuple[tuple[str, int, int, int, int], ...] = ()
    size: tuple[int, int] = (0, 0)


def classification(per_label: int, seed: int = 0, shapes: tuple[str, ...] = SHAPES[:3]) -> list[Sample]:
    """`per_label` images per shape, each with one large shape on a photo."""
    rng = random.Random(seed)
    out = []
    for shape in shapes:
        for i in range(per_label):
            w, h = rng.choice([(320, 240), (288, 288), (256, 320)])
            image = _background(rng, w, h)
            side = int(min(w, h) * rng.uniform(0.4, 0.7))
            x, y = rng.randint(0, w - side), rng.randint(0, h - side)
            _draw(ImageDraw.Draw(image), shape, (x, y, x + side, y + side), _color(rng))
            out.append(Sample(f"{shape}_{i:03d}.jpg", _jpeg(image), (shape,), size=(w, h)))
    return out


def detection(count: int, seed: int = 0, shapes: tuple[str, ...] = SHAPES) -> list[Sample]:
    """`count` images with 1–3 non-overlapping shapes each, and their boxes."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        w, h = 320, 240
        image = _background(rng, w, h)
        draw = ImageDraw.Draw(image)
        boxes: list[tuple[str, int, int, int, int]] = []
        for _ in range(rng.randint(1, 3)):
            side = rng.randint(36, 110)
            for _attempt in range(20):
                x, y = rng.randint(0, w - side), rng.randint(0, h - side)
                if all(
                    x + side <= bx or bx + bw <= x or y + side <= by or by + bh <= y
                    for _, bx, by, bw, bh in boxes
                ):
                    shape = rng.choice(shapes)
                    _draw(draw, shape, (x, y, x + side, y + side), _color(rng))
                    boxes.append((shape, x, y, side, side))
                    break
        labels = tuple(sorted({b[0] for b in boxes}))
        out.append(Sample(f"scene_{i:04d}.jpg", _jpeg(image), labels, tuple(boxes), (w, h)))
    return out


def write_folder(samples: list[Sample], root: Path) -> None:
    """Writes classification samples as root/<label>/<file> (the layout upload-images labels by)."""
    for s in samples:
        folder = root / s.labels[0]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / s.file_name).write_bytes(s.data)


def manifest_line(source_ref: str, sample: Sample) -> str:
    """The Ground Truth line of a sample: boxes when it has them, else image-level labels."""
    if sample.boxes:
        names = sorted({b[0] for b in sample.boxes})
        ids = {n: i for i, n in enumerate(names)}
        return json.dumps(
            {
                "source-ref": source_ref,
                "bounding-box": {
                    "image_size": [{"width": sample.size[0], "height": sample.size[1], "depth": 3}],
                    "annotations": [
                        {"class_id": ids[n], "left": x, "top": y, "width": bw, "height": bh}
                        for n, x, y, bw, bh in sample.boxes
                    ],
                },
                "bounding-box-metadata": {
                    "objects": [{"confidence": 1} for _ in sample.boxes],
                    "class-map": {str(i): n for n, i in ids.items()},
                    "type": "groundtruth/object-detection",
                    "human-annotated": "yes",
                    "creation-date": "2026-01-01T00:00:00",
                    "job-name": "samples",
                },
            }
        )
    line: dict[str, object] = {"source-ref": source_ref}
    for i, label in enumerate(sample.labels):
        line[f"label{i}"] = i
        line[f"label{i}-metadata"] = {
            "class-name": label,
            "confidence": 1,
            "type": "groundtruth/image-classification",
            "human-annotated": "yes",
            "creation-date": "2026-01-01T00:00:00.000",
            "job-name": "samples",
        }
    return json.dumps(line)
