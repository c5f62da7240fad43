"""The extra ways in, end to end over gRPC: S3 folder import, COCO import and streamed uploads."""

from __future__ import annotations

import json
import uuid

import grpc
from customlabels.common.v1 import types_pb2 as common
from customlabels.dataset.v1 import dataset_service_pb2 as ds

from tests.dataset.util import entries, jpeg, labels, new_project, png, put, wait
from tests.helpers import expect_error


def test_import_s3_folder_labels_images_by_their_folder(stack):
    project = new_project(stack)
    bucket = f"fold-{uuid.uuid4().hex[:8]}"
    for i in range(3):
        put(stack.store, bucket, f"devices/speaker/{i}.jpg", jpeg(seed=3000 + i))
        put(stack.store, bucket, f"devices/hub/white/{i}.png", png(seed=3100 + i))
    put(stack.store, bucket, "devices/loose.jpg", jpeg(seed=3200))
    put(stack.store, bucket, "elsewhere/x.jpg", jpeg(seed=3300))
    put(stack.store, bucket, "devices/speaker/notes.txt", b"not an image")
    arn = stack.dataset.ImportS3Folder(
        ds.ImportS3FolderRequest(
            target=ds.ImportTarget(
                new_dataset=ds.NewDataset(project_arn=project, dataset_type=ds.DATASET_TYPE_TRAIN)
            ),
            s3_bucket=bucket,
            s3_key_prefix="devices/",
            label_by_folder=True,
        )
    ).dataset_arn
    desc = wait(stack, arn)
    assert desc.status == ds.DATASET_STATUS_CREATE_COMPLETE, desc.status_message
    assert labels(stack, arn) == {"hub": (3, 0), "speaker": (3, 0)}
    got = {e["source-ref"]: e for e in entries(stack, arn)}
    assert (
        f"s3://{bucket}/devices/loose.jpg" in got
        and not got[f"s3://{bucket}/devices/loose.jpg"]["cl-metadata"]["is_labeled"]
    )
    assert not any("elsewhere" in r or r.endswith(".txt") for r in got)


def test_import_s3_folder_into_an_existing_dataset_updates_it(stack):
    project = new_project(stack)
    bucket = f"fold-{uuid.uuid4().hex[:8]}"
    for i in range(2):
        put(stack.store, bucket, f"p/a/{i}.jpg", jpeg(seed=3400 + i))
    train = stack.dataset.CreateDataset(
        ds.CreateDatasetRequest(project_arn=project, dataset_type=ds.DATASET_TYPE_TRAIN)
    ).dataset_arn
    same = stack.dataset.ImportS3Folder(
        ds.ImportS3FolderRequest(
            target=ds.ImportTarget(dataset_arn=train),
            s3_bucket=bucket,
            s3_key_prefix="p",
            label_by_folder=True,
        )
    ).dataset_arn
    assert same == train
    assert wait(stack, train).status == ds.DATASET_STATUS_UPDATE_COMPLETE
    assert labels(stack, train) == {"a": (2, 0)}


