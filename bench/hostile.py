"""Bad input at scale: `python -m bench.hostile [--lines 1000] [--images 200] [--seed 1]`.

Starts the embedded stack (Postgres, SeaweedFS, Triton; the services in-process), trains one small
classifier and starts it, then feeds hostile input (bench/mutants.py) through every entry point:

- CreateDataset: the mutated lines, in Ground Truth manifests in S3 (40 mutants + 200 real lines each,
  so that the 20 % rule of spec/manifest.md §5 never turns line problems into a terminal error; some
  manifests with a BOM, CRLF line ends or blank lines), and one manifest naming every hostile image;
- UpdateDatasetEntries: the same lines in batches (with 160 unchanged real lines each) on a dataset
  of real lines;
- UploadImages: every hostile image in one stream, plus hostile file names and labels;
- DetectCustomLabels: every hostile image as Bytes and as an S3Object, plus hostile parameters.

Every answer must be an AWS error name with its gRPC code, or a stored per-line code (or a line drop
that `manifest.parse_line` predicts); INTERNAL / UNKNOWN / InternalServerError count as failures, as
does a dataset that fails as a whole with a SERVICE_ERROR. After each entry point every service must
answer its health check SERVING and a normal call, and a baseline dataset created before the campaign
must be unchanged. Writes bench/results/hostile.md and prints it.

The same functions run the short form in tests/test_hostile.py.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from customlabels.common.v1 import types_pb2 as common
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.project.v1 import project_service_pb2 as pj
from customlabels.serving.v1 import serving_service_pb2 as sv
from customlabels.training.v1 import training_service_pb2 as tr

from bench import mutants, report, workflow
from bench.mutants import HostileImage, Mutant
from scripts import inprocess, samples
from scripts.inprocess import LocalServices
from services.common.errors import aws_name_of
from services.common.healthcheck import check_grpc
from services.dataset import manifest

RESULTS = Path(__file__).resolve().parent / "results" / "hostile.md"
HEALTHY = "all SERVING, normal calls OK, baseline unchanged"
BAD_CODES = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})
SETTLED = {
    ds.DATASET_STATUS_CREATE_COMPLETE,
    ds.DATASET_STATUS_CREATE_FAILED,
    ds.DATASET_STATUS_UPDATE_COMPLETE,
    ds.DATASET_STATUS_UPDATE_FAILED,
}


# ---------------------------------------------------------------------------------------------------
# Tallies
# ---------------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What one entry point answered: counts per answer, the failures (INTERNAL/UNKNOWN, whole-dataset
    service errors, answers without an AWS name) and the expectations that did not hold."""

    entry_point: str
    sent: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    answered: list[tuple[str, str]] = field(default_factory=list)  # (input kind, answer), in order
    health: str = ""
    seconds: float = 0.0

    def add(self, kind: str, answer: str) -> None:
        """Counts one answer for an input of `kind` (its category is the part before '/')."""
        self.answers[answer] += 1
        self.answered.append((kind, answer))
        self.by_kind.setdefault(kind.split("/")[0], Counter())[answer] += 1

    def error(self, kind: str, err: grpc.RpcError) -> str:
        """Counts an RPC error; returns its answer text (`AwsName (GRPC_CODE)`)."""
        code = err.code()  # type: ignore[attr-defined]
        name = aws_name_of(err)
        if not name and (err.details() or "").startswith("CLIENT:"):  # type: ignore[attr-defined]
            # Our own client refused to send it (gRPC's 16 MiB message cap): no server answered.
            self.add(kind, f"not sent: client-side {code.name}")
            return f"not sent ({code.name})"
        answer = f"{name} ({code.name})"
        self.add(kind, answer)
        if code in BAD_CODES or not name or name == "InternalServerError":
            self.failures.append(f"{kind}: {answer}: {(err.details() or '')[:200]}")  # type: ignore[attr-defined]
        return answer


def call(tally: Tally, kind: str, fn: Callable[[], Any], ok: str = "OK") -> Any:
    """Runs one RPC and counts its answer; returns the response, or None when it failed."""
    tally.sent += 1
    try:
        response = fn()
    except grpc.RpcError as err:
        tally.error(kind, err)
        return None
    tally.add(kind, ok)
    return response


# ---------------------------------------------------------------------------------------------------
# Stack helpers
# ---------------------------------------------------------------------------------------------------


def new_project(stack: LocalServices, prefix: str) -> str:
    """A project with a unique name."""
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    return stack.project.CreateProject(pj.CreateProjectRequest(project_name=name)).project_arn


