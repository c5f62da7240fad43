"""The faults campaign: `python -m bench.chaos --kills 20 --seed N` (full) or `--short`.

An embedded stack (scripts/stack.py, supervisor included) runs in a temporary data directory while
client threads drive a realistic mix through the public gRPC API: imports of real manifests from
../shared/datasets (their images uploaded to S3 first), UpdateDatasetEntries (every acknowledged
write recorded), training on a small classification set, StartProjectVersion / DetectCustomLabels /
StopProjectVersion, and deletes. Meanwhile a chaos thread kills parts with SIGKILL at random moments:
each service, the training worker, Triton, the S3 server and Postgres. The stack's supervisor brings
Triton back; every other part is started again here, on its recorded ports and under the stack's lock,
as Kubernetes would. Clients retry like an AWS SDK (UNAVAILABLE, Throttling, ServiceUnavailable,
InternalServerError, deadlines); an operation is acknowledged only when it returned success.

Once the parts are back the invariants are checked from the outside: every acknowledged entry write is
there with its labels (ListDatasetEntries); no dataset or version stays in a transitional status after a
bounded wait; every object key Postgres references exists in S3; every RUNNING model answers
DetectCustomLabels; RUNNING in Postgres ⇔ READY in Triton's repository index. The figures go to
stdout and bench/results/chaos.md (bench/report.py).
"""

from __future__ import annotations

import argparse
import fcntl
import io
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import psycopg
from customlabels.common.v1 import types_pb2 as common
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.dataset.v1 import dataset_service_pb2_grpc as ds_grpc
from customlabels.project.v1 import project_service_pb2 as pj
from customlabels.project.v1 import project_service_pb2_grpc as pj_grpc
from customlabels.serving.v1 import serving_service_pb2 as sv
from customlabels.serving.v1 import serving_service_pb2_grpc as sv_grpc
from customlabels.training.v1 import training_service_pb2 as tr
from customlabels.training.v1 import training_service_pb2_grpc as tr_grpc

from bench import report
from bench.stackrun import EmbeddedStack
from scripts import shared_data
from scripts import stack as stack_script
from scripts.embedded import PartFailed, S3Endpoint
from services.common import clients, errors
from services.common.auth import GrpcSecurity

Resp = TypeVar("Resp")

RESULTS = Path(__file__).parent / "results" / "chaos.md"
DATASETS = shared_data.datasets_dir()
SOURCE = "rock-paper-scissors"
SOURCE_BUCKET = "datasets"  # the manifests' placeholder bucket (../shared/datasets/README.md)
MANIFEST_BUCKET = "chaos-manifests"
OUTPUT_BUCKET = "chaos-output"
LABEL_ATTRIBUTE = "gesture"

# Every part the chaos thread may kill. The supervisor restarts Triton; the campaign the others.
PARTS = ("project", "dataset", "training", "serving", "training-worker", "triton", "s3", "postgres")
SUPERVISED = frozenset({"triton"})
# The short form (tests/test_chaos.py): what an import and an update go through, once each.
SHORT_PARTS = ("dataset", "training-worker", "s3", "postgres")

# Retried as an AWS SDK's standard mode does: throttling, transient server errors, timeouts.
RETRYABLE_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL}
)
RETRYABLE_NAMES = frozenset(
    {"ThrottlingException", "ServiceUnavailableException", "InternalServerError", "LimitExceededException"}
)
# How long one operation is retried before it counts as failed (a part takes seconds to come back).
RETRY_BUDGET_S = 120.0
CALL_TIMEOUT_S = 20.0

# Statuses that must settle once the parts are back.
TRANSITIONAL_DATASET = ("CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS")
TRANSITIONAL_VERSION = ("TRAINING_IN_PROGRESS", "COPYING_IN_PROGRESS", "STARTING", "STOPPING", "DELETING")
# Versions whose model files must exist.
TRAINED = ("TRAINING_COMPLETED", "STARTING", "RUNNING", "STOPPING", "STOPPED", "COPYING_COMPLETED")

# The tunables the stack's processes read: short leases so a killed worker's job comes back within
# seconds, a tiny training budget, a quick serving control loop.
CAMPAIGN_ENV = {
    "CUSTOMLABELS_DATASET_JOB_LEASE_S": "4",
    "CUSTOMLABELS_TRAINING_JOB_LEASE_S": "6",
    "CUSTOMLABELS_TRAINING_JOB_POLL_S": "0.5",
    "CUSTOMLABELS_TRAINING_CLASSIFICATION_S_PER_IMAGE": "0.02",
    "CUSTOMLABELS_SERVING_RECONCILE_S": "1",
    "CUSTOMLABELS_SHUTDOWN_GRACE_S": "3",
}


