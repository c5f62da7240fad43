"""Graceful SIGTERM of every service process (project, dataset, training, serving, edge, console), each
run as a real subprocess next to an embedded stack (bench/chaos.py's, which supplies Postgres, S3,
Triton and the peers): a call in flight when SIGTERM arrives completes, a new call is refused, and the
process exits 0 within CUSTOMLABELS_SHUTDOWN_GRACE_S plus a margin. The call is held in flight by a
lock on the table it reads, taken in Postgres by the test and released after the signal.

The dataset service's import runner hands its job back on SIGTERM: the import finishes after a
restart and its attempt is not spent. (The training worker's hand-back is tested in
tests/training/test_worker_modes.py; the shared server plumbing in tests/serving/test_grpc_lifecycle.py.)
"""

from __future__ import annotations

import io
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import grpc
import httpx
import psycopg
import pytest
from botocore.config import Config as BotoConfig
from customlabels.common.v1 import types_pb2 as common
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.dataset.v1 import dataset_service_pb2_grpc as ds_grpc
from customlabels.project.v1 import project_service_pb2 as pj
from customlabels.project.v1 import project_service_pb2_grpc as pj_grpc
from customlabels.serving.v1 import serving_service_pb2 as sv
from customlabels.serving.v1 import serving_service_pb2_grpc as sv_grpc
from customlabels.training.v1 import training_service_pb2 as tr
from customlabels.training.v1 import training_service_pb2_grpc as tr_grpc

from bench import chaos
from scripts.embedded import LOOPBACK, REPO_ROOT, free_port, grpc_health_serving
from services.common import clients
from services.common.auth import GrpcSecurity

pytestmark = pytest.mark.slow

GRACE_S = 4.0
# Start-up of a Python process on a busy 2-core machine, plus the job runner's own wait (10 s).
MARGIN_S = 20.0


@pytest.fixture(scope="module")
def stack() -> Iterator[chaos.ChaosStack]:
    """An embedded stack whose services are the peers of the processes under test."""
    saved = dict(os.environ)
    # Not tmp_path_factory: as root, Postgres runs as the postgres user, who cannot enter its 0700 base.
    data_dir = Path(tempfile.mkdtemp(prefix="customlabels-sigterm-"))
    data_dir.chmod(0o755)
    running = chaos.ChaosStack(data_dir)
    try:
        running.up()
        yield running
    finally:
        running.down()
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(data_dir, ignore_errors=True)


class Replica:
    """One more process of a service (`python -m services.<name>`), ours to signal and reap."""

    def __init__(self, stack: chaos.ChaosStack, module: str, log: Path, **env: str) -> None:
        self.addr = f"{LOOPBACK}:{free_port()}"
        self.port = int(self.addr.rsplit(":", 1)[1])
        self.log = log
        full_env = {
            **os.environ,
            **stack.env,
            "PYTHONUNBUFFERED": "1",
            "CUSTOMLABELS_LISTEN_ADDR": self.addr,
            "CUSTOMLABELS_SHUTDOWN_GRACE_S": str(GRACE_S),
            **env,
        }
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", module], cwd=REPO_ROOT, env=full_env, stdout=out, stderr=out
            )

    def wait_ready(self, probe: Callable[[], bool], timeout: float = 60.0) -> None:
        """Until `probe()` is true."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                if probe():
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            assert time.monotonic() < deadline, self.log.read_text()[-3000:]
            time.sleep(0.1)

    def terminate_and_wait(self) -> int:
        """SIGTERM, then the exit code (within the grace plus the margin)."""
        self.process.send_signal(signal.SIGTERM)
        return self.wait_exit()

    def wait_exit(self) -> int:
        """The exit code, waited for within the grace plus the margin."""
        try:
            return self.process.wait(GRACE_S + MARGIN_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"still running {GRACE_S + MARGIN_S:.0f} s after SIGTERM") from None

    def close(self) -> None:
        """Kills it if a failed test left it running."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class TableLock:
    """An ACCESS EXCLUSIVE lock on a table, held by an open transaction until `release`."""

    def __init__(self, url: str, table: str) -> None:
        self.url = url
        self.conn = psycopg.connect(url)
        self.conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")  # type: ignore[arg-type]

    def wait_for_waiter(self, timeout: float = 30.0) -> None:
        """Until another session waits on a lock (the call under test reached the table)."""
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.url, autocommit=True) as watcher:
            while True:
                row = watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                ).fetchone()
                if row and row[0] > 0:
                    return
                assert time.monotonic() < deadline, "the call never reached the locked table"
                time.sleep(0.05)

    def release(self) -> None:
        """Rolls the transaction back (the lock goes)."""
        self.conn.rollback()
        self.conn.close()


