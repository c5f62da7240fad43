"""StartProjectVersion, DetectCustomLabels and StopProjectVersion on the real Triton, with models
trained by the training service; answers compared with plain onnxruntime + modelio on the same bytes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import onnxruntime as ort
import pytest
from customlabels.common.v1 import types_pb2 as common
from customlabels.serving.v1 import serving_service_pb2 as sv
from customlabels.serving.v1 import serving_service_pb2_grpc as sv_grpc
from customlabels.training.v1 import training_service_pb2 as tr

from scripts import inprocess
from scripts.inprocess import LocalServices
from services.common import clients, modelio
from services.serving.config import ServingSettings
from tests.serving.conftest import (
    Trained,
    describe,
    ensure_stopped,
    start,
    stop,
    wait_status,
)

_SESSIONS: dict[str, ort.InferenceSession] = {}


def reference(
    model: Trained, data: bytes, min_confidence: float | None, max_results: int | None
) -> list[Any]:
    """What plain onnxruntime + modelio answer for the image (the evaluation's own path)."""
    session = _SESSIONS.get(model.version_arn)
    if session is None:
        session = _SESSIONS[model.version_arn] = ort.InferenceSession(
            model.onnx, providers=["CPUExecutionProvider"]
        )
    pixels, (width, height) = modelio.prepare(data, model.spec.input_size)
    outputs = session.run(list(model.spec.outputs), {model.spec.input_name: pixels[None]})
    if model.spec.detects:
        found: list[Any] = modelio.detections(model.spec, outputs[0][0], outputs[1][0], width, height)
    else:
        found = modelio.classifications(model.spec, outputs[0][0])
    return modelio.select(model.spec, found, min_confidence, max_results)


def detect(stack: LocalServices, arn: str, data: bytes, **kwargs: Any) -> list[sv.CustomLabel]:
    """DetectCustomLabels with Bytes."""
    assert stack.serving is not None
    request = sv.DetectCustomLabelsRequest(project_version_arn=arn, image=sv.Image(bytes=data), **kwargs)
    return list(stack.serving.DetectCustomLabels(request).custom_labels)


def assert_same(got: list[sv.CustomLabel], expected: list[Any]) -> None:
    """Same labels in the same order, confidences and boxes equal up to float32 batching noise."""
    assert [g.name for g in got] == [e[0] for e in expected]
    for g, e in zip(got, expected, strict=True):
        assert g.confidence == pytest.approx(e[1] * 100.0, abs=1e-3)
        if len(e) == 6:
            box = g.geometry.bounding_box
            assert [box.left, box.top, box.width, box.height] == pytest.approx(list(e[2:]), abs=1e-4)
            assert len(g.geometry.polygon) == 4
        else:
            assert not g.HasField("geometry")


def test_a_classifier_starts_detects_like_onnxruntime_and_stops(
    cloud: LocalServices, classifier: Trained
) -> None:
    arn = classifier.version_arn
    assert start(cloud, arn, units=1) == tr.PROJECT_VERSION_STATUS_STARTING
    desc = describe(cloud, arn)
    assert desc.status in (tr.PROJECT_VERSION_STATUS_STARTING, tr.PROJECT_VERSION_STATUS_RUNNING)
    desc = wait_status(cloud, arn, {tr.PROJECT_VERSION_STATUS_RUNNING, tr.PROJECT_VERSION_STATUS_FAILED}, 120)
    assert desc.status == tr.PROJECT_VERSION_STATUS_RUNNING, desc.status_message
    assert desc.min_inference_units == 1 and desc.status_message

    for sample in classifier.images:
        # No MinConfidence: each label's assumed threshold; 0: every label, best first.
        assert_same(detect(cloud, arn, sample.data), reference(classifier, sample.data, None, None))
        every = detect(cloud, arn, sample.data, min_confidence=0)
        assert len(every) == len(classifier.spec.labels)
        assert [c.confidence for c in every] == sorted((c.confidence for c in every), reverse=True)
        assert_same(every, reference(classifier, sample.data, 0, None))
        assert_same(
            detect(cloud, arn, sample.data, min_confidence=0, max_results=1),
            reference(classifier, sample.data, 0, 1),
        )
        assert detect(cloud, arn, sample.data, max_results=0) == []
    # Mostly right: the model learned the shapes.
    right = sum(
        detect(cloud, arn, s.data, min_confidence=0)[0].name == s.labels[0] for s in classifier.images
    )
    assert right >= len(classifier.images) * 2 // 3

    # The same image from the object store.
    sample = classifier.images[0]
    cloud.store.put_bytes("serving-test-output", "images/one.jpg", sample.data)
    assert cloud.serving is not None
    from_s3 = cloud.serving.DetectCustomLabels(
        sv.DetectCustomLabelsRequest(
            project_version_arn=arn,
            image=sv.Image(s3_object=common.S3Object(bucket="serving-test-output", name="images/one.jpg")),
            min_confidence=0,
        )
    ).custom_labels
    assert_same(list(from_s3), reference(classifier, sample.data, 0, None))

    assert stop(cloud, arn) == tr.PROJECT_VERSION_STATUS_STOPPING
    assert describe(cloud, arn).status in (
        tr.PROJECT_VERSION_STATUS_STOPPING,
        tr.PROJECT_VERSION_STATUS_STOPPED,
    )
    wait_status(cloud, arn, {tr.PROJECT_VERSION_STATUS_STOPPED}, 60)


def test_a_detector_answers_boxes_like_onnxruntime(cloud: LocalServices, detector: Trained) -> None:
    arn = detector.version_arn
    start(cloud, arn, units=1)
    try:
        desc = wait_status(
            cloud, arn, {tr.PROJECT_VERSION_STATUS_RUNNING, tr.PROJECT_VERSION_STATUS_FAILED}, 120
        )
        assert desc.status == tr.PROJECT_VERSION_STATUS_RUNNING, desc.status_message
        boxes = 0
        for sample in detector.images:
            for min_confidence in (None, 0.0, 30.0):
                expected = reference(detector, sample.data, min_confidence, None)
                assert_same(detect(cloud, arn, sample.data, **_opt(min_confidence)), expected)
            boxes += len(detect(cloud, arn, sample.data, min_confidence=0, max_results=5))
        assert boxes > 0
    finally:
        ensure_stopped(cloud, arn)


def _opt(min_confidence: float | None) -> dict[str, float]:
    return {} if min_confidence is None else {"min_confidence": min_confidence}


def test_sixteen_parallel_clients_get_answers_without_errors(
    cloud: LocalServices, running_classifier: Trained
) -> None:
    arn = running_classifier.version_arn
    images = [s.data for s in running_classifier.images]
    expected = [reference(running_classifier, data, 0, None) for data in images]

    def client(worker: int) -> int:
        for i in range(6):
            k = (worker + i) % len(images)
            assert_same(detect(cloud, arn, images[k], min_confidence=0), expected[k])
        return 6

    with ThreadPoolExecutor(16) as pool:
        assert sum(pool.map(client, range(16))) == 96


def test_decoding_in_the_serving_service_gives_the_same_answers(
    cloud: LocalServices, running_classifier: Trained
) -> None:
    # A second replica of the serving service that decodes itself and sends pixels (PIXELS + SIZE)
    # instead of the encoded bytes (IMAGE) the default sends.
    stops: list[Any] = []
    addr = inprocess.start_serving(
        cloud.env, cloud.store, ServingSettings(decode="service", reconcile_s=0.5), stops
    )
    try:
        channel = clients.channel(addr)
        stops.append(channel.close)
        replica = sv_grpc.ServingServiceStub(channel)
        for sample in running_classifier.images[:4]:
            request = sv.DetectCustomLabelsRequest(
                project_version_arn=running_classifier.version_arn,
                image=sv.Image(bytes=sample.data),
                min_confidence=0,
            )
            got = list(replica.DetectCustomLabels(request).custom_labels)
            assert_same(got, reference(running_classifier, sample.data, 0, None))
    finally:
        for close in reversed(stops):
            close()


def test_png_images_are_accepted(cloud: LocalServices, running_classifier: Trained) -> None:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.open(io.BytesIO(running_classifier.images[0].data)).save(out, "PNG")
    got = detect(cloud, running_classifier.version_arn, out.getvalue(), min_confidence=0)
    assert_same(got, reference(running_classifier, out.getvalue(), 0, None))


def test_the_cli_detects_labels_in_an_image_file(
    cloud: LocalServices, running_classifier: Trained, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from services.cli.__main__ import main as cli

    sample = running_classifier.images[1]
    (tmp_path / "photo.jpg").write_bytes(sample.data)
    (tmp_path / "stack.env").write_text("")
    common_flags = ["--serving-addr", cloud.serving_addr, "--stack-env", str(tmp_path / "stack.env")]
    arn = running_classifier.version_arn
    assert cli(["detect-custom-labels", *common_flags, "--project-version-arn", arn,
                "--image-bytes", f"fileb://{tmp_path / 'photo.jpg'}", "--min-confidence", "0"]) == 0  # fmt: skip
    answer = json.loads(capsys.readouterr().out)
    expected = reference(running_classifier, sample.data, 0, None)
    assert [label["Name"] for label in answer["CustomLabels"]] == [e[0] for e in expected]
    assert answer["CustomLabels"][0]["Confidence"] == pytest.approx(expected[0][1] * 100, abs=1e-3)
