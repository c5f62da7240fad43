"""The whole Custom Labels workflow through boto3, unchanged, against the edge and the real services.

Create a project, upload images and manifests with boto3's S3 client, create the datasets, train
(with botocore's `project_version_training_completed` waiter), read versions and projects with
botocore's paginators, start (the `project_version_running` waiter), detect with Bytes and with
S3Object, the errors of detection, stop, delete. The training worker runs in-process; serving runs its model on the
session's Triton.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import WaiterError

from scripts import samples
from tests.edge.util import raises
from tests.helpers import training_worker

pytestmark = pytest.mark.slow

LABELS = {"circle", "square", "triangle"}
FAST_WAIT = {"Delay": 1, "MaxAttempts": 600}


@pytest.fixture(scope="module")
def worker(stack: Any, database_url: str) -> Iterator[None]:
    """One training worker, in-process, on the module's database and object store."""
    with training_worker(stack, database_url):
        yield


def poll(describe: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 120) -> Any:
    """Calls `describe` until `done(result)`, as the guide's samples poll (no waiter exists for these)."""
    deadline = time.monotonic() + timeout
    while True:
        result = describe()
        if done(result):
            return result
        assert time.monotonic() < deadline, f"still {result}"
        time.sleep(0.5)


def detect(rekognition: Any, version: str, image: bytes) -> Any:
    """DetectCustomLabels on image bytes, every label."""
    return rekognition.detect_custom_labels(
        ProjectVersionArn=version, Image={"Bytes": image}, MinConfidence=0
    )


def wait(rekognition: Any, waiter: str, project: str) -> None:
    """Runs botocore's waiter on version v1; a failure shows the version's StatusMessage."""
    try:
        rekognition.get_waiter(waiter).wait(ProjectArn=project, VersionNames=["v1"], WaiterConfig=FAST_WAIT)
    except WaiterError as exc:
        (version,) = rekognition.describe_project_versions(ProjectArn=project, VersionNames=["v1"])[
            "ProjectVersionDescriptions"
        ]
        pytest.fail(f"{waiter}: {exc}; {version['Status']}: {version.get('StatusMessage')}")


def upload_dataset(s3: Any, bucket: str, prefix: str, items: list[samples.Sample]) -> str:
    """Puts the images and their manifest with boto3's S3 client; returns the manifest's key."""
    lines = []
    for item in items:
        key = f"{prefix}/{item.file_name}"
        s3.put_object(Bucket=bucket, Key=key, Body=item.data, ContentType="image/jpeg")
        lines.append(samples.manifest_line(f"s3://{bucket}/{key}", item))
    manifest = f"{prefix}.manifest"
    s3.put_object(Bucket=bucket, Key=manifest, Body="\n".join(lines).encode())
    return manifest


