"""Model quality benchmark (issue 4): train on every dataset in ../shared/datasets with the defaults.

`python -m bench.quality [--only NAME ...]` starts Postgres and S3 (scripts/embedded.py), the
services in-process and one training worker as a separate process, imports each dataset's train and
test manifests, runs CreateProjectVersion and waits for the result. It reports the wall time from
CreateProjectVersion to TRAINING_COMPLETED, the overall F1 (EvaluationResult.F1Score), per-label F1
and, for detection, mAP@0.5 — all read back from the service, as a user would — plus a 100-image
classification run. Results go to bench/results/quality.md.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

from customlabels.common.v1 import types_pb2 as common
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.project.v1 import project_service_pb2 as pj
from customlabels.training.v1 import training_service_pb2 as tr

from bench import report
from scripts import inprocess, samples

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "quality.md"
GOALS = {
    "rock-paper-scissors": ("train.manifest", "test.manifest", "classification", "F1 ≥ 0.97, ≤ 2 min"),
    "trashnet": ("train.manifest", "test.manifest", "classification", "F1 ≥ 0.88, ≤ 3 min"),
    "fruit-detection (multi-label)": (
        "multilabel-train.manifest",
        "multilabel-test.manifest",
        "multi-label",
        "F1 ≥ 0.90, ≤ 2 min",
    ),
    "fruit-detection": ("train.manifest", "test.manifest", "detection", "mAP ≥ 0.90, F1 ≥ 0.85, ≤ 7 min"),
    "flickr-logos-27": ("train.manifest", "test.manifest", "detection", "mAP ≥ 0.60, ≤ 15 min"),
}


def shared() -> Path:
    for candidate in (ROOT.parent / "shared" / "datasets", Path("/work/shared/datasets")):
        if candidate.is_dir():
            return candidate
    raise SystemExit("../shared/datasets is missing")


def wait_dataset(services: inprocess.LocalServices, arn: str) -> None:
    while True:
        desc = services.dataset.DescribeDataset(
            ds.DescribeDatasetRequest(dataset_arn=arn)
        ).dataset_description
        name = ds.DatasetStatus.Name(desc.status)
        if name.endswith("FAILED"):
            raise SystemExit(f"import failed: {desc.status_message}")
        if name.endswith("COMPLETE"):
            return
        time.sleep(0.2)


def import_manifest(services: inprocess.LocalServices, project: str, lines: list[str], kind: int) -> None:
    key = f"bench/{secrets.token_hex(6)}.manifest"
    services.store.put_bytes("datasets", key, ("\n".join(lines) + "\n").encode())
    arn = services.dataset.CreateDataset(
        ds.CreateDatasetRequest(
            project_arn=project,
            dataset_type=kind,
            dataset_source=ds.DatasetSource(
                ground_truth_manifest={"s3_object": {"bucket": "datasets", "name": key}}
            ),
        )
    ).dataset_arn
    wait_dataset(services, arn)


def train(services: inprocess.LocalServices, project: str) -> tuple[tr.ProjectVersionDescription, float]:
    start = time.perf_counter()
    services.training.CreateProjectVersion(
        tr.CreateProjectVersionRequest(
            project_arn=project,
            version_name="v1",
            output_config=common.OutputConfig(s3_bucket="bench-output", s3_key_prefix="quality"),
        )
    )
    while True:
        (desc,) = services.training.DescribeProjectVersions(
            tr.DescribeProjectVersionsRequest(project_arn=project, version_names=["v1"])
        ).project_version_descriptions
        if desc.status in (
            tr.PROJECT_VERSION_STATUS_TRAINING_COMPLETED,
            tr.PROJECT_VERSION_STATUS_TRAINING_FAILED,
        ):
            return desc, time.perf_counter() - start
        time.sleep(0.5)


def per_label(services: inprocess.LocalServices, desc: tr.ProjectVersionDescription) -> str:
    ref = desc.evaluation_result.summary.s3_object
    summary = json.loads(services.store.get_bytes(ref.bucket, ref.name))
    return ", ".join(f"{r['Label']} {r['Metrics']['F1Score']:.2f}" for r in summary["LabelEvaluationResults"])


def _load() -> str:
    """The machine's 5-minute load average: other work on these 2 CPUs stretches the wall times."""
    return f"{os.getloadavg()[1]:.1f}"


