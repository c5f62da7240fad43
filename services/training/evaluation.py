"""Evaluation core of the training service: metrics, assumed thresholds and the result files.

Pure numpy + stdlib (no I/O, no torch, no gRPC): the training worker runs the model on the test set, hands
the predictions here and writes the returned texts to the object store. Everything follows
spec/evaluation.md (§n points there) and, for the validation files, spec/manifest.md §7; `†` marks a choice
the spec leaves open, documented where it is made.

Conventions used throughout
- Confidences are model scores 0–1. A label is *predicted* for an image (a box counts as positive) when its
  confidence is ≥ the label's assumed threshold: "≥" because the threshold is one of the observed confidences
  (§3), so ">" would exclude the very prediction that set it, and DetectCustomLabels filters with
  `confidence ≥ 100 × Threshold` too. A confidence of 0, or a label absent from an image's confidences,
  means "not predicted" at every threshold (every threshold is > 0).
- Boxes are (left, top, width, height) as ratios of the image's width and height (0–1), the form of
  DetectCustomLabels' BoundingBox and of the model's output. IoU does not change when x and y are scaled, so
  matching on ratios equals matching on pixels; the snapshot converts back to the manifest's pixels.
- Every metric is a finite float in 0–1. Where a formula is undefined (0/0: no predictions, no ground truth)
  the value is 0 (§4 †). Inputs holding NaN/inf or confidences outside 0–1 raise ValueError, so no NaN can
  reach a file or Postgres.
- Values are written unrounded: a rounded threshold could drop the prediction that defines it once the
  serving side compares `confidence ≥ threshold`.

† choices (the spec is silent or ambiguous)
- Aggregate Precision/Recall/F1Score (and mAP/mAR) are macro means over the labels that occur in the test
  set's ground truth. A label absent from the test set has no defined metrics (§3 reports 0 for it): it keeps
  its row (and a threshold, which serving needs) but does not pull the average down for data the user did not
  supply (manifest.md §5 lets up to half of the training labels be missing from the test set).
  With no such label at all the aggregates are 0.
- Thresholds: candidates are the label's distinct confidences > 0; a label that has ground truth but was
  never predicted gets 0.5 (the §3 default) with metrics 0.
- AveragePrecision per label = all-point interpolated area under the precision–recall curve (precision made
  monotone from the right, summed over recall steps; the VOC 2010+/COCO convention), with one curve point per
  distinct confidence so tied scores never depend on input order. AverageRecall per label = recall at the
  lowest candidate threshold (= the maximum over all thresholds).
- LabelEvaluationResults are ordered by F1 descending, ties in the order of `labels`.
- Ground-truth labels outside the evaluated `labels` (test-only labels the model cannot output) are ignored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import numpy as np

__all__ = [
    "DEFAULT_THRESHOLD",
    "IMAGE_LEVEL_LABELS",
    "IOU_THRESHOLD",
    "NOT_DETERMINED",
    "OBJECT_LOCALIZATION",
    "Box",
    "ClassificationSample",
    "ConfusionCell",
    "DatasetStatistics",
    "DetectionSample",
    "EvaluatedImage",
    "EvaluationResult",
    "GroundTruth",
    "ImageEvaluation",
    "LabelResult",
    "Outcome",
    "OutputKeys",
    "PredictedBox",
    "ValidatedLine",
    "dataset_statistics",
    "evaluate_classification",
    "evaluate_detection",
    "ground_truth_from_entry",
    "iou",
    "manifest_summary_json",
    "output_keys",
    "parse_testing_snapshot",
    "parse_testing_snapshot_line",
    "summary_file_name",
    "summary_json",
    "summary_metrics",
    "summary_thresholds",
    "testing_snapshot_text",
    "training_snapshot_text",
    "usable_labels",
    "validation_manifest_line",
    "validation_manifest_text",
]

# ---------------------------------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------------------------------

SUMMARY_VERSION = 1  # §6 `Version`
DETAILS_VERSION = 1  # §7 evaluation details `version`
DEFAULT_THRESHOLD = 0.5  # §3: the threshold of a label without positive ground truth
IOU_THRESHOLD = 0.5  # §2 †
# A box pair whose exact IoU is 0.5 can compute as 0.49999999999999994; that must still match.
_IOU_SLACK = 1e-9

IMAGE_LEVEL_LABELS = "IMAGE_LEVEL_LABELS"
OBJECT_LOCALIZATION = "OBJECT_LOCALIZATION"
NOT_DETERMINED = "NOT_DETERMINED"
UseCase = Literal["IMAGE_LEVEL_LABELS", "OBJECT_LOCALIZATION"]
OutcomeKind = Literal["TP", "FP", "FN", "TN"]

CLASSIFICATION_TYPE = "groundtruth/image-classification"
DETECTION_TYPE = "groundtruth/object-detection"
SOURCE_REF = "source-ref"
META_SUFFIX = "-metadata"
CL_PREFIX = "cl-"

# §7 attribute and job names of the evaluation manifest snapshot.
TRAINING_ATTRIBUTE = "rekognition-custom-labels-training"
TRAINING_JOB = "rekognition-custom-labels-training-job"
EVALUATION_ATTRIBUTE = "rekognition-custom-labels-evaluation"
EVALUATION_JOB = "rekognition-custom-labels-evaluation-job"
EVALUATION_DETAILS = "rekognition-custom-labels-evaluation-details"
_RESERVED_PREFIX = "rekognition-custom-labels-"

ERROR_INVALID_JSON_LINE = "ERROR_INVALID_JSON_LINE"
ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT = "ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT"
WARNING_NO_ATTRIBUTE_ANNOTATIONS = "WARNING_NO_ATTRIBUTE_ANNOTATIONS"
# manifest.md §7.5 texts, verbatim.
WARNING_MESSAGES: dict[str, str] = {
    "WARNING_UNANNOTATED_RECORD": "Record is unannotated.",
    "WARNING_NO_ANNOTATIONS": "No annotations were found.",
    WARNING_NO_ATTRIBUTE_ANNOTATIONS: "No attribute annotations were found.",
}

# Compact, key order kept, UTF-8 label names kept; allow_nan=False is the last guard against NaN output.
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


# ---------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------


def _finite(value: float, what: str) -> float:
    # bool is an int subclass: True must not pass as the number 1.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _confidence(value: float, what: str) -> float:
    value = _finite(value, what)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{what} must be within 0–1, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Box:
    """A ground-truth box: label and (left, top, width, height) as ratios of the image size."""

    label: str
    left: float
    top: float
    width: float
    height: float

    def __post_init__(self) -> None:
        for name in ("left", "top", "width", "height"):
            object.__setattr__(self, name, _finite(getattr(self, name), f"box {name}"))
        if self.width < 0 or self.height < 0:
            raise ValueError(f"box width and height must be ≥ 0, got {self.width}x{self.height}")


@dataclass(frozen=True, slots=True)
class PredictedBox:
    """A box the model predicted: label, confidence 0–1 and geometry as ratios (like `Box`)."""

    label: str
    confidence: float
    left: float
    top: float
    width: float
    height: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "confidence", _confidence(self.confidence, "box confidence"))
        for name in ("left", "top", "width", "height"):
            object.__setattr__(self, name, _finite(getattr(self, name), f"box {name}"))
        if self.width < 0 or self.height < 0:
            raise ValueError(f"box width and height must be ≥ 0, got {self.width}x{self.height}")

    @property
    def box(self) -> Box:
        """The geometry as a `Box`."""
        return Box(self.label, self.left, self.top, self.width, self.height)


@dataclass(frozen=True, slots=True)
class ClassificationSample:
    """One test image for single-label (softmax) or multi-label (sigmoid) classification.

    `confidences` maps label → model confidence 0–1; labels left out count as 0 (not predicted), so a
    top-k output can be passed as is. Both model kinds are evaluated the same way, per (image, label) pair
    (§1); a softmax simply makes several labels above their thresholds unlikely.
    """

    source_ref: str
    true_labels: frozenset[str]
    confidences: Mapping[str, float]

    def __post_init__(self) -> None:
        object.__setattr__(self, "true_labels", frozenset(self.true_labels))
        checked = {label: _confidence(c, f"confidence of {label!r}") for label, c in self.confidences.items()}
        object.__setattr__(self, "confidences", checked)


@dataclass(frozen=True, slots=True)
class DetectionSample:
    """One test image for object localization: its ground-truth boxes and the model's predicted boxes.

    An image without ground-truth boxes is allowed (a true negative when nothing is predicted on it).
    `image_size` (width, height in px) is only needed by the snapshot when the manifest line has no
    `image_size` of its own.
    """

    source_ref: str
    ground_truth: Sequence[Box]
    predictions: Sequence[PredictedBox]
    image_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "ground_truth", tuple(self.ground_truth))
        object.__setattr__(self, "predictions", tuple(self.predictions))


# ---------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LabelResult:
    """One label's row: §3 threshold, §4 metrics at it, and the counts behind them.

    Counts are images (classification) or boxes (detection). `average_precision` and `max_recall` are
    threshold-free (area under / end of the PR curve); the summary file carries them for detection only.
    """

    label: str
    number_of_testing_images: int  # test images whose ground truth holds the label
    threshold: float
    precision: float
    recall: float
    f1_score: float
    average_precision: float
    max_recall: float
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def in_test_set(self) -> bool:
        """Whether the label occurs in the test set's ground truth (only such labels enter the averages)."""
        return self.true_positives + self.false_negatives > 0