def test_boto3_runs_the_custom_labels_workflow_unchanged(
    rekognition: Any, s3_server: Any, worker: None, unique: str
) -> None:
    s3 = boto3.session.Session().client(
        "s3",
        endpoint_url=s3_server.endpoint,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
        region_name="us-east-1",
    )
    bucket = f"workflow-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    train_items = samples.classification(per_label=10, seed=31)
    train_manifest = upload_dataset(s3, bucket, "train", train_items)
    test_manifest = upload_dataset(s3, bucket, "test", samples.classification(per_label=4, seed=32))

    # Project and datasets.
    name = f"workflow-{unique}"
    project = rekognition.create_project(ProjectName=name, Tags={"team": "vision"})["ProjectArn"]
    assert rekognition.list_tags_for_resource(ResourceArn=project)["Tags"] == {"team": "vision"}
    datasets = {}
    for kind, manifest in (("TRAIN", train_manifest), ("TEST", test_manifest)):
        datasets[kind] = rekognition.create_dataset(
            ProjectArn=project,
            DatasetType=kind,
            DatasetSource={"GroundTruthManifest": {"S3Object": {"Bucket": bucket, "Name": manifest}}},
        )["DatasetArn"]
    for kind, arn in datasets.items():
        described = poll(
            lambda arn=arn: rekognition.describe_dataset(DatasetArn=arn)["DatasetDescription"],
            lambda d: d["Status"] != "CREATE_IN_PROGRESS",
        )
        assert described["Status"] == "CREATE_COMPLETE", described["StatusMessage"]
        assert isinstance(described["CreationTimestamp"], datetime)
        assert described["DatasetStats"]["LabeledEntries"] == (30 if kind == "TRAIN" else 12)
    entries = [
        json.loads(entry)
        for page in rekognition.get_paginator("list_dataset_entries").paginate(
            DatasetArn=datasets["TRAIN"], PaginationConfig={"PageSize": 7}
        )
        for entry in page["DatasetEntries"]
    ]
    assert len(entries) == 30 and len({e["source-ref"] for e in entries}) == 30
    labels = rekognition.list_dataset_labels(DatasetArn=datasets["TRAIN"])["DatasetLabelDescriptions"]
    assert {label["LabelName"] for label in labels} == LABELS

    # Training, with the waiter AWS's own samples use.
    version = rekognition.create_project_version(
        ProjectArn=project,
        VersionName="v1",
        OutputConfig={"S3Bucket": bucket, "S3KeyPrefix": "output/"},
        Tags={"stage": "test"},
    )["ProjectVersionArn"]
    wait(rekognition, "project_version_training_completed", project)
    versions = [
        description
        for page in rekognition.get_paginator("describe_project_versions").paginate(
            ProjectArn=project, PaginationConfig={"PageSize": 1}
        )
        for description in page["ProjectVersionDescriptions"]
    ]
    assert [v["ProjectVersionArn"] for v in versions] == [version]
    trained = versions[0]
    assert trained["Status"] == "TRAINING_COMPLETED", trained["StatusMessage"]
    assert 0 <= trained["EvaluationResult"]["F1Score"] <= 1
    assert trained["TrainingEndTimestamp"] >= trained["CreationTimestamp"]
    summary = trained["EvaluationResult"]["Summary"]["S3Object"]
    assert json.loads(s3.get_object(Bucket=summary["Bucket"], Key=summary["Name"])["Body"].read())
    assert rekognition.list_tags_for_resource(ResourceArn=version)["Tags"] == {"stage": "test"}
    projects = [
        description
        for page in rekognition.get_paginator("describe_projects").paginate(PaginationConfig={"PageSize": 1})
        for description in page["ProjectDescriptions"]
    ]
    (mine,) = [p for p in projects if p["ProjectArn"] == project]
    assert {d["DatasetType"] for d in mine["Datasets"]} == {"TRAIN", "TEST"}

    # Start, detect with Bytes and with S3Object, stop.
    started = rekognition.start_project_version(ProjectVersionArn=version, MinInferenceUnits=1)
    assert started["Status"] in ("STARTING", "RUNNING")
    wait(rekognition, "project_version_running", project)
    probe = samples.classification(per_label=1, seed=33)[0]
    by_bytes = rekognition.detect_custom_labels(
        ProjectVersionArn=version, Image={"Bytes": probe.data}, MinConfidence=0
    )["CustomLabels"]
    assert {label["Name"] for label in by_bytes} <= LABELS and by_bytes
    assert all(0 <= label["Confidence"] <= 100 for label in by_bytes)
    assert [label["Confidence"] for label in by_bytes] == sorted(
        (label["Confidence"] for label in by_bytes), reverse=True
    )
    key = f"train/{train_items[0].file_name}"
    by_s3 = rekognition.detect_custom_labels(
        ProjectVersionArn=version,
        Image={"S3Object": {"Bucket": bucket, "Name": key}},
        MaxResults=1,
        MinConfidence=0,
    )["CustomLabels"]
    assert len(by_s3) == 1 and by_s3[0]["Name"] in LABELS
    # What DetectCustomLabels refuses, as AWS names it.
    raises("InvalidImageFormatException", lambda: detect(rekognition, version, b"not an image at all" * 8))
    raises(
        "ImageTooLargeException", lambda: detect(rekognition, version, probe.data + b"\0" * (4 * 1024 * 1024))
    )
    raises("ResourceInUseException", lambda: rekognition.delete_project_version(ProjectVersionArn=version))

    stopping = rekognition.stop_project_version(ProjectVersionArn=version)
    assert stopping["Status"] in ("STOPPING", "STOPPED")
    poll(
        lambda: rekognition.describe_project_versions(ProjectArn=project, VersionNames=["v1"]),
        lambda r: r["ProjectVersionDescriptions"][0]["Status"] == "STOPPED",
    )

    raises("ResourceNotReadyException", lambda: detect(rekognition, version, probe.data))

    # Delete everything, polling as the guide's samples do.
    assert rekognition.delete_project_version(ProjectVersionArn=version)["Status"] == "DELETING"
    poll(
        lambda: rekognition.describe_project_versions(ProjectArn=project, VersionNames=["v1"]),
        lambda r: not r["ProjectVersionDescriptions"],
    )
    for arn in datasets.values():
        rekognition.delete_dataset(DatasetArn=arn)
    poll(
        lambda: rekognition.describe_projects(ProjectNames=[name])["ProjectDescriptions"][0],
        lambda p: not p["Datasets"],
    )
    assert rekognition.delete_project(ProjectArn=project)["Status"] == "DELETING"
    poll(
        lambda: rekognition.describe_projects(ProjectNames=[name]),
        lambda r: not r["ProjectDescriptions"],
    )
