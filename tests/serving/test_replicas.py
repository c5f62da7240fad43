"""Several serving replicas, each with its own Triton, sharing Postgres and S3 (in Kubernetes, Triton is a
sidecar of each serving pod): a version started once is served by both; a Triton killed and restarted
empty is refilled by its own replica; a stop leaves both Tritons; the leader lock is held without an
open transaction, and a killed leader's lock passes to the other replica.

Two Tritons and two serving processes for the whole module (Triton's start is the slow part); the
serving state lives in the module's own database, the versions in the session stack's training service.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from customlabels.serving.v1 import serving_service_pb2 as sv
from customlabels.serving.v1 import serving_service_pb2_grpc as sv_grpc
from customlabels.training.v1 import training_service_pb2 as tr

from scripts.embedded import ServiceProcess, Triton, ensure_triton_repository, free_port
from scripts.inprocess import LocalServices
from services.common import clients
from services.common.errors import aws_name_of
from services.serving.triton import TritonClient, model_name
from tests.infra import READY_TIMEOUT, TRITON_BUCKET
from tests.serving.conftest import Trained, describe, installation, wait_status

LEADER_APP = "customlabels-serving-leader:"
# Who holds the leader lock of this database, and what that session is doing.
LOCK_HOLDER = """
SELECT a.application_name, a.state, a.query, s.state
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
LEFT JOIN serving.deployments s ON s.version_arn = %(arn)s
WHERE l.locktype = 'advisory' AND l.granted AND l.database = (
    SELECT oid FROM pg_database WHERE datname = current_database())
"""


@dataclass
class Replica:
    """One serving process and its own Triton."""

    replica_id: str
    triton: Triton
    process: ServiceProcess
    channel: grpc.Channel

    @property
    def stub(self) -> sv_grpc.ServingServiceStub:
        return sv_grpc.ServingServiceStub(self.channel)

    def holds(self, model: str) -> bool:
        """Whether this replica's Triton has the model loaded and ready."""
        client = TritonClient(self.triton.grpc_addr)
        try:
            return client.loaded().get(model) == "READY"
        finally:
            client.close()


@pytest.fixture(scope="module")
def pair(
    cloud: LocalServices, classifier: Trained, database_url: str, s3_server: Any, infra_dir: Path
) -> Iterator[list[Replica]]:
    """Two Tritons (one model repository) and two serving processes, each on its own Triton."""
    prefix = f"pair-{uuid.uuid4().hex[:8]}"
    ensure_triton_repository(s3_server, TRITON_BUCKET, prefix)
    tritons = [
        Triton(
            infra_dir / f"{prefix}-triton-{i}",
            Triton.pick_ports(),
            s3_server,
            TRITON_BUCKET,
            prefix,
            infra_dir / "logs" / f"{prefix}-triton-{i}.log",
            die_with_parent=True,
        )
        for i in ("a", "b")
    ]
    replicas: list[Replica] = []
    try:
        began = time.monotonic()
        for triton in tritons:
            triton.start()
        for triton in tritons:
            triton.wait_ready(READY_TIMEOUT)
        print(f"two Tritons ready in {time.monotonic() - began:.1f} s")
        for i, triton in zip(("a", "b"), tritons, strict=True):
            addr = f"127.0.0.1:{free_port()}"
            env = {
                **cloud.env,
                "DATABASE_URL": database_url,
                "CUSTOMLABELS_TRITON_GRPC_ADDR": triton.grpc_addr,
                "CUSTOMLABELS_TRITON_HTTP_ADDR": triton.http_addr,
                "CUSTOMLABELS_TRITON_BUCKET": TRITON_BUCKET,
                "CUSTOMLABELS_TRITON_PREFIX": prefix,
                "CUSTOMLABELS_TRITON_INSTANCES_PER_UNIT": "1",
                "CUSTOMLABELS_SERVING_RECONCILE_S": "0.5",
                "CUSTOMLABELS_SERVING_REPLICA_ID": f"replica-{i}",
                "CUSTOMLABELS_SERVING_REPLICA_TTL_S": "3",
                "CUSTOMLABELS_SHUTDOWN_GRACE_S": "2",
            }
            process = ServiceProcess(
                f"serving-{i}",
                "services.serving",
                env,
                infra_dir / "logs" / f"{prefix}-serving-{i}.log",
                addr=addr,
                die_with_parent=True,
            )
            process.start()
            process.wait_ready(60)
            replicas.append(Replica(f"replica-{i}", triton, process, clients.channel(addr)))
        yield replicas
    finally:
        alive = [r for r in replicas if r.process.is_alive()]
        if alive:
            _ensure_stopped(cloud, alive[0], classifier.version_arn)
        for r in replicas:
            r.channel.close()
            r.process.stop()
        for triton in tritons:
            triton.stop()


def _detect(replica: Replica, arn: str, data: bytes) -> list[tuple[str, float]]:
    request = sv.DetectCustomLabelsRequest(
        project_version_arn=arn, image=sv.Image(bytes=data), min_confidence=0
    )
    labels = replica.stub.DetectCustomLabels(request, timeout=30).custom_labels
    return [(c.name, round(c.confidence, 3)) for c in labels]


def _start(cloud: LocalServices, replica: Replica, arn: str) -> None:
    replica.stub.StartProjectVersion(
        sv.StartProjectVersionRequest(project_version_arn=arn, min_inference_units=1)
    )
    desc = wait_status(cloud, arn, {tr.PROJECT_VERSION_STATUS_RUNNING, tr.PROJECT_VERSION_STATUS_FAILED}, 180)
    assert desc.status == tr.PROJECT_VERSION_STATUS_RUNNING, desc.status_message


