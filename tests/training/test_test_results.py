"""ListTestResults: the evaluation manifest read back (unit round trips), then through the service on
a really trained version: every test image with its records and stored copy, paging with filters,
copies, refusals, and images fetched with GetDatasetImage."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from customlabels.common.v1 import types_pb2 as common
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.training.v1 import training_service_pb2 as tr

from scripts import samples
from services.dataset import manifest
from services.training import evaluation as ev
from services.training import pipeline, results
from tests.dataset.util import create_from_lines, new_project, put, wait
from tests.helpers import expect_error, training_worker

OUTPUT_BUCKET = "test-results-out"
INVALID = grpc.StatusCode.INVALID_ARGUMENT
KINDS = {
    "TP": tr.TEST_OUTCOME_TRUE_POSITIVE,
    "FP": tr.TEST_OUTCOME_FALSE_POSITIVE,
    "FN": tr.TEST_OUTCOME_FALSE_NEGATIVE,
    "TN": tr.TEST_OUTCOME_TRUE_NEGATIVE,
}
SETTLED = {
    tr.PROJECT_VERSION_STATUS_TRAINING_COMPLETED,
    tr.PROJECT_VERSION_STATUS_TRAINING_FAILED,
    tr.PROJECT_VERSION_STATUS_COPYING_COMPLETED,
    tr.PROJECT_VERSION_STATUS_COPYING_FAILED,
}
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


# -- the evaluation manifest read back ----------------------------------------------------------------


def cls_entry(ref: str, labels: list[str]) -> dict[str, Any]:
    """A stored image-level entry with one attribute per label."""
    entry: dict[str, Any] = {"source-ref": ref}
    for i, label in enumerate(labels):
        entry[f"l{i}"] = 0
        entry[f"l{i}-metadata"] = {
            "class-name": label,
            "confidence": 1,
            "type": "groundtruth/image-classification",
            "job-name": "labeling",
            "human-annotated": "yes",
            "creation-date": "2024-01-01T00:00:00",
        }
    return entry


def box_entry(ref: str, boxes: list[tuple[str, int, int, int, int]], size: tuple[int, int]) -> dict[str, Any]:
    """A stored bounding-box entry (pixels of `size`)."""
    names = sorted({b[0] for b in boxes})
    return {
        "source-ref": ref,
        "bb": {
            "image_size": [{"width": size[0], "height": size[1], "depth": 3}],
            "annotations": [
                {"class_id": names.index(n), "left": x, "top": y, "width": w, "height": h}
                for n, x, y, w, h in boxes
            ],
        },
        "bb-metadata": {
            "objects": [{"confidence": 1} for _ in boxes],
            "class-map": {str(i): n for i, n in enumerate(names)},
            "type": "groundtruth/object-detection",
            "human-annotated": "yes",
            "creation-date": "2024-01-01T00:00:00",
        },
    }


def test_classification_manifest_reads_back_as_written():
    labels = ["cat", "dog", "fox"]
    truth = {"a": ["cat"], "b": ["dog"], "c": ["cat", "fox"], "d": ["fox"], "e": ["dog"]}
    scores = {
        "a": {"cat": 0.9, "dog": 0.3, "fox": 0.05},
        "b": {"cat": 0.8, "dog": 0.2, "fox": 0.1},
        "c": {"cat": 0.7, "dog": 0.6, "fox": 0.4},
        "d": {"cat": 0.1, "dog": 0.7, "fox": 0.3},
        "e": {"cat": 0.2, "dog": 0.9, "fox": 0.0},
    }
    sample_list = [ev.ClassificationSample(f"s3://b/{k}.jpg", frozenset(truth[k]), scores[k]) for k in truth]
    result = ev.evaluate_classification(sample_list, labels)
    entries = {f"s3://b/{k}.jpg": cls_entry(f"s3://b/{k}.jpg", truth[k]) for k in truth}
    parsed = ev.parse_testing_snapshot(ev.testing_snapshot_text(result, entries, NOW))

    assert [p.source_ref for p in parsed] == [i.source_ref for i in result.images]
    for image, back in zip(result.images, parsed, strict=True):
        assert back.use_case == ev.IMAGE_LEVEL_LABELS
        assert back.outcomes == image.outcomes  # kinds, confidences, presence, order: exactly
        assert back.ground_truth == ev.ground_truth_from_entry(
            entries[image.source_ref], ev.IMAGE_LEVEL_LABELS
        )
    kinds = {o.kind for image in parsed for o in image.outcomes}
    assert {"TP", "FP", "TN"} <= kinds  # the manifest carries TN records for classification


def test_detection_manifest_reads_back_as_written():
    size = (200, 100)
    truth = {
        "a": [("cap", 10, 10, 40, 30), ("res", 120, 40, 50, 40)],
        "b": [("cap", 60, 20, 30, 30)],
        "c": [],
    }
    predictions = {
        "a": [
            ev.PredictedBox("cap", 0.9, 0.052, 0.11, 0.2, 0.3),  # matches the cap: TP
            ev.PredictedBox("res", 0.3, 0.61, 0.42, 0.24, 0.39),  # matches the res: TP at res' threshold 0.3
        ],
        "b": [ev.PredictedBox("res", 0.8, 0.30, 0.2, 0.15, 0.3)],  # wrong label: res FP and cap FN
        "c": [],
    }
    sample_list = [
        ev.DetectionSample(
            f"s3://b/{k}.jpg",
            [ev.Box(n, x / size[0], y / size[1], w / size[0], h / size[1]) for n, x, y, w, h in truth[k]],
            predictions[k],
        )
        for k in truth
    ]
    result = ev.evaluate_detection(sample_list, ["cap", "res"])
    entries = {f"s3://b/{k}.jpg": box_entry(f"s3://b/{k}.jpg", truth[k], size) for k in truth}
    parsed = ev.parse_testing_snapshot(ev.testing_snapshot_text(result, entries, NOW))

    assert [p.source_ref for p in parsed] == [i.source_ref for i in result.images]
    for image, back in zip(result.images, parsed, strict=True):
        assert back.use_case == ev.OBJECT_LOCALIZATION
        assert back.ground_truth == ev.ground_truth_from_entry(
            entries[image.source_ref], ev.OBJECT_LOCALIZATION
        )
        assert [(o.label, o.kind, o.confidence, o.present_in_ground_truth) for o in back.outcomes] == [
            (o.label, o.kind, o.confidence, o.present_in_ground_truth) for o in image.outcomes
        ]
        for o, b in zip(image.outcomes, back.outcomes, strict=True):
            # The file holds integer pixels: within half a pixel of the evaluated box.
            assert b.box is not None and o.box is not None
            assert b.box.left == pytest.approx(o.box.left, abs=0.5 / size[0])
            assert b.box.top == pytest.approx(o.box.top, abs=0.5 / size[1])
            assert b.box.width == pytest.approx(o.box.width, abs=0.5 / size[0])
            assert b.box.height == pytest.approx(o.box.height, abs=0.5 / size[1])
    records = [(p.source_ref[-5], o.label, o.kind) for p in parsed for o in p.outcomes]
    assert ("b", "res", "FP") in records and ("b", "cap", "FN") in records
    assert parsed[2].outcomes == () and parsed[2].ground_truth.labels == frozenset()


def test_a_line_that_is_not_an_evaluation_line_is_refused_with_its_number():
    result = ev.evaluate_classification(
        [ev.ClassificationSample("s3://b/a.jpg", frozenset({"cat"}), {"cat": 0.9})], ["cat"]
    )
    text = ev.testing_snapshot_text(result, {"s3://b/a.jpg": cls_entry("s3://b/a.jpg", ["cat"])}, NOW)
    broken = text.replace('"is-true-positive":true', '"is-true-positive":false')
    for bad, where in [(text + "{not json\n", "line 2"), (broken, "line 1"), (text + "[1]\n", "line 2")]:
        with pytest.raises(ValueError, match=where):
            ev.parse_testing_snapshot(bad)


def test_the_snapshot_a_worker_writes_for_external_manifests_names_each_copy():
    refs = ["s3://src/a.jpg", "s3://src/b.jpg"]
    texts = [json.dumps(cls_entry(ref, ["cat"])) for ref in refs]
    key = "sha256/ab/ab" + "0" * 62
    examples = [
        pipeline.Example(1, texts[0], manifest.parse_line(texts[0]), key, None, (300, 200)),
        pipeline.Example(2, texts[1], manifest.parse_line(texts[1])),  # its image failed: no copy
    ]
    text = pipeline._snapshot_text(examples, "images").decode()
    assert results.snapshot_copies(text, {*refs, "s3://src/other.jpg"}) == {
        refs[0]: results.StoredImage("images", key, 300, 200)
    }


# -- through the service ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trained:
    project: str
    arn: str
    description: tr.ProjectVersionDescription
    tests: dict[str, samples.Sample]  # source-ref -> sample


@pytest.fixture(scope="module")
def worker(stack, database_url) -> Iterator[None]:
    with training_worker(stack, database_url):
        yield


def dataset_from(
    stack, project: str, items: list[samples.Sample], dataset_type: int
) -> dict[str, samples.Sample]:
    bucket = f"tr-{uuid.uuid4().hex[:8]}"
    refs = {put(stack.store, bucket, s.file_name, s.data): s for s in items}
    arn = create_from_lines(
        stack, project, [samples.manifest_line(r, s) for r, s in refs.items()], dataset_type
    )
    assert wait(stack, arn).status == ds.DATASET_STATUS_CREATE_COMPLETE
    return refs


def settle(stack, project: str, name: str, timeout: float = 300) -> tr.ProjectVersionDescription:
    deadline = time.monotonic() + timeout
    while True:
        (desc,) = stack.training.DescribeProjectVersions(
            tr.DescribeProjectVersionsRequest(project_arn=project, version_names=[name])
        ).project_version_descriptions
        if desc.status in SETTLED:
            return desc
        assert time.monotonic() < deadline, tr.ProjectVersionStatus.Name(desc.status)
        time.sleep(0.2)


@pytest.fixture(scope="module")
def trained(stack, worker) -> Trained:
    stack.store.ensure_bucket(OUTPUT_BUCKET)
    project = new_project(stack, "results")
    dataset_from(stack, project, samples.classification(per_label=6, seed=41), ds.DATASET_TYPE_TRAIN)
    tests = dataset_from(stack, project, samples.classification(per_label=3, seed=42), ds.DATASET_TYPE_TEST)
    arn = stack.training.CreateProjectVersion(
        tr.CreateProjectVersionRequest(
            project_arn=project,
            version_name="v1",
            output_config=common.OutputConfig(s3_bucket=OUTPUT_BUCKET, s3_key_prefix="results"),
        )
    ).project_version_arn
    desc = settle(stack, project, "v1")
    assert desc.status == tr.PROJECT_VERSION_STATUS_TRAINING_COMPLETED, desc.status_message
    return Trained(project, arn, desc, tests)


def copy_of(stack, trained: Trained) -> tr.ProjectVersionDescription:
    """A fresh copy of the trained version (its own output files)."""
    name = f"copy-{uuid.uuid4().hex[:8]}"
    stack.training.CopyProjectVersion(
        tr.CopyProjectVersionRequest(
            source_project_arn=trained.project,
            source_project_version_arn=trained.arn,
            destination_project_arn=trained.project,
            version_name=name,
            output_config=common.OutputConfig(s3_bucket=OUTPUT_BUCKET, s3_key_prefix=name),
        )
    )
    desc = settle(stack, trained.project, name)
    assert desc.status == tr.PROJECT_VERSION_STATUS_COPYING_COMPLETED, desc.status_message
    return desc


def list_all(stack, arn: str, page_size: int | None = None, **filters: Any) -> list[tr.TestResult]:
    """Every result across the pages; checks total_count on each page."""
    out: list[tr.TestResult] = []
    token, totals = "", set()
    while True:
        request = tr.ListTestResultsRequest(project_version_arn=arn, next_token=token, **filters)
        if page_size is not None:
            request.max_results = page_size
        page = stack.training.ListTestResults(request)
        assert page_size is None or len(page.test_results) <= page_size
        out += page.test_results
        totals.add(page.total_count)
        token = page.next_token
        if not token:
            assert totals == {len(out)}
            return out


def manifest_of(stack, desc: tr.ProjectVersionDescription) -> tuple[str, str]:
    ref = desc.testing_data_result.output.assets[0].ground_truth_manifest.s3_object
    return ref.bucket, ref.name


def key_of(data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    return f"sha256/{digest[:2]}/{digest}"


def test_every_test_image_is_listed_with_ground_truth_records_and_stored_copy(stack, trained):
    results = list_all(stack, trained.arn)
    parsed = ev.parse_testing_snapshot(
        stack.store.get_bytes(*manifest_of(stack, trained.description)).decode()
    )
    assert [r.source_ref for r in results] == [p.source_ref for p in parsed]  # manifest order
    assert sorted(r.source_ref for r in results) == sorted(trained.tests)
    for result, back in zip(results, parsed, strict=True):
        sample = trained.tests[result.source_ref]
        assert [(g.name, g.HasField("bounding_box")) for g in result.ground_truth] == [
            (sample.labels[0], False)
        ]
        assert result.image.bucket == stack.images_bucket and result.image.name == key_of(sample.data)
        assert (result.width, result.height) == sample.size
        assert result.predictions, "every image shows at least the model's most likely label"
        assert [(p.name, p.outcome, p.present_in_ground_truth) for p in result.predictions] == [
            (o.label, KINDS[o.kind], o.present_in_ground_truth) for o in back.outcomes
        ]
        for p, o in zip(result.predictions, back.outcomes, strict=True):
            assert p.confidence == pytest.approx(100 * o.confidence, rel=1e-6)
            assert not p.HasField("bounding_box")
            assert p.present_in_ground_truth == (p.outcome in (KINDS["TP"], KINDS["FN"]))


def test_pages_keep_the_label_filter_and_count_every_match(stack, trained):
    everything = list_all(stack, trained.arn)
    expected = [
        r.source_ref
        for r in everything
        if any(g.name == "circle" for g in r.ground_truth) or any(p.name == "circle" for p in r.predictions)
    ]
    assert expected
    listed = list_all(stack, trained.arn, page_size=2, labels=["circle"])
    assert [r.source_ref for r in listed] == expected
    first = stack.training.ListTestResults(
        tr.ListTestResultsRequest(project_version_arn=trained.arn, labels=["circle"], max_results=1)
    )
    assert first.total_count == len(expected) and first.next_token
    # A token belongs to its filters.
    expect_error(
        lambda: stack.training.ListTestResults(
            tr.ListTestResultsRequest(
                project_version_arn=trained.arn, labels=["square"], next_token=first.next_token
            )
        ),
        INVALID,
        "InvalidPaginationTokenException",
    )
    expect_error(
        lambda: stack.training.ListTestResults(
            tr.ListTestResultsRequest(project_version_arn=trained.arn, next_token="forged" + first.next_token)
        ),
        INVALID,
        "InvalidPaginationTokenException",
    )


def test_the_outcome_filter_keeps_images_with_a_record_of_that_outcome(stack, trained):
    everything = list_all(stack, trained.arn)
    seen = 0
    for outcome in KINDS.values():
        expected = [r.source_ref for r in everything if any(p.outcome == outcome for p in r.predictions)]
        assert [r.source_ref for r in list_all(stack, trained.arn, page_size=3, outcome=outcome)] == expected
        seen += bool(expected)
        both = [
            r.source_ref
            for r in everything
            if any(p.outcome == outcome for p in r.predictions)
            and ({g.name for g in r.ground_truth} | {p.name for p in r.predictions}) & {"square"}
        ]
        assert [
            r.source_ref for r in list_all(stack, trained.arn, outcome=outcome, labels=["square"])
        ] == both
    assert seen >= 2  # at least TP and TN records exist on a classifier's test set


@pytest.mark.parametrize(
    "fields",
    [
        {"labels": [f"l{i}" for i in range(11)]},
        {"labels": [""]},
        {"labels": ["x" * 256]},
        {"max_results": 0},
        {"max_results": 1001},
        {"outcome": 9},
        {"next_token": "not-a-token"},
    ],
)
def test_bad_filters_page_sizes_and_tokens_are_refused(stack, trained, fields):
    name = "InvalidPaginationTokenException" if "next_token" in fields else "InvalidParameterException"
    expect_error(
        lambda: stack.training.ListTestResults(
            tr.ListTestResultsRequest(project_version_arn=trained.arn, **fields)
        ),
        INVALID,
        name,
    )


def test_the_page_size_goes_up_to_1000(stack, trained):
    page = stack.training.ListTestResults(
        tr.ListTestResultsRequest(project_version_arn=trained.arn, max_results=1000)
    )
    assert len(page.test_results) == page.total_count == len(trained.tests) and not page.next_token


def test_an_unknown_version_is_not_found(stack, trained):
    unknown = trained.arn.replace("/version/v1/", "/version/nope/")
    expect_error(
        lambda: stack.training.ListTestResults(tr.ListTestResultsRequest(project_version_arn=unknown)),
        grpc.StatusCode.NOT_FOUND,
        "ResourceNotFoundException",
    )
    expect_error(
        lambda: stack.training.ListTestResults(tr.ListTestResultsRequest(project_version_arn="arn:nope")),
        INVALID,
        "InvalidParameterException",
    )


def test_a_version_without_an_evaluation_is_not_ready(stack, trained):
    arn = stack.training.CreateProjectVersion(
        tr.CreateProjectVersionRequest(
            project_arn=trained.project,
            version_name="nobucket",
            output_config=common.OutputConfig(s3_bucket=f"missing-{uuid.uuid4().hex[:8]}", s3_key_prefix="x"),
        )
    ).project_version_arn

    def call() -> Any:
        return stack.training.ListTestResults(tr.ListTestResultsRequest(project_version_arn=arn))

    expect_error(call, grpc.StatusCode.FAILED_PRECONDITION, "ResourceNotReadyException")  # queued or failed
    assert settle(stack, trained.project, "nobucket").status == tr.PROJECT_VERSION_STATUS_TRAINING_FAILED
    error = expect_error(call, grpc.StatusCode.FAILED_PRECONDITION, "ResourceNotReadyException")
    assert "no test results" in error.details()


def test_listed_images_are_fetched_with_get_dataset_image(stack, trained):
    for result in list_all(stack, trained.arn)[:3]:
        messages = list(
            stack.dataset.GetDatasetImage(
                ds.GetDatasetImageRequest(image_key=result.image.name, max_side=128)
            )
        )
        header = messages[0].header
        assert header.content_type == "image/jpeg" and max(header.width, header.height) == 128
        original = b"".join(
            m.chunk
            for m in stack.dataset.GetDatasetImage(ds.GetDatasetImageRequest(image_key=result.image.name))
        )
        assert original == trained.tests[result.source_ref].data


def test_a_copy_lists_the_same_results_until_its_manifest_is_deleted(stack, trained):
    copy = copy_of(stack, trained)
    assert [(r.source_ref, r.image.name) for r in list_all(stack, copy.project_version_arn)] == [
        (r.source_ref, r.image.name) for r in list_all(stack, trained.arn)
    ]
    bucket, key = manifest_of(stack, copy)
    stack.store.delete(bucket, key)
    error = expect_error(
        lambda: stack.training.ListTestResults(
            tr.ListTestResultsRequest(project_version_arn=copy.project_version_arn)
        ),
        grpc.StatusCode.NOT_FOUND,
        "ResourceNotFoundException",
    )
    assert key in error.details()
    assert list_all(stack, trained.arn)  # the source keeps its own files


def test_300_test_images_page_quickly_with_one_parse(stack, trained):
    labels = ["circle", "square", "triangle"]
    sample_list, entries = [], {}
    for i in range(300):
        ref = f"s3://synthetic/{i:04d}.jpg"
        label = labels[i % 3]
        confidences = {name: ((i * 7 + j * 13) % 100) / 100 for j, name in enumerate(labels)}
        sample_list.append(ev.ClassificationSample(ref, frozenset({label}), confidences))
        entries[ref] = cls_entry(ref, [label])
    text = ev.testing_snapshot_text(ev.evaluate_classification(sample_list, labels), entries, NOW)
    copy = copy_of(stack, trained)
    stack.store.put_bytes(*manifest_of(stack, copy), text.encode(), "application/json")

    started = time.perf_counter()
    listed = list_all(stack, copy.project_version_arn, page_size=100)
    first_pass = time.perf_counter() - started
    started = time.perf_counter()
    circles = list_all(stack, copy.project_version_arn, page_size=100, labels=["circle"])
    second_pass = time.perf_counter() - started
    assert [r.source_ref for r in listed] == [s.source_ref for s in sample_list]
    assert [r.source_ref for r in circles] == [
        r.source_ref
        for r in listed
        if "circle" in {g.name for g in r.ground_truth} | {p.name for p in r.predictions}
    ]
    assert not any(r.HasField("image") for r in listed)  # synthetic images have no stored copy
    assert first_pass < 1.5, f"3 pages of 300 images took {first_pass:.3f} s"
    assert second_pass < 1.0, f"3 cached pages took {second_pass:.3f} s"
    print(json.dumps({"first_pass_s": round(first_pass, 3), "cached_pass_s": round(second_pass, 3)}))
