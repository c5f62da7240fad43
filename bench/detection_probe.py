"""Detection quality and speed of services/training/models/detector.py on the real detection datasets.

`python -m bench.detection_probe [--dataset fruit-detection] [--budget SECONDS] [--set key=value ...]`

For each dataset in ../shared/datasets (fruit-detection, flickr-logos-27): train on train.manifest with the
dataset's time budget, predict test.manifest, and report
- wall time of training (images already decoded in memory), of predicting the test set, and both;
- mAP@0.5: per label, predictions of all test images sorted by confidence, matched greedily per image to
  the unmatched ground-truth box of the same label with the highest IoU, accepted at IoU ≥ 0.5
  (spec/evaluation.md §2); AP = all-point interpolated area under the precision–recall curve; mean over
  labels with test boxes;
- F1 at each label's best threshold (§3: candidates are the label's confidences), macro mean over labels;
- the same two numbers from services/training/evaluation.py, as a cross-check of the pipeline's code.
Writes bench/results/detection_probe.md (the last run of each dataset is kept).

glibc malloc settings: big CPU batches spend most of their time in page faults unless the process starts
with MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ raised (detector.MALLOC_ENV); glibc reads them at
start-up only, so this script re-executes itself with them when they are missing (--no-malloc-env to
measure without).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from scripts import shared_data

DATASETS = shared_data.datasets_dir()
RESULTS = Path(__file__).resolve().parent / "results" / "detection_probe.md"
# Training budgets leave room for predicting the test set inside the goal's wall time.
BUDGETS = {"fruit-detection": 390.0, "flickr-logos-27": 840.0}
GOALS = {
    "fruit-detection": "mAP@0.5 ≥ 0.90, F1 ≥ 0.85, ≤ 7 min",
    "flickr-logos-27": "mAP@0.5 ≥ 0.60, ≤ 15 min",
}

Truth = list[tuple[str, float, float, float, float]]


@dataclass
class Split:
    images: list[Image.Image]
    boxes: list[Truth]
    refs: list[str]


def load_split(dataset: str, split: str) -> Split:
    """Decoded images and ratio boxes of one manifest (pixels of the stored files → ratios)."""
    root = DATASETS / dataset
    images, boxes, refs = [], [], []
    for line in (root / f"{split}.manifest").read_text().splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        name = entry["source-ref"].rsplit("/", 1)[1]
        with Image.open(root / "images" / name) as im:
            image = im.convert("RGB")
        w, h = image.size
        class_map = entry["bounding-box-metadata"]["class-map"]
        boxes.append(
            [
                (class_map[str(a["class_id"])], a["left"] / w, a["top"] / h, a["width"] / w, a["height"] / h)
                for a in entry["bounding-box"]["annotations"]
            ]
        )
        images.append(image)
        refs.append(entry["source-ref"])
    return Split(images, boxes, refs)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def match(
    predictions: list[list[tuple]], truths: list[Truth]
) -> dict[str, tuple[list[float], list[bool], int]]:
    """Per label: confidences and TP flags of every prediction, and the number of ground-truth boxes.

    §2: per image and label, predictions in descending confidence each take the unmatched ground-truth
    box of the same label with the highest IoU, accepted at IoU ≥ 0.5. Processing in confidence order makes
    the flags valid at every threshold at once.
    """
    out: dict[str, tuple[list[float], list[bool], int]] = {}
    for preds, truth in zip(predictions, truths, strict=True):
        labels = {t[0] for t in truth} | {p[0] for p in preds}
        for label in labels:
            gts = [t[1:] for t in truth if t[0] == label]
            mine = sorted((p for p in preds if p[0] == label), key=lambda p: -p[1])
            scores, hits, n_gt = out.setdefault(label, ([], [], 0))
            used = [False] * len(gts)
            for p in mine:
                best, best_iou = -1, 0.5
                for j, g in enumerate(gts):
                    if used[j]:
                        continue
                    v = _iou(p[2:], g)
                    if v >= best_iou:
                        best, best_iou = j, v
                scores.append(p[1])
                hits.append(best >= 0)
                if best >= 0:
                    used[best] = True
            out[label] = (scores, hits, n_gt + len(gts))
    return out


def label_metrics(scores: list[float], hits: list[bool], n_gt: int) -> tuple[float, float, float]:
    """(AP all-point interpolated, best F1 over thresholds, that threshold) of one label."""
    if n_gt == 0:
        return 0.0, 0.0, 0.5
    if not scores:
        return 0.0, 0.0, 0.5
    s = np.asarray(scores)
    h = np.asarray(hits, dtype=float)
    order = np.argsort(-s, kind="stable")
    s, h = s[order], h[order]
    tp = np.cumsum(h)
    fp = np.cumsum(1 - h)
    # One curve point per distinct confidence (the last index of each run of ties).
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tp, fp, thr = tp[last], fp[last], s[last]
    recall = tp / n_gt
    precision = tp / np.maximum(tp + fp, 1e-12)
    # All-point interpolation: precision made monotone from the right, summed over recall steps.
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.r_[0.0, recall])
    ap = float((steps * envelope).sum())
    f1 = 2 * tp / np.maximum(2 * tp + fp + (n_gt - tp), 1e-12)
    # Ties → the higher threshold (§3): the first maximum in descending-threshold order.
    k = int(np.argmax(f1))
    return ap, float(f1[k]), float(thr[k])


def evaluate(predictions: list[list[tuple]], truths: list[Truth], labels: list[str]) -> dict[str, Any]:
    """mAP@0.5 and macro F1 over the labels with test boxes, plus the per-label rows."""
    matched = match(predictions, truths)
    rows = {}
    for label in labels:
        scores, hits, n_gt = matched.get(label, ([], [], 0))
        if n_gt == 0:
            continue
        ap, f1, thr = label_metrics(scores, hits, n_gt)
        rows[label] = {"ap": ap, "f1": f1, "threshold": thr, "boxes": n_gt}
    return {
        "map50": float(np.mean([r["ap"] for r in rows.values()])) if rows else 0.0,
        "f1": float(np.mean([r["f1"] for r in rows.values()])) if rows else 0.0,
        "labels": rows,
    }


def cross_check(
    split: Split, predictions: list[list[tuple]], labels: list[str]
) -> tuple[float, float] | None:
    """(AveragePrecision, F1Score) from the pipeline's evaluation module, None if it cannot be imported."""
    try:
        from services.training import evaluation as ev
    except Exception:  # noqa: BLE001 — the probe must still run without the service's dependencies
        return None
    samples = [
        ev.DetectionSample(
            ref,
            tuple(ev.Box(t[0], *t[1:]) for t in truth),
            tuple(ev.PredictedBox(p[0], p[1], *p[2:]) for p in preds),
        )
        for ref, truth, preds in zip(split.refs, split.boxes, predictions, strict=True)
    ]
    result = ev.evaluate_detection(samples, labels)
    return result.average_precision, result.f1_score