def wait_dataset(stack: LocalServices, arn: str, timeout: float = 300) -> ds.DatasetDescription:
    """Polls DescribeDataset until the dataset settles."""
    deadline = time.monotonic() + timeout
    while True:
        desc = stack.dataset.DescribeDataset(ds.DescribeDatasetRequest(dataset_arn=arn)).dataset_description
        if desc.status in SETTLED:
            return desc
        if time.monotonic() > deadline:
            raise TimeoutError(f"{arn} still {ds.DatasetStatus.Name(desc.status)} after {timeout:.0f} s")
        time.sleep(0.1)


def all_entries(stack: LocalServices, arn: str) -> dict[str, str]:
    """source-ref → stored line, every entry of a dataset."""
    out: dict[str, str] = {}
    token = ""
    while True:
        page = stack.dataset.ListDatasetEntries(
            ds.ListDatasetEntriesRequest(dataset_arn=arn, next_token=token, max_results=100)
        )
        for line in page.dataset_entries:
            out[json.loads(line)["source-ref"]] = line
        token = page.next_token
        if not token:
            return out


def all_labels(stack: LocalServices, arn: str) -> dict[str, tuple[int, int]]:
    """Every label of a dataset with its (EntryCount, BoundingBoxCount)."""
    out: dict[str, tuple[int, int]] = {}
    token = ""
    while True:
        page = stack.dataset.ListDatasetLabels(ds.ListDatasetLabelsRequest(dataset_arn=arn, next_token=token))
        for d in page.dataset_label_descriptions:
            out[d.label_name] = (d.label_stats.entry_count, d.label_stats.bounding_box_count)
        token = page.next_token
        if not token:
            return out


def put_objects(stack: LocalServices, bucket: str, items: Iterable[tuple[str, bytes]]) -> None:
    """Writes (key, data) objects with 8 threads."""
    stack.store.ensure_bucket(bucket)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: stack.store.put_bytes(bucket, kv[0], kv[1]), items))


def create_from_manifest(stack: LocalServices, bucket: str, data: bytes, prefix: str) -> tuple[str, str]:
    """Writes a manifest, creates a TRAIN dataset from it in a new project; returns (project, dataset)."""
    key = f"manifests/{uuid.uuid4().hex}.manifest"
    stack.store.put_bytes(bucket, key, data)
    project = new_project(stack, prefix)
    arn = stack.dataset.CreateDataset(
        ds.CreateDatasetRequest(
            project_arn=project,
            dataset_type=ds.DATASET_TYPE_TRAIN,
            dataset_source=ds.DatasetSource(
                ground_truth_manifest=common.GroundTruthManifest(
                    s3_object=common.S3Object(bucket=bucket, name=key)
                )
            ),
        )
    ).dataset_arn
    return project, arn


def codes_in(entry: Any) -> list[str]:
    """Every error code stored anywhere in an entry (`cl-errors` at the top, in metadata, in boxes)."""
    found: list[str] = []
    if isinstance(entry, dict):
        for key, value in entry.items():
            if key == manifest.CL_ERRORS and isinstance(value, list):
                found += [e["code"] for e in value if isinstance(e, dict) and "code" in e]
            else:
                found += codes_in(value)
    elif isinstance(entry, list):
        for value in entry:
            found += codes_in(value)
    return found


def local_verdict(data: bytes) -> tuple[str | None, str | None]:
    """(drop code, source-ref) that `manifest.parse_line` gives the line as the service reads it."""
    text = data.decode("utf-8", "surrogateescape").replace("\x00", "\x01")
    if text.startswith("\ufeff"):
        return manifest.ERROR_INVALID_JSON_LINE, None
    parsed = manifest.parse_line(text)
    return parsed.dropped, parsed.source_ref


@dataclass
class Health:
    """The services of a stack, for the health checks after each entry point."""

    stack: LocalServices
    baseline_arn: str
    baseline: dict[str, str]
    baseline_labels: dict[str, tuple[int, int]]
    detect: Callable[[], bool] | None = None

    def check(self) -> str:
        """HEALTHY, or what is wrong."""
        problems = []
        for name, addr in (
            ("project", self.stack.project_addr),
            ("dataset", self.stack.dataset_addr),
            ("training", self.stack.training_addr),
            ("serving", self.stack.serving_addr),
        ):
            if addr:
                why = check_grpc(addr)
                if why:
                    problems.append(f"{name}: {why}")
        try:
            if all_entries(self.stack, self.baseline_arn) != self.baseline:
                problems.append("baseline entries changed")
            if all_labels(self.stack, self.baseline_arn) != self.baseline_labels:
                problems.append("baseline labels changed")
            if self.detect is not None and not self.detect():
                problems.append("a normal DetectCustomLabels found no label")
        except grpc.RpcError as err:
            problems.append(f"normal call failed: {err.code()} {err.details()}")  # type: ignore[attr-defined]
        return "; ".join(problems) or HEALTHY