@dataclass(frozen=True, slots=True)
class ConfusionCell:
    """§5: the share of test images with ground truth `ground_truth_label` that were predicted as
    `predicted_label` (above its threshold)."""

    ground_truth_label: str
    predicted_label: str
    value: float


@dataclass(frozen=True, slots=True)
class Outcome:
    """One evaluation entry of an image (§1, §7): a label (classification) or a box (detection).

    `confidence` is the model's confidence (for a false negative its best one, 0 if none). `box` is the
    predicted geometry for TP/FP boxes and the missed ground-truth box for FN boxes; None for classification.
    """

    label: str
    kind: OutcomeKind
    confidence: float
    present_in_ground_truth: bool
    box: Box | None = None


@dataclass(frozen=True, slots=True)
class ImageEvaluation:
    """The per-image view (console filters, snapshot): outcomes and their counts at the assumed thresholds.

    Classification counts (image, label) pairs, `true_negatives` included. Detection counts boxes; as TN is
    not meaningful for boxes (§1), `true_negatives` is 1 for an image without ground-truth boxes on which
    nothing was predicted (an image-level true negative), else 0.
    """

    source_ref: str
    outcomes: tuple[Outcome, ...]
    true_positives: int
    false_positives: int
    false_negatives: int
    true_negatives: int
    image_size: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class EvaluationResult:
    """Everything one evaluation computed; `to_dict()` is what the service stores in Postgres.

    `label_results` follow the order of `labels`. `average_precision`/`average_recall` are computed for both
    use cases but only written to the summary file for detection (§4). `confusion_matrix` is empty for
    detection.
    """

    use_case: UseCase
    labels: tuple[str, ...]
    label_results: tuple[LabelResult, ...]
    precision: float
    recall: float
    f1_score: float  # EvaluationResult.F1Score of DescribeProjectVersions
    average_precision: float
    average_recall: float
    confusion_matrix: tuple[ConfusionCell, ...]
    images: tuple[ImageEvaluation, ...]

    @property
    def number_of_testing_images(self) -> int:
        """Images evaluated."""
        return len(self.images)

    @property
    def thresholds(self) -> dict[str, float]:
        """label → assumed threshold 0–1 (DetectCustomLabels filters with confidence ≥ 100 × threshold)."""
        return {r.label: r.threshold for r in self.label_results}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the metrics (no per-image data, no confusion matrix: those live in the files)."""
        return {
            "use_case": self.use_case,
            "f1_score": self.f1_score,
            "precision": self.precision,
            "recall": self.recall,
            "average_precision": self.average_precision,
            "average_recall": self.average_recall,
            "number_of_testing_images": self.number_of_testing_images,
            "labels": [
                {
                    "label": r.label,
                    "number_of_testing_images": r.number_of_testing_images,
                    "threshold": r.threshold,
                    "precision": r.precision,
                    "recall": r.recall,
                    "f1_score": r.f1_score,
                    "average_precision": r.average_precision,
                    "max_recall": r.max_recall,
                    "true_positives": r.true_positives,
                    "false_positives": r.false_positives,
                    "false_negatives": r.false_negatives,
                }
                for r in self.label_results
            ],
        }


# ---------------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------------


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, 0 when the denominator is 0 (§4 †)."""
    return float(numerator) / float(denominator) if denominator else 0.0


@dataclass(frozen=True, slots=True)
class _Curve:
    """A label's precision–recall sweep: one point per candidate threshold (distinct confidence > 0)."""

    thresholds: np.ndarray  # descending
    tp: np.ndarray  # positives ≥ threshold that are hits
    fp: np.ndarray  # positives ≥ threshold that are not
    positives: int  # ground-truth occurrences (images or boxes)

    def counts_at(self, threshold: float) -> tuple[int, int]:
        """(TP, FP) when predictions with confidence ≥ threshold are positive."""
        above = int(np.count_nonzero(self.thresholds >= threshold))
        if not above:
            return 0, 0
        return int(self.tp[above - 1]), int(self.fp[above - 1])


def _curve(scores: np.ndarray, hits: np.ndarray, positives: int) -> _Curve:
    """Builds the sweep from per-prediction scores and whether each one is correct (a hit)."""
    keep = scores > 0
    scores, hits = scores[keep], hits[keep].astype(np.int64)
    order = np.argsort(-scores, kind="stable")
    scores, hits = scores[order], hits[order]
    tp = np.cumsum(hits)
    fp = np.cumsum(1 - hits)
    # Only the last position of each run of equal scores is a reachable operating point: a threshold cannot
    # take some of the tied predictions and not the others.
    last = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True]) if scores.size else np.arange(0)
    return _Curve(scores[last], tp[last], fp[last], positives)


