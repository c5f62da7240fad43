"""The training service's version operations over real gRPC: creation checks, snapshots, listing,
deletion, copies and the run-state calls of the serving service (training itself: test_worker.py)."""

from __future__ import annotations

import json
import uuid

import grpc
import pytest
from customlabels.common.v1 import types_pb2 as common
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.project.v1 import project_service_pb2 as pj
from customlabels.training.v1 import training_service_pb2 as tr

from services.common import arn as arns
from tests.dataset.util import cls_line, create_from_lines, jpeg, new_project, put, wait
from tests.helpers import expect_error

INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


@pytest.fixture(scope="module")
def refs(stack) -> dict[str, list[str]]:
    bucket = f"tr-{uuid.uuid4().hex[:8]}"
    return {
        label: [put(stack.store, bucket, f"{label}/{i}.jpg", jpeg(seed=7000 + 50 * n + i)) for i in range(6)]
        for n, label in enumerate(("sun", "moon"))
    }


def project_with_datasets(stack, refs, test: bool = True) -> str:
    project = new_project(stack, "ver")
    train = create_from_lines(stack, project, [cls_line(r, lbl) for lbl, rs in refs.items() for r in rs[:4]])
    assert wait(stack, train).status == ds.DATASET_STATUS_CREATE_COMPLETE
    if test:
        t = create_from_lines(
            stack,
            project,
            [cls_line(r, lbl) for lbl, rs in refs.items() for r in rs[4:]],
            ds.DATASET_TYPE_TEST,
        )
        assert wait(stack, t).status == ds.DATASET_STATUS_CREATE_COMPLETE
    return project


def create(stack, project: str, name: str = "v1", **kwargs) -> str:
    request = tr.CreateProjectVersionRequest(
        project_arn=project,
        version_name=name,
        output_config=common.OutputConfig(s3_bucket="training-output", s3_key_prefix="runs/"),
        **kwargs,
    )
    return stack.training.CreateProjectVersion(request).project_version_arn


def describe(stack, project: str, *names: str) -> list[tr.ProjectVersionDescription]:
    return list(
        stack.training.DescribeProjectVersions(
            tr.DescribeProjectVersionsRequest(project_arn=project, version_names=names)
        ).project_version_descriptions
    )


def test_create_project_version_snapshots_the_datasets_and_queues_training(stack, refs):
    project = project_with_datasets(stack, refs)
    arn = create(stack, project, "v1", tags={"run": "1"}, version_description="first try (baseline)")
    assert arns.VERSION_ARN.match(arn) and "/version/v1/" in arn
    (desc,) = describe(stack, project, "v1")
    assert desc.status == tr.PROJECT_VERSION_STATUS_TRAINING_IN_PROGRESS
    assert desc.training_progress.phase == tr.TRAINING_PHASE_QUEUED
    assert (
        desc.output_config.s3_bucket == "training-output"
        and desc.version_description == "first try (baseline)"
    )
    assert desc.status_message
    assert dict(stack.project.ListTagsForResource(pj.ListTagsForResourceRequest(resource_arn=arn)).tags) == {
        "run": "1"
    }
    # The snapshot holds the entries as they were; later edits of the dataset do not touch it.
    snapshot = [
        k for k in stack.store.list_keys(stack.models_bucket, "versions/") if k.endswith("training.jsonl")
    ]
    lines = [
        json.loads(x) for x in stack.store.get_bytes(stack.models_bucket, snapshot[-1]).decode().splitlines()
    ]
    assert len(lines) == 8 and all(x["image"]["key"].startswith("sha256/") for x in lines)
    # A project with versions cannot be deleted.
    expect_error(
        lambda: stack.project.DeleteProject(pj.DeleteProjectRequest(project_arn=project)),
        PRECONDITION,
        "ResourceInUseException",
    )