def _grpc_stub(stack: chaos.ChaosStack, addr: str, stub: type) -> tuple[grpc.Channel, Any]:
    channel = clients.channel(addr, GrpcSecurity(token=stack.env["CUSTOMLABELS_API_TOKEN"]))
    return channel, stub(channel)


def _project_arn(stack: chaos.ChaosStack) -> str:
    channel, stub = _grpc_stub(stack, stack.env["CUSTOMLABELS_PROJECT_ADDR"], pj_grpc.ProjectServiceStub)
    with channel:
        name = f"sig-{uuid.uuid4().hex[:8]}"
        return str(stub.CreateProject(pj.CreateProjectRequest(project_name=name), timeout=30).project_arn)


# (service, table its call reads, the stub, the call: stub, project ARN, timeout -> a response)
GRPC_CASES: list[tuple[str, str, type, Callable[[Any, str, float], Any]]] = [
    (
        "project",
        "project.projects",
        pj_grpc.ProjectServiceStub,
        lambda stub, arn, timeout: stub.DescribeProjects(pj.DescribeProjectsRequest(), timeout=timeout),
    ),
    (
        "dataset",
        "dataset.datasets",
        ds_grpc.DatasetServiceStub,
        lambda stub, arn, timeout: stub.ListProjectDatasets(
            ds.ListProjectDatasetsRequest(project_arns=[arn]), timeout=timeout
        ),
    ),
    (
        "training",
        "training.versions",
        tr_grpc.TrainingServiceStub,
        lambda stub, arn, timeout: stub.DescribeProjectVersions(
            tr.DescribeProjectVersionsRequest(project_arn=arn), timeout=timeout
        ),
    ),
    (
        "serving",
        "serving.deployments",
        sv_grpc.ServingServiceStub,
        # A version that was never started: the service's answer (an AWS error) needs the table.
        lambda stub, arn, timeout: stub.DetectCustomLabels(
            sv.DetectCustomLabelsRequest(
                project_version_arn=f"{arn.rsplit('/', 1)[0]}/version/v1/1700000000000",
                image=sv.Image(bytes=b"\xff\xd8"),
            ),
            timeout=timeout,
        ),
    ),
]
# What a call that the server did not answer ends with (refused, cut off, or still waiting).
TRANSPORT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED)


def _answer(call: Callable[[Any, str, float], Any], stub: Any, arn: str, timeout: float) -> str:
    """The service's answer: OK, or the code of an error it returned; transport failures raise."""
    try:
        call(stub, arn, timeout)
    except grpc.RpcError as error:
        if error.code() in TRANSPORT:
            raise
        return str(error.code().name)
    return "OK"


