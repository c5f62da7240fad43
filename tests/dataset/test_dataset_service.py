"""The dataset service over real gRPC, Postgres and S3: every operation, status and error path."""

from __future__ import annotations

import json
import threading
import uuid

import grpc
import pytest
from customlabels.common.v1 import types_pb2 as common
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.project.v1 import project_service_pb2 as pj

from services.common import arn as arns
from tests.dataset.util import (
    box_line,
    cls_line,
    create_from_lines,
    entries,
    jpeg,
    labels,
    new_project,
    png,
    put,
    wait,
)
from tests.helpers import expect_error

INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


@pytest.fixture(scope="module")
def images(stack) -> dict[str, list[str]]:
    """Twelve distinct JPEGs per label (cat, dog, fox) in a source bucket, by label."""
    bucket = f"src-{uuid.uuid4().hex[:8]}"
    out: dict[str, list[str]] = {}
    for li, label in enumerate(("cat", "dog", "fox")):
        out[label] = [
            put(stack.store, bucket, f"pets/{label}/{i}.jpg", jpeg(seed=li * 100 + i)) for i in range(12)
        ]
    return out


def cls_dataset(
    stack, project_arn: str, images, per_label: int = 12, dataset_type=ds.DATASET_TYPE_TRAIN
) -> str:
    lines = [cls_line(ref, label) for label, refs in images.items() for ref in refs[:per_label]]
    arn = create_from_lines(stack, project_arn, lines, dataset_type)
    assert wait(stack, arn).status == ds.DATASET_STATUS_CREATE_COMPLETE
    return arn


# -- CreateDataset / DescribeDataset -------------------------------------------------------------------


def test_create_empty_dataset_is_complete_at_once(stack):
    project = new_project(stack)
    arn = stack.dataset.CreateDataset(
        ds.CreateDatasetRequest(project_arn=project, dataset_type=ds.DATASET_TYPE_TEST)
    ).dataset_arn
    assert arns.DATASET_ARN.match(arn) and "/dataset/test/" in arn
    desc = stack.dataset.DescribeDataset(ds.DescribeDatasetRequest(dataset_arn=arn)).dataset_description
    assert desc.status == ds.DATASET_STATUS_CREATE_COMPLETE
    assert desc.status_message_code == ds.DATASET_STATUS_MESSAGE_CODE_SUCCESS
    assert desc.dataset_stats.total_entries == 0
    assert desc.creation_timestamp.seconds > 0 and desc.last_updated_timestamp.seconds > 0
    assert entries(stack, arn) == []


def test_create_dataset_from_a_manifest_imports_every_line(stack, images):
    project = new_project(stack)
    arn = cls_dataset(stack, project, images)
    desc = wait(stack, arn)
    assert (desc.dataset_stats.total_entries, desc.dataset_stats.labeled_entries) == (36, 36)
    assert (desc.dataset_stats.total_labels, desc.dataset_stats.error_entries) == (3, 0)
    assert desc.model_type == common.MODEL_TYPE_IMAGE_CLASSIFICATION
    assert labels(stack, arn) == {"cat": (12, 0), "dog": (12, 0), "fox": (12, 0)}
    got = entries(stack, arn)
    assert len(got) == 36
    assert all(e["cl-metadata"] == {"is_labeled": True} and "cl-errors" not in e for e in got)
    # Lines keep their original source-ref.
    assert {e["source-ref"] for e in got} == {r for refs in images.values() for r in refs}


def test_create_dataset_status_is_visible_at_once_and_ends_complete(stack, images):
    project = new_project(stack)
    arn = create_from_lines(stack, project, [cls_line(r, "cat") for r in images["cat"]])
    first = stack.dataset.DescribeDataset(
        ds.DescribeDatasetRequest(dataset_arn=arn)
    ).dataset_description.status
    assert first in (ds.DATASET_STATUS_CREATE_IN_PROGRESS, ds.DATASET_STATUS_CREATE_COMPLETE)
    assert wait(stack, arn).status == ds.DATASET_STATUS_CREATE_COMPLETE


