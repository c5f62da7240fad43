"""Real training end to end: datasets of generated images, CreateProjectVersion, a worker that trains
with PyTorch, the evaluation files, the ONNX export, copies, failures with their validation files."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from customlabels.common.v1 import types_pb2 as common
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.project.v1 import project_service_pb2 as pj
from customlabels.training.v1 import training_service_pb2 as tr

from scripts import samples
from services.common import modelio
from tests.dataset.util import create_from_lines, new_project, put, wait
from tests.helpers import expect_error, training_worker

SETTLED = {
    tr.PROJECT_VERSION_STATUS_TRAINING_COMPLETED,
    tr.PROJECT_VERSION_STATUS_TRAINING_FAILED,
    tr.PROJECT_VERSION_STATUS_COPYING_COMPLETED,
    tr.PROJECT_VERSION_STATUS_COPYING_FAILED,
}


@pytest.fixture(scope="module")
def worker(stack, database_url) -> Iterator[None]:
    """One training worker, in-process, on the module's database and object store."""
    with training_worker(stack, database_url):
        yield


def dataset_from_samples(stack, project: str, items: list[samples.Sample], dataset_type: int) -> str:
    bucket = f"smp-{uuid.uuid4().hex[:8]}"
    lines = [samples.manifest_line(put(stack.store, bucket, s.file_name, s.data), s) for s in items]
    arn = create_from_lines(stack, project, lines, dataset_type)
    assert wait(stack, arn).status == ds.DATASET_STATUS_CREATE_COMPLETE
    return arn


def train(stack, project: str, name: str = "v1") -> str:
    return stack.training.CreateProjectVersion(
        tr.CreateProjectVersionRequest(
            project_arn=project,
            version_name=name,
            output_config=common.OutputConfig(s3_bucket="training-results", s3_key_prefix="out"),
        )
    ).project_version_arn


def settle(stack, project: str, name: str, timeout: float = 300) -> tr.ProjectVersionDescription:
    deadline, seen_progress = time.monotonic() + timeout, set()
    while True:
        (desc,) = stack.training.DescribeProjectVersions(
            tr.DescribeProjectVersionsRequest(project_arn=project, version_names=[name])
        ).project_version_descriptions
        if desc.status in SETTLED:
            return desc
        seen_progress.add(desc.training_progress.phase)
        assert time.monotonic() < deadline, f"still {tr.ProjectVersionStatus.Name(desc.status)}"
        time.sleep(0.5)


