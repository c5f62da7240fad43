"""Load and soak: `python -m bench.load [--short] [--clients 20] [--detect-s 60] [--soak-s 600] [--no-edge]`.

The embedded stack (scripts/stack.py: every service, the edge, the training worker, Triton, Postgres and
SeaweedFS as their own processes) runs in a temporary data directory with ports of its own. The
benchmark trains one small classifier on real photos (../shared/datasets/rock-paper-scissors) through
the public gRPC API, starts it, and then measures, each against a baseline taken in the same run:

1. Detect: C concurrent DetectCustomLabels clients (each its own connection) for `--detect-s`, over
   gRPC and through the HTTP edge with boto3 (what users run): errors, p50/p95/p99, images/s.
   Baselines: one client alone on each path, and direct Triton inference of the same images (the
   service's own decoding, `modelio.prepare`, in this process) alone and at C.
2. Read: C concurrent clients cycling through List*/Describe* calls on a dataset of 100k entries
   (written straight into its table with bench/datasets.py's `fill`): p50/p95 per call. Baselines: the
   same calls by one client on a 1k and on the 100k dataset.
3. Imports: N concurrent CreateDataset from Ground Truth manifests of real photos already in S3; the
   time to CREATE_COMPLETE of each and images/s of all together, against one import alone. Each import
   has images of its own (the photos with a distinct JPEG comment), since identical images are stored
   once and would not be copied again.
4. Soak: a mixed load (detect over gRPC and the edge, List*/Describe*, small UpdateDatasetEntries, an
   import and a DeleteDataset now and then) for `--soak-s`, with the resident memory (VmRSS), open file
   descriptors and threads of each process of the stack after a warm-up and at the end, and the
   number of Postgres backends.

Every call has no retries: an error is counted as the caller saw it. `--short` (tests/test_load.py)
runs a few seconds of each on small datasets. Results go to bench/results/load.md (bench/report.py).
The client threads run in this process, on the same cores as the stack.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import struct
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3
import grpc
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError
from customlabels.common.v1 import types_pb2 as common
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.dataset.v1 import dataset_service_pb2_grpc as ds_grpc
from customlabels.project.v1 import project_service_pb2 as pj
from customlabels.project.v1 import project_service_pb2_grpc as pj_grpc
from customlabels.serving.v1 import serving_service_pb2 as sv
from customlabels.serving.v1 import serving_service_pb2_grpc as sv_grpc
from customlabels.training.v1 import training_service_pb2 as tr
from customlabels.training.v1 import training_service_pb2_grpc as tr_grpc

from bench import datasets, report, workflow
from bench.stackrun import EmbeddedStack
from scripts import shared_data
from scripts.inprocess import LocalServices
from services.common import errors, modelio
from services.common.auth import GrpcSecurity
from services.common.clients import CHANNEL_OPTIONS
from services.common.storage import ObjectStore
from services.serving.triton import TritonClient

RESULTS = Path(__file__).resolve().parent / "results" / "load.md"
PHOTOS = shared_data.datasets_dir() / "rock-paper-scissors"
# The manifests' placeholder bucket and prefix (../shared/datasets/README.md): the photos are uploaded
# there, so the manifests' source-refs work as they are.
PHOTO_BUCKET = "datasets"
PHOTO_PREFIX = "rock-paper-scissors/images/"
SOURCE_BUCKET = "load-source"
OUTPUT_BUCKET = "load-output"
CALL_TIMEOUT_S = 60.0

# What the stack's processes read: a quick serving control loop, a short classifier budget.
STACK_ENV = {
    "CUSTOMLABELS_SERVING_RECONCILE_S": "1",
    "CUSTOMLABELS_TRAINING_JOB_POLL_S": "0.5",
    "CUSTOMLABELS_TRAINING_CLASSIFICATION_S_PER_IMAGE": "0.02",
}


@dataclass(frozen=True)
class Settings:
    """One campaign's sizes (the defaults are the full form of issue 12)."""

    clients: int = 20
    detect_s: float = 60.0
    read_s: float = 30.0
    large_entries: int = 100_000
    small_entries: int = 1_000
    imports: int = 5
    import_images: int = 300
    soak_s: float = 600.0
    warmup_s: float = 30.0
    samples: int = 10
    train_per_label: int = 20
    import_every_s: float = 60.0
    edge: bool = True

    @classmethod
    def short(cls) -> Settings:
        """A few seconds of each on small datasets (tests/test_load.py)."""
        return cls(
            clients=4,
            detect_s=2.0,
            read_s=2.0,
            large_entries=2_000,
            small_entries=200,
            imports=2,
            import_images=16,
            soak_s=4.0,
            warmup_s=2.0,
            samples=1,
            train_per_label=6,
            import_every_s=1.0,
        )


# ---------------------------------------------------------------------------------------------------
# The stack
# ---------------------------------------------------------------------------------------------------


class LoadStack(EmbeddedStack):
    """`python -m scripts.stack up` in a data directory of its own, on ports of its own."""

    def up(self, env: Mapping[str, str] | None = None, timeout: float = 240.0) -> None:
        """Starts every part and reads the endpoints the stack wrote to stack.env."""
        super().up({**STACK_ENV, **self.free_ports(), **(env or {})}, timeout)


@contextmanager
def running_stack(data_dir: Path | None = None) -> Iterator[LoadStack]:
    """A stack up for the block and down (and its temporary data directory removed) after."""
    own = data_dir is None
    path = Path(tempfile.mkdtemp(prefix="customlabels-load-")) if data_dir is None else data_dir
    path.chmod(0o755)  # the postgres user must reach its cluster
    stack = LoadStack(path / "stack")
    try:
        stack.up()
        yield stack
    finally:
        stack.down()
        if own:
            shutil.rmtree(path, ignore_errors=True)


