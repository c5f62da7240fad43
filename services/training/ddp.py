"""One rank of a multi-process training (torch.distributed: gloo on CPU, nccl on GPU).

Two forms, both started with torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT):

- `python -m services.training.ddp --job PREFIX`: a rank of a queue job's training. The worker that
  claimed the job (distributed.py) wrote `PREFIX/inputs.json` into the models bucket: the use case,
  each usable training image's key in the images bucket and its labels, the time budget. Every rank
  reads those and the images itself (pods share no disk), trains its shard of the classifier
  (models/classifier.py splits the feature batches and the head's batches by rank), and records
  `PREFIX/ranks/<rank>.json` (started, then done or failed, with its pid and host). Rank 0 reports
  progress in `PREFIX/progress.json` and saves the trained model as `PREFIX/model.pt`; the claimer
  evaluates and exports it exactly as a single-process training. On the embedded stack the claimer
  starts the ranks as local processes; on Kubernetes an Indexed Job runs `torchrun --nnodes=N ...
  -m services.training.ddp --job PREFIX` in each pod.
- `torchrun --nproc_per_node=N -m services.training.ddp --train DIR --test DIR --out FILE`: trains from
  folders of images (sub-folder = label); rank 0 writes the ONNX model and its test accuracy (what
  tests use to check that multi-process training gives a valid model).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from services.common import logs
from services.common.config import Config
from services.common.storage import ObjectStore
from services.training.modeling import fit_classifier, train_classifier_model

log = logging.getLogger("customlabels.training.rank")

# Rank 0 writes progress at most this often (the claimer polls it for DescribeProjectVersions).
PROGRESS_EVERY_S = 1.0


def _folder(root: Path) -> tuple[list[bytes], list[set[str]]]:
    images, labels = [], []
    for path in sorted(root.glob("*/*")):
        images.append(path.read_bytes())
        labels.append({path.parent.name})
    return images, labels


def _put_json(store: ObjectStore, bucket: str, key: str, doc: dict[str, Any]) -> None:
    store.put_bytes(bucket, key, json.dumps(doc).encode(), "application/json")


def run_job(prefix: str, env: dict[str, str] | None = None) -> None:
    """Runs this process's rank of the training described under `prefix` in the models bucket."""
    env = dict(os.environ) if env is None else env
    config = Config.from_env("training", env)
    rank, world = int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1"))
    logs.setup(f"training-rank-{rank}", config.log_level)
    store = ObjectStore(config.s3_endpoint, config.s3_access_key, config.s3_secret_key, config.s3_region)
    bucket = config.models_bucket
    me = {"rank": rank, "world": world, "pid": os.getpid(), "host": socket.gethostname()}
    _put_json(store, bucket, f"{prefix}/ranks/{rank}.json", {**me, "state": "started"})
    log.info("rank started", extra=me)
    started = time.monotonic()
    try:
        spec = json.loads(store.get_bytes(bucket, f"{prefix}/inputs.json"))
        with ThreadPoolExecutor(8) as pool:
            images = list(pool.map(lambda key: store.get_bytes(spec["images_bucket"], key), spec["keys"]))
        last = [0.0]

        def on_progress(fraction: float) -> None:
            now = time.monotonic()
            if rank == 0 and (now - last[0] >= PROGRESS_EVERY_S or fraction >= 1.0):
                last[0] = now
                _put_json(store, bucket, f"{prefix}/progress.json", {"fraction": fraction})

        model = train_classifier_model(
            images, [set(t) for t in spec["targets"]], on_progress, float(spec["time_budget_s"])
        )
        if rank == 0:
            buffer = io.BytesIO()
            torch.save(model, buffer)
            store.put_bytes(bucket, f"{prefix}/model.pt", buffer.getvalue())
    except Exception as exc:
        _put_json(
            store,
            bucket,
            f"{prefix}/ranks/{rank}.json",
            {**me, "state": "failed", "error": f"{type(exc).__name__}: {exc}"[:500]},
        )
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    done = {
        **me,
        "state": "done",
        "processes": model.info["processes"],
        "seconds": time.monotonic() - started,
    }
    _put_json(store, bucket, f"{prefix}/ranks/{rank}.json", done)
    log.info("rank done", extra=done)


def run_folders(train: Path, test: Path, out: Path) -> None:
    """Trains from folders; every rank reports its test accuracy and scores; rank 0 writes the model."""
    images, labels = _folder(train)
    fitted = fit_classifier(images, labels, lambda fraction: None, time_budget_s=3600)
    test_images, test_labels = _folder(test)
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
    out.with_suffix(f".rank{rank}.json").write_text(json.dumps(report))
    if rank == 0:
        out.write_bytes(model)
        out.with_suffix(".json").write_text(json.dumps(metadata))
    if dist.is_initialized():
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> None:
    """Runs one rank: of a queue job (`--job`) or from folders (`--train/--test/--out`)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--job", help="the job's prefix in the models bucket (written by the claimer)")
    parser.add_argument("--train", type=Path)
    parser.add_argument("--test", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.job:
        run_job(args.job)
        return
    if not (args.train and args.test and args.out):
        parser.error("either --job PREFIX or all of --train, --test and --out")
    run_folders(args.train, args.test, args.out)


if __name__ == "__main__":
    main()
