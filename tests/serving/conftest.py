"""Session fixtures of the serving tests: one stack (project, dataset, training, serving in-process on
the session's Triton, which a watchdog restarts when a test kills it), one training worker, and one
classification and one detection model trained through the training service on generated images.

Training is the slow part, so it happens once per session; every serving test starts, uses and stops
these versions.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from customlabels.common.v1 import types_pb2 as common
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.serving.v1 import serving_service_pb2 as sv
from customlabels.training.v1 import training_service_pb2 as tr

from scripts import inprocess, samples
from scripts.inprocess import LocalServices
from services.common import db, modelio
from services.serving import app as serving_app
from services.serving.config import ServingSettings
from services.serving.repository import DeploymentRepository
from tests.dataset.util import create_from_lines, new_project, put, wait
from tests.helpers import training_worker

# Fast reconciliation and scaling, so recovery and auto-scaling show within seconds; a small unit
# quota so LimitExceededException is reachable; one Triton instance per unit keeps the test Triton light.
SETTINGS = ServingSettings(
    reconcile_s=0.5,
    scale_up_queue_ms=1.0,
    scale_down_idle_s=2.0,
    max_total_units=6,
    load_timeout_s=60,
    instances_per_unit=1,
)
OUTPUT_BUCKET = "serving-test-output"


@pytest.fixture(scope="session")
def serving_database(pg_server: str, _test_databases: Any) -> Iterator[str]:
    """A database for the serving tests' session stack, dropped at the end."""
    with _test_databases.fresh(pg_server, f"t_serving_{uuid.uuid4().hex[:8]}") as url:
        yield url


@pytest.fixture(scope="session")
def cloud(serving_database: str, s3_server: Any, triton_server: Any) -> Iterator[LocalServices]:
    """All four services in-process for the session, serving on the session's Triton."""
    services = inprocess.start(serving_database, s3_server, triton=triton_server, serving_settings=SETTINGS)
    services.store.ensure_bucket(OUTPUT_BUCKET)
    yield services
    services.stop()