class Api:
    """Stubs of the four services on connections of their own (one user), and a boto3 client of the edge."""

    def __init__(self, env: dict[str, str], edge: bool = False) -> None:
        security = GrpcSecurity(token=env["CUSTOMLABELS_API_TOKEN"])
        # A private subchannel pool: each Api is its own TCP connection, as separate users would be.
        options = [*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)]
        self._channels = [
            security.open_channel(env[f"CUSTOMLABELS_{name}_ADDR"], options)
            for name in ("PROJECT", "DATASET", "TRAINING", "SERVING")
        ]
        self.project = pj_grpc.ProjectServiceStub(self._channels[0])
        self.dataset = ds_grpc.DatasetServiceStub(self._channels[1])
        self.training = tr_grpc.TrainingServiceStub(self._channels[2])
        self.serving = sv_grpc.ServingServiceStub(self._channels[3])
        self.boto: Any = None
        if edge:
            self.boto = boto3.session.Session().client(
                "rekognition",
                endpoint_url=env["CUSTOMLABELS_EDGE_ENDPOINT"],
                region_name=env.get("CUSTOMLABELS_REGION", "local"),
                aws_access_key_id=env["CUSTOMLABELS_AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=env["CUSTOMLABELS_AWS_SECRET_ACCESS_KEY"],
                config=BotoConfig(retries={"total_max_attempts": 1}, read_timeout=CALL_TIMEOUT_S),
            )

    def close(self) -> None:
        """Closes the connections."""
        for channel in self._channels:
            channel.close()
        if self.boto is not None:
            self.boto.close()


def local_services(stack: LoadStack, api: Api) -> LocalServices:
    """The stack's services as bench/workflow.py and bench/datasets.py take them."""
    env = stack.env
    return LocalServices(
        project=api.project,
        dataset=api.dataset,
        training=api.training,
        project_addr=env["CUSTOMLABELS_PROJECT_ADDR"],
        dataset_addr=env["CUSTOMLABELS_DATASET_ADDR"],
        training_addr=env["CUSTOMLABELS_TRAINING_ADDR"],
        store=ObjectStore(*stack.s3),
        images_bucket=env["CUSTOMLABELS_IMAGES_BUCKET"],
        models_bucket=env["CUSTOMLABELS_MODELS_BUCKET"],
        s3=stack.s3,
        env=env,
        serving=api.serving,
        serving_addr=env["CUSTOMLABELS_SERVING_ADDR"],
    )


# ---------------------------------------------------------------------------------------------------
# Photos, manifests, the model
# ---------------------------------------------------------------------------------------------------


def photo_lines(manifest: str, per_label: int | None = None) -> list[str]:
    """Lines of a rock-paper-scissors manifest; with `per_label`, the first that many of each class."""
    lines = (PHOTOS / manifest).read_text().splitlines()
    if per_label is None:
        return lines
    taken: Counter[str] = Counter()
    out = []
    for text in lines:
        label = json.loads(text)["gesture-metadata"]["class-name"]
        if taken[label] < per_label:
            taken[label] += 1
            out.append(text)
    return out


def upload_photos(store: ObjectStore, lines: list[str]) -> None:
    """The photos of the manifest lines to s3://datasets/rock-paper-scissors/images/ (8 threads)."""
    store.ensure_bucket(PHOTO_BUCKET)
    names = [json.loads(text)["source-ref"].rsplit("/", 1)[1] for text in lines]
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda n: store.put_bytes(
                    PHOTO_BUCKET, PHOTO_PREFIX + n, (PHOTOS / "images" / n).read_bytes()
                ),
                names,
            )
        )


def with_comment(jpeg: bytes, tag: str) -> bytes:
    """The JPEG with a COM segment after SOI: the same pixels, other bytes (so another stored image)."""
    text = tag.encode()
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + jpeg[2:]


def variant_manifest(store: ObjectStore, tag: str, count: int) -> tuple[str, int]:
    """`count` photos (cycling the TRAIN manifest) made distinct with `tag`, uploaded under
    s3://load-source/<tag>/, and their manifest; returns (manifest key, lines)."""
    store.ensure_bucket(SOURCE_BUCKET)
    source = photo_lines("train.manifest")
    lines = []

    def put(i: int) -> str:
        line = json.loads(source[i % len(source)])
        name = line["source-ref"].rsplit("/", 1)[1]
        key = f"{tag}/{i:05d}-{name}"
        store.put_bytes(
            SOURCE_BUCKET, key, with_comment((PHOTOS / "images" / name).read_bytes(), f"{tag}/{i}")
        )
        line["source-ref"] = f"s3://{SOURCE_BUCKET}/{key}"
        return json.dumps(line)

    with ThreadPoolExecutor(8) as pool:
        lines = list(pool.map(put, range(count)))
    key = f"{tag}.manifest"
    store.put_bytes(SOURCE_BUCKET, key, ("\n".join(lines) + "\n").encode())
    return key, len(lines)


def create_from_manifest(api: Api, project: str, key: str, kind: int = ds.DATASET_TYPE_TRAIN) -> str:
    """CreateDataset from s3://load-source/<key>; returns the dataset ARN (the import runs on)."""
    return api.dataset.CreateDataset(
        ds.CreateDatasetRequest(
            project_arn=project,
            dataset_type=kind,
            dataset_source=ds.DatasetSource(
                ground_truth_manifest=common.GroundTruthManifest(
                    s3_object=common.S3Object(bucket=SOURCE_BUCKET, name=key)
                )
            ),
        ),
        timeout=CALL_TIMEOUT_S,
    ).dataset_arn


@dataclass(frozen=True)
class Model:
    """The running model: its project and version, its Triton name and what decodes its inputs."""

    project: str
    version: str
    triton_name: str
    spec: modelio.ModelSpec


