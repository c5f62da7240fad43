"""Every error of StartProjectVersion, StopProjectVersion and DetectCustomLabels (spec/api.md §4, §5,
limits.md §1), each with its gRPC code and AWS exception name."""

from __future__ import annotations

import io
import time

import grpc
import numpy as np
from customlabels.common.v1 import types_pb2 as common
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.serving.v1 import serving_service_pb2 as sv
from customlabels.training.v1 import training_service_pb2 as tr
from PIL import Image

from scripts import samples
from scripts.inprocess import LocalServices
from tests.dataset.util import create_from_lines, new_project, put, wait
from tests.helpers import expect_error
from tests.serving.conftest import (
    Trained,
    create_version,
    describe,
    ensure_stopped,
    register_project,
    start,
    stop,
    wait_status,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
UNKNOWN_VERSION = "arn:aws:rekognition:local:000000000000:project/nothing/version/v1/1700000000000"


def encoded(width: int, height: int, fmt: str = "JPEG", seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(out, fmt)
    return out.getvalue()


def detect_request(arn: str, data: bytes | None = None, **kwargs: object) -> sv.DetectCustomLabelsRequest:
    image = sv.Image(bytes=data) if data is not None else sv.Image()
    return sv.DetectCustomLabelsRequest(project_version_arn=arn, image=image, **kwargs)  # type: ignore[arg-type]


def test_start_and_stop_refuse_bad_arguments_and_unknown_versions(
    cloud: LocalServices, classifier: Trained
) -> None:
    serving = cloud.serving
    assert serving is not None
    arn = classifier.version_arn

    def start_call(version: str, units: int, max_units: int | None = None):  # noqa: ANN202
        request = sv.StartProjectVersionRequest(project_version_arn=version, min_inference_units=units)
        if max_units is not None:
            request.max_inference_units = max_units
        return lambda: serving.StartProjectVersion(request)

    expect_error(start_call(arn, 0), INVALID, "InvalidParameterException")
    expect_error(start_call(arn, 2, 1), INVALID, "InvalidParameterException")
    expect_error(start_call("not-an-arn-but-long-enough", 1), INVALID, "InvalidParameterException")
    expect_error(start_call(UNKNOWN_VERSION, 1), grpc.StatusCode.NOT_FOUND, "ResourceNotFoundException")
    # More units than the quota (6 in the test settings) allows.
    expect_error(start_call(arn, 7), grpc.StatusCode.RESOURCE_EXHAUSTED, "LimitExceededException")
    # None of the refused starts moved the version.
    assert describe(cloud, arn).status not in (
        tr.PROJECT_VERSION_STATUS_STARTING,
        tr.PROJECT_VERSION_STATUS_RUNNING,
    )

    stop_unknown = sv.StopProjectVersionRequest(project_version_arn=UNKNOWN_VERSION)
    expect_error(
        lambda: serving.StopProjectVersion(stop_unknown),
        grpc.StatusCode.NOT_FOUND,
        "ResourceNotFoundException",
    )
    # A version that is not running cannot be stopped.
    stop_idle = sv.StopProjectVersionRequest(project_version_arn=arn)
    expect_error(lambda: serving.StopProjectVersion(stop_idle), PRECONDITION, "ResourceInUseException")


def test_a_version_that_did_not_train_cannot_be_started(cloud: LocalServices, worker: None) -> None:
    project = new_project(cloud, "untrained")
    bucket = "smp-untrained"
    for dataset_type, seed in ((ds.DATASET_TYPE_TRAIN, 51), (ds.DATASET_TYPE_TEST, 52)):
        items = samples.classification(per_label=2, seed=seed)
        lines = [
            samples.manifest_line(put(cloud.store, bucket, f"{seed}-{s.file_name}", s.data), s) for s in items
        ]
        assert wait(cloud, create_from_lines(cloud, project, lines, dataset_type)).status == (
            ds.DATASET_STATUS_CREATE_COMPLETE
        )
    # Its output bucket does not exist, so training fails at once.
    arn = create_version(cloud, project, "broken", bucket="no-such-bucket-for-serving")
    register_project(arn, project)
    desc = wait_status(
        cloud, arn, {tr.PROJECT_VERSION_STATUS_TRAINING_FAILED, tr.PROJECT_VERSION_STATUS_TRAINING_COMPLETED}
    )
    assert desc.status == tr.PROJECT_VERSION_STATUS_TRAINING_FAILED
    assert cloud.serving is not None
    expect_error(lambda: start(cloud, arn), PRECONDITION, "ResourceInUseException")
    expect_error(
        lambda: cloud.serving.DetectCustomLabels(detect_request(arn, encoded(100, 100))),  # type: ignore[union-attr]
        PRECONDITION,
        "ResourceNotReadyException",
    )


def test_running_versions_refuse_a_second_start_and_deletion(
    cloud: LocalServices, running_classifier: Trained
) -> None:
    arn = running_classifier.version_arn
    expect_error(lambda: start(cloud, arn), PRECONDITION, "ResourceInUseException")
    expect_error(
        lambda: cloud.training.DeleteProjectVersion(tr.DeleteProjectVersionRequest(project_version_arn=arn)),
        PRECONDITION,
        "ResourceInUseException",
    )


def test_starting_and_stopping_versions_refuse_start_stop_and_deletion(
    cloud: LocalServices, classifier: Trained
) -> None:
    arn = classifier.version_arn
    ensure_stopped(cloud, arn)
    assert start(cloud, arn) == tr.PROJECT_VERSION_STATUS_STARTING
    try:
        # Right after the answer the version is STARTING (or already RUNNING): start again is refused.
        expect_error(lambda: start(cloud, arn), PRECONDITION, "ResourceInUseException")
        if describe(cloud, arn).status == tr.PROJECT_VERSION_STATUS_STARTING:
            expect_error(lambda: stop(cloud, arn), PRECONDITION, "ResourceInUseException")
            expect_error(
                lambda: cloud.training.DeleteProjectVersion(
                    tr.DeleteProjectVersionRequest(project_version_arn=arn)
                ),
                PRECONDITION,
                "ResourceInUseException",
            )
        wait_status(cloud, arn, {tr.PROJECT_VERSION_STATUS_RUNNING})
        assert stop(cloud, arn) == tr.PROJECT_VERSION_STATUS_STOPPING
        # A stopping version is neither RUNNING for detection nor stoppable again.
        expect_error(lambda: stop(cloud, arn), PRECONDITION, "ResourceInUseException")
        expect_error(
            lambda: cloud.serving.DetectCustomLabels(detect_request(arn, classifier.images[0].data)),  # type: ignore[union-attr]
            PRECONDITION,
            "ResourceNotReadyException",
        )
        wait_status(cloud, arn, {tr.PROJECT_VERSION_STATUS_STOPPED})
    finally:
        ensure_stopped(cloud, arn)
    # Stopped: not ready for detection, and a stopped version can be started again later.
    expect_error(
        lambda: cloud.serving.DetectCustomLabels(detect_request(arn, classifier.images[0].data)),  # type: ignore[union-attr]
        PRECONDITION,
        "ResourceNotReadyException",
    )


def test_detect_refuses_what_the_spec_refuses(cloud: LocalServices, running_classifier: Trained) -> None:
    serving = cloud.serving
    assert serving is not None
    arn = running_classifier.version_arn
    good = running_classifier.images[0].data

    def refused(request: sv.DetectCustomLabelsRequest, code: grpc.StatusCode, name: str) -> None:
        expect_error(lambda: serving.DetectCustomLabels(request), code, name)

    refused(detect_request(UNKNOWN_VERSION, good), grpc.StatusCode.NOT_FOUND, "ResourceNotFoundException")
    refused(
        detect_request("arn:aws:rekognition:local:000000000000:project/x/1"),
        INVALID,
        "InvalidParameterException",
    )
    refused(detect_request(arn), INVALID, "InvalidParameterException")  # no image
    refused(detect_request(arn, b""), INVALID, "InvalidParameterException")
    refused(detect_request(arn, good, min_confidence=100.5), INVALID, "InvalidParameterException")
    refused(detect_request(arn, good, min_confidence=-1), INVALID, "InvalidParameterException")
    refused(detect_request(arn, good, max_results=-1), INVALID, "InvalidParameterException")
    # Formats: only PNG and JPEG; broken files are format errors too.
    refused(detect_request(arn, encoded(100, 100, "GIF")), INVALID, "InvalidImageFormatException")
    refused(detect_request(arn, encoded(100, 100, "BMP")), INVALID, "InvalidImageFormatException")
    refused(detect_request(arn, b"certainly not an image" * 10), INVALID, "InvalidImageFormatException")
    refused(detect_request(arn, good[: len(good) // 2]), INVALID, "InvalidImageFormatException")
    truncated_png = encoded(120, 120, "PNG")
    refused(
        detect_request(arn, truncated_png[: len(truncated_png) // 2]), INVALID, "InvalidImageFormatException"
    )
    # Sizes: 4 MB of bytes, 64–4096 px per side, aspect ratio 20:1.
    refused(detect_request(arn, good + b"\0" * (4 * 1024 * 1024)), INVALID, "ImageTooLargeException")
    refused(detect_request(arn, encoded(4100, 80, "PNG")), INVALID, "ImageTooLargeException")
    refused(detect_request(arn, encoded(63, 100)), INVALID, "InvalidParameterException")
    refused(detect_request(arn, encoded(1400, 66, "PNG")), INVALID, "InvalidParameterException")
    # Just inside the limits is fine.
    assert serving.DetectCustomLabels(detect_request(arn, encoded(64, 1280), min_confidence=0)).custom_labels

    # S3Object: missing object or bucket, too big an object (15 MB).
    def s3(bucket: str, key: str) -> sv.DetectCustomLabelsRequest:
        return sv.DetectCustomLabelsRequest(
            project_version_arn=arn, image=sv.Image(s3_object=common.S3Object(bucket=bucket, name=key))
        )

    refused(s3("serving-test-output", "missing.jpg"), INVALID, "InvalidS3ObjectException")
    refused(s3("no-such-bucket-anywhere", "x.jpg"), INVALID, "InvalidS3ObjectException")
    refused(s3("serving-test-output", ""), INVALID, "InvalidParameterException")
    cloud.store.put_bytes("serving-test-output", "huge.jpg", good + b"\0" * (15 * 1024 * 1024))
    refused(s3("serving-test-output", "huge.jpg"), INVALID, "ImageTooLargeException")
    cloud.store.put_bytes("serving-test-output", "notes.txt", b"hello, this is text")
    refused(s3("serving-test-output", "notes.txt"), INVALID, "InvalidImageFormatException")
    # An S3 image may be bigger than 4 MB (a big PNG).
    big = encoded(1400, 1100, "PNG", seed=3)
    assert len(big) > 4 * 1024 * 1024
    cloud.store.put_bytes("serving-test-output", "big.png", big)
    assert serving.DetectCustomLabels(s3("serving-test-output", "big.png")).custom_labels is not None


def test_a_stopped_version_can_be_started_again(cloud: LocalServices, classifier: Trained) -> None:
    arn = classifier.version_arn
    ensure_stopped(cloud, arn)
    began = time.monotonic()
    start(cloud, arn, units=2)
    desc = wait_status(cloud, arn, {tr.PROJECT_VERSION_STATUS_RUNNING, tr.PROJECT_VERSION_STATUS_FAILED})
    assert desc.status == tr.PROJECT_VERSION_STATUS_RUNNING and desc.min_inference_units == 2
    print(f"STARTING -> RUNNING in {time.monotonic() - began:.1f} s")
    ensure_stopped(cloud, arn)