def test_a_second_dataset_of_one_type_is_refused(stack):
    project = new_project(stack)
    request = ds.CreateDatasetRequest(project_arn=project, dataset_type=ds.DATASET_TYPE_TRAIN)
    stack.dataset.CreateDataset(request)
    expect_error(
        lambda: stack.dataset.CreateDataset(request),
        grpc.StatusCode.ALREADY_EXISTS,
        "ResourceAlreadyExistsException",
    )


def test_create_dataset_checks_its_arguments(stack):
    project = new_project(stack)
    ghost = arns.project_arn("local", "000000000000", f"ghost-{uuid.uuid4().hex[:6]}", 1)
    manifest = ds.DatasetSource(
        ground_truth_manifest={"s3_object": {"bucket": "nobucket-here", "name": "x.manifest"}}
    )
    cases = [
        (
            ds.CreateDatasetRequest(project_arn="bad", dataset_type=ds.DATASET_TYPE_TRAIN),
            INVALID,
            "InvalidParameterException",
        ),
        (
            ds.CreateDatasetRequest(project_arn=ghost, dataset_type=ds.DATASET_TYPE_TRAIN),
            grpc.StatusCode.NOT_FOUND,
            "ResourceNotFoundException",
        ),
        (ds.CreateDatasetRequest(project_arn=project), INVALID, "InvalidParameterException"),
        (
            ds.CreateDatasetRequest(
                project_arn=project, dataset_type=ds.DATASET_TYPE_TRAIN, dataset_source=ds.DatasetSource()
            ),
            INVALID,
            "InvalidParameterException",
        ),
        (
            ds.CreateDatasetRequest(
                project_arn=project,
                dataset_type=ds.DATASET_TYPE_TRAIN,
                dataset_source=ds.DatasetSource(
                    ground_truth_manifest=manifest.ground_truth_manifest, dataset_arn="arn:x"
                ),
            ),
            INVALID,
            "InvalidParameterException",
        ),
        (
            ds.CreateDatasetRequest(
                project_arn=project, dataset_type=ds.DATASET_TYPE_TRAIN, dataset_source=manifest
            ),
            INVALID,
            "InvalidS3ObjectException",
        ),
        (
            ds.CreateDatasetRequest(
                project_arn=project,
                dataset_type=ds.DATASET_TYPE_TRAIN,
                dataset_source=ds.DatasetSource(
                    dataset_arn=arns.dataset_arn("local", "000000000000", "zz", "train", 1)
                ),
            ),
            grpc.StatusCode.NOT_FOUND,
            "ResourceNotFoundException",
        ),
        (
            ds.CreateDatasetRequest(
                project_arn=project, dataset_type=ds.DATASET_TYPE_TRAIN, tags={"aws:x": "y"}
            ),
            INVALID,
            "InvalidParameterException",
        ),
    ]
    for request, code, name in cases:
        expect_error(lambda request=request: stack.dataset.CreateDataset(request), code, name)
    # Nothing was created by the refused calls.
    (described,) = stack.project.DescribeProjects(
        pj.DescribeProjectsRequest(project_names=[project.split("/")[1]])
    ).project_descriptions
    assert list(described.datasets) == []


def test_create_dataset_tags_are_stored_with_the_project_service(stack):
    project = new_project(stack)
    arn = stack.dataset.CreateDataset(
        ds.CreateDatasetRequest(
            project_arn=project, dataset_type=ds.DATASET_TYPE_TRAIN, tags={"stage": "raw"}
        )
    ).dataset_arn
    assert dict(stack.project.ListTagsForResource(pj.ListTagsForResourceRequest(resource_arn=arn)).tags) == {
        "stage": "raw"
    }
    stack.project.TagResource(pj.TagResourceRequest(resource_arn=arn, tags={"more": "x"}))
    assert len(stack.project.ListTagsForResource(pj.ListTagsForResourceRequest(resource_arn=arn)).tags) == 2