def run(dataset: str, budget: float, overrides: dict[str, Any]) -> dict[str, Any]:
    """Trains and evaluates one dataset; returns the row of the results table."""
    from services.training.models import detector

    train, test = load_split(dataset, "train"), load_split(dataset, "test")
    config = replace(detector.DetectorConfig(), **overrides)
    progress: list[tuple[float, float]] = []
    start = time.monotonic()
    model = detector.train_detector(
        train.images,
        train.boxes,
        lambda f: progress.append((time.monotonic() - start, f)),
        time_budget_s=budget,
        seed=0,
        config=config,
    )
    train_s = time.monotonic() - start
    start = time.monotonic()
    predictions = model.predict(test.images)
    predict_s = time.monotonic() - start
    metrics = evaluate(predictions, test.boxes, model.labels)
    gaps = np.diff([0.0] + [t for t, _ in progress])
    return {
        "dataset": dataset,
        "train_images": len(train.images),
        "test_images": len(test.images),
        "budget_s": budget,
        "train_s": train_s,
        "predict_s": predict_s,
        "map50": metrics["map50"],
        "f1": metrics["f1"],
        "per_label": metrics["labels"],
        "check": cross_check(test, predictions, model.labels),
        "info": model.info,
        "max_progress_gap_s": float(gaps.max()) if len(gaps) else None,
        "progress_calls": len(progress),
        "overrides": overrides,
        "load": os.getloadavg()[0],
    }