@pytest.mark.parametrize(
    ("service", "table", "stub_type", "call"), GRPC_CASES, ids=[c[0] for c in GRPC_CASES]
)
def test_sigterm_finishes_the_call_in_flight_refuses_new_ones_and_exits_zero(
    stack: chaos.ChaosStack,
    tmp_path: Path,
    service: str,
    table: str,
    stub_type: type,
    call: Callable[[Any, str, float], Any],
) -> None:
    project_arn = _project_arn(stack)
    replica = Replica(stack, f"services.{service}", tmp_path / f"{service}.log")
    channel, stub = _grpc_stub(stack, replica.addr, stub_type)
    try:
        replica.wait_ready(lambda: grpc_health_serving(replica.addr))
        answer = _answer(call, stub, project_arn, 30)  # the call works, and its connection is up
        lock = TableLock(stack.env["DATABASE_URL"], table)
        with ThreadPoolExecutor(1) as pool:
            in_flight: Future[str] = pool.submit(_answer, call, stub, project_arn, 60)
            try:
                lock.wait_for_waiter()
                replica.process.send_signal(signal.SIGTERM)
                # New calls are refused once the server has stopped taking them (one sent just before
                # is taken and waits on the lock too, so each try is short).
                refusals: list[grpc.StatusCode] = []
                deadline = time.monotonic() + 10
                while not refusals or refusals[-1] != grpc.StatusCode.UNAVAILABLE:
                    assert time.monotonic() < deadline, f"calls were still taken after SIGTERM: {refusals}"
                    try:
                        _answer(call, stub, project_arn, 0.5)
                    except grpc.RpcError as error:
                        refusals.append(error.code())
                assert not in_flight.done()
            finally:
                lock.release()
            assert in_flight.result(timeout=30) == answer
        assert replica.wait_exit() == 0, replica.log.read_text()[-3000:]
    finally:
        channel.close()
        replica.close()