def test_copying_a_dataset_copies_its_entries(stack, images):
    project = new_project(stack)
    source = cls_dataset(stack, project, images, per_label=4)
    other = new_project(stack)
    copy = stack.dataset.CreateDataset(
        ds.CreateDatasetRequest(
            project_arn=other,
            dataset_type=ds.DATASET_TYPE_TEST,
            dataset_source=ds.DatasetSource(dataset_arn=source),
        )
    ).dataset_arn
    assert wait(stack, copy).status == ds.DATASET_STATUS_CREATE_COMPLETE
    assert entries(stack, copy) == entries(stack, source)
    assert labels(stack, copy) == labels(stack, source)


def test_describe_projects_lists_the_datasets_and_delete_project_is_refused_while_they_exist(stack):
    project = new_project(stack)
    name = project.split("/")[1]
    train = stack.dataset.CreateDataset(
        ds.CreateDatasetRequest(project_arn=project, dataset_type=ds.DATASET_TYPE_TRAIN)
    ).dataset_arn
    (described,) = stack.project.DescribeProjects(
        pj.DescribeProjectsRequest(project_names=[name])
    ).project_descriptions
    assert [(d.dataset_arn, d.dataset_type, d.status) for d in described.datasets] == [
        (train, ds.DATASET_TYPE_TRAIN, ds.DATASET_STATUS_CREATE_COMPLETE)
    ]
    expect_error(
        lambda: stack.project.DeleteProject(pj.DeleteProjectRequest(project_arn=project)),
        PRECONDITION,
        "ResourceInUseException",
    )
    stack.dataset.DeleteDataset(ds.DeleteDatasetRequest(dataset_arn=train))
    stack.project.DeleteProject(pj.DeleteProjectRequest(project_arn=project))
    assert (
        list(
            stack.project.DescribeProjects(
                pj.DescribeProjectsRequest(project_names=[name])
            ).project_descriptions
        )
        == []
    )


# -- terminal and non-terminal errors ----------------------------------------------------------------


def test_too_many_invalid_lines_fail_the_dataset_with_no_entries(stack, images):
    project = new_project(stack)
    good = [cls_line(r, "cat") for r in images["cat"][:6]]
    bad = ["{not json", "[]", '{"no-source-ref": 1}']
    arn = create_from_lines(stack, project, good + bad)  # 3 of 9 lines (33 %) are invalid
    desc = wait(stack, arn)
    assert desc.status == ds.DATASET_STATUS_CREATE_FAILED
    assert desc.status_message.startswith("ERROR_TOO_MANY_RECORDS_IN_ERROR")
    assert desc.status_message_code == ds.DATASET_STATUS_MESSAGE_CODE_CLIENT_ERROR
    expect_error(
        lambda: stack.dataset.ListDatasetEntries(ds.ListDatasetEntriesRequest(dataset_arn=arn)),
        PRECONDITION,
        "ResourceNotReadyException",
    )
    expect_error(
        lambda: stack.dataset.UpdateDatasetEntries(
            ds.UpdateDatasetEntriesRequest(
                dataset_arn=arn, changes=ds.DatasetChanges(ground_truth=good[0].encode())
            )
        ),
        PRECONDITION,
        "ResourceInUseException",
    )


def test_a_few_invalid_lines_are_dropped_within_the_20_percent_tolerance(stack, images):
    project = new_project(stack)
    good = [cls_line(r, label) for label in ("cat", "dog") for r in images[label][:6]]
    arn = create_from_lines(stack, project, [*good, "{broken", good[0]])  # a broken line and a duplicate
    desc = wait(stack, arn)
    assert desc.status == ds.DATASET_STATUS_CREATE_COMPLETE
    assert desc.dataset_stats.total_entries == 12


