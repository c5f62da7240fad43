"""Every import path from the `customlabels` CLI against the real project + dataset services."""

from __future__ import annotations

import json
import uuid

from customlabels.dataset.v1 import dataset_service_pb2 as ds

from services.cli.__main__ import main
from tests.dataset.util import cls_line, jpeg, labels, new_project, put, wait


def cli(stack, capsys, *args: str) -> dict:
    code = main(["--project-addr", stack.project_addr, "--dataset-addr", stack.dataset_addr, *args])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out) if out.out.strip() else {}


def test_create_dataset_import_s3_folder_import_coco_and_upload_images_from_the_cli(stack, capsys, tmp_path):
    project = new_project(stack)
    bucket = f"cli-{uuid.uuid4().hex[:8]}"
    refs = [
        put(stack.store, bucket, f"shapes/{label}/{i}.jpg", jpeg(seed=6000 + i + 10 * n))
        for n, label in enumerate(("round", "flat"))
        for i in range(3)
    ]
    put(
        stack.store, bucket, "train.manifest", "\n".join(cls_line(r, r.split("/")[-2]) for r in refs).encode()
    )

    manifest = cli(
        stack,
        capsys,
        "create-dataset",
        "--project-arn",
        project,
        "--dataset-type",
        "TRAIN",
        "--dataset-source",
        json.dumps({"GroundTruthManifest": {"S3Object": {"Bucket": bucket, "Name": "train.manifest"}}}),
    )
    assert wait(stack, manifest["DatasetArn"]).status == ds.DATASET_STATUS_CREATE_COMPLETE

    folder = cli(
        stack,
        capsys,
        "import-s3-folder",
        "--target",
        json.dumps({"NewDataset": {"ProjectArn": project, "DatasetType": "TEST"}}),
        "--s3-bucket",
        bucket,
        "--s3-key-prefix",
        "shapes/",
        "--label-by-folder",
    )
    assert wait(stack, folder["DatasetArn"]).status == ds.DATASET_STATUS_CREATE_COMPLETE
    assert labels(stack, folder["DatasetArn"]) == {"flat": (3, 0), "round": (3, 0)}

    coco = {
        "images": [{"id": 1, "file_name": "round/0.jpg", "width": 160, "height": 120}],
        "categories": [{"id": 1, "name": "ball"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 60, 60]}],
    }
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    other = new_project(stack)
    imported = cli(
        stack,
        capsys,
        "import-coco",
        "--target",
        json.dumps({"NewDataset": {"ProjectArn": other, "DatasetType": "TRAIN"}}),
        "--coco-json",
        f"fileb://{tmp_path / 'coco.json'}",
        "--images-s3-bucket",
        bucket,
        "--images-s3-key-prefix",
        "shapes/",
    )
    assert wait(stack, imported["DatasetArn"]).status == ds.DATASET_STATUS_CREATE_COMPLETE
    assert labels(stack, imported["DatasetArn"]) == {"ball": (1, 1)}

    (tmp_path / "up" / "cat").mkdir(parents=True)
    (tmp_path / "up" / "cat" / "a.jpg").write_bytes(jpeg(seed=6100))
    uploaded = cli(
        stack,
        capsys,
        "upload-images",
        str(tmp_path / "up"),
        "--project-arn",
        other,
        "--dataset-type",
        "TEST",
        "--quiet",
    )
    assert wait(stack, uploaded["DatasetArn"]).status == ds.DATASET_STATUS_CREATE_COMPLETE
    assert labels(stack, uploaded["DatasetArn"]) == {"cat": (1, 0)}