def _average_precision(curve: _Curve) -> float:
    """All-point interpolated AP (see the module docstring); 0 without ground truth or predictions."""
    if not curve.positives or not curve.thresholds.size:
        return 0.0
    precision = curve.tp / (curve.tp + curve.fp)  # tp + fp ≥ 1 at every point: each is an actual score
    recall = curve.tp / curve.positives
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.r_[0.0, recall])
    return float(np.sum(steps * envelope))


def _label_result(label: str, images_with_label: int, curve: _Curve) -> LabelResult:
    """§3 threshold selection and §4 metrics at that threshold for one label."""
    if not curve.positives or not curve.thresholds.size:
        # §3: no positive ground truth → 0.5 and metrics 0; † likewise for a label that was never predicted.
        tp, fp = curve.counts_at(DEFAULT_THRESHOLD)
        return LabelResult(
            label, images_with_label, DEFAULT_THRESHOLD, 0.0, 0.0, 0.0, 0.0, 0.0, tp, fp, curve.positives - tp
        )
    fn = curve.positives - curve.tp
    # F1 = 2TP / (2TP + FP + FN) equals 2PR / (P + R) and is 0 (not 0/0) when TP = 0. Equal rationals divide
    # to the same float, so exact ties are detected; argmax takes the first of them, and thresholds run
    # descending, so a tie goes to the higher threshold (§3).
    f1 = 2 * curve.tp / (2 * curve.tp + curve.fp + fn)
    best = int(np.argmax(f1))
    tp, fp = int(curve.tp[best]), int(curve.fp[best])
    return LabelResult(
        label=label,
        number_of_testing_images=images_with_label,
        threshold=float(curve.thresholds[best]),
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, curve.positives),
        f1_score=float(f1[best]),
        average_precision=_average_precision(curve),
        max_recall=_ratio(int(curve.tp[-1]), curve.positives),
        true_positives=tp,
        false_positives=fp,
        false_negatives=curve.positives - tp,
    )


def _macro(results: Sequence[LabelResult], attribute: str) -> float:
    """Unweighted mean over the labels present in the test set (module docstring †); 0 when there are none."""
    values = [getattr(r, attribute) for r in results if r.in_test_set]
    return float(sum(values) / len(values)) if values else 0.0


def _check_labels(labels: Sequence[str]) -> tuple[str, ...]:
    labels = tuple(labels)
    if not labels:
        raise ValueError("at least one label is needed")
    if len(set(labels)) != len(labels):
        raise ValueError("labels must be distinct")
    if not all(isinstance(label, str) and label for label in labels):
        raise ValueError("labels must be non-empty strings")
    return labels


def _check_unique_refs(refs: Iterable[str]) -> None:
    seen: set[str] = set()
    for ref in refs:
        if ref in seen:
            # The snapshot and the console address images by source-ref (unique per dataset, manifest.md §1).
            raise ValueError(f"source-ref {ref!r} appears twice in the test set")
        seen.add(ref)


# ---------------------------------------------------------------------------------------------------
# Classification
# ---------------------------------------------------------------------------------------------------


def evaluate_classification(
    samples: Sequence[ClassificationSample], labels: Sequence[str]
) -> EvaluationResult:
    """Evaluates single- or multi-label classification on the test set (§1, §3–§5).

    `labels` are the model's labels (EvaluationDetails.Labels, in that order). A confidence for a label outside
    `labels` is a caller error (ValueError); ground-truth labels outside it are ignored.
    Per image the outcomes list every label that is predicted (TP/FP) or in the ground truth (TP/FN), plus —
    when the model's most confident label is neither — that label as a TN, so every image shows what the
    model thought most likely († the spec does not say which TNs the files carry).
    """
    labels = _check_labels(labels)
    _check_unique_refs(s.source_ref for s in samples)
    index = {label: j for j, label in enumerate(labels)}
    n, count = len(samples), len(labels)
    scores = np.zeros((n, count), dtype=np.float64)
    truth = np.zeros((n, count), dtype=bool)
    for i, sample in enumerate(samples):
        for label, confidence in sample.confidences.items():
            j = index.get(label)
            if j is None:
                raise ValueError(f"{sample.source_ref}: confidence for unknown label {label!r}")
            scores[i, j] = confidence
        for label in sample.true_labels:
            j = index.get(label)
            if j is not None:
                truth[i, j] = True

    images_per_label = truth.sum(axis=0)
    results = tuple(
        _label_result(
            label, int(images_per_label[j]), _curve(scores[:, j], truth[:, j], int(images_per_label[j]))
        )
        for j, label in enumerate(labels)
    )
    thresholds = np.array([r.threshold for r in results])
    # Every threshold is > 0, so a confidence of 0 is never predicted.
    predicted = scores >= thresholds

    # §5 †: count(GT a ∧ predicted b) / count(GT a), all a × b pairs, rows of absent labels all 0.
    both = truth.T.astype(np.int64) @ predicted.astype(np.int64)
    rows = images_per_label.astype(np.float64)[:, None]
    values = np.divide(both, rows, out=np.zeros_like(both, dtype=np.float64), where=rows > 0)
    matrix = tuple(
        ConfusionCell(a, b, float(values[i, j])) for i, a in enumerate(labels) for j, b in enumerate(labels)
    )

    tp = truth & predicted
    fp = ~truth & predicted
    fn = truth & ~predicted
    tn_counts = count - (truth | predicted).sum(axis=1)
    images = []
    for i, sample in enumerate(samples):
        shown = np.flatnonzero(truth[i] | predicted[i]).tolist()
        top = int(np.argmax(scores[i]))
        if scores[i, top] > 0 and top not in shown:
            shown.append(top)
        outcomes = []
        for j in shown:
            kind: OutcomeKind = "TP" if tp[i, j] else "FP" if fp[i, j] else "FN" if fn[i, j] else "TN"
            outcomes.append(Outcome(labels[j], kind, float(scores[i, j]), bool(truth[i, j])))
        # Most confident first; the stable sort keeps label order among equal confidences.
        outcomes.sort(key=lambda o: -o.confidence)
        images.append(
            ImageEvaluation(
                sample.source_ref,
                tuple(outcomes),
                int(tp[i].sum()),
                int(fp[i].sum()),
                int(fn[i].sum()),
                int(tn_counts[i]),
            )
        )
    return EvaluationResult(
        use_case=IMAGE_LEVEL_LABELS,
        labels=labels,
        label_results=results,
        precision=_macro(results, "precision"),
        recall=_macro(results, "recall"),
        f1_score=_macro(results, "f1_score"),
        average_precision=_macro(results, "average_precision"),
        average_recall=_macro(results, "max_recall"),
        confusion_matrix=matrix,
        images=tuple(images),
    )


# ---------------------------------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------------------------------


def iou(a: Box | PredictedBox, b: Box | PredictedBox) -> float:
    """Intersection over union of two boxes (0 when the union is empty)."""
    return float(_iou_matrix([a], [b])[0, 0])