def test_a_manifest_that_is_not_json_lines_fails_the_dataset(stack):
    project = new_project(stack)
    key = f"{uuid.uuid4().hex}.manifest.gz"
    import gzip

    put(stack.store, "manifests", key, gzip.compress(b"\0" * 10_000_000))
    arn = stack.dataset.CreateDataset(
        ds.CreateDatasetRequest(
            project_arn=project,
            dataset_type=ds.DATASET_TYPE_TRAIN,
            dataset_source=ds.DatasetSource(
                ground_truth_manifest={"s3_object": {"bucket": "manifests", "name": key}}
            ),
        )
    ).dataset_arn
    desc = wait(stack, arn)
    assert desc.status == ds.DATASET_STATUS_CREATE_FAILED
    assert desc.status_message.startswith("ERROR_")


def test_more_than_250_labels_fail_the_dataset(stack):
    project = new_project(stack)
    bucket = f"lbl-{uuid.uuid4().hex[:8]}"
    lines = [
        cls_line(put(stack.store, bucket, f"{i}.jpg", jpeg(64, 64, seed=9000 + i)), f"label{i}")
        for i in range(251)
    ]
    arn = create_from_lines(stack, project, lines)
    desc = wait(stack, arn, timeout=120)
    assert desc.status == ds.DATASET_STATUS_CREATE_FAILED
    assert desc.status_message.startswith("ERROR_MANIFEST_TOO_MANY_LABELS")


def test_bad_images_and_boxes_are_kept_with_their_errors(stack):
    project = new_project(stack)
    bucket = f"bad-{uuid.uuid4().hex[:8]}"
    ok = put(stack.store, bucket, "ok.jpg", jpeg(seed=1))
    good = [
        box_line(put(stack.store, bucket, f"g{i}.jpg", jpeg(seed=10 + i)), [("car", 10, 10, 50, 40)])
        for i in range(20)
    ]
    not_image = put(stack.store, bucket, "text.jpg", b"this is not an image at all")
    tiny = put(stack.store, bucket, "tiny.png", png(1, 1))
    truncated = put(stack.store, bucket, "cut.jpg", jpeg(seed=2)[:400])
    off_frame = box_line(ok, [("car", 150, 10, 50, 40), ("car", 10, 10, 20, 20)])
    lines = [
        *good,
        off_frame,
        cls_line(not_image, "car"),
        cls_line(tiny, "car"),
        cls_line(truncated, "car"),
        cls_line(f"s3://{bucket}/missing.jpg", "car"),
    ]
    arn = create_from_lines(stack, project, lines)
    desc = wait(stack, arn)
    assert desc.status == ds.DATASET_STATUS_CREATE_COMPLETE, desc.status_message
    with_errors = {e["source-ref"]: e for e in entries(stack, arn, has_errors=True)}
    assert set(with_errors) == {ok, not_image, tiny, truncated, f"s3://{bucket}/missing.jpg"}
    assert desc.dataset_stats.error_entries == 5
    for ref in (not_image, tiny, truncated, f"s3://{bucket}/missing.jpg"):
        assert "ERROR_INVALID_IMAGE" in json.dumps(with_errors[ref]["cl-errors"])
    boxes = with_errors[ok]["bb"]["annotations"]
    assert "ERROR_INVALID_BOUNDING_BOX" in json.dumps(boxes[0]) and "cl-errors" not in boxes[1]
    # The valid box still counts.
    # Entries with image errors still carry their label; only valid boxes count as boxes.
    assert labels(stack, arn)["car"] == (25, 21)