def test_create_project_version_checks_its_inputs(stack, refs):
    project = project_with_datasets(stack, refs)
    no_test = project_with_datasets(stack, refs, test=False)
    empty = new_project(stack)
    ghost = arns.project_arn("local", "000000000000", f"ghost-{uuid.uuid4().hex[:6]}", 1)
    manifest = common.TrainingData(
        assets=[
            common.Asset(
                ground_truth_manifest=common.GroundTruthManifest(
                    s3_object=common.S3Object(bucket="manifests", name="x.manifest")
                )
            )
        ]
    )
    cases = [
        (lambda: create(stack, ghost), grpc.StatusCode.NOT_FOUND, "ResourceNotFoundException"),
        (lambda: create(stack, "nope"), INVALID, "InvalidParameterException"),
        (lambda: create(stack, project, "bad name"), INVALID, "InvalidParameterException"),
        (lambda: create(stack, project, "x" * 256), INVALID, "InvalidParameterException"),
        (
            lambda: stack.training.CreateProjectVersion(
                tr.CreateProjectVersionRequest(project_arn=project, version_name="v")
            ),
            INVALID,
            "InvalidParameterException",
        ),
        (
            lambda: stack.training.CreateProjectVersion(
                tr.CreateProjectVersionRequest(
                    project_arn=project,
                    version_name="v",
                    output_config=common.OutputConfig(s3_bucket="b!", s3_key_prefix=""),
                )
            ),
            INVALID,
            "InvalidParameterException",
        ),
        (
            lambda: create(stack, project, "v", version_description="no <html>"),
            INVALID,
            "InvalidParameterException",
        ),
        (lambda: create(stack, project, "v", kms_key_id="-bad"), INVALID, "InvalidParameterException"),
        (lambda: create(stack, project, "v", tags={"aws:x": "1"}), INVALID, "InvalidParameterException"),
        (lambda: create(stack, project, "v", training_data=manifest), INVALID, "InvalidParameterException"),
        (lambda: create(stack, no_test, "v"), INVALID, "InvalidParameterException"),
        (lambda: create(stack, empty, "v"), INVALID, "InvalidParameterException"),
        (lambda: create(stack, empty, "v", training_data=manifest), INVALID, "InvalidParameterException"),
        (
            lambda: create(
                stack,
                empty,
                "v",
                training_data=manifest,
                testing_data=common.TestingData(assets=manifest.assets, auto_create=True),
            ),
            INVALID,
            "InvalidParameterException",
        ),
    ]
    for call, code, name in cases:
        expect_error(call, code, name)
    assert describe(stack, project) == []


def test_a_version_name_is_unique_in_its_project(stack, refs):
    project = project_with_datasets(stack, refs)
    create(stack, project, "same")
    expect_error(lambda: create(stack, project, "same"), PRECONDITION, "ResourceInUseException")


def test_describe_project_versions_is_newest_first_and_pages(stack, refs):
    project = project_with_datasets(stack, refs)
    created = [create(stack, project, f"v{i}") for i in range(3)]
    arns_seen, token = [], ""
    while True:
        page = stack.training.DescribeProjectVersions(
            tr.DescribeProjectVersionsRequest(project_arn=project, max_results=2, next_token=token)
        )
        arns_seen += [d.project_version_arn for d in page.project_version_descriptions]
        token = page.next_token
        if not token:
            break
    assert arns_seen == created[::-1]
    assert [d.project_version_arn for d in describe(stack, project, "v1", "nope")] == [created[1]]
    for bad in (
        tr.DescribeProjectVersionsRequest(project_arn=project, max_results=0),
        tr.DescribeProjectVersionsRequest(project_arn=project, max_results=101),
        tr.DescribeProjectVersionsRequest(project_arn=project, version_names=[f"v{i}" for i in range(11)]),
    ):
        expect_error(
            lambda bad=bad: stack.training.DescribeProjectVersions(bad), INVALID, "InvalidParameterException"
        )
    expect_error(
        lambda: stack.training.DescribeProjectVersions(
            tr.DescribeProjectVersionsRequest(project_arn=project, next_token="forged")
        ),
        INVALID,
        "InvalidPaginationTokenException",
    )
    ghost = arns.project_arn("local", "000000000000", f"ghost-{uuid.uuid4().hex[:6]}", 1)
    expect_error(
        lambda: stack.training.DescribeProjectVersions(tr.DescribeProjectVersionsRequest(project_arn=ghost)),
        grpc.StatusCode.NOT_FOUND,
        "ResourceNotFoundException",
    )