def _iou_matrix(a: Sequence[Box | PredictedBox], b: Sequence[Box | PredictedBox]) -> np.ndarray:
    """IoU of every box of `a` with every box of `b` (len(a) × len(b))."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    first = np.array([(x.left, x.top, x.left + x.width, x.top + x.height) for x in a])[:, None, :]
    second = np.array([(x.left, x.top, x.left + x.width, x.top + x.height) for x in b])[None, :, :]
    width = np.clip(
        np.minimum(first[..., 2], second[..., 2]) - np.maximum(first[..., 0], second[..., 0]), 0, None
    )
    height = np.clip(
        np.minimum(first[..., 3], second[..., 3]) - np.maximum(first[..., 1], second[..., 1]), 0, None
    )
    inter = width * height
    area_a = (first[..., 2] - first[..., 0]) * (first[..., 3] - first[..., 1])
    area_b = (second[..., 2] - second[..., 0]) * (second[..., 3] - second[..., 1])
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


@dataclass(slots=True)
class _Matched:
    """§2 matching of one image: for each prediction the ground-truth index it claimed (or -1)."""

    sample: DetectionSample
    truth: list[Box]  # ground-truth boxes of known labels
    claimed: list[int]  # per prediction (sample order): index into `truth`, -1 when unmatched
    claimed_by: dict[int, int]  # truth index → prediction index


def _match(sample: DetectionSample, known: Mapping[str, int]) -> _Matched:
    """§2: per label, predictions by confidence descending (stable), each to the unmatched ground-truth box of
    the same label with the highest IoU, accepted at IoU ≥ 0.5. Greedy in confidence order means the matching
    at any threshold is a prefix of this one, so it is computed once for every threshold."""
    for p in sample.predictions:
        if p.label not in known:
            raise ValueError(f"{sample.source_ref}: prediction for unknown label {p.label!r}")
    truth = [b for b in sample.ground_truth if b.label in known]
    claimed = [-1] * len(sample.predictions)
    claimed_by: dict[int, int] = {}
    for label in {p.label for p in sample.predictions}:
        preds = sorted(
            (i for i, p in enumerate(sample.predictions) if p.label == label),
            key=lambda i: -sample.predictions[i].confidence,
        )
        gts = [g for g, b in enumerate(truth) if b.label == label]
        if not gts:
            continue
        overlap = _iou_matrix([sample.predictions[i] for i in preds], [truth[g] for g in gts])
        free = np.ones(len(gts), dtype=bool)
        for row, i in enumerate(preds):
            candidates = np.where(free, overlap[row], -1.0)
            col = int(np.argmax(candidates))  # the first of equal IoUs: ground-truth order decides
            if candidates[col] >= IOU_THRESHOLD - _IOU_SLACK:
                free[col] = False
                claimed[i] = gts[col]
                claimed_by[gts[col]] = i
    return _Matched(sample, truth, claimed, claimed_by)


def evaluate_detection(samples: Sequence[DetectionSample], labels: Sequence[str]) -> EvaluationResult:
    """Evaluates object localization on the test set (§1–§4), with mAP@0.5 and mAR@0.5 beyond AWS.

    Outcomes are per box: a prediction ≥ its label's threshold is TP when matched, else FP (duplicates and
    wrong-label overlaps included); a ground-truth box without a match above threshold is FN, shown with the
    missed box's geometry and the confidence of the below-threshold prediction that matched it (0 if none,
    §7 †). Predictions below threshold that matched nothing are not outcomes.
    """
    labels = _check_labels(labels)
    _check_unique_refs(s.source_ref for s in samples)
    index = {label: j for j, label in enumerate(labels)}
    matched = [_match(sample, index) for sample in samples]

    scores: list[list[float]] = [[] for _ in labels]
    hits: list[list[bool]] = [[] for _ in labels]
    boxes = np.zeros(len(labels), dtype=np.int64)
    images_per_label = np.zeros(len(labels), dtype=np.int64)
    for m in matched:
        for i, p in enumerate(m.sample.predictions):
            scores[index[p.label]].append(p.confidence)
            hits[index[p.label]].append(m.claimed[i] >= 0)
        for b in m.truth:
            boxes[index[b.label]] += 1
        for label in {b.label for b in m.truth}:
            images_per_label[index[label]] += 1
    results = tuple(
        _label_result(
            label,
            int(images_per_label[j]),
            _curve(np.array(scores[j], dtype=np.float64), np.array(hits[j], dtype=bool), int(boxes[j])),
        )
        for j, label in enumerate(labels)
    )
    thresholds = {r.label: r.threshold for r in results}

    images = []
    for m in matched:
        present = {b.label for b in m.truth}
        outcomes: list[Outcome] = []
        for i, p in enumerate(m.sample.predictions):
            if p.confidence >= thresholds[p.label]:
                kind: OutcomeKind = "TP" if m.claimed[i] >= 0 else "FP"
                outcomes.append(Outcome(p.label, kind, p.confidence, p.label in present, p.box))
        for g, b in enumerate(m.truth):
            i = m.claimed_by.get(g)
            if i is None or m.sample.predictions[i].confidence < thresholds[b.label]:
                best = m.sample.predictions[i].confidence if i is not None else 0.0
                outcomes.append(Outcome(b.label, "FN", best, True, b))
        outcomes.sort(key=lambda o: -o.confidence)
        counts = {kind: sum(o.kind == kind for o in outcomes) for kind in ("TP", "FP", "FN")}
        images.append(
            ImageEvaluation(
                m.sample.source_ref,
                tuple(outcomes),
                counts["TP"],
                counts["FP"],
                counts["FN"],
                int(not m.truth and not outcomes),
                m.sample.image_size,
            )
        )
    return EvaluationResult(
        use_case=OBJECT_LOCALIZATION,
        labels=labels,
        label_results=results,
        precision=_macro(results, "precision"),
        recall=_macro(results, "recall"),
        f1_score=_macro(results, "f1_score"),
        average_precision=_macro(results, "average_precision"),
        average_recall=_macro(results, "max_recall"),
        confusion_matrix=(),
        images=tuple(images),
    )


# ---------------------------------------------------------------------------------------------------
# Summary file (§6)
# ---------------------------------------------------------------------------------------------------


def _timestamp(moment: datetime) -> str:
    """ISO-8601 without zone, with microseconds (§6); an aware time is converted to UTC first."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds")


def summary_file_name(project_name: str, version_name: str) -> str:
    """`EvaluationSummary-<ProjectName>-<VersionName>.json` (§6, the reference's form)."""
    return f"EvaluationSummary-{project_name}-{version_name}.json"


