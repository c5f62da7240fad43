"""Classifier training on a GPU against the CPU, on one classification dataset (no services needed).

`python -m bench.train_device --dataset DIR [--devices cuda cpu] [--out FILE]` reads DIR/train.manifest
and DIR/test.manifest (Ground Truth image classification; images under DIR/images), trains
models/classifier.py with the default settings on each device in turn (with a budget that never binds,
so every device trains the same 4 views per image), and writes a table: training seconds, test
accuracy and macro F1 at the arg-max label, the ratio to the first device. It is the check that
training uses an accelerator when a worker has one (CUSTOMLABELS_TRAINING_DEVICE, default CUDA when
present).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from bench import report
from services.training.models import classifier as cls


def read(folder: Path, name: str) -> tuple[list[bytes], list[set[str]]]:
    images, labels = [], []
    for line in (folder / name).read_text().splitlines():
        entry = json.loads(line)
        meta = next(v for k, v in entry.items() if k.endswith("-metadata"))
        images.append((folder / "images" / entry["source-ref"].rsplit("/", 1)[1]).read_bytes())
        labels.append({meta["class-name"]})
    return images, labels


def macro_f1(truth: list[str], predicted: list[str]) -> float:
    scores = []
    for label in sorted(set(truth)):
        tp = sum(t == p == label for t, p in zip(truth, predicted, strict=True))
        fp = sum(p == label != t for t, p in zip(truth, predicted, strict=True))
        fn = sum(t == label != p for t, p in zip(truth, predicted, strict=True))
        scores.append(2 * tp / max(2 * tp + fp + fn, 1))
    return float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--devices", nargs="+", default=["cuda", "cpu"])
    parser.add_argument("--out", type=Path, default=Path("bench/results/train_device.md"))
    args = parser.parse_args()
    train_images, train_labels = read(args.dataset, "train.manifest")
    test_images, test_labels = read(args.dataset, "test.manifest")
    truth = [next(iter(t)) for t in test_labels]
    rows, first = [], None
    for device in args.devices:
        if device.startswith("cuda") and not torch.cuda.is_available():
            rows.append(f"| {device} | not available | | | | |")
            continue
        config = cls.ClassifierConfig(device=device, views=4)
        start = time.perf_counter()
        model = cls.train_classifier(train_images, train_labels, multi_label=False, config=config)
        seconds = time.perf_counter() - start
        scores = model.predict(test_images)
        predicted = [model.labels[i] for i in scores.argmax(1)]
        accuracy = float(np.mean([p == t for p, t in zip(predicted, truth, strict=True)]))
        first = first or seconds
        rows.append(
            f"| {device} | {seconds:.1f} | {model.info['feature_seconds']} | {accuracy:.3f} |"
            f" {macro_f1(truth, predicted):.3f} | {first / seconds:.2f}× |"
        )
        print(rows[-1], flush=True)
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    out = [
        "# Classifier training by device",
        "",
        f"{args.dataset.name}: {len(train_images)} train / {len(test_images)} test images, 4 views each;"
        f" {name}; {torch.get_num_threads()} CPU threads; torch {torch.__version__}.",
        "",
        "| device | training s | feature s | accuracy | macro F1 | speed vs first |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
    ]
    report.write(args.out, out)


if __name__ == "__main__":
    main()
