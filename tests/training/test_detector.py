"""services/training/models/detector.py on a tiny generated dataset: it learns, exports and agrees with ONNX.

Coloured shapes (three labels) are drawn with PIL on scikit-image photos and on noise, 1–3 per image, at
random places and sizes; a held-out set of the same kind is scored with the product's own evaluation
(spec/evaluation.md §2 matching). A model that ignores the images, predicts the wrong label or misplaces
its boxes cannot pass the mAP bar. Training runs once per module with a small budget (a few views per
image, no backbone fine-tuning) so the file stays well under a minute on 2 cores.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

import numpy as np
import onnxruntime as ort
import pytest
import skimage.data
import torch
from PIL import Image, ImageDraw

from services.common import modelio
from services.training import evaluation as ev
from services.training.models import detector
from services.training.models.runtime import training_device

LABELS = ("circle", "square", "triangle")
COLOURS = {"circle": (220, 40, 40), "square": (40, 90, 230), "triangle": (250, 210, 30)}
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")
FAST = detector.DetectorConfig(views=4, head_epochs=14, finetune_epochs=0)


def _background(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """A random crop of a scikit-image photo, or coloured noise (a third of the time)."""
    if rng.random() < 0.33:
        noise = rng.integers(0, 256, size=(h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
        return Image.fromarray(noise).resize((w, h), Image.Resampling.BILINEAR)
    photo = getattr(skimage.data, PHOTOS[int(rng.integers(len(PHOTOS)))])()
    ph, pw = photo.shape[:2]
    x, y = int(rng.integers(0, pw // 3)), int(rng.integers(0, ph // 3))
    return Image.fromarray(photo[y:, x:]).resize((w, h), Image.Resampling.BILINEAR)


def make_image(rng: np.random.Generator) -> tuple[Image.Image, list[tuple[str, float, float, float, float]]]:
    """One image (varied size and aspect) with 1–3 shapes; boxes as (label, left, top, width, height) ratios."""
    w, h = int(rng.integers(240, 400)), int(rng.integers(200, 340))
    image = _background(rng, w, h)
    draw = ImageDraw.Draw(image)
    boxes: list[tuple[str, float, float, float, float]] = []
    placed: list[tuple[float, float, float, float]] = []
    for _ in range(int(rng.integers(1, 4))):
        label = LABELS[int(rng.integers(len(LABELS)))]
        side = float(rng.uniform(0.16, 0.38)) * min(w, h)
        bw, bh = side * rng.uniform(0.8, 1.25), side * rng.uniform(0.8, 1.25)
        for _attempt in range(20):
            x0, y0 = float(rng.uniform(0, w - bw)), float(rng.uniform(0, h - bh))
            # No overlaps: every object stays fully visible, so the ground truth is unambiguous.
            if all(x0 > b[2] or x0 + bw < b[0] or y0 > b[3] or y0 + bh < b[1] for b in placed):
                break
        else:
            continue
        x1, y1 = x0 + bw, y0 + bh
        colour = tuple(int(np.clip(c + rng.integers(-30, 31), 0, 255)) for c in COLOURS[label])
        if label == "circle":
            draw.ellipse([x0, y0, x1, y1], fill=colour, outline=(0, 0, 0), width=2)
        elif label == "square":
            draw.rectangle([x0, y0, x1, y1], fill=colour, outline=(0, 0, 0), width=2)
        else:
            draw.polygon([(x0, y1), ((x0 + x1) / 2, y0), (x1, y1)], fill=colour, outline=(0, 0, 0))
        placed.append((x0, y0, x1, y1))
        boxes.append((label, x0 / w, y0 / h, bw / w, bh / h))
    return image, boxes


def dataset(
    n: int, seed: int
) -> tuple[list[Image.Image], list[list[tuple[str, float, float, float, float]]]]:
    rng = np.random.default_rng(seed)
    pairs = [make_image(rng) for _ in range(n)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def evaluate(model: detector.TrainedDetector, images: list[Image.Image], truth: list) -> ev.EvaluationResult:
    """The product's own detection evaluation (§2 greedy IoU ≥ 0.5 matching, mAP, best-threshold F1)."""
    predictions = model.predict(images)
    samples = [
        ev.DetectionSample(
            f"s3://test/{i}.jpg",
            [ev.Box(*t) for t in boxes],
            [ev.PredictedBox(*p) for p in preds],
        )
        for i, (boxes, preds) in enumerate(zip(truth, predictions, strict=True))
    ]
    return ev.evaluate_detection(samples, list(model.labels))