def wait_until_http_stops(url: str, what: str, timeout: float = 10) -> None:
    """Polls `url`/health until it no longer answers (the process closed its listener)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(f"{url}/health", timeout=1)
        except httpx.HTTPError:
            return
        assert time.monotonic() < deadline, f"{what} still answered after SIGTERM"
        time.sleep(0.05)


def test_sigterm_lets_an_edge_request_in_flight_finish(stack: chaos.ChaosStack, tmp_path: Path) -> None:
    _project_arn(stack)
    replica = Replica(
        stack,
        "services.edge",
        tmp_path / "edge.log",
        CUSTOMLABELS_EDGE_CREDENTIALS=f"{stack.env['CUSTOMLABELS_AWS_ACCESS_KEY_ID']}:"
        f"{stack.env['CUSTOMLABELS_AWS_SECRET_ACCESS_KEY']}",
    )
    url = f"http://{replica.addr}"
    rekognition = boto3.client(
        "rekognition",
        endpoint_url=url,
        region_name=stack.env["CUSTOMLABELS_REGION"],
        aws_access_key_id=stack.env["CUSTOMLABELS_AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=stack.env["CUSTOMLABELS_AWS_SECRET_ACCESS_KEY"],
        config=BotoConfig(retries={"total_max_attempts": 1}, read_timeout=60, connect_timeout=2),
    )
    try:
        replica.wait_ready(lambda: httpx.get(f"{url}/health", timeout=1).status_code == 200)
        rekognition.describe_projects()
        lock = TableLock(stack.env["DATABASE_URL"], "project.projects")
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(rekognition.describe_projects)
            try:
                lock.wait_for_waiter()
                replica.process.send_signal(signal.SIGTERM)
                wait_until_http_stops(url, "the edge")
                assert not in_flight.done()
            finally:
                lock.release()
            assert "ProjectDescriptions" in in_flight.result(timeout=30)
        assert replica.wait_exit() == 0, replica.log.read_text()[-3000:]
    finally:
        replica.close()


def test_sigterm_lets_a_console_sign_in_in_flight_finish(stack: chaos.ChaosStack, tmp_path: Path) -> None:
    replica = Replica(
        stack,
        "services.console",
        tmp_path / "console.log",
        CUSTOMLABELS_EDGE_CREDENTIALS=f"{stack.env['CUSTOMLABELS_AWS_ACCESS_KEY_ID']}:"
        f"{stack.env['CUSTOMLABELS_AWS_SECRET_ACCESS_KEY']}",
    )
    url = f"http://{replica.addr}"
    try:
        replica.wait_ready(lambda: httpx.get(f"{url}/health", timeout=1).status_code == 200)
        browser = httpx.Client(base_url=url, timeout=60)
        form = browser.get("/signin")
        match = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert match, form.text[:2000]
        lock = TableLock(stack.env["DATABASE_URL"], "console.sessions")
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(
                browser.post,
                "/signin",
                data={
                    "csrf": match.group(1),
                    "access_key_id": stack.env["CUSTOMLABELS_AWS_ACCESS_KEY_ID"],
                    "secret_access_key": stack.env["CUSTOMLABELS_AWS_SECRET_ACCESS_KEY"],
                },
            )
            try:
                lock.wait_for_waiter()
                replica.process.send_signal(signal.SIGTERM)
                wait_until_http_stops(url, "the console")
                assert not in_flight.done()
            finally:
                lock.release()
            signed_in = in_flight.result(timeout=30)
        assert signed_in.status_code in (200, 303), signed_in.text[:2000]
        assert replica.wait_exit() == 0, replica.log.read_text()[-3000:]
    finally:
        replica.close()


def _dataset_id(url: str, dataset_arn: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT id FROM dataset.datasets WHERE arn = %s", (dataset_arn,)).fetchone()
    assert row is not None
    return int(row[0])


def _job(url: str, dataset_id: int) -> tuple[str, int]:
    """(state, attempts) of the dataset's job (read from the jobs table alone, which stays unlocked)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT state, attempts FROM dataset.jobs WHERE dataset_id = %s", (dataset_id,)
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_sigterm_hands_the_running_import_back_and_a_restart_finishes_it(
    stack: chaos.ChaosStack, tmp_path: Path
) -> None:
    url = stack.env["DATABASE_URL"]
    # The stack's own dataset service must not take the job: only the replica under test runs jobs.
    stack.part("dataset").stop()
    lines = chaos.manifest_lines(9, random.Random(5))
    chaos.upload_images(stack.s3, lines)
    data = ("\n".join(lines) + "\n").encode()
    stack.s3.client().put_object(chaos.MANIFEST_BUCKET, "sigterm.manifest", io.BytesIO(data), len(data))
    project_arn = _project_arn(stack)
    first = Replica(stack, "services.dataset", tmp_path / "dataset-1.log")
    second: Replica | None = None
    try:
        first.wait_ready(lambda: grpc_health_serving(first.addr))
        channel, stub = _grpc_stub(stack, first.addr, ds_grpc.DatasetServiceStub)
        with channel:
            arn = stub.CreateDataset(
                ds.CreateDatasetRequest(
                    project_arn=project_arn,
                    dataset_type=ds.DATASET_TYPE_TRAIN,
                    dataset_source=ds.DatasetSource(
                        ground_truth_manifest=common.GroundTruthManifest(
                            s3_object=common.S3Object(bucket=chaos.MANIFEST_BUCKET, name="sigterm.manifest")
                        )
                    ),
                ),
                timeout=30,
            ).dataset_arn
            dataset_id = _dataset_id(url, arn)
            # The import reads the datasets table before its commit (which would lock its job's row):
            # locked, it holds the job running when SIGTERM comes.
            lock = TableLock(url, "dataset.datasets")
            try:
                lock.wait_for_waiter()
                assert _job(url, dataset_id) == ("running", 1)
                assert first.terminate_and_wait() == 0, first.log.read_text()[-3000:]
            finally:
                lock.release()
        # Handed back: queued again, the attempt returned.
        assert _job(url, dataset_id) == ("queued", 0)
        second = Replica(stack, "services.dataset", tmp_path / "dataset-2.log")
        second.wait_ready(lambda: grpc_health_serving(second.addr))
        channel, stub = _grpc_stub(stack, second.addr, ds_grpc.DatasetServiceStub)
        with channel:
            deadline = time.monotonic() + 60
            while True:
                desc = stub.DescribeDataset(
                    ds.DescribeDatasetRequest(dataset_arn=arn), timeout=30
                ).dataset_description
                if desc.status != ds.DATASET_STATUS_CREATE_IN_PROGRESS:
                    break
                assert time.monotonic() < deadline, "the import did not finish after the restart"
                time.sleep(0.2)
        assert desc.status == ds.DATASET_STATUS_CREATE_COMPLETE, desc.status_message
        assert desc.dataset_stats.total_entries == len(lines)
        # One attempt in all: the interrupted one was given back.
        assert _job(url, dataset_id) == ("done", 1)
    finally:
        first.close()
        if second is not None:
            second.terminate_and_wait()
            second.close()
        stack.restart("dataset", killed_pid=-1)
