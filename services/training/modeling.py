"""The bridge between the training pipeline and the model families: `fit` picks the family the use
case needs, trains it, and returns predictions and an ONNX export in the shape the pipeline expects.

Image-level labels train the classifier (models/classifier.py: softmax, or sigmoids when an image
carries several labels); bounding boxes train the detector (models/detector.py). Predictions for
the evaluation go through services/common/modelio.py, exactly as serving runs the exported graph,
so the evaluation a user reads is what DetectCustomLabels answers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from services.common import modelio
from services.training import evaluation
from services.training.models import classifier as cls
from services.training.models import export
from services.training.pipeline import FitResult

log = logging.getLogger("customlabels.training.model")

# Detection trains on a schedule planned from the dataset size; this caps it on slow machines
# (CUSTOMLABELS_TRAINING_DETECTION_BUDGET_S lowers it, e.g. for tests).
DETECTION_BUDGET_S = 14 * 60.0


# Classification spends its time on augmented views of each image (models/classifier.py); past two
# views each extra one buys less than a point of F1, so the default budget grows with the dataset
# (trashnet, 710 images: ~140 s) instead of filling the 72 h maximum with views.
CLASSIFICATION_SECONDS_PER_IMAGE = 0.2
CLASSIFICATION_MIN_BUDGET_S = 40.0


def classification_budget_s(images: int) -> float:
    """The classifier's time budget for a dataset size (CUSTOMLABELS_TRAINING_CLASSIFICATION_S_PER_IMAGE)."""
    per_image = float(
        os.environ.get("CUSTOMLABELS_TRAINING_CLASSIFICATION_S_PER_IMAGE") or CLASSIFICATION_SECONDS_PER_IMAGE
    )
    return max(CLASSIFICATION_MIN_BUDGET_S, per_image * images)


def fit_classifier(
    images: Sequence[bytes],
    targets: Sequence[set[str]],
    on_progress: Callable[[float], None],
    time_budget_s: float,
    config: cls.ClassifierConfig | None = None,
) -> FitResult:
    """Trains an image classifier; multi-label (independent sigmoids) when an image carries several labels."""
    return classifier_result(train_classifier_model(images, targets, on_progress, time_budget_s, config))


def train_classifier_model(
    images: Sequence[bytes],
    targets: Sequence[set[str]],
    on_progress: Callable[[float], None],
    time_budget_s: float,
    config: cls.ClassifierConfig | None = None,
) -> cls.TrainedModel:
    """The trained classifier itself (what a rank of a distributed training saves for its claimer)."""
    multi = any(len(t) > 1 for t in targets)
    model = cls.train_classifier(
        list(images),
        [set(t) for t in targets],
        multi,
        on_progress=lambda phase, fraction: on_progress(fraction),
        time_budget_s=min(time_budget_s, classification_budget_s(len(images))),
        config=config,
    )
    log.info("classifier trained", extra={"training": model.info})
    return model


def classifier_result(model: cls.TrainedModel) -> FitResult:
    """The pipeline's view of a trained classifier: also how a model trained by ranks comes back."""

    def predict(test: Sequence[bytes]) -> np.ndarray:
        return model.predict(list(test))

    def export_model(thresholds: dict[str, float]) -> tuple[bytes, dict[str, Any]]:
        model.thresholds = [float(thresholds.get(label, 0.5)) for label in model.labels]
        return export.export_onnx(model)

    return FitResult(labels=list(model.labels), predict=predict, export=export_model)


def detection_budget_s() -> float:
    """The cap on detection training: DETECTION_BUDGET_S, or CUSTOMLABELS_TRAINING_DETECTION_BUDGET_S."""
    return float(os.environ.get("CUSTOMLABELS_TRAINING_DETECTION_BUDGET_S") or DETECTION_BUDGET_S)


def fit_detector(
    images: Sequence[bytes],
    targets: Sequence[list[tuple[str, float, float, float, float]]],
    on_progress: Callable[[float], None],
    time_budget_s: float,
) -> FitResult:
    """Trains the object/logo detector on boxes (label, left, top, width, height ratios of the image)."""
    from services.training.models import detector

    decoded = [modelio.decode(data)[0] for data in images]
    trained = detector.train_detector(
        decoded, list(targets), on_progress, min(time_budget_s, detection_budget_s())
    )
    del decoded
    log.info("detector trained", extra={"training": {k: v for k, v in trained.info.items() if k != "config"}})
    spec = trained.spec()

    def predict(test: Sequence[bytes]) -> list[list[evaluation.PredictedBox]]:
        out: list[list[evaluation.PredictedBox]] = []
        for start in range(0, len(test), 8):
            prepared = [modelio.prepare(data, spec.input_size) for data in test[start : start + 8]]
            with torch.inference_mode():
                boxes, scores = trained.net(torch.from_numpy(np.stack([p for p, _ in prepared])))
            for i, (_, (width, height)) in enumerate(prepared):
                found = modelio.detections(spec, boxes[i].numpy(), scores[i].numpy(), width, height)
                out.append([evaluation.PredictedBox(*d) for d in found])
        return out

    def export_model(thresholds: dict[str, float]) -> tuple[bytes, dict[str, Any]]:
        return trained.export_onnx(), trained.metadata(thresholds)

    return FitResult(labels=list(trained.labels), predict=predict, export=export_model)


def fit(
    use_case: str,
    images: Sequence[bytes],
    targets: Sequence[Any],
    on_progress: Callable[[float], None],
    time_budget_s: float,
) -> FitResult:
    """Trains the model family of `use_case` on encoded images; what the training pipeline calls."""
    if use_case == evaluation.IMAGE_LEVEL_LABELS:
        return fit_classifier(images, targets, on_progress, time_budget_s)
    return fit_detector(images, targets, on_progress, time_budget_s)