@pytest.fixture(scope="module")
def trained() -> tuple[detector.TrainedDetector, list[float], float]:
    images, boxes = dataset(30, seed=1)
    progress: list[float] = []
    start = time.monotonic()
    # A budget that never binds: the schedule is then fixed by the data, whatever the machine's load.
    model = detector.train_detector(images, boxes, progress.append, time_budget_s=900.0, seed=0, config=FAST)
    return model, progress, time.monotonic() - start


@pytest.fixture(scope="module")
def held_out() -> tuple[list[Image.Image], list]:
    return dataset(10, seed=2)


def test_finds_the_objects(trained, held_out) -> None:
    model, _, elapsed = trained
    assert model.labels == sorted(LABELS)
    result = evaluate(model, *held_out)
    # An untrained head, swapped labels or boxes off by half an object all score near 0.
    assert result.average_precision >= 0.6, (result.average_precision, model.info)
    assert result.f1_score >= 0.6, (result.f1_score, model.info)


def test_trains_where_the_runtime_says_and_hands_back_a_cpu_model(trained) -> None:
    model, _, _ = trained
    assert model.info["device"] == training_device()
    assert {p.device.type for p in model.net.parameters()} == {"cpu"}


def test_progress_is_monotone_and_frequent(trained) -> None:
    model, progress, _ = trained
    assert progress[-1] == 1.0
    assert all(0.0 <= a <= b <= 1.0 for a, b in zip(progress, progress[1:], strict=False))
    # Every backbone batch (8 views) and every optimiser step reports.
    assert model.info["head"]["steps"] == model.info["head"]["planned_steps"]
    assert len(progress) >= model.info["views_cached"] // 8 + model.info["head"]["steps"]


def test_predictions_are_ratios_with_confidences(trained, held_out) -> None:
    model, _, _ = trained
    images, _ = held_out
    predictions = model.predict(images)
    assert len(predictions) == len(images)
    assert any(predictions)
    for per_image in predictions:
        assert len(per_image) <= 100
        confidences = [p[1] for p in per_image]
        assert confidences == sorted(confidences, reverse=True)
        for label, confidence, left, top, width, height in per_image:
            assert label in LABELS
            assert 0.01 <= confidence <= 1.0
            assert 0.0 <= left <= 1.0 and 0.0 <= top <= 1.0
            assert width > 0.0 and height > 0.0
            assert left + width <= 1.0 + 1e-6 and top + height <= 1.0 + 1e-6


