"""`torchrun --nproc_per_node=N -m services.training.ddp --train DIR --test DIR --out FILE`.

Trains the image classifier with torch.distributed (gloo on CPU, nccl on GPU) from folders of
images (sub-folder = label) and has rank 0 write the ONNX model and its test accuracy. It is how
training spreads past one process or machine (a Kubernetes PyTorchJob runs the same command), and
what tests use to check that multi-process training gives a valid model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch.distributed as dist

from services.training.modeling import fit_classifier


def _folder(root: Path) -> tuple[list[bytes], list[set[str]]]:
    images, labels = [], []
    for path in sorted(root.glob("*/*")):
        images.append(path.read_bytes())
        labels.append({path.parent.name})
    return images, labels


def main(argv: list[str] | None = None) -> None:
    """Trains; every rank reports its test accuracy and its test scores; rank 0 writes the model."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    images, labels = _folder(args.train)
    fitted = fit_classifier(images, labels, lambda fraction: None, time_budget_s=3600)
    test_images, test_labels = _folder(args.test)
    scores = fitted.predict(test_images)
    predicted = [fitted.labels[i] for i in np.asarray(scores).argmax(1)]
    accuracy = float(np.mean([p in t for p, t in zip(predicted, test_labels, strict=True)]))
    rank = dist.get_rank() if dist.is_initialized() else 0
    model, metadata = fitted.export({label: 0.5 for label in fitted.labels})
    report = {
        "rank": rank,
        "world": dist.get_world_size() if dist.is_initialized() else 1,
        "accuracy": accuracy,
        "labels": fitted.labels,
        "onnx_bytes": len(model),
        "processes": metadata["training"]["processes"],
        "scores": np.round(np.asarray(scores, dtype=np.float64), 6).tolist(),
    }
    args.out.with_suffix(f".rank{rank}.json").write_text(json.dumps(report))
    if rank == 0:
        args.out.write_bytes(model)
        args.out.with_suffix(".json").write_text(json.dumps(metadata))
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