def summary_json(
    result: EvaluationResult,
    *,
    project_version_arn: str,
    evaluation_end: datetime,
    number_of_training_images: int,
) -> str:
    """The training-results summary file (§6), nested `AggregatedEvaluationResults.Metrics` form.

    Classification carries the ConfusionMatrix, detection AveragePrecision/AverageRecall. Every label of
    `result.labels` has a row, ordered by F1 descending (ties in label order).
    """
    metrics: dict[str, Any] = {
        "Precision": result.precision,
        "Recall": result.recall,
        "F1Score": result.f1_score,
    }
    if result.use_case == OBJECT_LOCALIZATION:
        metrics["AveragePrecision"] = result.average_precision
        metrics["AverageRecall"] = result.average_recall
    else:
        metrics["ConfusionMatrix"] = [
            {"GroundTruthLabel": c.ground_truth_label, "PredictedLabel": c.predicted_label, "Value": c.value}
            for c in result.confusion_matrix
        ]
    rows = sorted(result.label_results, key=lambda r: -r.f1_score)  # stable: ties keep label order
    document = {
        "Version": SUMMARY_VERSION,
        "EvaluationDetails": {
            "ProjectVersionArn": project_version_arn,
            "EvaluationEndTimestamp": _timestamp(evaluation_end),
            "Labels": list(result.labels),
            "NumberOfTrainingImages": int(number_of_training_images),
            "NumberOfTestingImages": result.number_of_testing_images,
        },
        "AggregatedEvaluationResults": {"Metrics": metrics},
        "LabelEvaluationResults": [
            {
                "Label": r.label,
                "NumberOfTestingImages": r.number_of_testing_images,
                "Metrics": {
                    "Threshold": r.threshold,
                    "Precision": r.precision,
                    "Recall": r.recall,
                    "F1Score": r.f1_score,
                },
            }
            for r in rows
        ],
    }
    return _dumps(document)


def summary_metrics(document: Mapping[str, Any]) -> Mapping[str, Any]:
    """The aggregate metrics of a summary file in either form (§6: readers accept the reference's nested
    `AggregatedEvaluationResults.Metrics` and the guide's sample with the keys directly under it)."""
    aggregated = document.get("AggregatedEvaluationResults") or {}
    nested = aggregated.get("Metrics")
    return nested if isinstance(nested, Mapping) else aggregated


def summary_thresholds(document: Mapping[str, Any]) -> dict[str, float]:
    """label → assumed threshold from a summary file (what DetectCustomLabels applies without MinConfidence)."""
    return {
        row["Label"]: float(row["Metrics"]["Threshold"])
        for row in document.get("LabelEvaluationResults") or []
        if "Threshold" in (row.get("Metrics") or {})
    }


# ---------------------------------------------------------------------------------------------------
# Ground truth of a stored entry, evaluation manifest snapshots (§7)
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """What a manifest entry says about its image for one use case (only attributes and boxes that passed
    validation, i.e. without `cl-errors`)."""

    labels: frozenset[str]  # image-level labels, or the labels that have ≥ 1 box
    boxes: tuple[Box, ...]  # detection: ratios of the declared image size
    image_size: tuple[int, int] | None  # declared (width, height) of the first box attribute


@dataclass(frozen=True, slots=True)
class _Attribute:
    """A usable ground-truth attribute pair of an entry; for boxes, the indices of its usable boxes."""

    name: str
    body: Any
    meta: Mapping[str, Any]
    boxes: tuple[int, ...]


def _declared_size(body: Any) -> tuple[int, int, int] | None:
    """(width, height, depth) of a box attribute; `image_size` may be a one-element list or an object."""
    size = body.get("image_size") if isinstance(body, Mapping) else None
    if isinstance(size, list) and len(size) == 1:
        size = size[0]
    if not isinstance(size, Mapping):
        return None
    width, height, depth = size.get("width"), size.get("height"), size.get("depth", 3)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (width, height)):
        return None
    return width, height, depth if isinstance(depth, int) and not isinstance(depth, bool) else 3


def _attributes(entry: Mapping[str, Any], use_case: UseCase) -> list[_Attribute]:
    """The entry's ground-truth attributes of `use_case` that validation kept (manifest.md §8: the dataset
    service marks dropped attributes and boxes with `cl-errors`)."""
    wanted = CLASSIFICATION_TYPE if use_case == IMAGE_LEVEL_LABELS else DETECTION_TYPE
    found = []
    for name, body in entry.items():
        meta = entry.get(name + META_SUFFIX)
        if name == SOURCE_REF or name.startswith(CL_PREFIX) or not isinstance(meta, Mapping):
            continue
        if meta.get("type") != wanted or meta.get("cl-errors"):
            continue
        if use_case == IMAGE_LEVEL_LABELS:
            if isinstance(meta.get("class-name"), str):
                found.append(_Attribute(name, body, meta, ()))
            continue
        annotations = body.get("annotations") if isinstance(body, Mapping) else None
        class_map = meta.get("class-map")
        if not isinstance(annotations, list) or not isinstance(class_map, Mapping):
            continue
        keep = tuple(
            i
            for i, box in enumerate(annotations)
            if isinstance(box, Mapping) and not box.get("cl-errors") and str(box.get("class_id")) in class_map
        )
        found.append(_Attribute(name, body, meta, keep))
    return found


def ground_truth_from_entry(entry: Mapping[str, Any], use_case: UseCase) -> GroundTruth:
    """The ground truth of a stored dataset entry for building `ClassificationSample`/`DetectionSample`.

    Boxes are converted from pixels to ratios of the attribute's declared `image_size` (the frame the
    annotations are written in); a box attribute without a usable size is skipped.
    """
    labels: set[str] = set()
    boxes: list[Box] = []
    image_size: tuple[int, int] | None = None
    for attribute in _attributes(entry, use_case):
        if use_case == IMAGE_LEVEL_LABELS:
            labels.add(attribute.meta["class-name"])
            continue
        size = _declared_size(attribute.body)
        if size is None:
            continue
        width, height, _ = size
        image_size = image_size or (width, height)
        class_map = attribute.meta["class-map"]
        for i in attribute.boxes:
            box = attribute.body["annotations"][i]
            label = class_map[str(box["class_id"])]
            labels.add(label)
            boxes.append(
                Box(
                    label,
                    box["left"] / width,
                    box["top"] / height,
                    box["width"] / width,
                    box["height"] / height,
                )
            )
    return GroundTruth(frozenset(labels), tuple(boxes), image_size)


def _strip_cl(value: Mapping[str, Any]) -> dict[str, Any]:
    """A copy without the dataset service's `cl-*` keys (they are not part of any output file)."""
    return {k: v for k, v in value.items() if not k.startswith(CL_PREFIX)}


def _snapshot_ground_truth(entry: Mapping[str, Any], use_case: UseCase) -> tuple[dict[str, Any], list[str]]:
    """The ground-truth part of a snapshot line (§7) and its labelling jobs.

    Attributes are renamed `rekognition-custom-labels-training-<n>` in line order, with job-name
    `rekognition-custom-labels-training-job`; attributes and boxes that validation dropped, attributes of the
    other use case and `cl-*` keys are left out; other keys stay as they are, except keys using the reserved
    `rekognition-custom-labels-` prefix, which would collide with the ones written here.
    """
    if not isinstance(entry.get(SOURCE_REF), str):
        raise ValueError("a snapshot entry needs its source-ref")
    used = {a.name: a for a in _attributes(entry, use_case)}
    pairs = {name for name in entry if name != SOURCE_REF and name + META_SUFFIX in entry}
    metas = {name + META_SUFFIX for name in pairs}
    line: dict[str, Any] = {}
    jobs: list[str] = []
    number = 0
    for key, value in entry.items():
        if key == SOURCE_REF:
            line[key] = value
        elif key in used:
            attribute = used[key]
            meta = _strip_cl(attribute.meta)
            body: Any = attribute.body
            if use_case == OBJECT_LOCALIZATION:
                body = _strip_cl(body)
                body["annotations"] = [_strip_cl(attribute.body["annotations"][i]) for i in attribute.boxes]
                objects = meta.get("objects")
                if isinstance(objects, list):
                    meta["objects"] = [objects[i] for i in attribute.boxes if i < len(objects)]
            meta["job-name"] = TRAINING_JOB
            name = f"{TRAINING_ATTRIBUTE}-{number}"
            number += 1
            line[name] = body
            line[name + META_SUFFIX] = meta
            jobs.append(TRAINING_JOB)
        elif key in pairs or key in metas or key.startswith((CL_PREFIX, _RESERVED_PREFIX)):
            continue  # an unused attribute pair, service keys, reserved names
        else:
            line[key] = value
    return line, list(dict.fromkeys(jobs))


