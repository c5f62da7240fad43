"""Serving speed: `python -m bench.serving [--seconds S] [--concurrency 1,4,16] [--decode service,triton]`.

Starts Postgres, SeaweedFS and Triton (scripts/embedded.py), the project, dataset and training services
in-process and the serving service as its own process (as deployed), trains one classifier and one
detector through the training service on generated images (scripts/samples.py), then for each model:
- StartProjectVersion → RUNNING: seconds until DescribeProjectVersions shows RUNNING;
- DetectCustomLabels (Bytes, no MinConfidence) through serving + Triton at each concurrency: p50/p95
  latency and images/s, with C client threads in this process calling over gRPC for `--seconds`;
- in the same run, the same images through plain onnxruntime in this process (one session, C threads
  each doing modelio.prepare → session.run → modelio decoding and select): the baseline.
Writes a Markdown table to bench/results/serving.md and prints it. The machine's cores are shared by
everything (clients, serving, Triton), as the baseline's are by its threads.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.project.v1 import project_service_pb2 as pj
from customlabels.serving.v1 import serving_service_pb2 as sv
from customlabels.serving.v1 import serving_service_pb2_grpc as sv_grpc
from customlabels.training.v1 import training_service_pb2 as tr

from bench import report, workflow
from scripts import inprocess, samples
from scripts.embedded import (
    ServiceProcess,
    free_port,
)
from services.common import clients, db, modelio
from services.common.config import Config
from services.training import app as training_app
from services.training.worker import build_runner

RESULTS = Path(__file__).resolve().parent / "results" / "serving.md"


@dataclass
class Run:
    """One measured configuration."""

    path: str
    concurrency: int
    latencies: list[float]
    seconds: float

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def measure(call: Callable[[bytes], Any], images: list[bytes], concurrency: int, seconds: float) -> Run:
    """C threads calling `call` on the images in turn for `seconds` (after a short warm-up)."""
    for data in images[: max(2, concurrency)]:
        call(data)
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def loop(worker: int) -> None:
        mine, i = [], worker
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            call(images[i % len(images)])
            mine.append(time.perf_counter() - began)
            i += concurrency
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=loop, args=(w,)) for w in range(concurrency)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Run("", concurrency, latencies, time.perf_counter() - began)


def baseline_call(onnx: bytes, spec: modelio.ModelSpec, spinning: bool = True) -> Callable[[bytes], Any]:
    """Plain onnxruntime + modelio in this process: default session options, or without spinning
    threads (the setting the Triton model uses), for a tuned baseline."""
    options = ort.SessionOptions()
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    session = ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])
    outputs = list(spec.outputs)

    def call(data: bytes) -> Any:
        pixels, (width, height) = modelio.prepare(data, spec.input_size)
        out = session.run(outputs, {spec.input_name: pixels[None]})
        if spec.detects:
            found: Any = modelio.detections(spec, out[0][0], out[1][0], width, height)
        else:
            found = modelio.classifications(spec, out[0][0])
        return modelio.select(spec, found, None, None)

    return call


def serving_call(stub: sv_grpc.ServingServiceStub, arn: str) -> Callable[[bytes], Any]:
    def call(data: bytes) -> Any:
        request = sv.DetectCustomLabelsRequest(project_version_arn=arn, image=sv.Image(bytes=data))
        return stub.DetectCustomLabels(request, timeout=60).custom_labels

    return call


def train(
    stack: inprocess.LocalServices, label: str, items: list[samples.Sample], test: list[samples.Sample]
) -> tuple[str, str]:
    """A project with TRAIN/TEST datasets from samples and a trained version; returns (project, version)."""
    project = stack.project.CreateProject(
        pj.CreateProjectRequest(project_name=f"{label}-{uuid.uuid4().hex[:6]}")
    ).project_arn
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    stack.store.ensure_bucket(bucket)
    for dataset_type, group in ((ds.DATASET_TYPE_TRAIN, items), (ds.DATASET_TYPE_TEST, test)):
        lines = []
        for s in group:
            key = f"{dataset_type}/{s.file_name}"
            stack.store.put_bytes(bucket, key, s.data)
            lines.append(samples.manifest_line(f"s3://{bucket}/{key}", s))
        workflow.import_manifest(stack, project, bucket, f"{dataset_type}.manifest", lines, dataset_type)
    desc, version, _ = workflow.train_version(stack, project, "bench-output", label, timeout=900)
    if desc.status != tr.PROJECT_VERSION_STATUS_TRAINING_COMPLETED:
        raise SystemExit(f"{label} training failed: {desc.status_message}")
    return project, version


def main(argv: list[str] | None = None) -> None:
    """Runs the benchmark and writes bench/results/serving.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measuring time per configuration")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--decode", default="service", help="where serving decodes: service, triton or both")
    parser.add_argument("--units", type=int, default=1, help="MinInferenceUnits of the started versions")
    parser.add_argument("--models", default="classification,detection")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    decoders = ["service", "triton"] if args.decode == "both" else [args.decode]
    models = args.models.split(",")

    stops: list[Callable[[], None]] = []
    rows: list[str] = []
    with inprocess.embedded_stack("customlabels-bench-serving-", triton=True) as embedded:
        stack, triton, work = embedded.services, embedded.triton, embedded.work
        assert triton is not None
        try:
            os.environ.setdefault("CUSTOMLABELS_TRAINING_DETECTION_BUDGET_S", "60")
            config = Config.from_env("training", stack.env)
            pool = db.create_pool(embedded.database_url, training_app.SCHEMA, 1, 4)
            runner = build_runner(config, stack.store, pool, {"CUSTOMLABELS_TRAINING_JOB_POLL_S": "0.2"})
            runner.start()
            stops += [pool.close, lambda: runner.stop(timeout=60)]
            trained: dict[str, tuple[str, str, list[bytes]]] = {}
            if "classification" in models:
                test = samples.classification(per_label=8, seed=2)
                project, arn = train(stack, "cls", samples.classification(per_label=10, seed=1), test)
                trained["classification"] = (project, arn, [s.data for s in test])
            if "detection" in models:
                test = samples.detection(24, seed=4)
                project, arn = train(stack, "det", samples.detection(40, seed=3), test)
                trained["detection"] = (project, arn, [s.data for s in test])
            runner.stop(timeout=60)

            for decode in decoders:
                env = {
                    **stack.env,
                    "CUSTOMLABELS_TRITON_GRPC_ADDR": triton.grpc_addr,
                    "CUSTOMLABELS_TRITON_HTTP_ADDR": triton.http_addr,
                    "CUSTOMLABELS_TRITON_BUCKET": triton.bucket,
                    "CUSTOMLABELS_TRITON_PREFIX": triton.prefix,
                    "CUSTOMLABELS_SERVING_DECODE": decode,
                    "CUSTOMLABELS_LOG_LEVEL": "WARNING",
                }
                serving = ServiceProcess(
                    "serving",
                    "services.serving",
                    env,
                    work / f"serving-{decode}.log",
                    addr=f"127.0.0.1:{free_port()}",
                    die_with_parent=True,
                )
                serving.start()
                serving.wait_ready(60)
                channel = clients.channel(serving.addr or "")
                stub = sv_grpc.ServingServiceStub(channel)
                try:
                    for kind, (project, arn, images) in trained.items():
                        artifact = stack.training.GetModelArtifact(
                            tr.GetModelArtifactRequest(project_version_arn=arn)
                        )
                        onnx = stack.store.get_bytes(artifact.onnx_model.bucket, artifact.onnx_model.name)
                        spec = modelio.ModelSpec.from_json(
                            stack.store.get_bytes(
                                artifact.model_metadata.bucket, artifact.model_metadata.name
                            )
                        )
                        began = time.perf_counter()
                        stub.StartProjectVersion(
                            sv.StartProjectVersionRequest(
                                project_version_arn=arn, min_inference_units=args.units
                            )
                        )
                        desc = workflow.wait_version(
                            stack,
                            project,
                            "v1",
                            {tr.PROJECT_VERSION_STATUS_RUNNING, tr.PROJECT_VERSION_STATUS_FAILED},
                            300,
                        )
                        start_s = time.perf_counter() - began
                        if desc.status != tr.PROJECT_VERSION_STATUS_RUNNING:
                            raise SystemExit(f"{kind} did not start: {desc.status_message}")
                        base = baseline_call(onnx, spec)
                        tuned = baseline_call(onnx, spec, spinning=False)
                        served = serving_call(stub, arn)
                        for c in levels:
                            b = measure(base, images, c, args.seconds)
                            t = measure(tuned, images, c, args.seconds)
                            s = measure(served, images, c, args.seconds)
                            row = (
                                f"| {kind} | {decode} | {start_s:.2f} | {c} | {s.pct(0.5):.1f} | {s.pct(0.95):.1f} | {s.rate:.1f} "
                                f"| {b.pct(0.5):.1f} | {b.pct(0.95):.1f} | {b.rate:.1f} | **{s.rate / b.rate:.2f}** "
                                f"| **{s.pct(0.5) / b.pct(0.5):.2f}** | {t.pct(0.5):.1f} | {t.rate:.1f} | {s.rate / t.rate:.2f} "
                                f"| {s.pct(0.5) / t.pct(0.5):.2f} |"
                            )
                            rows.append(row)
                            print(row, flush=True)
                        stub.StopProjectVersion(sv.StopProjectVersionRequest(project_version_arn=arn))
                        workflow.wait_version(stack, project, "v1", {tr.PROJECT_VERSION_STATUS_STOPPED}, 120)
                finally:
                    channel.close()
                    serving.stop()
        finally:
            for stop in reversed(stops):
                try:
                    stop()
                except Exception as exc:  # noqa: BLE001 - clean up the rest
                    print(f"cleanup: {exc}", file=sys.stderr)

    header = (
        "| model | decode in | start → RUNNING (s) | concurrency | serving p50 (ms) | serving p95 (ms) | serving img/s "
        "| baseline p50 (ms) | baseline p95 (ms) | baseline img/s | throughput ratio | p50 ratio "
        "| no-spin baseline p50 (ms) | no-spin baseline img/s | throughput ratio (no-spin) | p50 ratio (no-spin) |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    text = (
        f"# Serving benchmark\n\n`python -m bench.serving {' '.join(argv if argv is not None else sys.argv[1:])}` on "
        f"{platform.machine()}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')} UTC; {args.seconds:g} s per cell, "
        f"MinInferenceUnits={args.units}. Baseline: plain onnxruntime + modelio in one process, same images, same "
        "concurrency, default session options; the no-spin baseline is the same with onnxruntime's spinning threads off "
        "(what the Triton model does). Ratios: serving / baseline (throughput ≥ 0.8 and p50 ≤ 1.3 at concurrency 4 are "
        "the goals). `decode in`: where the JPEG is decoded and resized (the serving service, or the Triton model).\n\n"
        f"{header}\n" + "\n".join(rows) + "\n"
    )
    report.write(RESULTS, [text])


if __name__ == "__main__":
    main()
