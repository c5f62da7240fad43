"""The workflow steps the benchmarks share: import a manifest, wait for a dataset, train and wait.

All go through the real gRPC services of a `scripts.inprocess.LocalServices`; a failure ends the
benchmark with the service's status message.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from customlabels.common.v1 import types_pb2 as common
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.training.v1 import training_service_pb2 as tr

from scripts import inprocess

FINISHED_TRAINING = frozenset(
    {tr.PROJECT_VERSION_STATUS_TRAINING_COMPLETED, tr.PROJECT_VERSION_STATUS_TRAINING_FAILED}
)


def wait_dataset(
    services: inprocess.LocalServices, arn: str, timeout: float = 600, poll: float = 0.2
) -> ds.DatasetDescription:
    """Waits for a dataset's import to end, checking every `poll` seconds; a failed import ends the
    benchmark."""
    deadline = time.monotonic() + timeout
    while True:
        desc = services.dataset.DescribeDataset(
            ds.DescribeDatasetRequest(dataset_arn=arn)
        ).dataset_description
        name = ds.DatasetStatus.Name(desc.status)
        if name.endswith("FAILED"):
            raise SystemExit(f"import of {arn} failed: {desc.status_message}")
        if name.endswith("COMPLETE"):
            return desc
        if time.monotonic() > deadline:
            raise SystemExit(f"import of {arn} still {name} after {timeout:.0f} s")
        time.sleep(poll)


def import_manifest(
    services: inprocess.LocalServices, project: str, bucket: str, key: str, lines: Iterable[str], kind: int
) -> str:
    """Writes a manifest to s3://bucket/key, creates the project's `kind` dataset from it and waits."""
    services.store.ensure_bucket(bucket)
    services.store.put_bytes(bucket, key, ("\n".join(lines) + "\n").encode())
    arn = services.dataset.CreateDataset(
        ds.CreateDatasetRequest(
            project_arn=project,
            dataset_type=kind,
            dataset_source=ds.DatasetSource(
                ground_truth_manifest=common.GroundTruthManifest(
                    s3_object=common.S3Object(bucket=bucket, name=key)
                )
            ),
        )
    ).dataset_arn
    wait_dataset(services, arn)
    return arn


def wait_version(
    services: inprocess.LocalServices, project: str, name: str, wanted: Iterable[int], timeout: float
) -> tr.ProjectVersionDescription:
    """Polls DescribeProjectVersions until the version's status is one of `wanted`."""
    wanted = frozenset(wanted)
    deadline = time.monotonic() + timeout
    while True:
        (desc,) = services.training.DescribeProjectVersions(
            tr.DescribeProjectVersionsRequest(project_arn=project, version_names=[name])
        ).project_version_descriptions
        if desc.status in wanted:
            return desc
        if time.monotonic() > deadline:
            raise SystemExit(
                f"{name}: still {tr.ProjectVersionStatus.Name(desc.status)}: {desc.status_message}"
            )
        time.sleep(0.05)


def train_version(
    services: inprocess.LocalServices,
    project: str,
    output_bucket: str,
    output_prefix: str,
    name: str = "v1",
    timeout: float = 3600,
) -> tuple[tr.ProjectVersionDescription, str, float]:
    """CreateProjectVersion and wait until training ends; returns (description, version ARN, seconds)."""
    services.store.ensure_bucket(output_bucket)
    start = time.perf_counter()
    arn = services.training.CreateProjectVersion(
        tr.CreateProjectVersionRequest(
            project_arn=project,
            version_name=name,
            output_config=common.OutputConfig(s3_bucket=output_bucket, s3_key_prefix=output_prefix),
        )
    ).project_version_arn
    desc = wait_version(services, project, name, FINISHED_TRAINING, timeout)
    return desc, arn, time.perf_counter() - start