def make_baseline(stack: LocalServices, bucket: str, goods: Sequence[Mutant]) -> tuple[str, dict[str, str]]:
    """A dataset of real lines created before the campaign (it must come out unchanged)."""
    _, arn = create_from_manifest(stack, bucket, mutants.manifest_bytes([g.data for g in goods]), "baseline")
    desc = wait_dataset(stack, arn)
    if desc.status != ds.DATASET_STATUS_CREATE_COMPLETE:
        raise RuntimeError(f"baseline import failed: {desc.status_message}")
    return arn, all_entries(stack, arn)


# ---------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------


def _judge_lines(
    tally: Tally, stored: dict[str, str], batch: Sequence[Mutant], goods: Sequence[Mutant], label: str
) -> None:
    """Counts each mutant's outcome (stored with codes / stored clean / dropped) and checks the good lines."""
    seen: set[str] = set()
    for m in batch:
        predicted, ref = local_verdict(m.data)
        duplicate = ref in seen
        if ref is not None:
            seen.add(ref)
        line = None
        if predicted is None and not duplicate:
            line = stored.get(ref or "")
        if line is None:
            answer = f"dropped: {predicted or 'duplicate source-ref'}"
            if predicted is None and not duplicate:
                tally.mismatches.append(f"{label} {m.kind}: kept by parse_line but not stored")
        else:
            entry = json.loads(line)
            codes = sorted(set(codes_in(entry)))
            answer = "stored: " + (", ".join(codes) if codes else "no error")
            if m.nul and "\\u0000" in line and not codes:
                # A NUL the service keeps must sit in a key or value it does not interpret.
                answer = "stored: no error (NUL kept in an uninterpreted field)"
        tally.add(m.kind, answer)
    for g in goods:
        if g.ref not in stored:
            tally.failures.append(f"{label}: good line {g.ref} was not imported")


def run_create(
    stack: LocalServices, bucket: str, lines: Sequence[Mutant], goods: Sequence[Mutant], per: int
) -> Tally:
    """CreateDataset from manifests of `per` mutants each plus every good line."""
    tally = Tally("CreateDataset (manifest lines)")
    began = time.perf_counter()
    for index in range(0, len(lines), per):
        batch = lines[index : index + per]
        variant = index // per % 4
        data = mutants.manifest_bytes(
            [m.data for m in batch] + [g.data for g in goods],
            bom=variant == 1,
            crlf=variant == 2,
            blank=variant == 3,
        )
        tally.sent += len(batch)
        try:
            _, arn = create_from_manifest(stack, bucket, data, "hostile")
        except grpc.RpcError as err:
            tally.error("manifest", err)
            continue
        desc = wait_dataset(stack, arn)
        status = ds.DatasetStatus.Name(desc.status)
        if desc.status != ds.DATASET_STATUS_CREATE_COMPLETE:
            code = ds.DatasetStatusMessageCode.Name(desc.status_message_code)
            tally.failures.append(f"manifest {index // per}: {status} {code}: {desc.status_message[:200]}")
            continue
        _judge_lines(tally, all_entries(stack, arn), batch, goods, f"manifest {index // per}")
    _whole_manifests(stack, bucket, tally)
    tally.seconds = time.perf_counter() - began
    return tally