def test_path_tricks_in_source_refs_are_dropped(stack, images):
    project = new_project(stack)
    good = [cls_line(r, label) for label in ("cat", "dog") for r in images[label]]
    bucket = images["cat"][0].split("/")[2]
    tricks = [cls_line(f"s3://{bucket}/../etc/passwd", "cat"), cls_line("https://example.com/a.jpg", "cat")]
    arn = create_from_lines(stack, project, good + tricks)
    assert wait(stack, arn).status == ds.DATASET_STATUS_CREATE_COMPLETE
    refs = {e["source-ref"] for e in entries(stack, arn)}
    assert len(refs) == 24 and not any(".." in r or r.startswith("https") for r in refs)


def test_imported_images_survive_changes_to_their_sources(stack):
    project = new_project(stack)
    bucket = f"mut-{uuid.uuid4().hex[:8]}"
    refs = [put(stack.store, bucket, f"{i}.jpg", jpeg(seed=500 + i)) for i in range(4)]
    refs.append(put(stack.store, bucket, "dup.jpg", jpeg(seed=500)))  # same bytes as 0.jpg
    arn = create_from_lines(stack, project, [cls_line(r, "a" if i % 2 else "b") for i, r in enumerate(refs)])
    assert wait(stack, arn).status == ds.DATASET_STATUS_CREATE_COMPLETE
    stored = stack.store.list_keys(stack.images_bucket, "sha256/")
    before = {k: stack.store.get_bytes(stack.images_bucket, k) for k in stored}
    for i in range(4):
        stack.store.put_bytes(bucket, f"{i}.jpg", b"overwritten")
    stack.store.delete(bucket, "dup.jpg")
    assert {k: stack.store.get_bytes(stack.images_bucket, k) for k in stored} == before
    exported = list(stack.dataset.ExportDatasetEntries(ds.ExportDatasetEntriesRequest(dataset_arn=arn)))
    keys = {e.image.name for batch in exported for e in batch.entries}
    assert len(keys) == 4  # five entries, four distinct images
    assert all(stack.store.get_bytes(stack.images_bucket, k)[:2] == b"\xff\xd8" for k in keys)


# -- ListDatasetEntries / ListDatasetLabels -------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed(stack, images) -> str:
    """A dataset with 36 labeled images, 3 unlabeled ones and one entry with an error."""
    project = new_project(stack)
    lines = [cls_line(r, label) for label, refs in images.items() for r in refs]
    bucket = images["cat"][0].split("/")[2]
    lines += [
        json.dumps({"source-ref": put(stack.store, bucket, f"free/{i}.jpg", jpeg(seed=700 + i))})
        for i in range(3)
    ]
    lines.append(cls_line(put(stack.store, bucket, "free/broken.jpg", b"GIF89a-not-ok"), "cat"))
    arn = create_from_lines(stack, project, lines)
    assert wait(stack, arn).status == ds.DATASET_STATUS_CREATE_COMPLETE
    return arn


def test_list_dataset_entries_filters_combine(stack, mixed):
    assert len(entries(stack, mixed)) == 40
    assert len(entries(stack, mixed, contains_labels=["cat"])) == 13
    assert len(entries(stack, mixed, contains_labels=["cat", "dog"])) == 25
    assert len(entries(stack, mixed, labeled=True)) == 37
    assert len(entries(stack, mixed, labeled=False)) == 3
    assert len(entries(stack, mixed, has_errors=True)) == 1
    assert len(entries(stack, mixed, has_errors=False)) == 40  # false does not invert
    assert len(entries(stack, mixed, source_ref_contains="/free/")) == 4
    assert len(entries(stack, mixed, source_ref_contains="/free/", labeled=True)) == 1
    assert entries(stack, mixed, contains_labels=["nope"]) == []
    # The text is matched literally: LIKE wildcards in it match nothing here.
    assert entries(stack, mixed, source_ref_contains="%") == []
    assert entries(stack, mixed, source_ref_contains="_") == []


def test_list_dataset_entries_pages_in_source_ref_order(stack, mixed):
    refs, token, pages = [], "", 0
    while True:
        page = stack.dataset.ListDatasetEntries(
            ds.ListDatasetEntriesRequest(dataset_arn=mixed, max_results=7, next_token=token)
        )
        refs += [json.loads(e)["source-ref"] for e in page.dataset_entries]
        pages += 1
        token = page.next_token
        if not token:
            break
    assert pages == 6 and refs == sorted(refs) and len(set(refs)) == 40


