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
from pathlib import Path

from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.project.v1 import project_service_pb2 as pj
from customlabels.training.v1 import training_service_pb2 as tr

from bench import report, workflow
from scripts import inprocess, samples, shared_data

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
    found = shared_data.datasets_dir()
    if not found.is_dir():
        raise SystemExit(f"{found} is missing")
    return found


def _manifest_key() -> str:
    return f"bench/{secrets.token_hex(6)}.manifest"


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
        for kind, manifest in ((ds.DATASET_TYPE_TRAIN, train_file), (ds.DATASET_TYPE_TEST, test_file)):
            lines = (folder / manifest).read_text().splitlines()
            workflow.import_manifest(services, project, "datasets", _manifest_key(), lines, kind)
        desc, _, seconds = workflow.train_version(services, project, "bench-output", "quality")
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
            workflow.import_manifest(services, project, "datasets", _manifest_key(), lines, kind)
        desc, _, seconds = workflow.train_version(services, project, "bench-output", "quality")
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
    with inprocess.embedded_stack("customlabels-quality-") as stack:
        services, work = stack.services, stack.work
        services.store.ensure_bucket("datasets")
        env = {
            **os.environ,
            **services.env,
            "DATABASE_URL": stack.database_url,
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