def _whole_manifests(stack: LocalServices, bucket: str, tally: Tally) -> None:
    """Manifests that are bad as a whole (terminal: CREATE_FAILED with a CLIENT_ERROR code) and bad
    S3Object parameters (an AWS error from CreateDataset itself)."""
    files = {
        "file/empty": b"",
        "file/blank-lines-only": b"\n \n\t\n",
        "file/gzip": __import__("zlib").compress(b'{"source-ref":"s3://b/x.jpg"}\n' * 100),
        "file/pretty-printed-json": json.dumps({"source-ref": f"s3://{bucket}/x.jpg"}, indent=2).encode(),
        "file/all-invalid": b"{\n" * 50,
        "file/nul-bytes": b"\x00" * 1000,
        "file/utf16": '{"source-ref":"s3://b/x.jpg"}\n'.encode("utf-16"),
    }
    for kind, data in files.items():
        tally.sent += 1
        _, arn = create_from_manifest(stack, bucket, data, "whole")
        desc = wait_dataset(stack, arn)
        code = ds.DatasetStatusMessageCode.Name(desc.status_message_code)
        terminal = desc.status_message.split(":", 1)[0]
        answer = f"{ds.DatasetStatus.Name(desc.status)} {code} {terminal}"
        tally.add(kind, answer)
        if (
            desc.status != ds.DATASET_STATUS_CREATE_FAILED
            or code != "DATASET_STATUS_MESSAGE_CODE_CLIENT_ERROR"
        ):
            tally.failures.append(f"{kind}: {answer}: {desc.status_message[:200]}")
    project = new_project(stack, "params")
    refs = {
        "s3/missing": common.S3Object(bucket=bucket, name="no/such.manifest"),
        "s3/no-bucket": common.S3Object(bucket="no-such-bucket-here", name="x.manifest"),
        "s3/name-dotdot": common.S3Object(bucket=bucket, name="../x.manifest"),
        "s3/name-nul": common.S3Object(bucket=bucket, name="x\x00.manifest"),
        "s3/name-spaces": common.S3Object(bucket=bucket, name="  "),
        "s3/bucket-dotdot": common.S3Object(bucket="a..b", name="x.manifest"),
        "s3/bucket-long": common.S3Object(bucket="b" * 200, name="x.manifest"),
        "s3/bucket-bad-chars": common.S3Object(bucket="b/../c", name="x.manifest"),
        "s3/version-nul": common.S3Object(bucket=bucket, name="x.manifest", version="\x00"),
        "s3/empty": common.S3Object(),
    }
    for kind, obj in refs.items():
        request = ds.CreateDatasetRequest(
            project_arn=project,
            dataset_type=ds.DATASET_TYPE_TEST,
            dataset_source=ds.DatasetSource(ground_truth_manifest=common.GroundTruthManifest(s3_object=obj)),
        )
        if call(tally, kind, lambda r=request: stack.dataset.CreateDataset(r)) is not None:
            tally.failures.append(f"{kind}: CreateDataset accepted it")


def run_update(
    stack: LocalServices, bucket: str, lines: Sequence[Mutant], goods: Sequence[Mutant], per: int
) -> Tally:
    """UpdateDatasetEntries with `per` mutants plus the unchanged good lines per call, on one dataset."""
    tally = Tally("UpdateDatasetEntries")
    began = time.perf_counter()
    _, arn = create_from_manifest(stack, bucket, mutants.manifest_bytes([g.data for g in goods]), "update")
    wait_dataset(stack, arn)
    before = all_entries(stack, arn)
    for index in range(0, len(lines), per):
        batch = lines[index : index + per]
        body = b"\n".join([m.data for m in batch] + [g.data for g in goods])
        tally.sent += len(batch)
        request = ds.UpdateDatasetEntriesRequest(
            dataset_arn=arn, changes=ds.DatasetChanges(ground_truth=body)
        )
        try:
            stack.dataset.UpdateDatasetEntries(request)
        except grpc.RpcError as err:
            answer = tally.error("batch", err)
            tally.mismatches.append(f"update batch {index // per} refused: {answer}")
            continue
        desc = wait_dataset(stack, arn)
        if desc.status != ds.DATASET_STATUS_UPDATE_COMPLETE:
            code = ds.DatasetStatusMessageCode.Name(desc.status_message_code)
            tally.failures.append(
                f"update {index // per}: {ds.DatasetStatus.Name(desc.status)} {code}: {desc.status_message[:200]}"
            )
            continue
        stored = all_entries(stack, arn)
        _judge_lines(tally, stored, batch, goods, f"update {index // per}")
        changed = [ref for ref, line in before.items() if stored.get(ref) != line]
        if changed:
            tally.failures.append(f"update {index // per}: {len(changed)} unchanged good entries changed")
    # A request-level problem: more than 5 MB, or empty.
    call(
        tally,
        "limit/over-5MB",
        lambda: stack.dataset.UpdateDatasetEntries(
            ds.UpdateDatasetEntriesRequest(
                dataset_arn=arn, changes=ds.DatasetChanges(ground_truth=b"{" * 5_300_000)
            )
        ),
    )
    call(
        tally,
        "limit/empty",
        lambda: stack.dataset.UpdateDatasetEntries(
            ds.UpdateDatasetEntriesRequest(dataset_arn=arn, changes=ds.DatasetChanges(ground_truth=b""))
        ),
    )
    tally.seconds = time.perf_counter() - began
    return tally