def test_list_dataset_entries_refuses_bad_arguments(stack, mixed):
    page = stack.dataset.ListDatasetEntries(ds.ListDatasetEntriesRequest(dataset_arn=mixed, max_results=1))
    bad = [
        (ds.ListDatasetEntriesRequest(dataset_arn=mixed, max_results=0), "InvalidParameterException"),
        (ds.ListDatasetEntriesRequest(dataset_arn=mixed, max_results=101), "InvalidParameterException"),
        (
            ds.ListDatasetEntriesRequest(dataset_arn=mixed, contains_labels=[f"l{i}" for i in range(11)]),
            "InvalidParameterException",
        ),
        (ds.ListDatasetEntriesRequest(dataset_arn=mixed, contains_labels=[""]), "InvalidParameterException"),
        (
            ds.ListDatasetEntriesRequest(dataset_arn=mixed, source_ref_contains="   "),
            "InvalidParameterException",
        ),
        (
            ds.ListDatasetEntriesRequest(dataset_arn=mixed, source_ref_contains="x" * 2049),
            "InvalidParameterException",
        ),
        (
            ds.ListDatasetEntriesRequest(dataset_arn=mixed, next_token="forged"),
            "InvalidPaginationTokenException",
        ),
        (
            ds.ListDatasetEntriesRequest(dataset_arn=mixed, labeled=True, next_token=page.next_token),
            "InvalidPaginationTokenException",
        ),
        (ds.ListDatasetEntriesRequest(dataset_arn="arn:nope"), "InvalidParameterException"),
    ]
    for request, name in bad:
        expect_error(lambda request=request: stack.dataset.ListDatasetEntries(request), INVALID, name)
    ghost = arns.dataset_arn("local", "000000000000", "ghost", "train", 1)
    expect_error(
        lambda: stack.dataset.ListDatasetEntries(ds.ListDatasetEntriesRequest(dataset_arn=ghost)),
        grpc.StatusCode.NOT_FOUND,
        "ResourceNotFoundException",
    )


def test_list_dataset_labels_pages_and_counts_boxes(stack):
    project = new_project(stack)
    bucket = f"det-{uuid.uuid4().hex[:8]}"
    lines = [
        box_line(
            put(stack.store, bucket, f"{i}.jpg", jpeg(seed=800 + i)),
            [("car", 10, 10, 40, 30), ("car", 60, 20, 40, 30)] + ([("bus", 5, 50, 60, 40)] if i % 2 else []),
        )
        for i in range(6)
    ]
    arn = create_from_lines(stack, project, lines)
    desc = wait(stack, arn)
    assert desc.model_type == common.MODEL_TYPE_OBJECT_LOCALIZATION
    assert labels(stack, arn) == {"bus": (3, 3), "car": (6, 6)}
    first = stack.dataset.ListDatasetLabels(ds.ListDatasetLabelsRequest(dataset_arn=arn, max_results=1))
    assert [d.label_name for d in first.dataset_label_descriptions] == ["bus"] and first.next_token
    expect_error(
        lambda: stack.dataset.ListDatasetLabels(ds.ListDatasetLabelsRequest(dataset_arn=arn, max_results=0)),
        INVALID,
        "InvalidParameterException",
    )


# -- UpdateDatasetEntries ------------------------------------------------------------------------------


