"""Where the team's real labeled photos live (../shared/datasets, read-only) and how tests load them."""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from scripts import shared_data

ROOT = Path(__file__).resolve().parents[1]


def shared_datasets() -> Path:
    """../shared/datasets beside the repository (CI lays it there), else the workplace copy."""
    found = shared_data.datasets_dir()
    if not found.is_dir():
        raise FileNotFoundError(f"{found} is missing: the real-photo tests need it")
    return found


def upload_folder(store: Any, bucket: str, folder: Path, prefix: str) -> int:
    """Copies every file of `folder` to s3://bucket/prefix<name> (8 threads); returns the count."""
    store.ensure_bucket(bucket)
    files = sorted(p for p in folder.iterdir() if p.is_file())
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: store.put_bytes(bucket, prefix + p.name, p.read_bytes()), files))
    return len(files)


def expected_labels(manifest: Path) -> dict[str, tuple[int, int]]:
    """Label -> (images using it, images with a box of it), counted straight from the JSON lines."""
    entries: Counter[str] = Counter()
    boxed: Counter[str] = Counter()
    for text in manifest.read_text().splitlines():
        line = json.loads(text)
        used, with_box = set(), set()
        for key, meta in line.items():
            if not key.endswith("-metadata"):
                continue
            if "class-name" in meta:
                used.add(meta["class-name"])
            for box in (
                line[key.removesuffix("-metadata")].get("annotations", []) if "class-map" in meta else []
            ):
                name = meta["class-map"][str(box["class_id"])]
                used.add(name)
                with_box.add(name)
        entries.update(used)
        boxed.update(with_box)
    return {name: (entries[name], boxed[name]) for name in entries}


def expected_line_errors(manifest: Path, images: Path) -> int:
    """Lines the spec makes unusable: an image side outside 64–4096 px, or more than 50 boxes."""
    from PIL import Image

    count = 0
    for text in manifest.read_text().splitlines():
        line = json.loads(text)
        with Image.open(images / line["source-ref"].rsplit("/", 1)[1]) as im:
            bad_size = not (min(im.size) >= 64 and max(im.size) <= 4096)
        boxes = max((len(v.get("annotations", [])) for v in line.values() if isinstance(v, dict)), default=0)
        count += bad_size or boxes > 50
    return count


def unlabeled_lines(manifest: Path) -> int:
    """Lines with no label at all (only empty box lists)."""
    return sum(1 for labels in map(_line_labels, manifest.read_text().splitlines()) if not labels)


def _line_labels(text: str) -> set[str]:
    line = json.loads(text)
    out = set()
    for key, meta in line.items():
        if key.endswith("-metadata"):
            out |= {meta["class-name"]} if "class-name" in meta else set()
            body = line[key.removesuffix("-metadata")]
            out |= (
                {meta["class-map"][str(b["class_id"])] for b in body.get("annotations", [])}
                if "class-map" in meta
                else set()
            )
    return out
