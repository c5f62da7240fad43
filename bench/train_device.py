"""Training on a GPU against the CPU, on one dataset (no services needed).

`python -m bench.train_device --dataset DIR [--task classification|detection] [--devices cuda cpu]
[--out FILE]` reads DIR/train.manifest and DIR/test.manifest (Ground Truth image classification or
bounding boxes; images under DIR/images) and trains on each device in turn, with a budget that never
binds so every device runs the same plan:
- classification: models/classifier.py with 4 views per image; the table has training seconds, test
  accuracy and macro F1 at the arg-max label;
- detection: models/detector.py with its default plan (views, head epochs, fine-tuning); the table has
  training seconds, the product's evaluation F1 and mAP@0.5 on the test set.
Both give the speed-up against the first device. It is the check that training uses an accelerator
when a worker has one (CUSTOMLABELS_TRAINING_DEVICE, default CUDA when present).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench import report
from services.training import evaluation as ev
from services.training.models import classifier as cls
from services.training.models import detector as det


def read(folder: Path, name: str) -> tuple[list[bytes], list[set[str]]]:
    images, labels = [], []
    for line in (folder / name).read_text().splitlines():
        entry = json.loads(line)
        meta = next(v for k, v in entry.items() if k.endswith("-metadata"))
        images.append((folder / "images" / entry["source-ref"].rsplit("/", 1)[1]).read_bytes())
        labels.append({meta["class-name"]})
    return images, labels


def read_boxes(
    folder: Path, name: str
) -> tuple[list[Image.Image], list[list[det.GroundTruthBox]], list[str]]:
    """Decoded images, their boxes as ratios and their names, from a bounding-box manifest."""
    images, boxes, names = [], [], []
    for line in (folder / name).read_text().splitlines():
        entry = json.loads(line)
        key = next(k for k in entry if k.endswith("-metadata"))[: -len("-metadata")]
        body, classes = entry[key], entry[f"{key}-metadata"]["class-map"]
        size = body["image_size"][0]
        w, h = float(size["width"]), float(size["height"])
        file_name = entry["source-ref"].rsplit("/", 1)[1]
        image = Image.open(folder / "images" / file_name)
        image.load()
        images.append(image)
        names.append(file_name)
        boxes.append(
            [
                (classes[str(a["class_id"])], a["left"] / w, a["top"] / h, a["width"] / w, a["height"] / h)
                for a in body["annotations"]
            ]
        )
    return images, boxes, names


def macro_f1(truth: list[str], predicted: list[str]) -> float:
    scores = []
    for label in sorted(set(truth)):
        tp = sum(t == p == label for t, p in zip(truth, predicted, strict=True))
        fp = sum(p == label != t for t, p in zip(truth, predicted, strict=True))
        fn = sum(t == label != p for t, p in zip(truth, predicted, strict=True))
        scores.append(2 * tp / max(2 * tp + fp + fn, 1))
    return float(np.mean(scores))


def classification_rows(dataset: Path, devices: list[str]) -> tuple[str, list[str]]:
    train_images, train_labels = read(dataset, "train.manifest")
    test_images, test_labels = read(dataset, "test.manifest")
    truth = [next(iter(t)) for t in test_labels]
    rows, first = [], None
    for device in devices:
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
    return f"{len(train_images)} train / {len(test_images)} test images, 4 views each", [
        "| device | training s | feature s | accuracy | macro F1 | speed vs first |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
    ]


def detection_rows(dataset: Path, devices: list[str]) -> tuple[str, list[str]]:
    train_images, train_boxes, _ = read_boxes(dataset, "train.manifest")
    test_images, test_boxes, test_names = read_boxes(dataset, "test.manifest")
    rows, first, model = [], None, None
    for device in devices:
        if device.startswith("cuda") and not torch.cuda.is_available():
            rows.append(f"| {device} | not available | | | | | |")
            continue
        config = det.DetectorConfig(device=device)
        start = time.perf_counter()
        model = det.train_detector(train_images, train_boxes, lambda _: None, 3600.0, config=config)
        seconds = time.perf_counter() - start
        samples = [
            ev.DetectionSample(
                name,
                [ev.Box(*b) for b in truth],
                [ev.PredictedBox(*p) for p in predicted],
            )
            for name, truth, predicted in zip(test_names, test_boxes, model.predict(test_images), strict=True)
        ]
        result = ev.evaluate_detection(samples, model.labels)
        first = first or seconds
        info = model.info
        tuned = info.get("finetune", {}).get("seconds", "skipped")
        rows.append(
            f"| {device} | {seconds:.1f} | {info['cache_seconds']} | {info['head']['seconds']} | {tuned} |"
            f" {result.f1_score:.3f} | {result.average_precision:.3f} | {first / seconds:.2f}× |"
        )
        print(rows[-1], flush=True)
    rows += ["", *onnx_rows(model, test_images)] if model is not None else []
    return f"{len(train_images)} train / {len(test_images)} test images, default plan", [
        "| device | training s | cache s | head s | fine-tune s | F1 | mAP@0.5 | speed vs first |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]


def onnx_rows(model: det.TrainedDetector, images: list[Image.Image]) -> list[str]:
    """The exported graph in onnxruntime on each provider there is (CUDA is what a GPU Triton uses):
    milliseconds per image at batch 1 and the largest score difference from PyTorch."""
    import onnxruntime as ort

    session_bytes = model.export_onnx()
    batches = [det.prepare_image(im, model.input_size)[None] for im in images]
    reference = [scores for _, scores in model.raw_outputs(images)]
    out = ["| onnxruntime provider | ms / image | max score difference from PyTorch |", "|---|---:|---:|"]
    for provider in ("CUDAExecutionProvider", "CPUExecutionProvider"):
        if provider not in ort.get_available_providers():
            out.append(f"| {provider} | not available | |")
            continue
        session = ort.InferenceSession(session_bytes, providers=[provider])
        session.run(None, {session.get_inputs()[0].name: batches[0]})
        start = time.perf_counter()
        results = [session.run(None, {session.get_inputs()[0].name: b})[1] for b in batches]
        ms = 1000 * (time.perf_counter() - start) / len(batches)
        diff = max(float(np.abs(r - ref).max()) for r, ref in zip(results, reference, strict=True))
        out.append(f"| {provider} | {ms:.1f} | {diff:.2e} |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--task", choices=["classification", "detection"], default="classification")
    parser.add_argument("--devices", nargs="+", default=["cuda", "cpu"])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out_path = args.out or Path(f"bench/results/train_device_{args.task}.md")
    rows_of = classification_rows if args.task == "classification" else detection_rows
    what, rows = rows_of(args.dataset, args.devices)
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    out = [
        f"# {args.task.capitalize()} training by device",
        "",
        f"{args.dataset.name}: {what}; {name}; {torch.get_num_threads()} CPU threads; torch {torch.__version__}.",
        "",
        *rows,
        "",
    ]
    report.write(out_path, out)


if __name__ == "__main__":
    main()