def train_and_start(services: LocalServices, per_label: int) -> Model:
    """A rock-paper-scissors classifier trained on `per_label` photos of each class, started (1 unit)."""
    project = services.project.CreateProject(
        pj.CreateProjectRequest(project_name=f"load-rps-{uuid.uuid4().hex[:6]}")
    ).project_arn
    for name, kind, count in (
        ("train.manifest", ds.DATASET_TYPE_TRAIN, per_label),
        ("test.manifest", ds.DATASET_TYPE_TEST, max(2, per_label // 3)),
    ):
        lines = photo_lines(name, count)
        upload_photos(services.store, lines)
        workflow.import_manifest(services, project, SOURCE_BUCKET, f"model-{name}", lines, kind)
    desc, version, _ = workflow.train_version(services, project, OUTPUT_BUCKET, "load", timeout=900)
    if desc.status != tr.PROJECT_VERSION_STATUS_TRAINING_COMPLETED:
        raise RuntimeError(f"training failed: {desc.status_message}")
    assert services.serving is not None
    services.serving.StartProjectVersion(
        sv.StartProjectVersionRequest(project_version_arn=version, min_inference_units=1)
    )
    desc = workflow.wait_version(
        services, project, "v1", {tr.PROJECT_VERSION_STATUS_RUNNING, tr.PROJECT_VERSION_STATUS_FAILED}, 300
    )
    if desc.status != tr.PROJECT_VERSION_STATUS_RUNNING:
        raise RuntimeError(f"the model did not start: {desc.status_message}")
    artifact = services.training.GetModelArtifact(tr.GetModelArtifactRequest(project_version_arn=version))
    spec = modelio.ModelSpec.from_json(
        services.store.get_bytes(artifact.model_metadata.bucket, artifact.model_metadata.name)
    )
    triton = TritonClient(services.env["CUSTOMLABELS_TRITON_GRPC_ADDR"])
    try:
        (name,) = [n for n, state in triton.loaded().items() if state == "READY"]
    finally:
        triton.close()
    return Model(project, version, name, spec)


def test_images(count: int = 30) -> list[bytes]:
    """Photos of the TEST manifest (never trained on), as clients send them."""
    names = [json.loads(t)["source-ref"].rsplit("/", 1)[1] for t in photo_lines("test.manifest")[:count]]
    return [(PHOTOS / "images" / n).read_bytes() for n in names]


# ---------------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------------


def error_name(exc: BaseException) -> str:
    """What a caller sees: the gRPC code and AWS name, the edge's error code, or the exception type."""
    if isinstance(exc, grpc.RpcError):
        return f"{exc.code().name} {errors.aws_name_of(exc) or ''}".strip()
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__


@dataclass
class Tally:
    """Latencies (s) per call name, and errors by call and name; safe to share between threads."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def timed(self, name: str, call: Callable[[], Any]) -> Any:
        """Runs `call`, counting its latency or its error under `name`; returns its result (None on error)."""
        began = time.perf_counter()
        try:
            result = call()
        except (grpc.RpcError, ClientError, BotoCoreError, OSError) as exc:
            key = f"{name}: {error_name(exc)}"
            with self._lock:
                self.errors[key] += 1
                self.examples.setdefault(key, str(exc)[:300])
            return None
        elapsed = time.perf_counter() - began
        with self._lock:
            self.latencies.setdefault(name, []).append(elapsed)
        return result

    def failed(self, name: str, message: str) -> None:
        """Counts an error that is not an exception (e.g. an import that ended CREATE_FAILED)."""
        with self._lock:
            self.errors[f"{name}: {message[:80]}"] += 1

    def calls(self, name: str | None = None) -> int:
        """Successful calls (of `name`, or all)."""
        if name is not None:
            return len(self.latencies.get(name, []))
        return sum(len(v) for v in self.latencies.values())

    def error_count(self) -> int:
        """Every error."""
        return sum(self.errors.values())

    def pct(self, name: str, q: float) -> float:
        """The q-quantile of `name`'s latencies in ms (nan when there are none)."""
        ordered = sorted(self.latencies.get(name, []))
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def rate(self, name: str) -> float:
        """Calls of `name` per second over the measured time."""
        return self.calls(name) / self.seconds if self.seconds else 0.0


def hammer(workers: list[Callable[[int, Tally], None]], seconds: float, tally: Tally | None = None) -> Tally:
    """Runs each worker (one thread each; called as worker(i, tally), i = 0, 1, … in a loop) for `seconds`."""
    tally = tally or Tally()
    stop_at = time.monotonic() + seconds

    def loop(worker: Callable[[int, Tally], None]) -> None:
        i = 0
        while time.monotonic() < stop_at:
            try:
                worker(i, tally)
            except Exception as exc:  # noqa: BLE001 - a client's own failure counts as an error too
                tally.failed(threading.current_thread().name, f"{type(exc).__name__}: {exc}")
                time.sleep(0.1)
            i += 1

    threads = [threading.Thread(target=loop, args=(w,), name=f"load-{n}") for n, w in enumerate(workers)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tally.seconds = time.perf_counter() - began
    return tally


def grpc_detector(api: Api, version: str, images: list[bytes], offset: int) -> Callable[[int, Tally], None]:
    """A client calling DetectCustomLabels over gRPC on the images in turn."""

    def work(i: int, tally: Tally) -> None:
        data = images[(offset + i) % len(images)]
        request = sv.DetectCustomLabelsRequest(project_version_arn=version, image=sv.Image(bytes=data))
        tally.timed("detect grpc", lambda: api.serving.DetectCustomLabels(request, timeout=CALL_TIMEOUT_S))

    return work


def edge_detector(api: Api, version: str, images: list[bytes], offset: int) -> Callable[[int, Tally], None]:
    """A client calling DetectCustomLabels through the edge with boto3."""

    def work(i: int, tally: Tally) -> None:
        data = images[(offset + i) % len(images)]
        tally.timed(
            "detect edge",
            lambda: api.boto.detect_custom_labels(ProjectVersionArn=version, Image={"Bytes": data}),
        )

    return work


def triton_detector(
    triton: TritonClient, model: Model, images: list[bytes], offset: int
) -> Callable[[int, Tally], None]:
    """Direct Triton inference, decoding in this process as the serving service does."""

    def work(i: int, tally: Tally) -> None:
        data = images[(offset + i) % len(images)]

        def infer() -> Any:
            pixels, size = modelio.prepare(data, model.spec.input_size)
            return triton.infer(model.triton_name, CALL_TIMEOUT_S, pixels=pixels, size=size)

        tally.timed("detect triton", infer)

    return work


# ---------------------------------------------------------------------------------------------------
# 1. Detect
# ---------------------------------------------------------------------------------------------------


@dataclass
class DetectRow:
    """One measured detect configuration."""

    path: str
    clients: int
    tally: Tally
    name: str


def bench_detect(stack: LoadStack, model: Model, settings: Settings) -> list[DetectRow]:
    """Baselines (1 client; direct Triton) and C clients over gRPC and the edge."""
    images = test_images()
    apis = [Api(stack.env, edge=settings.edge) for _ in range(settings.clients)]
    tritons = [TritonClient(stack.env["CUSTOMLABELS_TRITON_GRPC_ADDR"]) for _ in range(settings.clients)]
    c = settings.clients
    rows: list[DetectRow] = []
    try:
        warm = Tally()
        for i in range(3):
            grpc_detector(apis[0], model.version, images, 0)(i, warm)
            triton_detector(tritons[0], model, images, 0)(i, warm)
            if settings.edge:
                edge_detector(apis[0], model.version, images, 0)(i, warm)
        plans: list[tuple[str, int, str, list[Callable[[int, Tally], None]]]] = [
            ("direct Triton (baseline)", 1, "detect triton", [triton_detector(tritons[0], model, images, 0)]),
            ("gRPC", 1, "detect grpc", [grpc_detector(apis[0], model.version, images, 0)]),
        ]
        if settings.edge:
            plans.append(
                ("edge + boto3", 1, "detect edge", [edge_detector(apis[0], model.version, images, 0)])
            )
        plans += [
            (
                "direct Triton (baseline)",
                c,
                "detect triton",
                [triton_detector(tritons[k], model, images, k) for k in range(c)],
            ),
            ("gRPC", c, "detect grpc", [grpc_detector(apis[k], model.version, images, k) for k in range(c)]),
        ]
        if settings.edge:
            plans.append(
                (
                    "edge + boto3",
                    c,
                    "detect edge",
                    [edge_detector(apis[k], model.version, images, k) for k in range(c)],
                )
            )
        for path, clients, name, workers in plans:
            seconds = settings.detect_s if clients > 1 else max(settings.detect_s / 3, 1.0)
            rows.append(DetectRow(path, clients, hammer(workers, seconds), name))
            print(f"detect {path} ×{clients}: {rows[-1].tally.rate(name):.1f}/s", flush=True)
    finally:
        for api in apis:
            api.close()
        for triton in tritons:
            triton.close()
    return rows


def detect_table(rows: list[DetectRow]) -> list[str]:
    """Markdown: one line per configuration, ratios against direct Triton at the same concurrency."""
    base = {r.clients: r for r in rows if r.name == "detect triton"}
    single = {r.path: r for r in rows if r.clients == 1}
    out = [
        "| path | clients | calls | errors | p50 ms | p95 ms | p99 ms | images/s | throughput / direct Triton "
        "| p50 / direct Triton | throughput / 1 client |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        t, b = r.tally, base[r.clients].tally
        bname = "detect triton"
        one = single[r.path].tally.rate(r.name)
        out.append(
            f"| {r.path} | {r.clients} | {t.calls(r.name)} | {t.error_count()} | {t.pct(r.name, 0.5):.1f} "
            f"| {t.pct(r.name, 0.95):.1f} | {t.pct(r.name, 0.99):.1f} | {t.rate(r.name):.1f} "
            f"| {t.rate(r.name) / b.rate(bname):.2f} | {t.pct(r.name, 0.5) / b.pct(bname, 0.5):.2f} "
            f"| {t.rate(r.name) / one:.2f} |"
        )
    return out


# ---------------------------------------------------------------------------------------------------
# 2. Read
# ---------------------------------------------------------------------------------------------------


def deep_token(api: Api, arn: str, pages: int) -> str:
    """The NextToken of page `pages + 1`, obtained the way a client pages."""
    token = ""
    for _ in range(pages):
        token = api.dataset.ListDatasetEntries(
            ds.ListDatasetEntriesRequest(dataset_arn=arn, max_results=100, next_token=token),
            timeout=CALL_TIMEOUT_S,
        ).next_token
    return token


def read_calls(
    api: Api, arn: str, token: str, project: str, project_name: str
) -> list[tuple[str, Callable[[], Any]]]:
    """The List*/Describe* mix on one dataset, as (name, call) pairs."""
    entries = api.dataset.ListDatasetEntries
    t = CALL_TIMEOUT_S

    def listing(**fields: Any) -> Callable[[], Any]:
        request = ds.ListDatasetEntriesRequest(dataset_arn=arn, **fields)
        return lambda: entries(request, timeout=t)

    return [
        ("ListDatasetEntries first page", listing()),
        ("ListDatasetEntries deep page (NextToken)", listing(next_token=token)),
        ("ListDatasetEntries HasErrors=true", listing(has_errors=True)),
        ("ListDatasetEntries Labeled=false", listing(labeled=False)),
        ("ListDatasetEntries ContainsLabels=[apple]", listing(contains_labels=["apple"])),
        ("ListDatasetEntries SourceRefContains=/odd/", listing(source_ref_contains="/odd/")),
        (
            "ListDatasetLabels",
            lambda: api.dataset.ListDatasetLabels(ds.ListDatasetLabelsRequest(dataset_arn=arn), timeout=t),
        ),
        (
            "DescribeDataset",
            lambda: api.dataset.DescribeDataset(ds.DescribeDatasetRequest(dataset_arn=arn), timeout=t),
        ),
        (
            "DescribeProjects",
            lambda: api.project.DescribeProjects(
                pj.DescribeProjectsRequest(project_names=[project_name]), timeout=t
            ),
        ),
        (
            "DescribeProjectVersions",
            lambda: api.training.DescribeProjectVersions(
                tr.DescribeProjectVersionsRequest(project_arn=project), timeout=t
            ),
        ),
    ]


def reader(api: Api, calls: list[tuple[str, Callable[[], Any]]], offset: int) -> Callable[[int, Tally], None]:
    """A client cycling through the calls (starting at `offset`)."""

    def work(i: int, tally: Tally) -> None:
        name, call = calls[(offset + i) % len(calls)]
        tally.timed(name, call)

    return work


@dataclass(frozen=True)
class Filled:
    """A dataset of `size` rows written straight into its table, and a token into its middle."""

    arn: str
    size: int
    token: str
    project: str
    project_name: str


def fill(stack: LoadStack, services: LocalServices, api: Api, size: int) -> Filled:
    """bench/datasets.py's `fill` (rows through COPY), and a NextToken halfway through."""
    name = f"load-{size}-{uuid.uuid4().hex[:6]}"
    arn = datasets.fill(stack.env["DATABASE_URL"], services, name, size)
    project = api.project.DescribeProjects(
        pj.DescribeProjectsRequest(project_names=[name])
    ).project_descriptions[0]
    return Filled(arn, size, deep_token(api, arn, max(1, size // 200)), project.project_arn, name)


def bench_read(
    stack: LoadStack, services: LocalServices, settings: Settings, small: Filled, large: Filled
) -> dict[str, Tally]:
    """The mix by one client on the small and the large dataset, then by C clients on the large one."""
    apis = [Api(stack.env) for _ in range(settings.clients)]
    out: dict[str, Tally] = {}
    try:

        def calls(api: Api, d: Filled) -> list[tuple[str, Callable[[], Any]]]:
            return read_calls(api, d.arn, d.token, d.project, d.project_name)

        n = len(calls(apis[0], small))
        # One client: every call equally often, so run long enough for ~30 rounds at least.
        for label, d in (("small×1", small), ("large×1", large)):
            for _, call in calls(apis[0], d):
                call()
            out[label] = hammer([reader(apis[0], calls(apis[0], d), 0)], max(settings.read_s / 2, 1.0))
        out["large×C"] = hammer(
            [reader(apis[k], calls(apis[k], large), k % n) for k in range(settings.clients)], settings.read_s
        )
    finally:
        for api in apis:
            api.close()
    return out


def read_table(tallies: dict[str, Tally], small: Filled, large: Filled, clients: int) -> list[str]:
    """Markdown: p50/p95 of each call in the three configurations, ratios against the 1k single client."""
    s, one, many = tallies["small×1"], tallies["large×1"], tallies["large×C"]
    out = [
        f"| call | {small.size:,} entries, 1 client: p50 / p95 ms | {large.size:,}, 1 client: p50 / p95 ms "
        f"| {large.size:,}, {clients} clients: p50 / p95 ms | calls ({clients} clients) "
        f"| p95 ratio ({clients} clients on {large.size:,} / 1 client on {small.size:,}) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in s.latencies:
        out.append(
            f"| {name} | {s.pct(name, 0.5):.1f} / {s.pct(name, 0.95):.1f} | {one.pct(name, 0.5):.1f} / "
            f"{one.pct(name, 0.95):.1f} | {many.pct(name, 0.5):.1f} / {many.pct(name, 0.95):.1f} "
            f"| {many.calls(name)} | {many.pct(name, 0.95) / s.pct(name, 0.95):.2f} |"
        )
    total = sum(t.error_count() for t in tallies.values())
    out += [
        "",
        f"Errors: {total}. Throughput: {many.calls() / many.seconds:.0f} calls/s with {clients} clients, "
        f"{one.calls() / one.seconds:.0f} calls/s with one ({large.size:,} entries).",
    ]
    return out


# ---------------------------------------------------------------------------------------------------
# 3. Imports
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportRun:
    """One import: images, seconds from CreateDataset to CREATE_COMPLETE, and its final status."""

    images: int
    seconds: float
    status: str
    entries: int


def run_import(
    api: Api, store: ObjectStore, tag: str, count: int, ready: threading.Barrier | None = None
) -> ImportRun:
    """Prepares `count` distinct photos and their manifest, then (after the barrier) imports them in a new
    project and waits for the end."""
    key, lines = variant_manifest(store, tag, count)
    project = api.project.CreateProject(
        pj.CreateProjectRequest(project_name=f"load-import-{tag}")
    ).project_arn
    if ready is not None:
        ready.wait()
    began = time.perf_counter()
    arn = create_from_manifest(api, project, key)
    desc = wait_dataset(api, arn)
    return ImportRun(
        lines,
        time.perf_counter() - began,
        ds.DatasetStatus.Name(desc.status),
        desc.dataset_stats.total_entries,
    )


def wait_dataset(api: Api, arn: str, timeout: float = 600.0) -> ds.DatasetDescription:
    """Polls DescribeDataset until the dataset's create or update has ended (COMPLETE or FAILED)."""
    deadline = time.monotonic() + timeout
    while True:
        desc = api.dataset.DescribeDataset(ds.DescribeDatasetRequest(dataset_arn=arn), timeout=CALL_TIMEOUT_S)
        name = ds.DatasetStatus.Name(desc.dataset_description.status)
        if name.endswith(("COMPLETE", "FAILED")) or time.monotonic() > deadline:
            return desc.dataset_description
        time.sleep(0.05)


def bench_imports(
    stack: LoadStack, store: ObjectStore, settings: Settings
) -> tuple[ImportRun, list[ImportRun], float]:
    """One import alone, then N at once; returns (alone, each of the N, seconds until the last ended)."""
    api = Api(stack.env)
    try:
        alone = run_import(api, store, f"alone-{uuid.uuid4().hex[:6]}", settings.import_images)
        barrier = threading.Barrier(settings.imports + 1)
        tag = uuid.uuid4().hex[:6]
        with ThreadPoolExecutor(settings.imports) as pool:
            futures = [
                pool.submit(run_import, api, store, f"many-{tag}-{k}", settings.import_images, barrier)
                for k in range(settings.imports)
            ]
            barrier.wait()
            began = time.perf_counter()
            runs = [f.result() for f in futures]
            wall = time.perf_counter() - began
    finally:
        api.close()
    return alone, runs, wall


def import_table(alone: ImportRun, runs: list[ImportRun], wall: float) -> list[str]:
    """Markdown: each import's time, the aggregate rate, the ratio against one import alone."""
    total = sum(r.images for r in runs)
    rate_alone = alone.images / alone.seconds
    out = [
        "| import | images | seconds to CREATE_COMPLETE | status | entries | images/s |",
        "|---|---:|---:|---|---:|---:|",
        f"| alone (baseline) | {alone.images} | {alone.seconds:.2f} | {alone.status} | {alone.entries} | {rate_alone:.0f} |",
    ]
    out += [
        f"| concurrent #{k + 1} | {r.images} | {r.seconds:.2f} | {r.status} | {r.entries} | {r.images / r.seconds:.0f} |"
        for k, r in enumerate(runs)
    ]
    out += [
        "",
        f"{len(runs)} at once: {total} images in {wall:.2f} s = {total / wall:.0f} images/s "
        f"(**{total / wall / rate_alone:.2f}×** one import alone).",
    ]
    return out


# ---------------------------------------------------------------------------------------------------
# 4. Processes and the soak
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcStat:
    """Resident memory (KiB), open file descriptors and threads of a process (or a group of them)."""

    rss_kib: int
    fds: int
    threads: int
    count: int = 1


def proc_stat(pid: int) -> ProcStat | None:
    """VmRSS, the entries of /proc/PID/fd and Threads; None when the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss = int(fields.get("VmRSS", "0 kB").split()[0])
    return ProcStat(rss, fds, int(fields.get("Threads", "0")))


def children(pid: int) -> list[int]:
    """The PIDs whose parent is `pid`."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def snapshot(pids: dict[str, int]) -> dict[str, ProcStat]:
    """Every recorded part of the stack, plus Postgres's client backends as one group (their RSS counts
    the shared buffers each has touched, so it is an upper bound)."""
    out: dict[str, ProcStat] = {}
    for name, pid in sorted(pids.items()):
        stat = proc_stat(pid)
        if stat is not None:
            out[name] = stat
        if name == "postgres":
            backends = []
            for child in children(pid):
                try:
                    cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
                except OSError:
                    continue
                if b"(" in cmdline:  # "postgres: user db 127.0.0.1(port) state": a client connection
                    backends.append(proc_stat(child))
            alive = [b for b in backends if b is not None]
            out["postgres client backends"] = ProcStat(
                sum(b.rss_kib for b in alive),
                sum(b.fds for b in alive),
                sum(b.threads for b in alive),
                len(alive),
            )
    return out


class Mix:
    """The soak's mixed load: detect (gRPC and edge), List*/Describe*, small updates, an import and a
    delete now and then. `run(seconds)` drives it; the clients stay connected between runs."""

    def __init__(
        self, stack: LoadStack, store: ObjectStore, model: Model, data: Filled, settings: Settings
    ) -> None:
        self.stack, self.store, self.model, self.data, self.settings = stack, store, model, data, settings
        self.images = test_images()
        edge = settings.edge
        self.detect_apis = [Api(stack.env, edge=edge) for _ in range(4)]
        self.read_apis = [Api(stack.env, edge=edge) for _ in range(3)]
        self.write_api = Api(stack.env)
        self.import_api = Api(stack.env)
        project = self.write_api.project.CreateProject(
            pj.CreateProjectRequest(project_name=f"load-soak-{uuid.uuid4().hex[:6]}")
        ).project_arn
        key, _ = variant_manifest(store, f"soak-{uuid.uuid4().hex[:6]}", 12)
        self.updated = create_from_manifest(self.write_api, project, key)
        wait_dataset(self.write_api, self.updated)
        # Photos uploaded for the model (train_and_start), so every update ingests real images.
        self.update_lines = photo_lines("test.manifest", max(2, settings.train_per_label // 3))
        self.imports = 0
        self._last_import = 0.0

    def close(self) -> None:
        """Closes every connection."""
        for api in (*self.detect_apis, *self.read_apis, self.write_api, self.import_api):
            api.close()

    def workers(self) -> list[Callable[[int, Tally], None]]:
        """One callable per client thread."""
        version, images = self.model.version, self.images
        out: list[Callable[[int, Tally], None]] = []
        for k, api in enumerate(self.detect_apis):
            edge = self.settings.edge and k % 2 == 1
            out.append((edge_detector if edge else grpc_detector)(api, version, images, k))
        d = self.data
        for k, api in enumerate(self.read_apis):
            calls = read_calls(api, d.arn, d.token, d.project, d.project_name)
            if self.settings.edge and k == 0:
                calls += [
                    (
                        "edge ListDatasetEntries",
                        lambda api=api: api.boto.list_dataset_entries(DatasetArn=d.arn),
                    ),
                    (
                        "edge DescribeProjects",
                        lambda api=api: api.boto.describe_projects(ProjectNames=[d.project_name]),
                    ),
                ]
            out.append(reader(api, calls, k * 3))
        out += [self._update, self._import]
        return out

    def _update(self, i: int, tally: Tally) -> None:
        """UpdateDatasetEntries of 3 photos (relabelled in turn), then wait for UPDATE_COMPLETE."""
        n = len(self.update_lines)
        lines = [json.loads(self.update_lines[(3 * i + j) % n]) for j in range(3)]
        for line in lines:
            line["gesture-metadata"]["class-name"] = ("rock", "paper", "scissors")[i % 3]
        body = "\n".join(json.dumps(line) for line in lines).encode()
        request = ds.UpdateDatasetEntriesRequest(
            dataset_arn=self.updated, changes=ds.DatasetChanges(ground_truth=body)
        )
        api = self.write_api
        if (
            tally.timed(
                "UpdateDatasetEntries",
                lambda: api.dataset.UpdateDatasetEntries(request, timeout=CALL_TIMEOUT_S),
            )
            is None
        ):
            time.sleep(0.5)
            return
        desc = tally.timed("update → UPDATE_COMPLETE", lambda: wait_dataset(api, self.updated))
        if desc is not None and desc.status != ds.DATASET_STATUS_UPDATE_COMPLETE:
            tally.failed("update", f"{ds.DatasetStatus.Name(desc.status)} {desc.status_message}")

    def _import(self, i: int, tally: Tally) -> None:
        """Every `import_every_s`: an import of 20 new photos in a new project, then DeleteDataset."""
        wait = self._last_import + self.settings.import_every_s - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, 0.5))
            return
        self._last_import = time.monotonic()
        api = self.import_api
        tag = f"mix-{uuid.uuid4().hex[:8]}"
        run = tally.timed("import → CREATE_COMPLETE", lambda: run_import(api, self.store, tag, 20))
        if run is None:
            return
        self.imports += 1
        if run.status != "DATASET_STATUS_CREATE_COMPLETE":
            tally.failed("import", run.status)
        project = api.project.DescribeProjects(
            pj.DescribeProjectsRequest(project_names=[f"load-import-{tag}"]), timeout=CALL_TIMEOUT_S
        ).project_descriptions[0]
        for dataset in project.datasets:
            tally.timed(
                "DeleteDataset",
                lambda arn=dataset.dataset_arn: api.dataset.DeleteDataset(
                    ds.DeleteDatasetRequest(dataset_arn=arn), timeout=CALL_TIMEOUT_S
                ),
            )

    def run(self, seconds: float, tally: Tally | None = None) -> Tally:
        """Drives the mix for `seconds`."""
        self._last_import = 0.0
        return hammer(self.workers(), seconds, tally)


@dataclass
class Soak:
    """The soak's samples (after the warm-up, …, at the end) and the load's tally."""

    samples: list[tuple[float, dict[str, ProcStat]]]
    tally: Tally
    imports: int


def soak(stack: LoadStack, mix: Mix, settings: Settings) -> Soak:
    """Warm-up, a sample of every process, then `soak_s` of the mix in `samples` slices with a sample
    after each."""
    mix.run(settings.warmup_s)
    pids = stack.pids()
    samples = [(0.0, snapshot(pids))]
    tally = Tally()
    began = time.monotonic()
    slice_s = settings.soak_s / settings.samples
    seconds = 0.0
    for _ in range(settings.samples):
        part = mix.run(slice_s)
        seconds += part.seconds
        for name, values in part.latencies.items():
            tally.latencies.setdefault(name, []).extend(values)
        tally.errors.update(part.errors)
        for key, text in part.examples.items():
            tally.examples.setdefault(key, text)
        samples.append((time.monotonic() - began, snapshot(pids)))
    tally.seconds = seconds
    return Soak(samples, tally, mix.imports)


def soak_table(result: Soak) -> list[str]:
    """Markdown: each process at the start and the end, its growth, and the load it carried."""
    (_, first), (_, last) = result.samples[0], result.samples[-1]
    out = [
        "| process | RSS start MiB | RSS end MiB | RSS max MiB | RSS growth | fds start | fds end | fds max "
        "| threads start → end | count start → end |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for name in first:
        a, b = first[name], last.get(name, ProcStat(0, 0, 0, 0))
        seen = [s[name] for _, s in result.samples if name in s]
        growth = (b.rss_kib - a.rss_kib) / a.rss_kib * 100 if a.rss_kib else 0.0
        out.append(
            f"| {name} | {a.rss_kib / 1024:.1f} | {b.rss_kib / 1024:.1f} | {max(s.rss_kib for s in seen) / 1024:.1f} "
            f"| {growth:+.1f} % | {a.fds} | {b.fds} | {max(s.fds for s in seen)} | {a.threads} → {b.threads} "
            f"| {a.count} → {b.count} |"
        )
    t = result.tally
    out += [
        "",
        "| operation (soak) | calls | p50 ms | p95 ms |",
        "|---|---:|---:|---:|",
        *[
            f"| {name} | {t.calls(name)} | {t.pct(name, 0.5):.1f} | {t.pct(name, 0.95):.1f} |"
            for name in sorted(t.latencies)
        ],
        "",
        f"Errors during the soak: {t.error_count()}; imports completed: {result.imports}; "
        f"{t.calls() / t.seconds:.0f} calls/s on average.",
    ]
    return out


def errors_section(tallies: list[Tally]) -> list[str]:
    """Every error seen, with one message each."""
    seen: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for t in tallies:
        seen.update(t.errors)
        for key, text in t.examples.items():
            examples.setdefault(key, text)
    if not seen:
        return ["No errors."]
    return [f"- {key}: {n}× — {examples.get(key, '')}" for key, n in seen.most_common()]


# ---------------------------------------------------------------------------------------------------
# The campaign
# ---------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """Everything one campaign measured."""

    settings: Settings
    detect: list[DetectRow]
    read: dict[str, Tally]
    small: Filled
    large: Filled
    imports: tuple[ImportRun, list[ImportRun], float]
    soak: Soak


@dataclass
class Prepared:
    """A stack with the photos in S3, a running model and the two filled datasets."""

    stack: LoadStack
    services: LocalServices
    api: Api
    model: Model
    small: Filled
    large: Filled


@contextmanager
def prepared(settings: Settings, data_dir: Path | None = None) -> Iterator[Prepared]:
    """Brings the stack up, uploads the photos, trains and starts the model, fills the datasets."""
    with running_stack(data_dir) as stack:
        api = Api(stack.env)
        try:
            services = local_services(stack, api)
            store = services.store
            store.ensure_bucket(SOURCE_BUCKET)
            store.ensure_bucket(OUTPUT_BUCKET)
            began = time.perf_counter()
            model = train_and_start(services, settings.train_per_label)
            print(f"model trained and RUNNING in {time.perf_counter() - began:.0f} s", flush=True)
            small = fill(stack, services, api, settings.small_entries)
            large = fill(stack, services, api, settings.large_entries)
            yield Prepared(stack, services, api, model, small, large)
        finally:
            api.close()


def campaign(settings: Settings, data_dir: Path | None = None) -> Outcome:
    """Runs the four parts on one stack."""
    with prepared(settings, data_dir) as p:
        detect = bench_detect(p.stack, p.model, settings)
        read = bench_read(p.stack, p.services, settings, p.small, p.large)
        imports = bench_imports(p.stack, p.services.store, settings)
        mix = Mix(p.stack, p.services.store, p.model, p.large, settings)
        try:
            result = soak(p.stack, mix, settings)
        finally:
            mix.close()
        return Outcome(settings, detect, read, p.small, p.large, imports, result)


def document(outcome: Outcome, argv: list[str]) -> list[str]:
    """The results as Markdown."""
    s = outcome.settings
    return [
        "# Load and soak",
        "",
        f"`python -m bench.load {' '.join(argv)}` on {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{time.strftime('%Y-%m-%d %H:%M')} UTC. The embedded stack (each service, the edge, the training "
        "worker, Triton, Postgres, SeaweedFS as its own process) and the client threads share the machine's "
        "cores. Calls are not retried: an error is what the caller saw.",
        "",
        f"## Detect: {s.clients} concurrent DetectCustomLabels clients, {s.detect_s:g} s",
        "",
        "A rock-paper-scissors classifier trained on "
        f"{3 * s.train_per_label} real photos, 1 inference unit; the clients send the TEST photos in turn. "
        "Direct Triton: the service's decoding (`modelio.prepare`) and Triton's gRPC inference in this "
        "process, without our services (the floor). Single-client rows ran a third as long.",
        "",
        *detect_table(outcome.detect),
        "",
        f"## Read: List*/Describe* on {s.large_entries:,} entries, {s.clients} concurrent clients, {s.read_s:g} s",
        "",
        "Each client cycles through the calls. Dataset rows written straight into the table "
        "(bench/datasets.py `fill`; 1 in 10 unlabeled, 1 in 97 with errors, half under /odd/).",
        "",
        *read_table(outcome.read, outcome.small, outcome.large, s.clients),
        "",
        f"## Imports: {s.imports} concurrent CreateDataset of {s.import_images} real photos each",
        "",
        *import_table(*outcome.imports),
        "",
        f"## Soak: {s.soak_s:g} s of mixed load after {s.warmup_s:g} s of warm-up",
        "",
        "4 detect clients (2 over gRPC, 2 through the edge with boto3), 3 readers (one also through the edge), "
        "1 writer (UpdateDatasetEntries of 3 lines, then waits for UPDATE_COMPLETE), 1 importer (20 new photos "
        f"every {s.import_every_s:g} s, then DeleteDataset). Sampled after the warm-up, every "
        f"{s.soak_s / s.samples:g} s, and at the end.",
        "",
        *soak_table(outcome.soak),
        "",
        "## Errors",
        "",
        *errors_section(
            [r.tally for r in outcome.detect] + list(outcome.read.values()) + [outcome.soak.tally]
        ),
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    """Runs the campaign and writes bench/results/load.md; exits 1 when any call failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--short", action="store_true", help="a few seconds of each, small datasets")
    parser.add_argument("--clients", type=int)
    parser.add_argument("--detect-s", type=float)
    parser.add_argument("--read-s", type=float)
    parser.add_argument("--soak-s", type=float)
    parser.add_argument("--entries", type=int, help="entries of the large dataset")
    parser.add_argument("--imports", type=int)
    parser.add_argument("--import-images", type=int)
    parser.add_argument("--no-edge", action="store_true", help="gRPC only")
    args = parser.parse_args(argv)
    settings = Settings.short() if args.short else Settings()
    overrides = {
        "clients": args.clients,
        "detect_s": args.detect_s,
        "read_s": args.read_s,
        "soak_s": args.soak_s,
        "large_entries": args.entries,
        "imports": args.imports,
        "import_images": args.import_images,
    }
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    if args.no_edge:
        settings = replace(settings, edge=False)
    outcome = campaign(settings)
    report.write(RESULTS, document(outcome, sys.argv[1:] if argv is None else argv))
    failures = sum(t.error_count() for t in [r.tally for r in outcome.detect] + list(outcome.read.values()))
    return 1 if failures or outcome.soak.tally.error_count() else 0


if __name__ == "__main__":
    sys.exit(main())