def write(rows: list[dict[str, Any]]) -> str:
    """Merges rows into the results file (one section per dataset) and returns the new text."""
    previous: dict[str, str] = {}
    if RESULTS.exists():
        for block in RESULTS.read_text().split("\n## ")[1:]:
            previous[block.split("\n", 1)[0].strip()] = "## " + block.rstrip() + "\n"
    for r in rows:
        info = r["info"]
        phases = ", ".join(
            f"{name} {info[name]['steps']}/{info[name]['planned_steps']} steps {info[name]['seconds']} s"
            for name in ("head", "finetune")
            if name in info
        )
        lines = [
            f"## {r['dataset']}",
            "",
            f"Goal: {GOALS.get(r['dataset'], '-')}. Train {r['train_images']} images, test {r['test_images']}; "
            f"training budget {r['budget_s']:.0f} s; load average (1 min) after the run {r['load']:.1f}.",
            "",
            "| train s | predict s | total s | mAP@0.5 | F1 | evaluation.py mAP / F1 | input | views/img | cache s | phases |",
            "|---:|---:|---:|---:|---:|---|---:|---:|---:|---|",
            f"| {r['train_s']:.0f} | {r['predict_s']:.1f} | {r['train_s'] + r['predict_s']:.0f} | "
            f"{r['map50']:.3f} | {r['f1']:.3f} | "
            + (f"{r['check'][0]:.3f} / {r['check'][1]:.3f}" if r["check"] else "-")
            + f" | {info['input_size']} | {info['views_per_image']} | {info['cache_seconds']} | {phases} |",
            "",
            f"Progress: {r['progress_calls']} calls, longest gap {r['max_progress_gap_s']:.2f} s."
            + (f" Overrides: `{r['overrides']}`." if r["overrides"] else ""),
            "",
            "| label | test boxes | AP@0.5 | F1 | threshold |",
            "|---|---:|---:|---:|---:|",
        ]
        for label, m in sorted(r["per_label"].items()):
            lines.append(f"| {label} | {m['boxes']} | {m['ap']:.3f} | {m['f1']:.3f} | {m['threshold']:.3f} |")
        previous[r["dataset"]] = "\n".join(lines) + "\n"
    header = (
        "# Detection probe (bench/detection_probe.py)\n\n"
        f"FCOS-style detector on EfficientNet-Lite0 (services/training/models/detector.py), seed 0. "
        f"Machine: {os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}, "
        "torch 2 threads, MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ raised. The machine is shared with other "
        "work, so wall times are noisy (the load average is given per run). Train time includes building and "
        "caching the augmented views; images are decoded before the clock starts.\n\n"
    )
    text = header + "\n".join(previous[k] for k in sorted(previous))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    return text


def _parse_override(text: str) -> tuple[str, Any]:
    from services.training.models.detector import DetectorConfig

    key, _, value = text.partition("=")
    names = {f.name for f in fields(DetectorConfig)}
    if key not in names:
        raise SystemExit(f"unknown config field {key!r}; one of {sorted(names)}")
    return key, json.loads(value) if value not in ("None", "") else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dataset", action="append", choices=sorted(BUDGETS), help="default: all")
    parser.add_argument("--budget", type=float, help="training budget in seconds (default per dataset)")
    parser.add_argument("--set", action="append", default=[], help="DetectorConfig override key=json")
    parser.add_argument("--no-malloc-env", action="store_true", help="do not re-execute with MALLOC_ENV")
    parser.add_argument("--no-write", action="store_true", help="print only, leave the results file alone")
    args = parser.parse_args()

    from services.training.models.detector import MALLOC_ENV

    if not args.no_malloc_env and any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()):
        # glibc reads these at start-up only: restart this process with them set.
        os.execve(
            sys.executable,
            [sys.executable, "-m", "bench.detection_probe", *sys.argv[1:]],
            {**os.environ, **MALLOC_ENV},
        )

    overrides = dict(_parse_override(s) for s in args.set)
    for key in ("zoom",):
        if key in overrides and overrides[key] is not None:
            overrides[key] = tuple(overrides[key])
    rows = []
    for dataset in args.dataset or sorted(BUDGETS, key=lambda d: BUDGETS[d]):
        row = run(dataset, args.budget or BUDGETS[dataset], overrides)
        print(
            f"{dataset}: mAP@0.5 {row['map50']:.3f} F1 {row['f1']:.3f} check {row['check']} "
            f"train {row['train_s']:.0f} s predict {row['predict_s']:.1f} s info {json.dumps(row['info'], default=str)}",
            flush=True,
        )
        rows.append(row)
    if not args.no_write:
        print(write(rows))


if __name__ == "__main__":
    main()