def test_import_s3_folder_of_a_missing_bucket_is_refused(stack):
    project = new_project(stack)
    expect_error(
        lambda: stack.dataset.ImportS3Folder(
            ds.ImportS3FolderRequest(
                target=ds.ImportTarget(
                    new_dataset=ds.NewDataset(project_arn=project, dataset_type=ds.DATASET_TYPE_TRAIN)
                ),
                s3_bucket="no-such-bucket-at-all",
                s3_key_prefix="",
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "InvalidS3ObjectException",
    )


def _coco(bucket_prefix_files: list[str]) -> dict:
    return {
        "images": [
            {"id": i + 1, "file_name": f, "width": 160, "height": 120, "date_captured": "2024-02-03 04:05:06"}
            for i, f in enumerate(bucket_prefix_files)
        ],
        "categories": [{"id": 7, "name": "cup"}, {"id": 9, "name": "plate"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [10, 10, 50, 40]},
            {"id": 2, "image_id": 1, "category_id": 9, "bbox": [70, 20, 60, 60]},
            {"id": 3, "image_id": 2, "category_id": 7, "bbox": [5, 5, 30, 30]},
        ],
    }


def test_import_coco_for_detection_and_for_image_labels(stack):
    bucket = f"coco-{uuid.uuid4().hex[:8]}"
    files = [f"{i}.jpg" for i in range(3)]
    for i, f in enumerate(files):
        put(stack.store, bucket, f"kitchen/{f}", jpeg(seed=3500 + i))
    coco = json.dumps(_coco(files)).encode()
    project = new_project(stack)
    det = stack.dataset.ImportCoco(
        ds.ImportCocoRequest(
            target=ds.ImportTarget(
                new_dataset=ds.NewDataset(project_arn=project, dataset_type=ds.DATASET_TYPE_TRAIN)
            ),
            coco_json=coco,
            images_s3_bucket=bucket,
            images_s3_key_prefix="kitchen/",
        )
    ).dataset_arn
    desc = wait(stack, det)
    assert desc.status == ds.DATASET_STATUS_CREATE_COMPLETE, desc.status_message
    assert desc.model_type == common.MODEL_TYPE_OBJECT_LOCALIZATION
    assert labels(stack, det) == {"cup": (2, 2), "plate": (1, 1)}
    put(stack.store, bucket, "coco.json", coco)
    cls = stack.dataset.ImportCoco(
        ds.ImportCocoRequest(
            target=ds.ImportTarget(
                new_dataset=ds.NewDataset(project_arn=project, dataset_type=ds.DATASET_TYPE_TEST)
            ),
            coco_s3_object=common.S3Object(bucket=bucket, name="coco.json"),
            images_s3_bucket=bucket,
            images_s3_key_prefix="kitchen/",
            mode=ds.COCO_IMPORT_MODE_IMAGE_LEVEL_LABELS,
        )
    ).dataset_arn
    desc = wait(stack, cls)
    assert desc.status == ds.DATASET_STATUS_CREATE_COMPLETE, desc.status_message
    assert desc.model_type == common.MODEL_TYPE_MULTI_LABEL_CLASSIFICATION
    assert labels(stack, cls) == {"cup": (2, 0), "plate": (1, 0)}


def test_import_coco_that_is_not_coco_is_refused(stack):
    project = new_project(stack)
    expect_error(
        lambda: stack.dataset.ImportCoco(
            ds.ImportCocoRequest(
                target=ds.ImportTarget(
                    new_dataset=ds.NewDataset(project_arn=project, dataset_type=ds.DATASET_TYPE_TRAIN)
                ),
                coco_json=b"[1, 2, 3]",
                images_s3_bucket="bucket",
                images_s3_key_prefix="",
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "InvalidParameterException",
    )


def _upload(
    stack, target: ds.ImportTarget, files: list[tuple[str, list[str], bytes]]
) -> ds.UploadImagesResponse:
    def requests():
        yield ds.UploadImagesRequest(header=ds.UploadImagesHeader(target=target))
        for name, lbls, data in files:
            yield ds.UploadImagesRequest(image=ds.UploadImageHeader(file_name=name, labels=lbls))
            for i in range(0, len(data), 4096):
                yield ds.UploadImagesRequest(chunk=data[i : i + 4096])

    return stack.dataset.UploadImages(requests())


def test_upload_images_streams_files_into_a_dataset(stack):
    project = new_project(stack)
    files = [(f"cat{i}.jpg", ["cat"], jpeg(seed=3600 + i)) for i in range(3)]
    files += [
        ("dog.png", ["dog"], png(seed=3700)),
        ("free.jpg", [], jpeg(seed=3701)),
        ("fake.jpg", ["cat"], b"GIF89a..."),
        ("../../evil.jpg", ["cat"], jpeg(seed=3702)),
    ]
    response = _upload(
        stack,
        ds.ImportTarget(new_dataset=ds.NewDataset(project_arn=project, dataset_type=ds.DATASET_TYPE_TRAIN)),
        files,
    )
    outcome = {i.file_name: i for i in response.images}
    assert (
        outcome["fake.jpg"].error_code == "InvalidImageFormatException" and not outcome["fake.jpg"].source_ref
    )
    assert outcome["cat0.jpg"].source_ref.startswith(f"s3://{stack.images_bucket}/uploads/")
    assert ".." not in outcome["../../evil.jpg"].source_ref
    desc = wait(stack, response.dataset_arn)
    assert desc.status == ds.DATASET_STATUS_CREATE_COMPLETE, desc.status_message
    assert labels(stack, response.dataset_arn) == {"cat": (4, 0), "dog": (1, 0)}
    assert desc.dataset_stats.total_entries == 6 and desc.dataset_stats.labeled_entries == 5


def test_uploaded_files_of_different_folders_may_share_a_name(stack):
    project = new_project(stack)
    files = [("cats/1.jpg", ["cat"], jpeg(seed=3800)), ("dogs/1.jpg", ["dog"], jpeg(seed=3801))]
    files += [("dogs/1.jpg", ["dog"], jpeg(seed=3802))]
    response = _upload(
        stack,
        ds.ImportTarget(new_dataset=ds.NewDataset(project_arn=project, dataset_type=ds.DATASET_TYPE_TRAIN)),
        files,
    )
    first, second, again = response.images
    assert first.source_ref.endswith("/cats/1.jpg") and second.source_ref.endswith("/dogs/1.jpg")
    assert again.error_code == "InvalidParameterException" and "twice" in again.error_message
    assert wait(stack, response.dataset_arn).status == ds.DATASET_STATUS_CREATE_COMPLETE
    assert labels(stack, response.dataset_arn) == {"cat": (1, 0), "dog": (1, 0)}


def test_upload_images_without_a_header_is_refused(stack):
    expect_error(
        lambda: stack.dataset.UploadImages(iter([ds.UploadImagesRequest(chunk=b"x")])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "InvalidParameterException",
    )