def training_snapshot_text(entries: Iterable[Mapping[str, Any]], use_case: UseCase) -> str:
    """The training snapshot (`TrainingDataResult.Output`): the ground-truth lines used for training, renamed
    as in §7, one JSON line each (no predictions: the model is not evaluated on its training images)."""
    return "".join(_dumps(_snapshot_ground_truth(entry, use_case)[0]) + "\n" for entry in entries)


def _details(outcome: Outcome, jobs: list[str]) -> dict[str, Any]:
    """§7 `rekognition-custom-labels-evaluation-details` (exactly one of the four outcome flags is true)."""
    return {
        "version": DETAILS_VERSION,
        "ground-truth-labelling-jobs": list(jobs),
        "is-true-positive": outcome.kind == "TP",
        "is-true-negative": outcome.kind == "TN",
        "is-false-positive": outcome.kind == "FP",
        "is-false-negative": outcome.kind == "FN",
        "is-present-in-ground-truth": outcome.present_in_ground_truth,
    }


def _pixels(box: Box, width: int, height: int) -> dict[str, int]:
    """Ratios → integer pixels of the line's frame (manifest.md §3 writes integer boxes)."""
    return {
        "left": round(box.left * width),
        "top": round(box.top * height),
        "width": round(box.width * width),
        "height": round(box.height * height),
    }


def testing_snapshot_text(
    result: EvaluationResult, entries: Mapping[str, Mapping[str, Any]], evaluated_at: datetime
) -> str:
    """The evaluation manifest snapshot of the test set (`TestingDataResult.Output`, §7), one line per image of
    `result` in its order; `entries` maps source-ref → the stored test entry (a superset is fine).

    Classification: one `rekognition-custom-labels-evaluation-<n>` pair per outcome of the image (value = the
    label's index in `result.labels` †), most confident first. Detection: one `rekognition-custom-labels-
    evaluation` attribute holding every outcome box (class ids = label indices, pixels of the line's declared
    `image_size`, or the sample's `image_size`), metadata `confidence` = the highest box confidence (0 without
    boxes). An image without outcomes gets an attribute with no annotations.
    """
    created = _timestamp(evaluated_at)
    index = {label: j for j, label in enumerate(result.labels)}
    lines = []
    for image in result.images:
        entry = entries.get(image.source_ref)
        if entry is None:
            raise ValueError(f"no manifest entry for evaluated image {image.source_ref!r}")
        line, jobs = _snapshot_ground_truth(entry, result.use_case)
        if result.use_case == IMAGE_LEVEL_LABELS:
            for n, outcome in enumerate(image.outcomes):
                name = f"{EVALUATION_ATTRIBUTE}-{n}"
                line[name] = index[outcome.label]
                line[name + META_SUFFIX] = {
                    "confidence": outcome.confidence,
                    "job-name": EVALUATION_JOB,
                    "class-name": outcome.label,
                    "human-annotated": "no",
                    "creation-date": created,
                    "type": CLASSIFICATION_TYPE,
                    EVALUATION_DETAILS: _details(outcome, jobs),
                }
        else:
            line.update(_detection_attribute(image, entry, index, jobs, created))
        lines.append(_dumps(line) + "\n")
    return "".join(lines)


def _detection_attribute(
    image: ImageEvaluation, entry: Mapping[str, Any], index: Mapping[str, int], jobs: list[str], created: str
) -> dict[str, Any]:
    """The detection evaluation attribute pair of one snapshot line (§7 example, key order kept)."""
    size = None
    for attribute in _attributes(entry, OBJECT_LOCALIZATION):
        size = _declared_size(attribute.body)
        if size is not None:
            break
    if size is None and image.image_size is not None:
        size = (*image.image_size, 3)
    if size is None and image.outcomes:
        raise ValueError(f"{image.source_ref}: no image size to write boxes in pixels")
    width, height, depth = size or (0, 0, 3)
    annotations = []
    objects = []
    class_map: dict[str, str] = {}
    for outcome in image.outcomes:
        assert outcome.box is not None  # detection outcomes always carry a box
        class_id = index[outcome.label]
        class_map[str(class_id)] = outcome.label
        annotations.append({"class_id": class_id, **_pixels(outcome.box, width, height)})
        objects.append({"confidence": outcome.confidence, EVALUATION_DETAILS: _details(outcome, jobs)})
    body: dict[str, Any] = {"annotations": annotations}
    if size is not None:
        body["image_size"] = [{"width": width, "height": height, "depth": depth}]
    meta = {
        "confidence": max((o.confidence for o in image.outcomes), default=0.0),
        "job-name": EVALUATION_JOB,
        "class-map": dict(sorted(class_map.items(), key=lambda item: int(item[0]))),
        "human-annotated": "no",
        "objects": objects,
        "creation-date": created,
        "type": DETECTION_TYPE,
    }
    return {EVALUATION_ATTRIBUTE: body, EVALUATION_ATTRIBUTE + META_SUFFIX: meta}


@dataclass(frozen=True, slots=True)
class EvaluatedImage:
    """One line of an evaluation manifest snapshot read back (`parse_testing_snapshot`).

    `ground_truth` is what the line's `rekognition-custom-labels-training-<n>` attributes say (boxes as
    ratios of their declared size); `outcomes` are its evaluation records in the order of the file, boxes
    as ratios of the evaluation attribute's `image_size` (the integer pixels the file holds, so within
    half a pixel of what was evaluated).
    """

    source_ref: str
    use_case: UseCase
    ground_truth: GroundTruth
    outcomes: tuple[Outcome, ...]

    @property
    def labels(self) -> frozenset[str]:
        """Every label of the image: in the ground truth or in an evaluation record."""
        return self.ground_truth.labels | {o.label for o in self.outcomes}


_KINDS: tuple[tuple[str, OutcomeKind], ...] = (
    ("is-true-positive", "TP"),
    ("is-false-positive", "FP"),
    ("is-false-negative", "FN"),
    ("is-true-negative", "TN"),
)


def _kind(details: Any) -> OutcomeKind:
    """The one outcome flag that is true in a `rekognition-custom-labels-evaluation-details` object."""
    if not isinstance(details, Mapping):
        raise ValueError(f"{EVALUATION_DETAILS} is missing")
    kinds = [kind for key, kind in _KINDS if details.get(key) is True]
    if len(kinds) != 1:
        raise ValueError(f"{EVALUATION_DETAILS} must have exactly one outcome flag set")
    return kinds[0]