def test_onnx_agrees_with_pytorch(trained, held_out) -> None:
    model, _, _ = trained
    images, _ = held_out
    session = ort.InferenceSession(model.export_onnx(), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    s = model.input_size
    assert inp.name == "images" and inp.shape[1:] == [s, s, 3] and inp.type == "tensor(uint8)"
    assert [o.name for o in session.get_outputs()] == ["boxes", "scores"]
    torch_raw = model.raw_outputs(images)
    for image, (t_boxes, t_scores) in zip(images, torch_raw, strict=True):
        # What serving does: the documented resize, the graph, then the numpy postprocess.
        pixels = detector.prepare_image(image, s)[None]
        o_boxes, o_scores = session.run(None, {"images": pixels})
        np.testing.assert_allclose(o_scores, t_scores, atol=2e-4)
        np.testing.assert_allclose(o_boxes, t_boxes, atol=2e-4)
        served = model.postprocess((o_boxes, o_scores), image.width, image.height)
        local = model.predict([image])[0]
        assert any(p[1] >= 0.1 for p in local)
        # Every confident detection of one has its twin in the other (NMS may order near-ties apart).
        for ours, theirs in ((served, local), (local, served)):
            for p in (p for p in ours if p[1] >= 0.1):
                assert any(q[0] == p[0] and np.allclose(q[1:], p[1:], atol=1e-3) for q in theirs), (
                    p,
                    theirs[:5],
                )


def test_metadata_describes_the_graph(trained) -> None:
    model, _, _ = trained
    meta = json.loads(json.dumps(model.metadata({"apple": 0.4})))  # stored as JSON next to the graph
    spec = modelio.ModelSpec.from_json(meta)
    assert spec.model_type == "OBJECT_LOCALIZATION" and spec.detects
    assert spec.labels == sorted(LABELS)
    assert spec.input_size == model.input_size and spec.input_name == "images"
    assert spec.outputs == ("boxes", "scores") and spec.thresholds == {"apple": 0.4}
    assert meta["input"]["resize"]["mode"] == "stretch"
    assert meta["input"]["normalization"]["mean"] == [0.5, 0.5, 0.5]
    assert spec.score_threshold == 0.01 and spec.nms_iou == model.config.nms_iou


def test_batched_graph_equals_one_image_at_a_time(trained, held_out) -> None:
    model, _, _ = trained
    images, _ = held_out
    session = ort.InferenceSession(model.export_onnx(), providers=["CPUExecutionProvider"])
    batch = np.stack([detector.prepare_image(image, model.input_size) for image in images[:3]])
    boxes, scores = session.run(None, {"images": batch})
    for i in range(3):
        one_boxes, one_scores = session.run(None, {"images": batch[i : i + 1]})
        np.testing.assert_allclose(scores[i : i + 1], one_scores, atol=1e-5)
        np.testing.assert_allclose(boxes[i : i + 1], one_boxes, atol=1e-5)


def test_same_seed_same_model() -> None:
    images, boxes = dataset(6, seed=3)
    config = replace(FAST, views=2, head_epochs=2)
    runs = [
        detector.train_detector(images, boxes, lambda _: None, time_budget_s=60.0, seed=7, config=config)
        for _ in range(2)
    ]
    a, b = (r.net.head.state_dict() for r in runs)
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert runs[0].predict(images[:2]) == runs[1].predict(images[:2])


def test_fine_tuning_runs_when_it_fits_and_is_skipped_when_it_does_not() -> None:
    images, boxes = dataset(4, seed=5)
    config = replace(FAST, views=2, head_epochs=2, finetune_epochs=2)
    roomy = [
        detector.train_detector(images, boxes, lambda _: None, time_budget_s=900.0, seed=1, config=config)
        for _ in range(2)
    ]
    assert roomy[0].info["finetune"]["steps"] == roomy[0].info["finetune"]["planned_steps"] >= 1
    # Measuring step speeds to share the budget leaves a seeded run reproducible.
    a, b = (r.net.state_dict() for r in roomy)
    assert all(torch.equal(a[k], b[k]) for k in a)
    tight = detector.train_detector(images, boxes, lambda _: None, time_budget_s=0.01, seed=1, config=config)
    assert "finetune" not in tight.info and "finetune_skipped" in tight.info


def test_postprocess_is_classwise_nms() -> None:
    # Two overlapping boxes of label 0, one of label 1 at the same place, one far away of label 0.
    boxes = np.array(
        [[[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.5, 0.52], [0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]]]
    )
    scores = np.zeros((1, 4, 2), dtype=np.float32)
    scores[0, 0, 0], scores[0, 1, 0], scores[0, 2, 1], scores[0, 3, 0] = 0.9, 0.8, 0.7, 0.005
    out = detector.postprocess((boxes, scores), 100, 100, ["a", "b"], score_threshold=0.01)
    assert [(p[0], round(p[1], 2)) for p in out] == [("a", 0.9), ("b", 0.7)]
    left, top, width, height = out[0][2:]
    assert (round(left, 3), round(top, 3), round(width, 3), round(height, 3)) == (0.1, 0.1, 0.4, 0.4)


def test_rejects_data_without_boxes() -> None:
    images, _ = dataset(2, seed=4)
    with pytest.raises(ValueError):
        detector.train_detector(images, [[], []], lambda _: None, time_budget_s=10.0)
