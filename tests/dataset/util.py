"""Helpers for dataset tests: generated images, manifests in S3, waiting for a dataset to settle."""

from __future__ import annotations

import io
import json
import time
import uuid
from typing import Any

import numpy as np
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.project.v1 import project_service_pb2 as pj
from PIL import Image

SETTLED = {
    ds.DATASET_STATUS_CREATE_COMPLETE,
    ds.DATASET_STATUS_CREATE_FAILED,
    ds.DATASET_STATUS_UPDATE_COMPLETE,
    ds.DATASET_STATUS_UPDATE_FAILED,
}


def jpeg(width: int = 160, height: int = 120, seed: int = 0, quality: int = 85) -> bytes:
    """A small JPEG with random (so distinct per seed) content."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=quality)
    return out.getvalue()


def png(width: int = 96, height: int = 96, seed: int = 0) -> bytes:
    """A small PNG."""
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


def cls_line(source_ref: str, label: str, attribute: str = "label") -> str:
    """An image-level classification line (spec/manifest.md §2)."""
    return json.dumps(
        {
            "source-ref": source_ref,
            attribute: 0,
            f"{attribute}-metadata": {
                "class-name": label,
                "confidence": 1,
                "type": "groundtruth/image-classification",
                "human-annotated": "yes",
                "creation-date": "2024-01-01T00:00:00.000",
            },
        }
    )


def box_line(
    source_ref: str, boxes: list[tuple[str, int, int, int, int]], size: tuple[int, int] = (160, 120)
) -> str:
    """An object-localization line with boxes (label, left, top, width, height) (spec/manifest.md §3)."""
    names = sorted({b[0] for b in boxes})
    ids = {n: i for i, n in enumerate(names)}
    return json.dumps(
        {
            "source-ref": source_ref,
            "bb": {
                "image_size": [{"width": size[0], "height": size[1], "depth": 3}],
                "annotations": [
                    {"class_id": ids[n], "left": x, "top": y, "width": w, "height": h}
                    for n, x, y, w, h in boxes
                ],
            },
            "bb-metadata": {
                "objects": [{"confidence": 1} for _ in boxes],
                "class-map": {str(i): n for n, i in ids.items()},
                "type": "groundtruth/object-detection",
                "human-annotated": "yes",
                "creation-date": "2024-01-01T00:00:00",
            },
        }
    )


def put(store: Any, bucket: str, key: str, data: bytes) -> str:
    """Writes an object (making the bucket if needed) and returns its s3:// URI."""
    store.ensure_bucket(bucket)
    store.put_bytes(bucket, key, data)
    return f"s3://{bucket}/{key}"


def new_project(stack: Any, prefix: str = "p") -> str:
    """Creates a project with a unique name; returns its ARN."""
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    return stack.project.CreateProject(pj.CreateProjectRequest(project_name=name)).project_arn


def wait(stack: Any, dataset_arn: str, timeout: float = 60.0) -> ds.DatasetDescription:
    """Polls DescribeDataset until the dataset leaves its *_IN_PROGRESS status."""
    deadline = time.monotonic() + timeout
    while True:
        desc = stack.dataset.DescribeDataset(
            ds.DescribeDatasetRequest(dataset_arn=dataset_arn)
        ).dataset_description
        if desc.status in SETTLED:
            return desc
        if time.monotonic() > deadline:
            raise AssertionError(f"dataset still {ds.DatasetStatus.Name(desc.status)} after {timeout}s")
        time.sleep(0.1)


def create_from_lines(
    stack: Any,
    project_arn: str,
    lines: list[str],
    dataset_type: int = ds.DATASET_TYPE_TRAIN,
    bucket: str = "manifests",
) -> str:
    """Uploads `lines` as a manifest and creates a dataset from it; returns the dataset ARN (not waited)."""
    key = f"{uuid.uuid4().hex}.manifest"
    put(stack.store, bucket, key, ("\n".join(lines) + "\n").encode())
    request = ds.CreateDatasetRequest(
        project_arn=project_arn,
        dataset_type=dataset_type,
        dataset_source=ds.DatasetSource(
            ground_truth_manifest={"s3_object": {"bucket": bucket, "name": key}}  # type: ignore[arg-type]
        ),
    )
    return stack.dataset.CreateDataset(request).dataset_arn


def entries(stack: Any, dataset_arn: str, **filters: Any) -> list[dict[str, Any]]:
    """Every entry (parsed) of a dataset matching `filters`, across all pages."""
    out, token = [], ""
    while True:
        page = stack.dataset.ListDatasetEntries(
            ds.ListDatasetEntriesRequest(dataset_arn=dataset_arn, next_token=token, **filters)
        )
        out += [json.loads(e) for e in page.dataset_entries]
        token = page.next_token
        if not token:
            return out


def labels(stack: Any, dataset_arn: str) -> dict[str, tuple[int, int]]:
    """Every label of a dataset with (EntryCount, BoundingBoxCount)."""
    out, token = {}, ""
    while True:
        page = stack.dataset.ListDatasetLabels(
            ds.ListDatasetLabelsRequest(dataset_arn=dataset_arn, next_token=token)
        )
        for d in page.dataset_label_descriptions:
            out[d.label_name] = (d.label_stats.entry_count, d.label_stats.bounding_box_count)
        token = page.next_token
        if not token:
            return out