def _attribute_number(name: str, prefix: str) -> int | None:
    """n of `<prefix>-<n>`, None for any other name."""
    head, _, number = name.rpartition("-")
    return int(number) if head == prefix and number.isdigit() else None


def _classification_outcomes(line: Mapping[str, Any]) -> list[Outcome]:
    numbered = sorted(
        (n, name) for name in line if (n := _attribute_number(name, EVALUATION_ATTRIBUTE)) is not None
    )
    outcomes = []
    for _, name in numbered:
        meta = line.get(name + META_SUFFIX)
        if not isinstance(meta, Mapping) or not isinstance(meta.get("class-name"), str):
            raise ValueError(f"{name} has no metadata with a class-name")
        details = meta.get(EVALUATION_DETAILS)
        outcomes.append(
            Outcome(
                meta["class-name"],
                _kind(details),
                _confidence(meta.get("confidence"), f"{name} confidence"),
                details.get("is-present-in-ground-truth") is True,
            )
        )
    return outcomes


def _detection_outcomes(line: Mapping[str, Any]) -> list[Outcome]:
    body, meta = line.get(EVALUATION_ATTRIBUTE), line.get(EVALUATION_ATTRIBUTE + META_SUFFIX)
    if not isinstance(body, Mapping) or not isinstance(meta, Mapping):
        raise ValueError(f"{EVALUATION_ATTRIBUTE} needs its body and metadata")
    annotations, objects = body.get("annotations") or [], meta.get("objects") or []
    class_map = meta.get("class-map") or {}
    if not isinstance(annotations, list) or not isinstance(objects, list) or len(annotations) != len(objects):
        raise ValueError(f"{EVALUATION_ATTRIBUTE} needs one metadata object per annotation")
    size = _declared_size(body)
    if annotations and size is None:
        raise ValueError(f"{EVALUATION_ATTRIBUTE} has boxes but no image_size")
    width, height, _ = size or (1, 1, 3)
    outcomes = []
    for box, obj in zip(annotations, objects, strict=True):
        if not isinstance(box, Mapping) or not isinstance(obj, Mapping):
            raise ValueError(f"{EVALUATION_ATTRIBUTE} holds a box that is not an object")
        label = class_map.get(str(box.get("class_id")))
        if not isinstance(label, str):
            raise ValueError(f"{EVALUATION_ATTRIBUTE} holds a class_id without a class-map name")
        details = obj.get(EVALUATION_DETAILS)
        geometry = Box(
            label,
            _finite(box.get("left"), "box left") / width,
            _finite(box.get("top"), "box top") / height,
            _finite(box.get("width"), "box width") / width,
            _finite(box.get("height"), "box height") / height,
        )
        outcomes.append(
            Outcome(
                label,
                _kind(details),
                _confidence(obj.get("confidence"), "box confidence"),
                details.get("is-present-in-ground-truth") is True,
                geometry,
            )
        )
    return outcomes


def parse_testing_snapshot_line(text: str) -> EvaluatedImage:
    """One line of `testing_snapshot_text` read back; ValueError when it is not such a line.

    The use case is detection when the line has the single `rekognition-custom-labels-evaluation` attribute,
    else classification; ground truth is read from the renamed training attributes only.
    """
    line = json.loads(text)
    if not isinstance(line, dict) or not isinstance(line.get(SOURCE_REF), str):
        raise ValueError("a snapshot line must be a JSON object with a source-ref")
    use_case: UseCase = OBJECT_LOCALIZATION if EVALUATION_ATTRIBUTE in line else IMAGE_LEVEL_LABELS
    training: dict[str, Any] = {SOURCE_REF: line[SOURCE_REF]}
    for name, value in line.items():
        if _attribute_number(name, TRAINING_ATTRIBUTE) is not None:
            training[name] = value
            training[name + META_SUFFIX] = line.get(name + META_SUFFIX)
    outcomes = (
        _detection_outcomes(line) if use_case == OBJECT_LOCALIZATION else _classification_outcomes(line)
    )
    return EvaluatedImage(
        line[SOURCE_REF], use_case, ground_truth_from_entry(training, use_case), tuple(outcomes)
    )


def parse_testing_snapshot(text: str) -> list[EvaluatedImage]:
    """The inverse of `testing_snapshot_text`: every image in the order of the file; ValueError naming the
    (1-based) line that is not an evaluation manifest line."""
    images = []
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            images.append(parse_testing_snapshot_line(raw))
        except (ValueError, TypeError, KeyError, AttributeError, ZeroDivisionError) as exc:
            raise ValueError(f"line {number}: {exc}") from None
    return images


# ---------------------------------------------------------------------------------------------------
# Validation results (§8): validation manifests and manifest_summary.json
# ---------------------------------------------------------------------------------------------------


class ValidatedLine(Protocol):
    """What the validation files need to know about one manifest line; the dataset service's
    `services.dataset.manifest.ParsedLine` has exactly these attributes."""

    @property
    def entry(self) -> dict[str, Any] | None: ...  # the checked line with `cl-errors`, None when dropped

    @property
    def dropped(self) -> str | None: ...  # the code when the line was dropped

    @property
    def message(self) -> str | None: ...  # its message

    @property
    def warnings(self) -> tuple[str, ...]: ...  # warning codes (§7.5)

    @property
    def line_error(self) -> bool: ...  # a line-scope error: unusable for training

    @property
    def kind(self) -> str: ...  # 'classification' | 'detection' | 'unlabeled' | 'invalid'

    @property
    def image_labels(self) -> frozenset[str]: ...  # valid image-level labels

    @property
    def box_counts(self) -> Mapping[str, int]: ...  # valid boxes per label


def _move_errors(target: dict[str, Any], items: list[dict[str, str]], key: str = "errors") -> None:
    if items:
        target.setdefault(key, []).extend(items)


def _without_reports(value: Any) -> Any:
    """A copy of a dict without stale `errors`/`warnings` (e.g. a validation manifest fed back as input) and
    without `cl-*` keys: the file reports this validation only."""
    if not isinstance(value, Mapping):
        return value
    return {k: v for k, v in value.items() if k not in ("errors", "warnings") and not k.startswith(CL_PREFIX)}