@dataclass(frozen=True)
class Settings:
    """One campaign: how many kills of which parts, how long between them, which clients run."""

    kills: int
    seed: int
    parts: tuple[str, ...] = PARTS
    gap_s: tuple[float, float] = (2.0, 6.0)
    images: int = 90
    writers: int = 2
    importers: int = 1
    train: bool = True
    settle_s: float = 240.0

    @classmethod
    def short(cls, seed: int = 1) -> Settings:
        """A few kills (one of each short part) during imports and updates; no training."""
        return cls(
            kills=len(SHORT_PARTS),
            seed=seed,
            parts=SHORT_PARTS,
            gap_s=(0.5, 1.5),
            images=24,
            writers=2,
            importers=1,
            train=False,
            settle_s=90.0,
        )


# ---------------------------------------------------------------------------------------------------
# The ledger: what clients did and what was acknowledged
# ---------------------------------------------------------------------------------------------------


@dataclass
class Write:
    """The entry a client wrote to a dataset: the labels acknowledged last, and those maybe applied since
    (a call that failed may still have landed)."""

    acked: str | None = None
    possible: set[str] = field(default_factory=set)


@dataclass
class Ledger:
    """Shared by every client thread (under `lock`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    ops: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    retried: Counter[str] = field(default_factory=Counter)
    writes: dict[tuple[str, str], Write] = field(default_factory=dict)
    acked_writes: int = 0
    deleted_datasets: set[str] = field(default_factory=set)
    outcomes: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def op(self, kind: str, ok: bool = True) -> None:
        """Counts one finished operation."""
        with self.lock:
            (self.ops if ok else self.failed)[kind] += 1

    def note(self, text: str) -> None:
        """Keeps an observation for the report (and prints it)."""
        print(f"  note: {text}", flush=True)
        with self.lock:
            self.notes.append(text)


class Client:
    """The public gRPC API with an AWS SDK's retries; every call counts in the ledger."""

    def __init__(self, env: dict[str, str], ledger: Ledger, stop: threading.Event) -> None:
        security = GrpcSecurity(token=env["CUSTOMLABELS_API_TOKEN"])
        self._channels = [
            clients.channel(env[f"CUSTOMLABELS_{name}_ADDR"], security)
            for name in ("PROJECT", "DATASET", "TRAINING", "SERVING")
        ]
        self.project = pj_grpc.ProjectServiceStub(self._channels[0])
        self.dataset = ds_grpc.DatasetServiceStub(self._channels[1])
        self.training = tr_grpc.TrainingServiceStub(self._channels[2])
        self.serving = sv_grpc.ServingServiceStub(self._channels[3])
        self.ledger = ledger
        self.stop = stop

    def close(self) -> None:
        """Closes the channels."""
        for channel in self._channels:
            channel.close()

    def call(self, kind: str, method: Callable[..., Resp], request: object, *, count: bool = True) -> Resp:
        """`method(request)`, retried on transient errors for up to RETRY_BUDGET_S; raises grpc.RpcError
        otherwise. `count`: an operation of the mix (polls are not)."""
        deadline = time.monotonic() + RETRY_BUDGET_S
        delay = 0.2
        attempt = 0
        while True:
            attempt += 1
            try:
                response = method(request, timeout=CALL_TIMEOUT_S)
            except grpc.RpcError as error:
                name = errors.aws_name_of(error)
                retryable = error.code() in RETRYABLE_CODES or name in RETRYABLE_NAMES
                if not retryable or time.monotonic() > deadline:
                    if count:
                        self.ledger.op(kind, ok=False)
                    raise RetriedError(error, attempt) from error
                with self.ledger.lock:
                    self.ledger.retried[f"{kind} {error.code().name} {name or ''}".strip()] += 1
                time.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 2.0)
                continue
            if count:
                self.ledger.op(kind)
            return response


class RetriedError(Exception):
    """An RPC that failed for good: its last error, the AWS name, and whether it was retried."""

    def __init__(self, error: grpc.RpcError, attempts: int) -> None:
        self.error = error
        self.code = error.code()
        self.name = errors.aws_name_of(error) or ""
        self.attempts = attempts
        super().__init__(f"{self.code.name} {self.name}: {error.details()}")


# ---------------------------------------------------------------------------------------------------
# The stack and its faults
# ---------------------------------------------------------------------------------------------------


