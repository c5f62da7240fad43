"""Two installations on one Triton (staging and production, two namespaces): each control loop unloads
only its own orphans and leaves the other installation's models running."""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg
from customlabels.serving.v1 import serving_service_pb2 as sv

from scripts import inprocess
from scripts.inprocess import LocalServices
from services.serving.config import ServingSettings
from services.serving.triton import TritonClient, TritonRepository, model_prefix
from tests.serving.conftest import Trained, installation

SETTINGS = ServingSettings(reconcile_s=0.2, instances_per_unit=1)


def _row(database_url: str, version_arn: str) -> tuple[str, Any, str, str]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT model_name, spec, onnx_bucket, onnx_key FROM serving.deployments WHERE version_arn = %s",
            (version_arn,),
        ).fetchone()
    assert row is not None, "the running version has no deployment row"
    return row[0], row[1], row[2], row[3]


def _detect(cloud: LocalServices, arn: str, data: bytes) -> list[str]:
    assert cloud.serving is not None
    request = sv.DetectCustomLabelsRequest(
        project_version_arn=arn, image=sv.Image(bytes=data), min_confidence=0
    )
    return [c.name for c in cloud.serving.DetectCustomLabels(request).custom_labels]


def test_each_installation_unloads_only_its_own_orphans(
    cloud: LocalServices,
    running_classifier: Trained,
    pg_server: str,
    _test_databases: Any,
    triton_server: Any,
) -> None:
    arn, image = running_classifier.version_arn, running_classifier.images[0].data
    ours = installation(cloud.env["DATABASE_URL"])
    name, spec, onnx_bucket, onnx_key = _row(cloud.env["DATABASE_URL"], arn)
    assert name.startswith(model_prefix(ours))
    expected = _detect(cloud, arn, image)
    triton = TritonClient(triton_server.grpc_addr)
    repository = TritonRepository(cloud.store, triton_server.bucket, triton_server.prefix, SETTINGS)
    stops: list[Any] = [triton.close]
    with _test_databases.fresh(pg_server, f"t_other_{uuid.uuid4().hex[:8]}") as other_url:
        try:
            # A second installation: its own database, the same Triton and repository, a fast loop.
            inprocess.start_serving({**cloud.env, "DATABASE_URL": other_url}, cloud.store, SETTINGS, stops)
            theirs = installation(other_url)
            assert theirs != ours
            # A model of the second installation that none of its deployments wants (a leftover of
            # a lost stop): loaded straight into Triton.
            orphan = f"{model_prefix(theirs)}0000000000000000_leftover"
            repository.write(orphan, spec, (onnx_bucket, onnx_key), 1)
            stops.append(lambda: repository.remove(orphan))
            triton.load(orphan, 120)
            deadline = time.monotonic() + 60
            while triton.ready(orphan):
                assert time.monotonic() < deadline, "the second installation kept its orphan loaded"
                time.sleep(0.1)
            # Many rounds of the second installation later, the first one's model never left Triton.
            assert triton.loaded().get(name) == "READY"
            assert _detect(cloud, arn, image) == expected
        finally:
            for stop in reversed(stops):
                stop()