def _ensure_running(cloud: LocalServices, replica: Replica, arn: str) -> None:
    if describe(cloud, arn).status != tr.PROJECT_VERSION_STATUS_RUNNING:
        _start(cloud, replica, arn)


def _ensure_stopped(cloud: LocalServices, replica: Replica, arn: str) -> None:
    if describe(cloud, arn).status == tr.PROJECT_VERSION_STATUS_STARTING:
        wait_status(cloud, arn, {tr.PROJECT_VERSION_STATUS_RUNNING, tr.PROJECT_VERSION_STATUS_FAILED}, 180)
    if describe(cloud, arn).status == tr.PROJECT_VERSION_STATUS_RUNNING:
        replica.stub.StopProjectVersion(sv.StopProjectVersionRequest(project_version_arn=arn))
        wait_status(cloud, arn, {tr.PROJECT_VERSION_STATUS_STOPPED}, 120)


def _holder(database_url: str, arn: str) -> list[tuple[str, str, str, str | None]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(LOCK_HOLDER, {"arn": arn}).fetchall()  # type: ignore[return-value]


def test_a_version_started_through_one_replica_is_served_by_both_and_the_leader_holds_no_transaction(
    cloud: LocalServices, classifier: Trained, pair: list[Replica], database_url: str
) -> None:
    a, b = pair
    arn, image = classifier.version_arn, classifier.images[0].data
    samples: list[tuple[str, str, str, str | None]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.extend(_holder(database_url, arn))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        _start(cloud, a, arn)
    finally:
        done.set()
        sampler.join()
    # The leader held its lock while both Tritons loaded the model, from a session with no transaction
    # open (idle; active only for the instant of its own lock statements).
    while_loading = [s for s in samples if s[3] == "STARTING"]
    assert while_loading, "the lock was never seen held during the start"
    for app, state, query, _ in samples:
        assert app.startswith(LEADER_APP), app
        assert state == "idle" or (state == "active" and "advisory" in query or query == "SELECT 1"), (
            state,
            query,
        )

    name = model_name(arn, installation(database_url))
    assert a.holds(name) and b.holds(name)
    expected = _detect(a, arn, image)
    assert expected
    assert _detect(b, arn, image) == expected


def test_a_killed_triton_is_refilled_by_its_own_replica(
    cloud: LocalServices, classifier: Trained, pair: list[Replica], database_url: str
) -> None:
    a, b = pair
    arn, image = classifier.version_arn, classifier.images[0].data
    _ensure_running(cloud, a, arn)
    expected = _detect(a, arn, image)
    os.kill(b.triton.pid or 0, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while b.triton.is_alive():
        assert time.monotonic() < deadline, "Triton did not die"
        time.sleep(0.05)
    # While its Triton is away, the replica answers the retryable ThrottlingException.
    with pytest.raises(grpc.RpcError) as refused:
        _detect(b, arn, image)
    assert aws_name_of(refused.value) == "ThrottlingException"

    began = time.monotonic()
    b.triton.start()
    b.triton.wait_ready(READY_TIMEOUT)
    restarted = time.monotonic()
    name = model_name(arn, installation(database_url))
    assert not b.holds(name)  # explicit model control: a restarted Triton is empty
    refusals: set[str | None] = set()
    while True:
        try:
            answer = _detect(b, arn, image)
            break
        except grpc.RpcError as exc:
            refusals.add(aws_name_of(exc))
        assert time.monotonic() < restarted + 120, f"not refilled 120 s after the restart; {refusals}"
        time.sleep(0.2)
    print(f"Triton restart {restarted - began:.1f} s, refilled {time.monotonic() - restarted:.1f} s later")
    assert refusals <= {"ThrottlingException"}
    assert answer == expected
    assert describe(cloud, arn).status == tr.PROJECT_VERSION_STATUS_RUNNING


def test_a_stopped_version_leaves_both_tritons(
    cloud: LocalServices, classifier: Trained, pair: list[Replica], database_url: str
) -> None:
    a, b = pair
    arn, image = classifier.version_arn, classifier.images[0].data
    _ensure_running(cloud, a, arn)
    name = model_name(arn, installation(database_url))
    b.stub.StopProjectVersion(sv.StopProjectVersionRequest(project_version_arn=arn))
    wait_status(cloud, arn, {tr.PROJECT_VERSION_STATUS_STOPPED}, 120)
    # STOPPED only once neither Triton holds the model any more.
    assert not a.holds(name) and not b.holds(name)
    with pytest.raises(grpc.RpcError) as refused:
        _detect(a, arn, image)
    assert aws_name_of(refused.value) == "ResourceNotReadyException"


def test_killing_the_leader_hands_the_lock_to_the_other_replica(
    cloud: LocalServices, classifier: Trained, pair: list[Replica], database_url: str
) -> None:
    arn, image = classifier.version_arn, classifier.images[0].data
    deadline = time.monotonic() + 30
    while not (held := _holder(database_url, arn)):
        assert time.monotonic() < deadline, "nobody leads"
        time.sleep(0.1)
    leader_id = held[0][0].removeprefix(LEADER_APP)
    (leader,) = [r for r in pair if r.replica_id == leader_id]
    (other,) = [r for r in pair if r is not leader]
    os.kill(leader.process.pid or 0, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while [h[0] for h in _holder(database_url, arn)] != [LEADER_APP + other.replica_id]:
        assert time.monotonic() < deadline, "the other replica never took the lock"
        time.sleep(0.1)
    # The new leader moves statuses: a start through it runs, its stop ends STOPPED.
    _ensure_stopped(cloud, other, arn)
    _start(cloud, other, arn)
    assert _detect(other, arn, image)
    _ensure_stopped(cloud, other, arn)
    assert describe(cloud, arn).status == tr.PROJECT_VERSION_STATUS_STOPPED