def test_run_state_changes_are_compare_and_set_and_delete_respects_them(stack, refs):
    project = project_with_datasets(stack, refs)
    arn = create(stack, project, "v1")
    expect_error(
        lambda: stack.training.DeleteProjectVersion(tr.DeleteProjectVersionRequest(project_version_arn=arn)),
        PRECONDITION,
        "ResourceInUseException",
    )
    expect_error(
        lambda: stack.training.GetModelArtifact(tr.GetModelArtifactRequest(project_version_arn=arn)),
        PRECONDITION,
        "ResourceNotReadyException",
    )
    update = tr.UpdateVersionStatusRequest(
        project_version_arn=arn,
        status=tr.PROJECT_VERSION_STATUS_STARTING,
        expected_statuses=[tr.PROJECT_VERSION_STATUS_TRAINING_COMPLETED],
    )
    expect_error(lambda: stack.training.UpdateVersionStatus(update), PRECONDITION, "ResourceInUseException")
    expect_error(
        lambda: stack.training.UpdateVersionStatus(
            tr.UpdateVersionStatusRequest(
                project_version_arn=arn, status=tr.PROJECT_VERSION_STATUS_TRAINING_COMPLETED
            )
        ),
        INVALID,
        "InvalidParameterException",
    )
    # Any-state CAS (as serving's reconciliation may use) moves it; then it can be deleted.
    done = stack.training.UpdateVersionStatus(
        tr.UpdateVersionStatusRequest(
            project_version_arn=arn, status=tr.PROJECT_VERSION_STATUS_STOPPED, min_inference_units=2
        )
    )
    assert done.previous_status == tr.PROJECT_VERSION_STATUS_TRAINING_IN_PROGRESS
    assert describe(stack, project, "v1")[0].min_inference_units == 2
    assert (
        stack.training.DeleteProjectVersion(tr.DeleteProjectVersionRequest(project_version_arn=arn)).status
        == tr.PROJECT_VERSION_STATUS_DELETING
    )
    assert describe(stack, project) == []
    expect_error(
        lambda: stack.training.DeleteProjectVersion(tr.DeleteProjectVersionRequest(project_version_arn=arn)),
        grpc.StatusCode.NOT_FOUND,
        "ResourceNotFoundException",
    )


def test_copy_project_version_refuses_untrained_versions_and_unauthorised_accounts(stack, refs):
    project = project_with_datasets(stack, refs)
    arn = create(stack, project, "v1")
    other = new_project(stack)
    output = common.OutputConfig(s3_bucket="training-output", s3_key_prefix="copies/")
    expect_error(
        lambda: stack.training.CopyProjectVersion(
            tr.CopyProjectVersionRequest(
                source_project_arn=project,
                source_project_version_arn=arn,
                destination_project_arn=other,
                version_name="copy",
                output_config=output,
            )
        ),
        PRECONDITION,
        "ResourceInUseException",
    )
    foreign = arns.project_arn("local", "111122223333", other.split("/")[1], int(other.split("/")[-1]))
    expect_error(
        lambda: stack.training.CopyProjectVersion(
            tr.CopyProjectVersionRequest(
                source_project_arn=project,
                source_project_version_arn=arn,
                destination_project_arn=foreign,
                version_name="copy",
                output_config=output,
            )
        ),
        grpc.StatusCode.NOT_FOUND,
        "ResourceNotFoundException",
    )
    expect_error(
        lambda: stack.training.CopyProjectVersion(
            tr.CopyProjectVersionRequest(
                source_project_arn=other,
                source_project_version_arn=arn,
                destination_project_arn=other,
                version_name="copy",
                output_config=output,
            )
        ),
        INVALID,
        "InvalidParameterException",
    )