@contextmanager
def _stack_lock(data_dir: Path) -> Iterator[None]:
    """The lock that `up`, `down` and the supervisor take on a data directory."""
    with open(data_dir / "stack.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class ChaosStack(EmbeddedStack):
    """An embedded stack in its own data directory, with what kills and restarts its parts."""

    def up(self, env: Mapping[str, str] | None = None, timeout: float = 240.0) -> None:
        """`python -m scripts.stack up` on the data directory; reads the endpoints it wrote."""
        # The default ports may be another stack's. The campaign restarts parts itself, from this
        # process, so the settings stay in its environment too.
        os.environ.update(
            {
                **CAMPAIGN_ENV,
                **self.free_ports(),
                "CUSTOMLABELS_TRAINING_WORKER_ALIVE_FILE": str(self.data_dir / "worker.alive"),
                **(env or {}),
            }
        )
        try:
            super().up({}, timeout)
        except RuntimeError as exc:
            raise SystemExit(str(exc)) from None

    def kill(self, name: str) -> int:
        """SIGKILL the part's recorded process; returns its PID."""
        part = self.part(name)
        assert part.ref is not None
        if not part.ref.send_signal(signal.SIGKILL):
            raise RuntimeError(f"{name} was not running")
        # The kernel takes a moment to end it; a restart must not find it still there.
        deadline = time.monotonic() + 30
        while part.ref.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        return part.ref.pid

    def restart(self, name: str, killed_pid: int, timeout: float = 180.0) -> None:
        """Brings the part back on its ports (the supervisor does it for Triton) and waits for its health."""
        deadline = time.monotonic() + timeout
        while True:
            if name in SUPERVISED:
                part = self.part(name)
                if part.pid != killed_pid and part.healthy():
                    return
                if time.monotonic() > deadline:
                    raise PartFailed(name, "the supervisor did not bring it back")
                time.sleep(0.2)
                continue
            with _stack_lock(self.data_dir):
                state = stack_script.Stack(self.data_dir)
                part = next(p for p, _, _ in state.all_parts() if p.name == name)
                if not part.is_alive():
                    part.cleanup()
                    part.start()
                    state.state.record(part)
                    state.state.save(state.state_path)
            try:
                part.wait_ready(max(deadline - time.monotonic(), 1.0))
                return
            except PartFailed:
                # E.g. a killed Postgres's backends still hold its shared memory for a moment.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


class Chaos(threading.Thread):
    """Kills parts at random moments, brings them back, and measures how long each took."""

    def __init__(self, stack: ChaosStack, settings: Settings, rng: random.Random, ledger: Ledger) -> None:
        super().__init__(name="chaos", daemon=True)
        self.stack = stack
        self.settings = settings
        self.rng = rng
        self.ledger = ledger
        self.kills: Counter[str] = Counter()
        self.recover_s: dict[str, list[float]] = defaultdict(list)
        self.error: BaseException | None = None
        self.halt = threading.Event()

    def plan(self) -> list[str]:
        """Every part at least once (when the kills allow), the rest drawn at random, in random order."""
        parts = list(self.settings.parts)
        self.rng.shuffle(parts)
        plan = parts[: self.settings.kills]
        plan += [self.rng.choice(parts) for _ in range(self.settings.kills - len(plan))]
        self.rng.shuffle(plan)
        return plan

    def run(self) -> None:
        try:
            for name in self.plan():
                if self.halt.wait(self.rng.uniform(*self.settings.gap_s)):
                    return
                pid = self.stack.kill(name)
                killed_at = time.monotonic()
                print(f"  kill -9 {name} (pid {pid})", flush=True)
                self.kills[name] += 1
                self.stack.restart(name, pid)
                took = time.monotonic() - killed_at
                self.recover_s[name].append(took)
                print(f"  {name} healthy again after {took:.1f} s", flush=True)
        except BaseException as error:  # noqa: BLE001 - reported by the campaign
            self.error = error


# ---------------------------------------------------------------------------------------------------
# The mix
# ---------------------------------------------------------------------------------------------------


def manifest_lines(limit: int, rng: random.Random) -> list[str]:
    """Lines of the real rock-paper-scissors TRAIN manifest, an even share of each class."""
    lines = (DATASETS / SOURCE / "train.manifest").read_text().splitlines()
    by_class: dict[str, list[str]] = defaultdict(list)
    for line in lines:
        by_class[json.loads(line)[f"{LABEL_ATTRIBUTE}-metadata"]["class-name"]].append(line)
    picked: list[str] = []
    for group in by_class.values():
        picked += rng.sample(group, min(len(group), limit // len(by_class)))
    return picked


def source_ref(line: str) -> str:
    """The line's source-ref."""
    return str(json.loads(line)["source-ref"])


def upload_images(s3: S3Endpoint, lines: list[str]) -> None:
    """Puts the lines' images where their source-refs point (s3://datasets/<dataset>/images/<file>)."""
    client = s3.client()
    for bucket in (SOURCE_BUCKET, MANIFEST_BUCKET, OUTPUT_BUCKET):
        if not client.bucket_exists(bucket):
            client.make_bucket(bucket)
    for line in lines:
        key = source_ref(line).split("/", 3)[3]
        path = DATASETS / key
        client.fput_object(SOURCE_BUCKET, key, str(path), content_type="image/jpeg")


def label_line(ref: str, label: str) -> str:
    """A classification line for `ref` labeled `label`."""
    return json.dumps(
        {
            "source-ref": ref,
            LABEL_ATTRIBUTE: 0,
            f"{LABEL_ATTRIBUTE}-metadata": {
                "class-name": label,
                "confidence": 1,
                "type": "groundtruth/image-classification",
                "job-name": "labeling-job/chaos",
                "human-annotated": "yes",
                "creation-date": "2024-01-01T00:00:00",
            },
        }
    )


def line_labels(line: str) -> str:
    """The class names of a line, sorted and joined (what the campaign compares)."""
    entry = json.loads(line)
    names = sorted(
        value["class-name"]
        for key, value in entry.items()
        if key.endswith("-metadata") and isinstance(value, dict) and "class-name" in value
    )
    return ",".join(names)


class Mix:
    """The client threads; each runs until `stop` is set."""

    def __init__(
        self, stack: ChaosStack, settings: Settings, ledger: Ledger, lines: list[str], seed: int
    ) -> None:
        self.stack = stack
        self.settings = settings
        self.ledger = ledger
        self.lines = lines
        self.seed = seed
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []
        self.manifests = 0
        self._manifest_lock = threading.Lock()

    # Plumbing ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Starts every client thread."""
        roles: list[tuple[str, Callable[[Client, random.Random], None]]] = [
            *((f"writer-{i}", self.writer) for i in range(self.settings.writers)),
            *((f"importer-{i}", self.importer) for i in range(self.settings.importers)),
        ]
        if self.settings.train:
            roles.append(("trainer", self.trainer))
        for i, (name, role) in enumerate(roles):
            thread = threading.Thread(
                target=self._run, args=(name, role, self.seed * 100 + i), name=name, daemon=True
            )
            thread.start()
            self.threads.append(thread)

    def finish(self, timeout: float = 600.0) -> None:
        """Tells the clients to stop and waits for them (an operation under way completes)."""
        self.stop.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(deadline - time.monotonic(), 1.0))

    def _run(self, name: str, role: Callable[[Client, random.Random], None], seed: int) -> None:
        client = Client(self.stack.env, self.ledger, self.stop)
        try:
            role(client, random.Random(seed))
        except Exception as error:  # noqa: BLE001 - reported; the other clients go on
            self.errors.append(f"{name}: {type(error).__name__}: {error}")
            print(f"  {name} ended: {error}", flush=True)
        finally:
            client.close()

    def _manifest(self, lines: list[str]) -> tuple[str, str]:
        """Writes lines as a manifest to S3 (retried through S3 outages); returns (bucket, key)."""
        with self._manifest_lock:
            self.manifests += 1
            key = f"m{self.manifests}-{uuid.uuid4().hex[:6]}.manifest"
        data = ("\n".join(lines) + "\n").encode()
        deadline = time.monotonic() + RETRY_BUDGET_S
        while True:
            try:
                self.stack.s3.client(timeout=5.0).put_object(
                    MANIFEST_BUCKET, key, io.BytesIO(data), len(data)
                )
                return MANIFEST_BUCKET, key
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def _project(self, client: Client, stem: str) -> str:
        name = f"{stem}-{uuid.uuid4().hex[:8]}"
        try:
            return client.call(
                "CreateProject", client.project.CreateProject, pj.CreateProjectRequest(project_name=name)
            ).project_arn
        except RetriedError as error:
            if error.name != "ResourceAlreadyExistsException" or error.attempts == 1:
                raise
            # The first attempt landed but its answer was lost; find the project.
            found = client.call(
                "DescribeProjects",
                client.project.DescribeProjects,
                pj.DescribeProjectsRequest(project_names=[name]),
                count=False,
            )
            return found.project_descriptions[0].project_arn

    def _dataset(self, client: Client, project: str, kind: int, lines: list[str]) -> str:
        bucket, key = self._manifest(lines)
        request = ds.CreateDatasetRequest(
            project_arn=project,
            dataset_type=kind,
            dataset_source=ds.DatasetSource(
                ground_truth_manifest=common.GroundTruthManifest(
                    s3_object=common.S3Object(bucket=bucket, name=key)
                )
            ),
        )
        try:
            return client.call("CreateDataset", client.dataset.CreateDataset, request).dataset_arn
        except RetriedError as error:
            if error.name != "ResourceAlreadyExistsException" or error.attempts == 1:
                raise
            listed = client.call(
                "ListProjectDatasets",
                client.dataset.ListProjectDatasets,
                ds.ListProjectDatasetsRequest(project_arns=[project]),
                count=False,
            )
            return next(d.dataset_arn for p in listed.projects for d in p.datasets if d.dataset_type == kind)

    def _dataset_status(self, client: Client, arn: str) -> tuple[str, str]:
        desc = client.call(
            "DescribeDataset",
            client.dataset.DescribeDataset,
            ds.DescribeDatasetRequest(dataset_arn=arn),
            count=False,
        ).dataset_description
        return ds.DatasetStatus.Name(desc.status).removeprefix("DATASET_STATUS_"), desc.status_message

    def _wait_dataset(self, client: Client, arn: str, timeout: float = 300.0) -> tuple[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            status, message = self._dataset_status(client, arn)
            if not status.endswith("IN_PROGRESS") or time.monotonic() > deadline:
                return status, message
            time.sleep(0.3)

    def _version_status(self, client: Client, project: str, name: str) -> tuple[str, str]:
        found = client.call(
            "DescribeProjectVersions",
            client.training.DescribeProjectVersions,
            tr.DescribeProjectVersionsRequest(project_arn=project, version_names=[name]),
            count=False,
        ).project_version_descriptions
        if not found:
            return "GONE", ""
        return tr.ProjectVersionStatus.Name(found[0].status).removeprefix("PROJECT_VERSION_STATUS_"), found[
            0
        ].status_message

    def _wait_version(
        self, client: Client, project: str, name: str, until: tuple[str, ...], timeout: float = 900.0
    ) -> str:
        deadline = time.monotonic() + timeout
        while True:
            status, message = self._version_status(client, project, name)
            if status in until or status.endswith("FAILED") or time.monotonic() > deadline:
                if status.endswith("FAILED"):
                    self.ledger.note(f"version {name} ended {status}: {message}")
                return status
            time.sleep(0.5)

    # Roles ------------------------------------------------------------------------------------------

    def writer(self, client: Client, rng: random.Random) -> None:
        """A dataset imported from a small manifest, then UpdateDatasetEntries in small batches."""
        project = self._project(client, "chaos-w")
        arn = self._dataset(client, project, ds.DATASET_TYPE_TRAIN, rng.sample(self.lines, 6))
        status, message = self._wait_dataset(client, arn)
        self.ledger.outcomes[f"import {status}"] += 1
        if status.endswith("FAILED"):
            self.ledger.note(f"the writer's import ended {status}: {message}")
            return
        refs = [source_ref(line) for line in self.lines]
        while not self.stop.is_set():
            batch = rng.sample(refs, rng.randint(1, 4))
            labels = {ref: rng.choice(("rock", "paper", "scissors", "hand", "fist")) for ref in batch}
            body = "\n".join(label_line(ref, label) for ref, label in labels.items()).encode()
            with self.ledger.lock:
                for ref, label in labels.items():
                    self.ledger.writes.setdefault((arn, ref), Write()).possible.add(label)
            try:
                client.call(
                    "UpdateDatasetEntries",
                    client.dataset.UpdateDatasetEntries,
                    ds.UpdateDatasetEntriesRequest(
                        dataset_arn=arn, changes=ds.DatasetChanges(ground_truth=body)
                    ),
                )
            except RetriedError as error:
                if error.name == "ResourceInUseException":
                    # The previous update is still being applied: wait for it, as a client would.
                    self._wait_dataset(client, arn)
                    continue
                raise
            with self.ledger.lock:
                for ref, label in labels.items():
                    write = self.ledger.writes[(arn, ref)]
                    write.acked, write.possible = label, {label}
                self.ledger.acked_writes += len(labels)
            status, message = self._wait_dataset(client, arn)
            self.ledger.outcomes[f"update {status}"] += 1
            if status.endswith("FAILED"):
                self.ledger.note(f"an acknowledged update ended {status}: {message}")

    def importer(self, client: Client, rng: random.Random) -> None:
        """Projects with an imported TRAIN dataset, deleted again half of the time."""
        while not self.stop.is_set():
            project = self._project(client, "chaos-i")
            arn = self._dataset(
                client, project, ds.DATASET_TYPE_TRAIN, rng.sample(self.lines, rng.randint(9, 24))
            )
            status, message = self._wait_dataset(client, arn)
            self.ledger.outcomes[f"import {status}"] += 1
            if status.endswith("FAILED"):
                self.ledger.note(f"an import ended {status}: {message}")
            if rng.random() < 0.5:
                self._delete_dataset(client, arn)
                self._delete(
                    client,
                    "DeleteProject",
                    client.project.DeleteProject,
                    pj.DeleteProjectRequest(project_arn=project),
                )

    def _delete_dataset(self, client: Client, arn: str) -> None:
        with self.ledger.lock:
            # From the first attempt on, the entries may be gone: they are no longer checked.
            self.ledger.deleted_datasets.add(arn)
        self._delete(
            client, "DeleteDataset", client.dataset.DeleteDataset, ds.DeleteDatasetRequest(dataset_arn=arn)
        )

    def _delete(self, client: Client, kind: str, method: Callable[..., Any], request: object) -> None:
        try:
            client.call(kind, method, request)
        except RetriedError as error:
            if error.name == "ResourceNotFoundException" and error.attempts > 1:
                self.ledger.op(kind)  # an earlier attempt did it
                return
            self.ledger.note(f"{kind} refused: {error}")

    def trainer(self, client: Client, rng: random.Random) -> None:
        """Train a small classifier, start it, detect, stop it, delete it; again until stopped; the last
        model trained is left RUNNING for the checks."""
        project = self._project(client, "chaos-t")
        # The uploaded lines are a class-balanced pick: every third line is for TEST, the rest TRAIN.
        picked = rng.sample(self.lines, min(len(self.lines), 45))
        train_lines = [line for i, line in enumerate(picked) if i % 3]
        test_lines = [line for i, line in enumerate(picked) if not i % 3]
        train = self._dataset(client, project, ds.DATASET_TYPE_TRAIN, train_lines)
        test = self._dataset(client, project, ds.DATASET_TYPE_TEST, test_lines)
        for arn in (train, test):
            status, message = self._wait_dataset(client, arn)
            self.ledger.outcomes[f"import {status}"] += 1
            if status.endswith("FAILED"):
                self.ledger.note(f"the trainer's import ended {status}: {message}")
                return
        image = (DATASETS / source_ref(self.lines[0]).split("/", 3)[3]).read_bytes()
        round_ = 0
        while True:
            round_ += 1
            name = f"v{round_}"
            version_arn = self._create_version(client, project, name)
            status = self._wait_version(client, project, name, ("TRAINING_COMPLETED",))
            self.ledger.outcomes[f"training {status}"] += 1
            if status != "TRAINING_COMPLETED":
                if self.stop.is_set():
                    return
                continue
            client.call(
                "StartProjectVersion",
                client.serving.StartProjectVersion,
                sv.StartProjectVersionRequest(project_version_arn=version_arn, min_inference_units=1),
            )
            status = self._wait_version(client, project, name, ("RUNNING",))
            self.ledger.outcomes[f"start {status}"] += 1
            if status != "RUNNING":
                continue
            for _ in range(rng.randint(3, 8)):
                try:
                    client.call(
                        "DetectCustomLabels",
                        client.serving.DetectCustomLabels,
                        sv.DetectCustomLabelsRequest(
                            project_version_arn=version_arn, image=sv.Image(bytes=image)
                        ),
                    )
                except RetriedError as error:
                    self.ledger.note(f"DetectCustomLabels failed: {error}")
                time.sleep(rng.uniform(0.1, 0.5))
            if self.stop.is_set():
                return  # left RUNNING
            client.call(
                "StopProjectVersion",
                client.serving.StopProjectVersion,
                sv.StopProjectVersionRequest(project_version_arn=version_arn),
            )
            status = self._wait_version(client, project, name, ("STOPPED",))
            self.ledger.outcomes[f"stop {status}"] += 1
            if status == "STOPPED" and rng.random() < 0.5:
                self._delete(
                    client,
                    "DeleteProjectVersion",
                    client.training.DeleteProjectVersion,
                    tr.DeleteProjectVersionRequest(project_version_arn=version_arn),
                )

    def _create_version(self, client: Client, project: str, name: str) -> str:
        request = tr.CreateProjectVersionRequest(
            project_arn=project,
            version_name=name,
            output_config=common.OutputConfig(s3_bucket=OUTPUT_BUCKET, s3_key_prefix=f"chaos/{name}"),
        )
        try:
            return client.call(
                "CreateProjectVersion", client.training.CreateProjectVersion, request
            ).project_version_arn
        except RetriedError as error:
            if error.name != "ResourceAlreadyExistsException" or error.attempts == 1:
                raise
            found = client.call(
                "DescribeProjectVersions",
                client.training.DescribeProjectVersions,
                tr.DescribeProjectVersionsRequest(project_arn=project, version_names=[name]),
                count=False,
            )
            return found.project_version_descriptions[0].project_version_arn


# ---------------------------------------------------------------------------------------------------
# The invariants
# ---------------------------------------------------------------------------------------------------


@dataclass
class Findings:
    """What the checks found (each list must be empty)."""

    lost: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    silent_models: list[str] = field(default_factory=list)
    disagreements: list[str] = field(default_factory=list)
    running_models: int = 0
    checked_entries: int = 0
    checked_objects: int = 0
    settle_s: float = 0.0


def _query(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, connect_timeout=5) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def wait_settled(stack: ChaosStack, timeout: float) -> tuple[list[str], float]:
    """Waits until no dataset or version is in a transitional status; returns those still there."""
    url = stack.env["DATABASE_URL"]
    began = time.monotonic()
    while True:
        stuck = [
            f"dataset {arn} {status}"
            for arn, status in _query(url, "SELECT arn, status FROM dataset.datasets")
            if status in TRANSITIONAL_DATASET
        ] + [
            f"version {arn} {status}"
            for arn, status in _query(url, "SELECT arn, status FROM training.versions")
            if status in TRANSITIONAL_VERSION
        ]
        if not stuck or time.monotonic() - began > timeout:
            return stuck, time.monotonic() - began
        time.sleep(1.0)


def check(stack: ChaosStack, ledger: Ledger, settle_s: float) -> Findings:
    """Every invariant, from the outside (the public API, Postgres, S3, Triton)."""
    found = Findings()
    found.stuck, found.settle_s = wait_settled(stack, settle_s)
    client = Client(stack.env, Ledger(), threading.Event())
    try:
        _check_writes(client, ledger, found)
        _check_objects(stack, found)
        _check_models(stack, client, found)
    finally:
        client.close()
    return found


def _check_writes(client: Client, ledger: Ledger, found: Findings) -> None:
    by_dataset: dict[str, dict[str, Write]] = defaultdict(dict)
    for (arn, ref), write in ledger.writes.items():
        if write.acked is not None and arn not in ledger.deleted_datasets:
            by_dataset[arn][ref] = write
    for arn, writes in by_dataset.items():
        stored: dict[str, str] = {}
        token = ""
        while True:
            page = client.call(
                "ListDatasetEntries",
                client.dataset.ListDatasetEntries,
                ds.ListDatasetEntriesRequest(dataset_arn=arn, next_token=token, max_results=100),
            )
            for line in page.dataset_entries:
                stored[source_ref(line)] = line_labels(line)
            token = page.next_token
            if not token:
                break
        for ref, write in writes.items():
            found.checked_entries += 1
            if ref not in stored:
                found.lost.append(f"{arn} {ref}: missing (acknowledged {write.acked})")
            elif stored[ref] not in write.possible:
                found.lost.append(f"{arn} {ref}: labels {stored[ref]!r}, acknowledged {write.acked!r}")


def _check_objects(stack: ChaosStack, found: Findings) -> None:
    """Every key Postgres references exists in S3."""
    url, env = stack.env["DATABASE_URL"], stack.env
    s3 = stack.s3.client()

    def exists(bucket: str, key: str) -> bool:
        found.checked_objects += 1
        try:
            s3.stat_object(bucket, key)
        except Exception:  # noqa: BLE001 - NoSuchKey and friends
            return False
        return True

    images = env["CUSTOMLABELS_IMAGES_BUCKET"]
    for arn, ref, key in _query(
        url,
        "SELECT d.arn, e.source_ref, e.image_key FROM dataset.entries e"
        " JOIN dataset.datasets d ON d.id = e.dataset_id WHERE e.image_key IS NOT NULL",
    ):
        if not exists(images, key):
            found.orphans.append(f"entry {ref} of {arn}: s3://{images}/{key}")
    models = env["CUSTOMLABELS_MODELS_BUCKET"]
    rows = _query(url, "SELECT arn, status, output_bucket, files FROM training.versions")
    for arn, status, output_bucket, files in rows:
        if status not in TRAINED:
            continue
        for name, key in (files or {}).items():
            if name == "snapshot":
                found.checked_objects += 1
                if next(iter(s3.list_objects(models, prefix=f"{key}/")), None) is None:
                    found.orphans.append(f"version {arn} snapshot: s3://{models}/{key}/ is empty")
            elif not (exists(models, key) or exists(output_bucket, key)):
                found.orphans.append(f"version {arn} {name}: {key} in neither {models} nor {output_bucket}")
    for arn, bucket, key in _query(url, "SELECT version_arn, onnx_bucket, onnx_key FROM serving.deployments"):
        if not exists(bucket, key):
            found.orphans.append(f"deployment {arn}: s3://{bucket}/{key}")


def _triton_index(addr: str) -> dict[str, str]:
    request = urllib.request.Request(f"http://{addr}/v2/repository/index", data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return {m["name"]: m.get("state", "") for m in json.loads(response.read())}


def _check_models(stack: ChaosStack, client: Client, found: Findings, timeout: float = 60.0) -> None:
    """RUNNING in Postgres ⇔ READY in Triton (the control loop gets `timeout` to agree); every RUNNING
    model answers."""
    url = stack.env["DATABASE_URL"]
    image = next((DATASETS / SOURCE / "images").iterdir()).read_bytes()
    deadline = time.monotonic() + timeout
    while True:
        running = {
            arn for (arn,) in _query(url, "SELECT arn FROM training.versions WHERE status = 'RUNNING'")
        }
        names = dict(_query(url, "SELECT version_arn, model_name FROM serving.deployments"))
        ready = {
            name
            for name, state in _triton_index(stack.env["CUSTOMLABELS_TRITON_HTTP_ADDR"]).items()
            if state == "READY"
        }
        disagreements = [
            f"{arn} RUNNING but its model {names.get(arn)} is not READY in Triton"
            for arn in running
            if names.get(arn) not in ready
        ] + [
            f"Triton has {name} READY but {arn} is not RUNNING"
            for arn, name in names.items()
            if name in ready and arn not in running
        ]
        if not disagreements or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    found.disagreements = disagreements
    found.running_models = len(running)
    for arn in sorted(running):
        try:
            client.call(
                "DetectCustomLabels",
                client.serving.DetectCustomLabels,
                sv.DetectCustomLabelsRequest(project_version_arn=arn, image=sv.Image(bytes=image)),
            )
        except RetriedError as error:
            found.silent_models.append(f"{arn}: {error}")


# ---------------------------------------------------------------------------------------------------
# The campaign
# ---------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """A finished campaign: its settings, what happened, what the checks found."""

    settings: Settings
    ledger: Ledger
    chaos: Chaos
    findings: Findings
    mix_errors: list[str]
    duration_s: float

    @property
    def passed(self) -> bool:
        """Zero lost writes, zero stuck statuses, nothing orphaned, models answer and agree."""
        f = self.findings
        return not (f.lost or f.stuck or f.orphans or f.silent_models or f.disagreements or self.chaos.error)


def run(settings: Settings, data_dir: Path | None = None) -> Outcome:
    """Runs one campaign on a stack in `data_dir` (a temporary directory, removed after, by default)."""
    began = time.monotonic()
    owned = data_dir is None
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="customlabels-chaos-"))
    data_dir.chmod(0o755)
    rng = random.Random(settings.seed)
    stack = ChaosStack(data_dir)
    saved_env = dict(os.environ)
    ledger = Ledger()
    mix: Mix | None = None
    chaos: Chaos | None = None
    try:
        print(f"stack up in {data_dir}", flush=True)
        stack.up()
        lines = manifest_lines(settings.images, rng)
        upload_images(stack.s3, lines)
        print(f"{len(lines)} images uploaded; mix and chaos start", flush=True)
        mix = Mix(stack, settings, ledger, lines, settings.seed)
        chaos = Chaos(stack, settings, rng, ledger)
        mix.start()
        chaos.start()
        chaos.join()
        print("kills done; clients finish", flush=True)
        mix.finish()
        findings = check(stack, ledger, settings.settle_s)
        return Outcome(settings, ledger, chaos, findings, mix.errors, time.monotonic() - began)
    finally:
        # Interrupted (Ctrl-C): no more kills or calls while the stack goes down.
        if chaos is not None:
            chaos.halt.set()
            chaos.join(timeout=200)
        if mix is not None:
            mix.stop.set()
        print(stack.down(), flush=True)
        # up() set the stack's ports and tunables here (restarts read them); a test process goes on.
        os.environ.clear()
        os.environ.update(saved_env)
        if owned:
            shutil.rmtree(data_dir, ignore_errors=True)


def table(outcome: Outcome) -> list[str]:
    """The figures as markdown."""
    s, ledger, chaos, f = outcome.settings, outcome.ledger, outcome.chaos, outcome.findings
    lines = [
        "# Faults campaign (bench/chaos.py)",
        "",
        f"Seed {s.seed}, {sum(chaos.kills.values())} kills (SIGKILL) over {outcome.duration_s:.0f} s,"
        f" {s.writers} writers, {s.importers} importers, training {'on' if s.train else 'off'}.",
        "",
        "| part | kills | time to recover (s): mean | max |",
        "| --- | ---: | ---: | ---: |",
    ]
    for part in s.parts:
        times = chaos.recover_s.get(part, [])
        mean = f"{sum(times) / len(times):.1f}" if times else "-"
        peak = f"{max(times):.1f}" if times else "-"
        lines.append(f"| {part} | {chaos.kills[part]} | {mean} | {peak} |")
    lines += ["", "| operation | acknowledged | failed for good |", "| --- | ---: | ---: |"]
    for kind in sorted(set(ledger.ops) | set(ledger.failed)):
        lines.append(f"| {kind} | {ledger.ops[kind]} | {ledger.failed[kind]} |")
    lines += [
        "",
        "| invariant | figure |",
        "| --- | ---: |",
        f"| acknowledged entry writes | {ledger.acked_writes} |",
        f"| entries checked (last write per source-ref) | {f.checked_entries} |",
        f"| lost writes (must be 0) | {len(f.lost)} |",
        f"| stuck statuses (must be 0; settled {f.settle_s:.0f} s after the clients) | {len(f.stuck)} |",
        f"| objects checked / orphaned references (must be 0) | {f.checked_objects} / {len(f.orphans)} |",
        f"| RUNNING models / not answering (must be 0) | {f.running_models} / {len(f.silent_models)} |",
        f"| Postgres vs Triton disagreements (must be 0) | {len(f.disagreements)} |",
    ]
    if ledger.outcomes:
        lines += ["", "| job outcome | count |", "| --- | ---: |"]
        lines += [f"| {k} | {v} |" for k, v in sorted(ledger.outcomes.items())]
    if ledger.retried:
        lines += ["", "| retried error (operation, code, AWS name) | retries |", "| --- | ---: |"]
        lines += [f"| {k} | {v} |" for k, v in ledger.retried.most_common()]
    problems = [
        *f.lost,
        *f.stuck,
        *f.orphans,
        *f.silent_models,
        *f.disagreements,
        *outcome.mix_errors,
        *ledger.notes,
    ]
    if chaos.error is not None:
        problems.append(f"chaos thread: {chaos.error}")
    if problems:
        lines += ["", "Findings:", ""] + [f"- {p}" for p in problems[:60]]
    lines += ["", f"Result: {'PASS' if outcome.passed else 'FAIL'}", ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the campaign, write the table; non-zero when an invariant broke."""
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--short", action="store_true", help="a few kills during imports and updates")
    parser.add_argument("--data-dir", type=Path, help="keep the stack's data and logs here")
    args = parser.parse_args(argv)
    settings = Settings.short(args.seed) if args.short else Settings(kills=args.kills, seed=args.seed)
    if args.data_dir is not None:
        args.data_dir.mkdir(parents=True, exist_ok=True)
    outcome = run(settings, args.data_dir)
    report.write(RESULTS if not args.short else RESULTS.with_name("chaos-short.md"), table(outcome))
    return 0 if outcome.passed else 1


if __name__ == "__main__":
    sys.exit(main())