def validation_manifest_line(
    text: str, parsed: ValidatedLine, extra_errors: Sequence[tuple[str, str]] = ()
) -> str:
    """One line of `training_manifest_with_validation.json` / `testing_…` (§8, manifest.md §7.6), no newline.

    The line as validated with its problems written where §7.6 puts them: line errors and image-level
    warnings in top-level `errors[]`/`warnings[]`; ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT of a box attribute in
    `<attr>.errors[]`; every other attribute error in `<attr>-metadata.errors[]`; box errors in
    `annotations[i].errors[]`; WARNING_NO_ATTRIBUTE_ANNOTATIONS in `<attr>.warnings[]` of each box attribute
    without boxes. A dropped line keeps its JSON object with a top-level error; a line that is not a JSON
    object is replaced by `{"errors": [...]}` only. `extra_errors` (code, message) are added as line errors
    (e.g. a duplicate source-ref found at training).
    """
    extra = [{"code": code, "message": message} for code, message in extra_errors]
    if parsed.entry is None:
        error = [{"code": parsed.dropped or ERROR_INVALID_JSON_LINE, "message": parsed.message or ""}] + extra
        try:
            original = json.loads(text) if parsed.dropped != ERROR_INVALID_JSON_LINE else None
        except ValueError:
            original = None
        if not isinstance(original, dict):
            return _dumps({"errors": error})
        line = _without_reports(original)
        line["errors"] = error
        return _dumps(line)

    entry = parsed.entry
    line = {}
    top_errors = list(entry.get("cl-errors") or [])
    for key, value in entry.items():
        if key in ("errors", "warnings") or key.startswith(CL_PREFIX):
            continue
        line[key] = _without_reports(value)
    for key, value in entry.items():
        if not key.endswith(META_SUFFIX) or key.startswith(CL_PREFIX) or not isinstance(value, Mapping):
            continue
        name = key[: -len(META_SUFFIX)]
        body = line.get(name)
        meta = line[key]
        for error in value.get("cl-errors") or []:
            # §7.6: label-attribute problems of object lines sit in the attribute, the rest in its metadata.
            if error.get("code") == ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT and isinstance(body, dict):
                _move_errors(body, [error])
            else:
                _move_errors(meta, [error])
        if isinstance(body, dict) and value.get("type") == DETECTION_TYPE:
            annotations = entry[name].get("annotations") if isinstance(entry.get(name), Mapping) else None
            if isinstance(annotations, list):
                body["annotations"] = [
                    {
                        **_without_reports(box),
                        **({"errors": list(box["cl-errors"])} if box.get("cl-errors") else {}),
                    }
                    if isinstance(box, Mapping)
                    else box
                    for box in annotations
                ]
                if not annotations and WARNING_NO_ATTRIBUTE_ANNOTATIONS in parsed.warnings:
                    _move_errors(body, [_warning(WARNING_NO_ATTRIBUTE_ANNOTATIONS)], "warnings")
            elif annotations is None and WARNING_NO_ATTRIBUTE_ANNOTATIONS in parsed.warnings:
                _move_errors(body, [_warning(WARNING_NO_ATTRIBUTE_ANNOTATIONS)], "warnings")
    _move_errors(line, top_errors + extra)
    _move_errors(
        line,
        [_warning(code) for code in parsed.warnings if code != WARNING_NO_ATTRIBUTE_ANNOTATIONS],
        "warnings",
    )
    return _dumps(line)


def _warning(code: str) -> dict[str, str]:
    return {"code": code, "message": WARNING_MESSAGES.get(code, "")}


def validation_manifest_text(lines: Iterable[tuple[str, ValidatedLine]]) -> str:
    """A whole validation manifest: (original text, validation result) per line, in manifest order."""
    return "".join(validation_manifest_line(text, parsed) + "\n" for text, parsed in lines)


def _usable(parsed: ValidatedLine, use_case: str) -> bool:
    """Whether a line feeds the chosen use case (manifest.md §4: the other format's lines are dropped)."""
    if parsed.entry is None or parsed.line_error:
        return False
    if use_case == IMAGE_LEVEL_LABELS:
        return bool(parsed.image_labels)
    if use_case == OBJECT_LOCALIZATION:
        return bool(parsed.box_counts)
    return False


def usable_labels(lines: Iterable[ValidatedLine], use_case: str) -> set[str]:
    """Labels of the lines that feed `use_case` (for ERROR_MANIFEST_TOO_FEW_USABLE_LABELS and the usable
    label overlap, manifest.md §7.3)."""
    labels: set[str] = set()
    for parsed in lines:
        if _usable(parsed, use_case):
            labels.update(parsed.image_labels if use_case == IMAGE_LEVEL_LABELS else parsed.box_counts)
    return labels


@dataclass(frozen=True, slots=True)
class DatasetStatistics:
    """`statistics.training` / `statistics.testing` of manifest_summary.json (§8)."""

    use_case: str
    total_json_lines: int
    valid_json_lines: int
    invalid_json_lines: int
    ignored_json_lines: int
    error_json_line_indices: tuple[int, ...]
    errors: tuple[tuple[str, str], ...] = ()  # terminal content errors (code, message)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the file."""
        return {
            "use_case": self.use_case,
            "total_json_lines": self.total_json_lines,
            "valid_json_lines": self.valid_json_lines,
            "invalid_json_lines": self.invalid_json_lines,
            "ignored_json_lines": self.ignored_json_lines,
            "error_json_line_indices": list(self.error_json_line_indices),
            "errors": [{"code": code, "message": message} for code, message in self.errors],
        }


def dataset_statistics(
    lines: Iterable[tuple[int, ValidatedLine]], use_case: str, errors: Sequence[tuple[str, str]] = ()
) -> DatasetStatistics:
    """Counts one dataset's lines: (1-based line number, validation result) per non-blank line.

    invalid = dropped or with a line error (their numbers go to `error_json_line_indices`, ascending);
    valid = usable for `use_case`; ignored = everything else, i.e. warning-only lines and † valid lines of the
    other format that §4 drops silently (they are neither errors nor used, so total = valid + invalid +
    ignored as in the spec's example).
    """
    if use_case not in (IMAGE_LEVEL_LABELS, OBJECT_LOCALIZATION, NOT_DETERMINED):
        raise ValueError(f"unknown use case {use_case!r}")
    total = valid = ignored = 0
    invalid: list[int] = []
    for number, parsed in lines:
        total += 1
        if parsed.entry is None or parsed.line_error:
            invalid.append(number)
        elif _usable(parsed, use_case):
            valid += 1
        else:
            ignored += 1
    return DatasetStatistics(
        use_case, total, valid, len(invalid), ignored, tuple(sorted(invalid)), tuple(errors)
    )


def manifest_summary_json(
    training: DatasetStatistics, testing: DatasetStatistics, errors: Sequence[tuple[str, str]] = ()
) -> str:
    """manifest_summary.json (§8): top-level `errors` (spanning both datasets) and per-dataset statistics."""
    return _dumps(
        {
            "errors": [{"code": code, "message": message} for code, message in errors],
            "statistics": {"training": training.to_dict(), "testing": testing.to_dict()},
        }
    )


# ---------------------------------------------------------------------------------------------------
# Object keys (§9 †)
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutputKeys:
    """Object keys of every file under `OutputConfig` (§9 † layout)."""

    summary: str
    manifest_summary: str
    training_validation: str
    testing_validation: str
    training_snapshot: str
    testing_snapshot: str


def output_keys(prefix: str, project_name: str, version_name: str) -> OutputKeys:
    """The §9 layout under `S3KeyPrefix` (an empty prefix puts the files at the bucket's root)."""
    base = prefix.strip("/")
    base = f"{base}/" if base else ""
    version = f"{base}{version_name}/"
    return OutputKeys(
        summary=base + summary_file_name(project_name, version_name),
        manifest_summary=f"{version}validation/manifest_summary.json",
        training_validation=f"{version}validation/training_manifest_with_validation.json",
        testing_validation=f"{version}validation/testing_manifest_with_validation.json",
        training_snapshot=f"{version}snapshot/training.manifest",
        testing_snapshot=f"{version}snapshot/testing.manifest",
    )