def test_a_classifier_trains_evaluates_and_exports(stack, worker):
    stack.store.ensure_bucket("training-results")
    project = new_project(stack, "shapes")
    dataset_from_samples(stack, project, samples.classification(per_label=10, seed=11), ds.DATASET_TYPE_TRAIN)
    dataset_from_samples(stack, project, samples.classification(per_label=4, seed=12), ds.DATASET_TYPE_TEST)
    arn = train(stack, project)
    desc = settle(stack, project, "v1")
    assert desc.status == tr.PROJECT_VERSION_STATUS_TRAINING_COMPLETED, desc.status_message
    assert desc.evaluation_result.f1_score >= 0.8
    assert desc.billable_training_time_in_seconds >= 0 and desc.training_end_timestamp.seconds > 0
    assert desc.model_type == common.MODEL_TYPE_IMAGE_CLASSIFICATION
    summary_ref = desc.evaluation_result.summary.s3_object
    summary = json.loads(stack.store.get_bytes(summary_ref.bucket, summary_ref.name))
    assert summary["EvaluationDetails"]["ProjectVersionArn"] == arn
    assert sorted(summary["EvaluationDetails"]["Labels"]) == ["circle", "square", "triangle"]
    assert len(summary["AggregatedEvaluationResults"]["Metrics"]["ConfusionMatrix"]) == 9
    for result in (desc.training_data_result, desc.testing_data_result):
        for asset in (result.output.assets[0], result.validation.assets[0]):
            ref = asset.ground_truth_manifest.s3_object
            assert stack.store.get_bytes(ref.bucket, ref.name)
    manifest_summary = json.loads(
        stack.store.get_bytes(desc.manifest_summary.s3_object.bucket, desc.manifest_summary.s3_object.name)
    )
    assert manifest_summary["statistics"]["training"]["valid_json_lines"] == 30

    artifact = stack.training.GetModelArtifact(tr.GetModelArtifactRequest(project_version_arn=arn))
    model = stack.store.get_bytes(artifact.onnx_model.bucket, artifact.onnx_model.name)
    meta = json.loads(stack.store.get_bytes(artifact.model_metadata.bucket, artifact.model_metadata.name))
    spec = modelio.ModelSpec.from_json(meta)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    test = samples.classification(per_label=2, seed=13)
    batch = np.stack([modelio.prepare(s.data, spec.input_size)[0] for s in test])
    scores = session.run(None, {spec.input_name: batch})[0]
    predicted = [modelio.classifications(spec, row)[0][0] for row in scores]
    assert sum(p == s.labels[0] for p, s in zip(predicted, test, strict=True)) >= 5
    assert set(spec.thresholds) == set(spec.labels) == set(artifact.labels)
    # The stored thresholds are the evaluation's assumed thresholds (summary file, 0–1).
    rows = summary["LabelEvaluationResults"]
    assert {row["Label"]: row["Metrics"]["Threshold"] for row in rows} == spec.thresholds

    # A project with a version cannot be deleted; a trained version can be copied.
    expect_error(
        lambda: stack.project.DeleteProject(pj.DeleteProjectRequest(project_arn=project)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "ResourceInUseException",
    )
    other = new_project(stack, "copyto")
    copied = stack.training.CopyProjectVersion(
        tr.CopyProjectVersionRequest(
            source_project_arn=project,
            source_project_version_arn=arn,
            destination_project_arn=other,
            version_name="copied",
            output_config=common.OutputConfig(s3_bucket="training-results", s3_key_prefix="copies"),
        )
    )
    done = settle(stack, other, "copied")
    assert done.status == tr.PROJECT_VERSION_STATUS_COPYING_COMPLETED, done.status_message
    assert done.source_project_version_arn == arn
    assert abs(done.evaluation_result.f1_score - desc.evaluation_result.f1_score) < 1e-6
    assert copied.project_version_arn.startswith(other.replace(other.rsplit("/", 1)[1], "version/copied/"))


def test_training_fails_with_its_reason_when_test_labels_do_not_overlap(stack, worker):
    stack.store.ensure_bucket("training-results")
    project = new_project(stack, "overlap")
    dataset_from_samples(
        stack,
        project,
        samples.classification(per_label=5, seed=21, shapes=("circle", "square", "star")),
        ds.DATASET_TYPE_TRAIN,
    )
    dataset_from_samples(
        stack,
        project,
        samples.classification(per_label=3, seed=22, shapes=("triangle",)),
        ds.DATASET_TYPE_TEST,
    )
    train(stack, project, "bad")
    desc = settle(stack, project, "bad")
    assert desc.status == tr.PROJECT_VERSION_STATUS_TRAINING_FAILED
    assert desc.status_message.startswith("ERROR_INSUFFICIENT_LABEL_OVERLAP")
    ref = desc.manifest_summary.s3_object
    summary = json.loads(stack.store.get_bytes(ref.bucket, ref.name))
    assert summary["errors"][0]["code"] == "ERROR_INSUFFICIENT_LABEL_OVERLAP"
    assert not desc.HasField("evaluation_result")


def test_training_into_a_missing_output_bucket_fails_with_the_file_error(stack, worker):
    project = new_project(stack, "nobucket")
    dataset_from_samples(stack, project, samples.classification(per_label=3, seed=31), ds.DATASET_TYPE_TRAIN)
    dataset_from_samples(stack, project, samples.classification(per_label=2, seed=32), ds.DATASET_TYPE_TEST)
    stack.training.CreateProjectVersion(
        tr.CreateProjectVersionRequest(
            project_arn=project,
            version_name="v1",
            output_config=common.OutputConfig(s3_bucket=f"missing-{uuid.uuid4().hex[:8]}", s3_key_prefix="x"),
        )
    )
    desc = settle(stack, project, "v1")
    assert desc.status == tr.PROJECT_VERSION_STATUS_TRAINING_FAILED
    assert desc.status_message == "Unable to write to output S3 bucket."
