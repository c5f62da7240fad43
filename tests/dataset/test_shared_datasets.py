"""The real photos and Ground Truth manifests of ../shared/datasets import with the expected counts and labels."""

from __future__ import annotations

import json
import uuid

import pytest
from customlabels.common.v1 import types_pb2 as common
from customlabels.dataset.v1 import dataset_service_pb2 as ds

from tests.dataset.util import create_from_lines, entries, labels, new_project, wait
from tests.shared_data import (
    expected_labels,
    expected_line_errors,
    shared_datasets,
    unlabeled_lines,
    upload_folder,
)

DATASETS = {
    "rock-paper-scissors": common.MODEL_TYPE_IMAGE_CLASSIFICATION,
    "trashnet": common.MODEL_TYPE_IMAGE_CLASSIFICATION,
    "fruit-detection": common.MODEL_TYPE_OBJECT_LOCALIZATION,
    "flickr-logos-27": common.MODEL_TYPE_OBJECT_LOCALIZATION,
}


@pytest.fixture(scope="module")
def uploaded(stack) -> None:
    """The shared images at the locations their manifests name: s3://datasets/<dataset>/images/<file>."""
    root = shared_datasets()
    for name in DATASETS:
        upload_folder(stack.store, "datasets", root / name / "images", f"{name}/images/")


@pytest.mark.parametrize("name", list(DATASETS))
def test_shared_dataset_imports_with_the_expected_counts(stack, uploaded, name):
    root = shared_datasets() / name
    project = new_project(stack, name[:20])
    for split, dataset_type in (("train", ds.DATASET_TYPE_TRAIN), ("test", ds.DATASET_TYPE_TEST)):
        manifest = root / f"{split}.manifest"
        lines = manifest.read_text().splitlines()
        arn = create_from_lines(stack, project, lines, dataset_type)
        desc = wait(stack, arn, timeout=180)
        assert desc.status == ds.DATASET_STATUS_CREATE_COMPLETE, desc.status_message
        stats = desc.dataset_stats
        # flickr-logos-27 holds real logo crops smaller than 64 px and one photo with more than 50
        # boxes: the spec makes those lines unusable, so they carry errors; the rest import clean.
        unusable = expected_line_errors(manifest, root / "images")
        assert (stats.total_entries, stats.labeled_entries, stats.error_entries) == (
            len(lines),
            len(lines) - unlabeled_lines(manifest),
            unusable,
        )
        assert desc.model_type == DATASETS[name]
        assert labels(stack, arn) == expected_labels(manifest)
        assert stats.total_labels == len(expected_labels(manifest))


def test_shared_multilabel_manifest_imports_as_multi_label(stack, uploaded):
    manifest = shared_datasets() / "fruit-detection" / "multilabel-train.manifest"
    lines = manifest.read_text().splitlines()
    arn = create_from_lines(stack, new_project(stack, "multi"), lines)
    desc = wait(stack, arn, timeout=120)
    assert desc.status == ds.DATASET_STATUS_CREATE_COMPLETE, desc.status_message
    assert desc.model_type == common.MODEL_TYPE_MULTI_LABEL_CLASSIFICATION
    assert labels(stack, arn) == expected_labels(manifest)


def test_a_real_ground_truth_job_output_keeps_its_unannotated_line(stack):
    fixtures = shared_datasets() / "manifest-fixtures"
    upload_folder(
        stack.store,
        "devopstar-ground-truth-input",
        fixtures / "aws-ground-truth-cat-labels" / "images",
        "input-images/",
    )
    lines = (fixtures / "aws-ground-truth-cat-labels.output.manifest").read_text().splitlines()
    arn = create_from_lines(stack, new_project(stack, "cats"), lines)
    desc = wait(stack, arn)
    assert desc.status == ds.DATASET_STATUS_CREATE_COMPLETE, desc.status_message
    assert desc.dataset_stats.total_entries == 4
    assert labels(stack, arn) == {"Cat": (3, 3)}
    first = entries(stack, arn, source_ref_contains="0001.jpg")[0]
    assert first["cl-metadata"]["is_labeled"] is False
    assert json.loads(lines[0])["cat-ground-truth"] == first["cat-ground-truth"]


def test_copying_a_shared_dataset_into_another_project_keeps_everything(stack, uploaded):
    root = shared_datasets() / "fruit-detection"
    project = new_project(stack, "fruit-src")
    source = create_from_lines(
        stack, project, (root / "test.manifest").read_text().splitlines(), ds.DATASET_TYPE_TEST
    )
    assert wait(stack, source).status == ds.DATASET_STATUS_CREATE_COMPLETE
    copy = stack.dataset.CreateDataset(
        ds.CreateDatasetRequest(
            project_arn=new_project(stack, f"fruit-{uuid.uuid4().hex[:4]}"),
            dataset_type=ds.DATASET_TYPE_TRAIN,
            dataset_source=ds.DatasetSource(dataset_arn=source),
        )
    ).dataset_arn
    assert wait(stack, copy).status == ds.DATASET_STATUS_CREATE_COMPLETE
    assert labels(stack, copy) == labels(stack, source)