def test_update_dataset_entries_adds_and_replaces_by_source_ref(stack, images):
    project = new_project(stack)
    arn = cls_dataset(stack, project, {"cat": images["cat"][:3]})
    changes = "\n".join([cls_line(images["cat"][0], "lion"), cls_line(images["dog"][0], "dog")]).encode()
    stack.dataset.UpdateDatasetEntries(
        ds.UpdateDatasetEntriesRequest(dataset_arn=arn, changes=ds.DatasetChanges(ground_truth=changes))
    )
    desc = wait(stack, arn)
    assert desc.status == ds.DATASET_STATUS_UPDATE_COMPLETE
    assert labels(stack, arn) == {"cat": (2, 0), "dog": (1, 0), "lion": (1, 0)}
    assert desc.dataset_stats.total_entries == 4


def test_update_dataset_entries_checks_size_and_state(stack, images):
    project = new_project(stack)
    arn = cls_dataset(stack, project, {"cat": images["cat"][:2]})
    expect_error(
        lambda: stack.dataset.UpdateDatasetEntries(
            ds.UpdateDatasetEntriesRequest(dataset_arn=arn, changes=ds.DatasetChanges(ground_truth=b""))
        ),
        INVALID,
        "InvalidParameterException",
    )
    expect_error(
        lambda: stack.dataset.UpdateDatasetEntries(
            ds.UpdateDatasetEntriesRequest(
                dataset_arn=arn, changes=ds.DatasetChanges(ground_truth=b"{" + b" " * 5_242_880 + b"}")
            )
        ),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "LimitExceededException",
    )