def run_all(services: inprocess.LocalServices, only: list[str] | None) -> list[str]:
    """Trains on each dataset (and the 100-image set); returns the table rows."""
    rows: list[str] = []
    root = shared()
    for name, (train_file, test_file, task, goal) in GOALS.items():
        if only and name not in only:
            continue
        folder = root / name.split(" ")[0]
        for image in (folder / "images").iterdir():
            services.store.put_bytes("datasets", f"{folder.name}/images/{image.name}", image.read_bytes())
        project = services.project.CreateProject(
            pj.CreateProjectRequest(project_name=f"q-{folder.name}-{secrets.token_hex(3)}")
        ).project_arn
        import_manifest(
            services, project, (folder / train_file).read_text().splitlines(), ds.DATASET_TYPE_TRAIN
        )
        import_manifest(
            services, project, (folder / test_file).read_text().splitlines(), ds.DATASET_TYPE_TEST
        )
        desc, seconds = train(services, project)
        if desc.status != tr.PROJECT_VERSION_STATUS_TRAINING_COMPLETED:
            rows.append(f"| {name} | {task} | failed: {desc.status_message} | | | | {goal} | {_load()} |")
        else:
            m = f"{desc.mean_average_precision:.3f}" if desc.HasField("mean_average_precision") else "–"
            rows.append(
                f"| {name} | {task} | {seconds:.0f} s | {desc.evaluation_result.f1_score:.3f} | {m} |"
                f" {per_label(services, desc)} | {goal} | {_load()} |"
            )
        print(rows[-1], flush=True)
    if not only:
        project = services.project.CreateProject(pj.CreateProjectRequest(project_name="q-100")).project_arn
        train_items = samples.classification(per_label=34, seed=3)[:100]
        test_items = samples.classification(per_label=8, seed=4)
        for kind, items in ((ds.DATASET_TYPE_TRAIN, train_items), (ds.DATASET_TYPE_TEST, test_items)):
            lines = []
            for s in items:
                key = f"q100/{kind}/{s.file_name}"
                services.store.put_bytes("datasets", key, s.data)
                lines.append(samples.manifest_line(f"s3://datasets/{key}", s))
            import_manifest(services, project, lines, kind)
        desc, seconds = train(services, project)
        rows.append(
            f"| 100 generated images | classification | {seconds:.0f} s |"
            f" {desc.evaluation_result.f1_score:.3f} | – | {per_label(services, desc)} | ≤ 60 s | {_load()} |"
        )
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    """Runs the benchmark and writes the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", nargs="*", help="dataset names to run (default: all, plus the 100-image run)"
    )
    args = parser.parse_args(argv)
    rows: list[str] = []
    with inprocess.embedded_stack("customlabels-quality-") as (services, database_url, work):
        services.store.ensure_bucket("bench-output")
        services.store.ensure_bucket("datasets")
        env = {
            **os.environ,
            **services.env,
            "DATABASE_URL": database_url,
            "MALLOC_MMAP_THRESHOLD_": "1073741824",
            "MALLOC_TRIM_THRESHOLD_": "1073741824",
        }
        with (work / "worker.log").open("wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "services.training.worker"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                rows = run_all(services, args.only)
            finally:
                worker.terminate()
                worker.wait(30)
    out = [
        "# Model quality",
        "",
        "2 CPUs, no GPU; wall time = CreateProjectVersion → TRAINING_COMPLETED through the"
        " services and one worker process.",
        "",
        "| dataset | task | wall time | F1 | mAP@0.5 | per-label F1 | goal | load (5 min) |",
        "|---|---|---:|---:|---:|---|---|---:|",
        *rows,
        "",
    ]
    report.write(RESULTS, out)


if __name__ == "__main__":
    main()