def run_image_manifest(
    stack: LocalServices, bucket: str, images: Sequence[HostileImage], goods: Sequence[Mutant]
) -> Tally:
    """One CreateDataset whose lines name every hostile image (image-level lines, diluted by good lines)."""
    tally = Tally("CreateDataset (hostile images)")
    began = time.perf_counter()
    keys = [f"hostile-images/{i:04d}-{im.name}" for i, im in enumerate(images)]
    put_objects(stack, bucket, zip(keys, (im.data for im in images), strict=True))
    lines = [manifest.image_level_line(f"s3://{bucket}/{k}", ["hostile"]).encode() for k in keys]
    tally.sent = len(images)
    # 20 % rule: at most a fifth of a manifest's lines may fail, so each holds 4 good lines per image.
    per = max(1, len(goods) // 4)
    stored: dict[str, str] = {}
    for at in range(0, len(lines), per):
        data = mutants.manifest_bytes(lines[at : at + per] + [g.data for g in goods[: 4 * per]])
        _, arn = create_from_manifest(stack, bucket, data, "images")
        desc = wait_dataset(stack, arn)
        if desc.status != ds.DATASET_STATUS_CREATE_COMPLETE:
            tally.failures.append(f"{ds.DatasetStatus.Name(desc.status)}: {desc.status_message[:200]}")
            return tally
        stored.update(all_entries(stack, arn))
    for key, im in zip(keys, images, strict=True):
        entry = json.loads(stored[f"s3://{bucket}/{key}"])
        codes = sorted(set(codes_in(entry)))
        image_codes = [c for c in codes if c.startswith("ERROR_INVALID_IMAGE")]
        tally.add(im.kind, "stored: " + (", ".join(codes) if codes else "accepted"))
        if im.valid is not None and bool(image_codes) == im.valid:
            tally.mismatches.append(
                f"{im.kind}: expected {'valid' if im.valid else 'invalid'}, got {codes or 'accepted'}"
            )
    tally.seconds = time.perf_counter() - began
    return tally


HOSTILE_NAMES: tuple[tuple[str, list[str]], ...] = (
    ("../../../etc/passwd.jpg", []),
    ("a/./b/../c.jpg", []),
    ("", []),
    (".", []),
    ("..", []),
    ("/", []),
    ("nul\x00name.jpg", []),
    ("tab\tname.jpg", []),
    ("n" * 300 + ".jpg", []),
    ("deep/" * 300 + "x.jpg", []),
    ("C:\\windows\\x.jpg", []),
    ("ok-label-nul.jpg", ["cat\x00"]),
    ("ok-label-long.jpg", ["L" * 256]),
    ("ok-label-empty.jpg", [""]),
    ("ok-label-rtl.jpg", ["\u202eevil"]),
    ("same.jpg", []),
    ("same.jpg", []),
)


def _upload_stream(
    target: ds.ImportTarget, files: Sequence[tuple[str, list[str], bytes]]
) -> Iterator[ds.UploadImagesRequest]:
    yield ds.UploadImagesRequest(header=ds.UploadImagesHeader(target=target))
    for name, labels, data in files:
        yield ds.UploadImagesRequest(
            image=ds.UploadImageHeader(file_name=name, labels=labels, size_bytes=len(data))
        )
        for at in range(0, len(data), 1024 * 1024):
            yield ds.UploadImagesRequest(chunk=data[at : at + 1024 * 1024])


def run_upload(stack: LocalServices, images: Sequence[HostileImage], good: bytes) -> Tally:
    """UploadImages: every hostile image in one stream, then hostile names and labels, then broken streams."""
    tally = Tally("UploadImages")
    began = time.perf_counter()
    files = [(f"{i:04d}-{im.name}", ["hostile"], im.data) for i, im in enumerate(images)]
    files += [(name, labels, good) for name, labels in HOSTILE_NAMES]
    kinds = [im.kind for im in images] + [
        f"name/{name[:20]!r} {labels!r:.20}" for name, labels in HOSTILE_NAMES
    ]
    project = new_project(stack, "upload")
    target = ds.ImportTarget(
        new_dataset=ds.NewDataset(project_arn=project, dataset_type=ds.DATASET_TYPE_TRAIN)
    )
    tally.sent += len(files)
    try:
        response = stack.dataset.UploadImages(_upload_stream(target, files), timeout=600)
    except grpc.RpcError as err:
        tally.error("stream", err)
        tally.failures.append("the whole upload stream was refused")
        return tally
    if len(response.images) != len(files):
        tally.failures.append(f"{len(response.images)} outcomes for {len(files)} files")
    accepted = set()
    for kind, outcome, valid in zip(
        kinds, response.images, [im.valid for im in images] + [None] * len(HOSTILE_NAMES), strict=False
    ):
        if outcome.error_code:
            answer = f"{outcome.error_code} (per file)"
            if not outcome.error_code.endswith("Exception"):
                tally.failures.append(f"{kind}: {outcome.error_code} is no AWS error name")
        else:
            answer = "accepted"
            accepted.add(outcome.source_ref)
        tally.add(kind, answer)
        if valid is not None and valid != (not outcome.error_code):
            tally.mismatches.append(f"{kind}: expected {'valid' if valid else 'invalid'}, got {answer}")
    desc = wait_dataset(stack, response.dataset_arn)
    if desc.status != ds.DATASET_STATUS_CREATE_COMPLETE:
        tally.failures.append(
            f"upload dataset {ds.DatasetStatus.Name(desc.status)}: {desc.status_message[:200]}"
        )
    elif set(all_entries(stack, response.dataset_arn)) != accepted:
        tally.failures.append("the stored entries differ from the accepted files")
    # Broken streams: no header, a chunk before any image header, two headers.
    broken: list[tuple[str, list[ds.UploadImagesRequest]]] = [
        ("stream/empty", []),
        ("stream/no-header", [ds.UploadImagesRequest(chunk=b"x")]),
        (
            "stream/chunk-first",
            [
                ds.UploadImagesRequest(header=ds.UploadImagesHeader(target=target)),
                ds.UploadImagesRequest(chunk=b"x"),
            ],
        ),
        ("stream/two-headers", [ds.UploadImagesRequest(header=ds.UploadImagesHeader(target=target))] * 2),
        ("stream/no-target", [ds.UploadImagesRequest(header=ds.UploadImagesHeader())]),
        (
            "stream/bad-arn",
            [
                ds.UploadImagesRequest(
                    header=ds.UploadImagesHeader(target=ds.ImportTarget(dataset_arn="arn:\x00"))
                )
            ],
        ),
    ]
    for kind, messages in broken:
        call(tally, kind, lambda m=messages: stack.dataset.UploadImages(iter(m), timeout=60))
    tally.seconds = time.perf_counter() - began
    return tally


def run_detect(stack: LocalServices, version_arn: str, bucket: str, images: Sequence[HostileImage]) -> Tally:
    """DetectCustomLabels with every hostile image as Bytes and as an S3Object, and hostile parameters."""
    tally = Tally("DetectCustomLabels")
    assert stack.serving is not None
    serving = stack.serving
    began = time.perf_counter()
    keys = [f"detect/{i:04d}-{im.name}" for i, im in enumerate(images)]
    put_objects(stack, bucket, zip(keys, (im.data for im in images), strict=True))

    def detect(image: sv.Image, arn: str = version_arn, **kw: Any) -> Any:
        return serving.DetectCustomLabels(
            sv.DetectCustomLabelsRequest(project_version_arn=arn, image=image, **kw), timeout=120
        )

    for key, im in zip(keys, images, strict=True):
        for how, image in (
            ("bytes", sv.Image(bytes=im.data)),
            ("s3", sv.Image(s3_object=common.S3Object(bucket=bucket, name=key))),
        ):
            tally.sent += 1
            try:
                detect(image)
                answer = "OK"
                tally.add(im.kind, answer)
            except grpc.RpcError as err:
                answer = tally.error(im.kind, err)
            # Bytes are capped at 4 MB (spec/limits.md §1); S3 objects at 15 MB.
            valid = im.valid and (how == "s3" or len(im.data) <= 4 * 1024 * 1024)
            if im.valid is not None and valid != (answer == "OK"):
                tally.mismatches.append(
                    f"{im.kind} ({how}): expected {'OK' if valid else 'an error'}, got {answer}"
                )
    good = sv.Image(bytes=next(im.data for im in images if im.valid and len(im.data) < 4 * 1024 * 1024))
    params: list[tuple[str, Callable[[], Any]]] = [
        ("param/min-confidence-nan", lambda: detect(good, min_confidence=float("nan"))),
        ("param/min-confidence-101", lambda: detect(good, min_confidence=101)),
        ("param/min-confidence--1", lambda: detect(good, min_confidence=-1)),
        ("param/max-results--1", lambda: detect(good, max_results=-1)),
        ("param/no-image", lambda: detect(sv.Image())),
        ("param/empty-bytes", lambda: detect(sv.Image(bytes=b""))),
        ("param/arn-nul", lambda: detect(good, arn=version_arn + "\x00")),
        ("param/arn-garbage", lambda: detect(good, arn="arn:aws:rekognition:../../x")),
        ("param/arn-huge", lambda: detect(good, arn="a" * 100_000)),
        (
            "s3/name-nul",
            lambda: detect(sv.Image(s3_object=common.S3Object(bucket=bucket, name="a\x00b.jpg"))),
        ),
        (
            "s3/name-dotdot",
            lambda: detect(sv.Image(s3_object=common.S3Object(bucket=bucket, name="../x.jpg"))),
        ),
        (
            "s3/missing",
            lambda: detect(sv.Image(s3_object=common.S3Object(bucket=bucket, name="missing.jpg"))),
        ),
        (
            "s3/no-bucket",
            lambda: detect(sv.Image(s3_object=common.S3Object(bucket="no-such-bucket-x", name="x.jpg"))),
        ),
        ("s3/bad-bucket", lambda: detect(sv.Image(s3_object=common.S3Object(bucket="B\x00", name="x.jpg")))),
        (
            "s3/bad-version",
            lambda: detect(sv.Image(s3_object=common.S3Object(bucket=bucket, name=keys[0], version="v\x00"))),
        ),
        ("s3/name-spaces", lambda: detect(sv.Image(s3_object=common.S3Object(bucket=bucket, name="   ")))),
        (
            "s3/bucket-dotdot",
            lambda: detect(sv.Image(s3_object=common.S3Object(bucket="a..b", name="x.jpg"))),
        ),
        (
            "s3/bucket-ip",
            lambda: detect(sv.Image(s3_object=common.S3Object(bucket="10.0.0.1", name="x.jpg"))),
        ),
        (
            "s3/bucket-100-chars",
            lambda: detect(sv.Image(s3_object=common.S3Object(bucket="b" * 100, name="x.jpg"))),
        ),
        ("s3/huge-key", lambda: detect(sv.Image(s3_object=common.S3Object(bucket=bucket, name="k" * 2000)))),
    ]
    for kind, fn in params:
        call(tally, kind, fn)
    tally.seconds = time.perf_counter() - began
    return tally


# ---------------------------------------------------------------------------------------------------
# A model to detect with
# ---------------------------------------------------------------------------------------------------


def train_and_start(stack: LocalServices, database_url: str) -> tuple[str, list[bytes]]:
    """Trains a small shape classifier through the training service and starts it; returns (version
    ARN, some good images)."""
    project = new_project(stack, "model")
    bucket = f"model-{uuid.uuid4().hex[:8]}"
    stack.store.ensure_bucket(bucket)
    for dataset_type, group in (
        (ds.DATASET_TYPE_TRAIN, samples.classification(per_label=8, seed=41)),
        (ds.DATASET_TYPE_TEST, samples.classification(per_label=3, seed=42)),
    ):
        lines = []
        for s in group:
            stack.store.put_bytes(bucket, f"{dataset_type}/{s.file_name}", s.data)
            lines.append(samples.manifest_line(f"s3://{bucket}/{dataset_type}/{s.file_name}", s))
        workflow.import_manifest(stack, project, bucket, f"{dataset_type}.manifest", lines, dataset_type)
    with inprocess.training_worker(stack, database_url, lease_s=60):
        version = stack.training.CreateProjectVersion(
            tr.CreateProjectVersionRequest(
                project_arn=project,
                version_name="v1",
                output_config=common.OutputConfig(s3_bucket=bucket, s3_key_prefix="out"),
            )
        ).project_version_arn
        desc = _wait_version(
            stack,
            project,
            {tr.PROJECT_VERSION_STATUS_TRAINING_COMPLETED, tr.PROJECT_VERSION_STATUS_TRAINING_FAILED},
            600,
        )
    if desc.status != tr.PROJECT_VERSION_STATUS_TRAINING_COMPLETED:
        raise RuntimeError(f"training failed: {desc.status_message}")
    assert stack.serving is not None
    stack.serving.StartProjectVersion(
        sv.StartProjectVersionRequest(project_version_arn=version, min_inference_units=1)
    )
    desc = _wait_version(
        stack, project, {tr.PROJECT_VERSION_STATUS_RUNNING, tr.PROJECT_VERSION_STATUS_FAILED}, 180
    )
    if desc.status != tr.PROJECT_VERSION_STATUS_RUNNING:
        raise RuntimeError(f"start failed: {desc.status_message}")
    return version, [s.data for s in samples.classification(per_label=1, seed=43)]


def _wait_version(
    stack: LocalServices, project: str, wanted: set[int], timeout: float
) -> tr.ProjectVersionDescription:
    deadline = time.monotonic() + timeout
    while True:
        (desc,) = stack.training.DescribeProjectVersions(
            tr.DescribeProjectVersionsRequest(project_arn=project, version_names=["v1"])
        ).project_version_descriptions
        if desc.status in wanted or time.monotonic() > deadline:
            return desc
        time.sleep(0.1)


def detect_probe(stack: LocalServices, version_arn: str, image: bytes) -> Callable[[], bool]:
    """A normal DetectCustomLabels (MinConfidence 0: the classifier always names a label)."""
    assert stack.serving is not None
    serving = stack.serving

    def probe() -> bool:
        request = sv.DetectCustomLabelsRequest(
            project_version_arn=version_arn, image=sv.Image(bytes=image), min_confidence=0
        )
        return bool(serving.DetectCustomLabels(request, timeout=60).custom_labels)

    return probe


# ---------------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------------


def markdown(tallies: Sequence[Tally], setup: str) -> list[str]:
    """The results document: a summary table, then the answers of every entry point."""
    out = [
        "# Bad input at scale (bench/hostile.py)",
        "",
        setup,
        "",
        "| entry point | inputs sent | distinct answers | INTERNAL/UNKNOWN/service errors | expectation mismatches | health after | s |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for t in tallies:
        out.append(
            f"| {t.entry_point} | {t.sent} | {len(t.answers)} | **{len(t.failures)}** | {len(t.mismatches)} | {t.health} | {t.seconds:.1f} |"
        )
    for t in tallies:
        out += ["", f"## {t.entry_point}", "", "| answer | count |", "| --- | ---: |"]
        out += [f"| {answer} | {n} |" for answer, n in t.answers.most_common()]
        out += ["", "| input category | answers |", "| --- | --- |"]
        for kind in sorted(t.by_kind):
            answers = ", ".join(f"{a} ×{n}" for a, n in t.by_kind[kind].most_common())
            out.append(f"| {kind} | {answers} |")
        if t.failures:
            out += ["", "Failures:", ""] + [f"- {f}" for f in t.failures[:50]]
        if t.mismatches:
            out += ["", "Expectation mismatches (not failures: the generator's guess vs the answer):", ""]
            out += [f"- {m}" for m in t.mismatches[:50]]
    return out


def campaign(
    stack: LocalServices,
    database_url: str,
    n_lines: int,
    n_images: int,
    seed: int,
    *,
    per_manifest: int = 40,
    n_goods: int = 200,
    version: tuple[str, bytes] | None = None,
    images: Sequence[HostileImage] | None = None,
) -> list[Tally]:
    """Runs every entry point with `n_lines` mutants and `n_images` hostile images (or `images`);
    `version` is (running version ARN, an image it labels), else a classifier is trained and started."""
    bucket = f"hostile-{uuid.uuid4().hex[:8]}"
    stack.store.ensure_bucket(bucket)
    bases = mutants.base_lines(per_set=max(10, n_goods // 4), seed=seed)
    goods = mutants.good_lines(bases, n_goods, lambda i: f"s3://{bucket}/good/{i:05d}.jpg")
    lines = mutants.manifest_mutants(bases, n_lines, seed, lambda i: f"s3://{bucket}/mutant/{i:05d}.jpg")
    if images is None:
        images = mutants.hostile_images(n_images, seed)
    put_objects(stack, bucket, [(g.ref.split("/", 3)[3], g.image) for g in goods if g.image])
    put_objects(
        stack,
        bucket,
        [(m.ref.split("/", 3)[3], m.image) for m in lines if m.image and m.ref.startswith(f"s3://{bucket}/")],
    )
    baseline_arn, baseline = make_baseline(stack, bucket, goods[:50])
    if version is None:
        arn, probes = train_and_start(stack, database_url)
        version = (arn, probes[0])
    health = Health(
        stack, baseline_arn, baseline, all_labels(stack, baseline_arn), detect_probe(stack, *version)
    )
    tallies = []
    for run in (
        lambda: run_create(stack, bucket, lines, goods, per_manifest),
        lambda: run_update(stack, bucket, lines, goods[: 4 * per_manifest], per_manifest),
        lambda: run_image_manifest(stack, bucket, images, goods),
        lambda: run_upload(stack, images, goods[0].image or b""),
        lambda: run_detect(stack, version[0], bucket, images),
    ):
        tally = run()
        tally.health = health.check()
        print(
            f"{tally.entry_point}: {tally.sent} sent, {len(tally.failures)} failures, health: {tally.health}",
            flush=True,
        )
        tallies.append(tally)
    return tallies


def main(argv: list[str] | None = None) -> None:
    """Runs the campaign on an embedded stack and writes bench/results/hostile.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=1000, help="mutated manifest lines")
    parser.add_argument("--images", type=int, default=200, help="hostile images")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    with inprocess.embedded_stack("customlabels-bench-hostile-", triton=True, serving=True) as embedded:
        tallies = campaign(embedded.services, embedded.database_url, args.lines, args.images, args.seed)
    setup = (
        f"{args.lines} mutated manifest lines and {args.images} hostile images (seed {args.seed}, bench/mutants.py),"
        f" embedded stack (Postgres, SeaweedFS, Triton, services in-process), {time.perf_counter() - began:.0f} s in all."
        " Every answer must be an AWS error name or a stored per-line code; the INTERNAL/UNKNOWN column must be 0."
    )
    report.write(RESULTS, markdown(tallies, setup))
    if any(t.failures for t in tallies):
        raise SystemExit("hostile input produced failures (see the report)")


if __name__ == "__main__":
    main()