def test_concurrent_updates_lose_no_accepted_line(stack, images):
    project = new_project(stack)
    arn = cls_dataset(stack, project, {"cat": images["cat"][:1]})
    accepted: list[str] = []
    refused: list[str] = []
    barrier = threading.Barrier(6)

    def update(i: int) -> None:
        ref = images["dog"][i]
        barrier.wait()
        try:
            stack.dataset.UpdateDatasetEntries(
                ds.UpdateDatasetEntriesRequest(
                    dataset_arn=arn, changes=ds.DatasetChanges(ground_truth=cls_line(ref, "dog").encode())
                )
            )
            accepted.append(ref)
        except grpc.RpcError as exc:
            assert exc.code() == PRECONDITION
            refused.append(ref)

    threads = [threading.Thread(target=update, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(accepted) >= 1 and len(accepted) + len(refused) == 6
    wait(stack, arn)
    # Refused callers retry, as a client would, until their update is taken.
    for ref in refused:
        while True:
            try:
                stack.dataset.UpdateDatasetEntries(
                    ds.UpdateDatasetEntriesRequest(
                        dataset_arn=arn, changes=ds.DatasetChanges(ground_truth=cls_line(ref, "dog").encode())
                    )
                )
                break
            except grpc.RpcError:
                wait(stack, arn)
        wait(stack, arn)
    assert {e["source-ref"] for e in entries(stack, arn)} == {images["cat"][0], *images["dog"][:6]}


# -- DistributeDatasetEntries ----------------------------------------------------------------------------


def test_distribute_moves_a_stratified_fifth_to_the_empty_test_dataset(stack, images):
    project = new_project(stack)
    train = cls_dataset(stack, project, images, per_label=10)
    test = stack.dataset.CreateDataset(
        ds.CreateDatasetRequest(project_arn=project, dataset_type=ds.DATASET_TYPE_TEST)
    ).dataset_arn
    stack.dataset.DistributeDatasetEntries(
        ds.DistributeDatasetEntriesRequest(
            datasets=[ds.DistributeDataset(arn=train), ds.DistributeDataset(arn=test)]
        )
    )
    assert wait(stack, train).status == ds.DATASET_STATUS_UPDATE_COMPLETE
    assert wait(stack, test).status == ds.DATASET_STATUS_UPDATE_COMPLETE
    assert labels(stack, train) == {"cat": (8, 0), "dog": (8, 0), "fox": (8, 0)}
    assert labels(stack, test) == {"cat": (2, 0), "dog": (2, 0), "fox": (2, 0)}
    train_refs = {e["source-ref"] for e in entries(stack, train)}
    assert not train_refs & {e["source-ref"] for e in entries(stack, test)}


def test_distribute_checks_its_datasets(stack, images):
    project = new_project(stack)
    train = cls_dataset(stack, project, {"cat": images["cat"][:5], "dog": images["dog"][:1]})
    test = stack.dataset.CreateDataset(
        ds.CreateDatasetRequest(project_arn=project, dataset_type=ds.DATASET_TYPE_TEST)
    ).dataset_arn
    for datasets in ([train], [train, train], [train, test, test]):
        expect_error(
            lambda datasets=datasets: stack.dataset.DistributeDatasetEntries(
                ds.DistributeDatasetEntriesRequest(datasets=[ds.DistributeDataset(arn=a) for a in datasets])
            ),
            INVALID,
            "InvalidParameterException",
        )
    # One dog image cannot be on both sides.
    stack.dataset.DistributeDatasetEntries(
        ds.DistributeDatasetEntriesRequest(
            datasets=[ds.DistributeDataset(arn=test), ds.DistributeDataset(arn=train)]
        )
    )
    desc = wait(stack, train)
    assert desc.status == ds.DATASET_STATUS_UPDATE_FAILED
    assert desc.status_message.startswith("ERROR_INSUFFICIENT_IMAGES_PER_LABEL_FOR_DISTRIBUTE")
    assert wait(stack, test).status == ds.DATASET_STATUS_UPDATE_FAILED
    assert len(entries(stack, train)) == 6  # nothing moved


# -- DeleteDataset -------------------------------------------------------------------------------------


def test_delete_dataset_removes_it_and_its_entries(stack, images):
    project = new_project(stack)
    arn = cls_dataset(stack, project, {"cat": images["cat"][:2]})
    stack.dataset.DeleteDataset(ds.DeleteDatasetRequest(dataset_arn=arn))
    expect_error(
        lambda: stack.dataset.DescribeDataset(ds.DescribeDatasetRequest(dataset_arn=arn)),
        grpc.StatusCode.NOT_FOUND,
        "ResourceNotFoundException",
    )
    expect_error(
        lambda: stack.dataset.DeleteDataset(ds.DeleteDatasetRequest(dataset_arn=arn)),
        grpc.StatusCode.NOT_FOUND,
        "ResourceNotFoundException",
    )
    # A new TRAIN dataset can take its place.
    stack.dataset.CreateDataset(
        ds.CreateDatasetRequest(project_arn=project, dataset_type=ds.DATASET_TYPE_TRAIN)
    )


def test_delete_dataset_is_refused_while_it_is_being_created(stack):
    project = new_project(stack)
    bucket = f"slow-{uuid.uuid4().hex[:8]}"
    lines = [
        cls_line(put(stack.store, bucket, f"{i}.jpg", jpeg(320, 240, seed=2000 + i)), f"l{i % 2}")
        for i in range(150)
    ]
    arn = create_from_lines(stack, project, lines)
    expect_error(
        lambda: stack.dataset.DeleteDataset(ds.DeleteDatasetRequest(dataset_arn=arn)),
        PRECONDITION,
        "ResourceInUseException",
    )
    assert wait(stack, arn, timeout=120).status == ds.DATASET_STATUS_CREATE_COMPLETE
    stack.dataset.DeleteDataset(ds.DeleteDatasetRequest(dataset_arn=arn))


def test_a_test_dataset_sharing_too_few_labels_with_train_gets_a_warning(stack, images):
    project = new_project(stack)
    cls_dataset(stack, project, images, per_label=2)
    test = create_from_lines(
        stack, project, [cls_line(r, "fox") for r in images["fox"][:2]], ds.DATASET_TYPE_TEST
    )
    desc = wait(stack, test)
    assert desc.status == ds.DATASET_STATUS_CREATE_COMPLETE
    assert "ERROR_INSUFFICIENT_LABEL_OVERLAP" in desc.status_message and "33%" in desc.status_message
