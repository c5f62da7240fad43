"""Multi-process training with torch.distributed (gloo, 2 processes, torchrun) gives a valid model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from scripts import samples
from scripts.embedded import free_port
from services.common import modelio

ROOT = Path(__file__).resolve().parents[2]


def test_two_process_training_agrees_and_gives_a_valid_model(tmp_path):
    samples.write_folder(samples.classification(per_label=8, seed=61), tmp_path / "train")
    samples.write_folder(samples.classification(per_label=3, seed=62), tmp_path / "test")
    out = tmp_path / "model.onnx"
    # The variables torchrun sets for each process; launched directly so the test owns both PIDs.
    port = free_port()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "services.training.ddp",
                "--train",
                str(tmp_path / "train"),
                "--test",
                str(tmp_path / "test"),
                "--out",
                str(out),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / f"rank{rank}.log", "w"),  # noqa: SIM115
            env={
                **os.environ,
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "WORLD_SIZE": "2",
                "OMP_NUM_THREADS": "1",
            },
        )
        for rank in (0, 1)
    ]
    for rank, proc in enumerate(procs):
        assert proc.wait(timeout=600) == 0, (tmp_path / f"rank{rank}.log").read_text()[-3000:]
    reports = [json.loads(out.with_suffix(f".rank{r}.json").read_text()) for r in (0, 1)]
    assert {r["world"] for r in reports} == {2}
    # Both processes end with the same model: identical predictions on the test images.
    assert reports[0]["scores"] == reports[1]["scores"]
    assert len({tuple(row) for row in reports[0]["scores"]}) > 1  # not a constant output
    assert reports[0]["accuracy"] >= 0.8
    assert all(r["processes"] == 2 for r in reports)
    # The exported graph gives what the processes predicted (test images in sorted folder order).
    spec = modelio.ModelSpec.from_json(out.with_suffix(".json").read_text())
    session = ort.InferenceSession(out.read_bytes(), providers=["CPUExecutionProvider"])
    paths = sorted((tmp_path / "test").glob("*/*"))
    batch = np.stack([modelio.prepare(p.read_bytes(), spec.input_size)[0] for p in paths])
    scores = session.run(None, {spec.input_name: batch})[0]
    assert scores.shape == (len(paths), 3)
    np.testing.assert_allclose(scores, reports[0]["scores"], atol=1e-4)