@pytest.fixture(scope="session")
def worker(cloud: LocalServices, serving_database: str) -> Iterator[None]:
    """One training worker, in-process, with detection training capped at a few seconds."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CUSTOMLABELS_TRAINING_DETECTION_BUDGET_S", "8")
        with training_worker(cloud, serving_database, lease_s=60):
            yield


@dataclass(frozen=True)
class Trained:
    """A trained version and what a test needs to check its answers."""

    project_arn: str
    version_name: str
    version_arn: str
    onnx: bytes
    spec: modelio.ModelSpec
    images: list[samples.Sample]


def _dataset(stack: LocalServices, project: str, items: list[samples.Sample], dataset_type: int) -> None:
    bucket = f"smp-{uuid.uuid4().hex[:8]}"
    lines = [samples.manifest_line(put(stack.store, bucket, s.file_name, s.data), s) for s in items]
    arn = create_from_lines(stack, project, lines, dataset_type)
    assert wait(stack, arn).status == ds.DATASET_STATUS_CREATE_COMPLETE


def create_version(stack: LocalServices, project: str, name: str, bucket: str = OUTPUT_BUCKET) -> str:
    """CreateProjectVersion with the test output bucket."""
    return stack.training.CreateProjectVersion(
        tr.CreateProjectVersionRequest(
            project_arn=project,
            version_name=name,
            output_config=common.OutputConfig(s3_bucket=bucket, s3_key_prefix=name),
        )
    ).project_version_arn


_PROJECTS: dict[str, str] = {}


def register_project(version_arn: str, project_arn: str) -> None:
    """Lets `describe` find a version (a version ARN does not carry its project's ARN)."""
    _PROJECTS[version_arn] = project_arn


def describe(stack: LocalServices, version_arn: str) -> tr.ProjectVersionDescription:
    """The version's description, from DescribeProjectVersions of its project."""
    name = version_arn.split("/version/", 1)[1].split("/", 1)[0]
    (desc,) = stack.training.DescribeProjectVersions(
        tr.DescribeProjectVersionsRequest(project_arn=_PROJECTS[version_arn], version_names=[name])
    ).project_version_descriptions
    return desc


def wait_status(
    stack: LocalServices, version_arn: str, wanted: set[int], timeout: float = 300
) -> tr.ProjectVersionDescription:
    """Polls DescribeProjectVersions until the version is in one of `wanted` (or a terminal failure)."""
    deadline = time.monotonic() + timeout
    while True:
        desc = describe(stack, version_arn)
        if desc.status in wanted:
            return desc
        assert time.monotonic() < deadline, (
            f"{version_arn} still {tr.ProjectVersionStatus.Name(desc.status)}: {desc.status_message}"
        )
        time.sleep(0.1)


def _train(
    stack: LocalServices, label: str, train: list[samples.Sample], test: list[samples.Sample]
) -> Trained:
    project = new_project(stack, label)
    _dataset(stack, project, train, ds.DATASET_TYPE_TRAIN)
    _dataset(stack, project, test, ds.DATASET_TYPE_TEST)
    arn = create_version(stack, project, "v1")
    register_project(arn, project)
    desc = wait_status(
        stack,
        arn,
        {tr.PROJECT_VERSION_STATUS_TRAINING_COMPLETED, tr.PROJECT_VERSION_STATUS_TRAINING_FAILED},
        600,
    )
    assert desc.status == tr.PROJECT_VERSION_STATUS_TRAINING_COMPLETED, desc.status_message
    artifact = stack.training.GetModelArtifact(tr.GetModelArtifactRequest(project_version_arn=arn))
    onnx = stack.store.get_bytes(artifact.onnx_model.bucket, artifact.onnx_model.name)
    spec = modelio.ModelSpec.from_json(
        stack.store.get_bytes(artifact.model_metadata.bucket, artifact.model_metadata.name)
    )
    return Trained(project, "v1", arn, onnx, spec, test)


@pytest.fixture(scope="session")
def classifier(cloud: LocalServices, worker: None) -> Trained:
    """An image classifier (circle, square, triangle) trained through the training service."""
    return _train(
        cloud,
        "shapes",
        samples.classification(per_label=8, seed=41),
        samples.classification(per_label=3, seed=42),
    )


@pytest.fixture(scope="session")
def detector(cloud: LocalServices, worker: None) -> Trained:
    """An object detector (four shapes) trained through the training service, on a short budget."""
    return _train(cloud, "scenes", samples.detection(16, seed=43), samples.detection(6, seed=44))


def start(stack: LocalServices, version_arn: str, units: int = 1, max_units: int | None = None) -> int:
    """StartProjectVersion; returns the status it answered."""
    request = sv.StartProjectVersionRequest(project_version_arn=version_arn, min_inference_units=units)
    if max_units is not None:
        request.max_inference_units = max_units
    assert stack.serving is not None
    return stack.serving.StartProjectVersion(request).status


def stop(stack: LocalServices, version_arn: str) -> int:
    """StopProjectVersion; returns the status it answered."""
    assert stack.serving is not None
    return stack.serving.StopProjectVersion(
        sv.StopProjectVersionRequest(project_version_arn=version_arn)
    ).status


@pytest.fixture
def running_classifier(cloud: LocalServices, classifier: Trained) -> Iterator[Trained]:
    """The classifier, RUNNING for the test and stopped after it."""
    start(cloud, classifier.version_arn)
    wait_status(cloud, classifier.version_arn, {tr.PROJECT_VERSION_STATUS_RUNNING}, 120)
    yield classifier
    ensure_stopped(cloud, classifier.version_arn)


def ensure_stopped(stack: LocalServices, version_arn: str) -> None:
    """Stops the version if it runs, and waits until it is no longer STARTING/RUNNING/STOPPING."""
    busy = {tr.PROJECT_VERSION_STATUS_STARTING, tr.PROJECT_VERSION_STATUS_STOPPING}
    desc = describe(stack, version_arn)
    if desc.status in busy:
        desc = wait_status(
            stack,
            version_arn,
            {
                tr.PROJECT_VERSION_STATUS_RUNNING,
                tr.PROJECT_VERSION_STATUS_STOPPED,
                tr.PROJECT_VERSION_STATUS_FAILED,
            },
            120,
        )
    if desc.status == tr.PROJECT_VERSION_STATUS_RUNNING:
        stop(stack, version_arn)
        wait_status(stack, version_arn, {tr.PROJECT_VERSION_STATUS_STOPPED}, 120)


def installation(database_url: str) -> str:
    """The serving installation id of a database (the prefix of its Triton model names)."""
    pool = db.create_pool(database_url, serving_app.SCHEMA, 1, 1)
    try:
        return DeploymentRepository(pool).installation()
    finally:
        pool.close()
