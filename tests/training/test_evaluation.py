"""services/training/evaluation.py against spec/evaluation.md: hand-computed metrics, thresholds, confusion
matrix, mAP, the result files field by field, and property checks on random data.

Pure unit tests (no stack). Expected numbers are worked out by hand in the comments next to them.
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest

from services.dataset.manifest import parse_line
from services.training import evaluation as ev
from services.training.evaluation import (
    Box,
    ClassificationSample,
    DetectionSample,
    PredictedBox,
    evaluate_classification,
    evaluate_detection,
)

ARN = "arn:aws:rekognition:eu-west-1:000011112222:project/fruit/version/fruit.v1/1688202000000"
END = datetime(2023, 7, 1, 10, 12, 44, 120311)


def cls(ref: str, truth: set[str], **confidences: float) -> ClassificationSample:
    return ClassificationSample(f"s3://acme/{ref}.jpg", frozenset(truth), confidences)


def label(result: ev.EvaluationResult, name: str) -> ev.LabelResult:
    return next(r for r in result.label_results if r.label == name)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=0, abs_tol=1e-12)


# --------------------------------------------------------------------------- classification metrics

# Four images, labels a and b (single-label ground truth, softmax-like scores).
#   img  truth  a     b
#   1    a      0.9   0.1
#   2    a      0.6   0.4
#   3    b      0.7   0.3
#   4    b      0.2   0.8
TWO_LABELS = [
    cls("1", {"a"}, a=0.9, b=0.1),
    cls("2", {"a"}, a=0.6, b=0.4),
    cls("3", {"b"}, a=0.7, b=0.3),
    cls("4", {"b"}, a=0.2, b=0.8),
]


def test_threshold_is_the_confidence_with_the_best_f1_and_metrics_are_taken_there():
    result = evaluate_classification(TWO_LABELS, ["a", "b"])
    # Label a, candidates 0.9 / 0.7 / 0.6 / 0.2 (positives = 2):
    # F1 = 2TP / (2TP + FP + FN):
    #   t=0.9: TP1 FP0 FN1 → 2/3;  t=0.7: TP1 FP1 FN1 → 2/4 = 0.5
    #   t=0.6: TP2 FP1 FN0 → 4/5 = 0.8 (best);  t=0.2: TP2 FP2 FN0 → 4/6 = 2/3
    # At 0.6: P = 2/(2+1) = 2/3, R = 2/2 = 1, F1 = 2·(2/3)·1/(2/3+1) = 0.8.
    a = label(result, "a")
    assert a.threshold == 0.6
    assert (a.true_positives, a.false_positives, a.false_negatives) == (2, 1, 0)
    assert close(a.precision, 2 / 3) and a.recall == 1.0 and close(a.f1_score, 0.8)
    # Label b, candidates 0.8 (T) / 0.4 (F) / 0.3 (T) / 0.1 (F):
    #   0.8: TP1 FP0 FN1 → 0.667; 0.4: TP1 FP1 FN1 → 0.5; 0.3: TP2 FP1 → 0.8 (best); 0.1: TP2 FP2 → 0.667
    b = label(result, "b")
    assert b.threshold == 0.3 and close(b.f1_score, 0.8)
    # Macro means over the two labels: P (2/3 + 2/3)/2, R 1, F1 0.8.
    assert close(result.precision, 2 / 3) and result.recall == 1.0 and close(result.f1_score, 0.8)
    assert result.number_of_testing_images == 4
    assert result.thresholds == {"a": 0.6, "b": 0.3}


def test_average_precision_is_the_interpolated_area_under_the_pr_curve():
    result = evaluate_classification(TWO_LABELS, ["a", "b"])
    # Label a, points (P, R) by descending confidence: 0.9 (1, .5), 0.7 (.5, .5), 0.6 (2/3, 1), 0.2 (.5, 1).
    # Precision envelope from the right: 1, 2/3, 2/3, .5; recall steps .5, 0, .5, 0 → AP = .5 + 1/3 = 5/6.
    a = label(result, "a")
    assert close(a.average_precision, 5 / 6)
    assert a.max_recall == 1.0
    assert close(result.average_precision, 5 / 6)  # b is symmetric


def test_confusion_matrix_is_share_of_ground_truth_images_predicted_as_each_label():
    result = evaluate_classification(TWO_LABELS, ["a", "b"])
    # a predicted (≥ 0.6) on images 1, 2, 3; b predicted (≥ 0.3) on images 2, 3, 4.
    # GT a = {1, 2}: a→a 2/2, a→b 1/2 (image 2).  GT b = {3, 4}: b→a 1/2 (image 3), b→b 2/2.
    cells = [(c.ground_truth_label, c.predicted_label, c.value) for c in result.confusion_matrix]
    assert cells == [("a", "a", 1.0), ("a", "b", 0.5), ("b", "a", 0.5), ("b", "b", 1.0)]


def test_f1_ties_go_to_the_higher_threshold():
    samples = [
        cls("1", {"a"}, a=0.9),
        cls("2", set(), a=0.5),
        cls("3", set(), a=0.4),
        cls("4", {"a"}, a=0.3),
    ]
    # t=0.9: TP1 FP0 FN1 → F1 = 2/(2+0+1) = 2/3.  t=0.5: TP1 FP1 FN1 → 2/(2+1+1) = 0.5.
    # t=0.4: 2/(2+2+1) = 0.4.  t=0.3: TP2 FP2 FN0 → 4/(4+2) = 2/3: ties with 0.9 → 0.9 wins.
    a = label(evaluate_classification(samples, ["a"]), "a")
    assert a.threshold == 0.9
    assert (a.precision, a.recall) == (1.0, 0.5)
    assert close(a.f1_score, 2 / 3)


def test_all_equal_confidences_give_a_single_candidate():
    samples = [cls(str(i), {"a"} if i < 2 else set(), a=0.5) for i in range(4)]
    # Only candidate 0.5: all four predicted, TP2 FP2 FN0 → P .5, R 1, F1 2/3; one PR point → AP .5.
    a = label(evaluate_classification(samples, ["a"]), "a")
    assert a.threshold == 0.5
    assert (a.precision, a.recall) == (0.5, 1.0)
    assert close(a.f1_score, 2 / 3) and a.average_precision == 0.5


def test_label_absent_from_the_test_set_gets_threshold_half_metrics_zero_and_stays_out_of_the_averages():
    samples = [cls("1", {"a"}, a=0.9, c=0.7), cls("2", {"b"}, b=0.8, c=0.2)]
    result = evaluate_classification(samples, ["a", "b", "c"])
    c = label(result, "c")
    assert c.threshold == ev.DEFAULT_THRESHOLD
    assert (c.precision, c.recall, c.f1_score, c.average_precision, c.number_of_testing_images) == (
        0,
        0,
        0,
        0,
        0,
    )
    # At 0.5 the 0.7 on image 1 is still a false positive, counted as such.
    assert c.false_positives == 1 and not c.in_test_set
    # a and b are perfect (F1 1); c does not drag the macro mean down.
    assert result.f1_score == 1.0 and result.precision == 1.0 and result.recall == 1.0
    outcome = next(o for o in result.images[0].outcomes if o.label == "c")
    assert outcome.kind == "FP" and not outcome.present_in_ground_truth


def test_label_never_predicted_gets_default_threshold_and_zero_metrics_that_count_in_the_average():
    # b occurs in the ground truth, but the model never gives it a confidence above 0.
    samples = [cls("1", {"a"}, a=0.9, b=0.0), cls("2", {"b"}, a=0.1)]
    result = evaluate_classification(samples, ["a", "b"])
    b = label(result, "b")
    assert b.threshold == 0.5 and b.f1_score == 0 and b.false_negatives == 1
    # a: candidates 0.9 (T), 0.1 (F) → 0.9 gives F1 1.  Macro F1 = (1 + 0) / 2.
    assert result.f1_score == 0.5
    assert [o.kind for o in result.images[1].outcomes] == [
        "TN",
        "FN",
    ]  # a (top label, 0.1) TN, then b missed (0)


def test_single_test_image():
    result = evaluate_classification([cls("only", {"a"}, a=0.3, b=0.6)], ["a", "b"])
    # a: only candidate 0.3, a hit → P R F1 1.  b: no ground truth → 0.5, metrics 0, excluded.
    assert label(result, "a").threshold == 0.3
    assert result.f1_score == 1.0
    image = result.images[0]
    # b (0.6 ≥ 0.5) is a false positive on the image; a is a true positive.
    assert [(o.label, o.kind) for o in image.outcomes] == [("b", "FP"), ("a", "TP")]
    assert (image.true_positives, image.false_positives, image.false_negatives, image.true_negatives) == (
        1,
        1,
        0,
        0,
    )


def test_multi_label_images_are_decided_per_image_and_label():
    samples = [
        cls("1", {"tulip", "leaves"}, tulip=0.9, leaves=0.8, rose=0.1),
        cls("2", {"rose", "leaves"}, tulip=0.2, leaves=0.3, rose=0.7),
        cls("3", {"rose"}, tulip=0.6, leaves=0.1, rose=0.9),
    ]
    result = evaluate_classification(samples, ["tulip", "rose", "leaves"])
    # tulip: 0.9 (T) first → F1 1 at 0.9.  rose: 0.9 T, 0.7 T → F1 1 at 0.7.  leaves: 0.8 T, 0.3 T → 0.3.
    assert result.thresholds == {"tulip": 0.9, "rose": 0.7, "leaves": 0.3}
    assert result.f1_score == 1.0
    # GT leaves = {1, 2}: both predicted leaves, image 1 also tulip, image 2 also rose → row sums > 1.
    row = {c.predicted_label: c.value for c in result.confusion_matrix if c.ground_truth_label == "leaves"}
    assert row == {"tulip": 0.5, "rose": 0.5, "leaves": 1.0}
    assert result.images[0].true_positives == 2 and result.images[0].true_negatives == 1


def test_top_label_below_threshold_and_not_in_ground_truth_is_shown_as_true_negative():
    samples = [cls("1", {"a"}, a=0.9, b=0.05), cls("2", {"b"}, a=0.4, b=0.8), cls("3", set(), a=0.3, b=0.2)]
    result = evaluate_classification(samples, ["a", "b"])
    # a's threshold 0.9 (F1 1), b's 0.8.  Image 3: nothing predicted, nothing true; its top label a is a TN.
    assert [(o.label, o.kind, o.confidence) for o in result.images[2].outcomes] == [("a", "TN", 0.3)]
    assert result.images[2].true_negatives == 2


def test_ground_truth_labels_the_model_does_not_know_are_ignored():
    result = evaluate_classification([cls("1", {"a", "unknown"}, a=0.9)], ["a"])
    assert result.f1_score == 1.0 and label(result, "a").number_of_testing_images == 1


@pytest.mark.parametrize(
    ("confidences", "message"),
    [
        ({"a": float("nan")}, "finite"),
        ({"a": 1.5}, "0–1"),
        ({"a": True}, "finite"),
        ({"zzz": 0.5}, "unknown"),
    ],
)
def test_bad_confidences_are_refused(confidences: dict[str, Any], message: str):
    with pytest.raises(ValueError, match=message):
        evaluate_classification(
            [ClassificationSample("s3://bkt/1.jpg", frozenset({"a"}), confidences)], ["a"]
        )


def test_duplicate_source_refs_and_bad_label_lists_are_refused():
    with pytest.raises(ValueError, match="twice"):
        evaluate_classification([cls("1", {"a"}, a=1), cls("1", {"a"}, a=1)], ["a"])
    with pytest.raises(ValueError, match="distinct"):
        evaluate_classification([], ["a", "a"])
    with pytest.raises(ValueError, match="at least one"):
        evaluate_classification([], [])


def test_empty_test_set_gives_zeros_not_nan():
    result = evaluate_classification([], ["a", "b"])
    assert (result.precision, result.recall, result.f1_score) == (0, 0, 0)
    assert all(c.value == 0 for c in result.confusion_matrix)


# --------------------------------------------------------------------------- detection


def det(ref: str, truth: list[Box], preds: list[PredictedBox], size: tuple[int, int] | None = None):
    return DetectionSample(f"s3://acme/{ref}.jpg", truth, preds, size)


def gt(name: str, left: float, top: float, width: float = 0.2, height: float = 0.2) -> Box:
    return Box(name, left, top, width, height)


def pred(name: str, confidence: float, left: float, top: float, width: float = 0.2, height: float = 0.2):
    return PredictedBox(name, confidence, left, top, width, height)


def test_iou_of_textbook_boxes():
    assert ev.iou(gt("x", 0, 0), gt("x", 0, 0)) == 1.0
    # Half overlap along x: intersection 0.1·0.2 = .02, union .04 + .04 − .02 = .06 → 1/3.
    assert close(ev.iou(gt("x", 0, 0), gt("x", 0.1, 0)), 1 / 3)
    assert ev.iou(gt("x", 0, 0), gt("x", 0.5, 0.5)) == 0.0
    assert ev.iou(gt("x", 0, 0, 0, 0), gt("x", 0, 0, 0, 0)) == 0.0  # empty union → 0, not NaN


def test_perfect_predictions_score_one_everywhere():
    samples = [
        det(
            "1",
            [gt("cat", 0.1, 0.1), gt("dog", 0.5, 0.5)],
            [pred("cat", 0.9, 0.1, 0.1), pred("dog", 0.8, 0.5, 0.5)],
        ),
        det("2", [gt("cat", 0.3, 0.3)], [pred("cat", 0.7, 0.3, 0.3)]),
    ]
    result = evaluate_detection(samples, ["cat", "dog"])
    assert (result.precision, result.recall, result.f1_score) == (1, 1, 1)
    assert (result.average_precision, result.average_recall) == (1, 1)
    assert result.confusion_matrix == ()
    assert label(result, "cat").number_of_testing_images == 2


def test_boxes_shifted_below_iou_half_score_zero():
    # Shifted by 0.1 along x: IoU 1/3 < 0.5 → every prediction FP, every ground truth FN.
    samples = [det("1", [gt("cat", 0.1, 0.1)], [pred("cat", 0.9, 0.2, 0.1)])]
    result = evaluate_detection(samples, ["cat"])
    cat = label(result, "cat")
    assert (cat.true_positives, cat.false_positives, cat.false_negatives) == (0, 1, 1)
    assert (result.f1_score, result.average_precision, result.average_recall) == (0, 0, 0)
    assert [o.kind for o in result.images[0].outcomes] == ["FP", "FN"]


def test_iou_of_exactly_half_is_a_match():
    # GT 0.2 × 0.1, prediction 0.1 × 0.1 inside it: intersection .01, union .02 → IoU .5 (float rounding allowed).
    samples = [det("1", [gt("cat", 0.0, 0.0, 0.2, 0.1)], [pred("cat", 0.9, 0.0, 0.0, 0.1, 0.1)])]
    assert evaluate_detection(samples, ["cat"]).f1_score == 1.0


def test_duplicate_predictions_are_false_positives():
    # Two identical boxes of the same confidence on one ground truth: one TP, the duplicate FP.
    # Single candidate 0.9: TP1 FP1 FN0 → P .5, R 1, F1 2/3; one PR point (P .5, R 1) → AP .5.
    samples = [det("1", [gt("cat", 0.1, 0.1)], [pred("cat", 0.9, 0.1, 0.1), pred("cat", 0.9, 0.1, 0.1)])]
    result = evaluate_detection(samples, ["cat"])
    cat = label(result, "cat")
    assert (cat.true_positives, cat.false_positives, cat.false_negatives) == (1, 1, 0)
    assert close(cat.f1_score, 2 / 3) and cat.average_precision == 0.5
    assert sorted(o.kind for o in result.images[0].outcomes) == ["FP", "TP"]
    assert all(o.present_in_ground_truth for o in result.images[0].outcomes)


def test_lower_confidence_duplicate_falls_below_the_threshold_and_does_not_hurt_ap():
    # 0.9 TP, 0.8 duplicate FP: t=.9 → F1 1; t=.8 → 2/3. Threshold .9; PR points (1, 1), (.5, 1) → AP 1.
    samples = [det("1", [gt("cat", 0.1, 0.1)], [pred("cat", 0.9, 0.1, 0.1), pred("cat", 0.8, 0.1, 0.1)])]
    result = evaluate_detection(samples, ["cat"])
    assert label(result, "cat").threshold == 0.9 and result.average_precision == 1.0
    assert [o.kind for o in result.images[0].outcomes] == ["TP"]


def test_wrong_label_overlap_is_a_false_positive_and_a_false_negative():
    samples = [det("1", [gt("cat", 0.1, 0.1)], [pred("dog", 0.9, 0.1, 0.1)])]
    result = evaluate_detection(samples, ["cat", "dog"])
    assert label(result, "dog").false_positives == 1 and label(result, "cat").false_negatives == 1
    outcomes = {(o.label, o.kind, o.present_in_ground_truth) for o in result.images[0].outcomes}
    assert outcomes == {("dog", "FP", False), ("cat", "FN", True)}


def test_matching_is_greedy_by_confidence_to_the_best_unmatched_ground_truth():
    # Two GT boxes; the 0.9 prediction overlaps both, better the first (IoU 1) → it takes the first.
    # The 0.8 prediction sits on the first too (IoU 1) but that one is taken; its IoU with the second is
    # 1/3 < .5 → FP. The second GT stays unmatched → FN.
    truth = [gt("cat", 0.1, 0.1), gt("cat", 0.2, 0.1)]
    preds = [pred("cat", 0.8, 0.1, 0.1), pred("cat", 0.9, 0.1, 0.1)]
    result = evaluate_detection([det("1", truth, preds)], ["cat"])
    cat = label(result, "cat")
    # Candidates .9 (hit) → TP1 FP0 FN1 F1 2/3; .8 → TP1 FP1 FN1 → 0.5. Threshold .9.
    assert cat.threshold == 0.9 and (cat.true_positives, cat.false_negatives) == (1, 1)
    fn = next(o for o in result.images[0].outcomes if o.kind == "FN")
    assert fn.box == truth[1] and fn.confidence == 0.0


def test_map_and_mar_on_a_worked_example():
    # Label x: 3 GT boxes over two images; predictions .9 hit, .8 miss, .7 hit, .6 miss (one GT never found).
    samples = [
        det(
            "1", [gt("x", 0.0, 0.0), gt("x", 0.5, 0.5)], [pred("x", 0.9, 0.0, 0.0), pred("x", 0.8, 0.7, 0.0)]
        ),
        det("2", [gt("x", 0.3, 0.3)], [pred("x", 0.7, 0.3, 0.3), pred("x", 0.6, 0.0, 0.7)]),
    ]
    # PR points: .9 (1, 1/3), .8 (1/2, 1/3), .7 (2/3, 2/3), .6 (1/2, 2/3).
    # Envelope 1, 2/3, 2/3, 1/2; recall steps 1/3, 0, 1/3, 0 → AP = 1/3 + 2/9 = 5/9.  Max recall 2/3.
    # F1: .9 → 2/(2+0+2) = .5; .8 → 2/5; .7 → 4/(4+1+1) = 2/3 (best); .6 → 4/7. Threshold .7.
    result = evaluate_detection(samples, ["x", "y"])
    x = label(result, "x")
    assert close(x.average_precision, 5 / 9) and close(x.max_recall, 2 / 3)
    assert x.threshold == 0.7 and close(x.precision, 2 / 3) and close(x.recall, 2 / 3)
    # y has no ground truth: it stays out of mAP/mAR and the F1 mean.
    assert close(result.average_precision, 5 / 9) and close(result.average_recall, 2 / 3)
    assert close(result.f1_score, 2 / 3)
    # Per image at .7: image 1 → .9 TP, .8 FP, GT (.5,.5) FN; image 2 → .7 TP (the .6 is below threshold).
    assert [(o.kind, o.confidence) for o in result.images[0].outcomes] == [
        ("TP", 0.9),
        ("FP", 0.8),
        ("FN", 0.0),
    ]
    assert [o.kind for o in result.images[1].outcomes] == ["TP"]


def test_ground_truth_matched_only_below_threshold_is_a_false_negative_with_that_confidence():
    samples = [
        det("1", [gt("x", 0.0, 0.0)], [pred("x", 0.9, 0.0, 0.0)]),
        det(
            "2",
            [gt("x", 0.0, 0.0)],
            [pred("x", 0.3, 0.0, 0.0), pred("x", 0.5, 0.6, 0.6), pred("x", 0.4, 0.6, 0.0)],
        ),
    ]
    # Candidates (2 GT boxes): .9 hit → TP1 FP0 FN1 → 2/3; .5 miss → 2/(2+1+1) = .5; .4 miss → 2/5;
    # .3 hit → TP2 FP2 FN0 → 4/6 = 2/3, tied with .9 → the higher threshold .9 wins.
    result = evaluate_detection(samples, ["x"])
    assert label(result, "x").threshold == 0.9
    # Image 2: its box was matched only by the .3 prediction, below .9 → FN carrying that best confidence;
    # the .5 and .4 misses are below threshold too, so they are no outcomes.
    assert [(o.kind, o.confidence) for o in result.images[1].outcomes] == [("FN", 0.3)]


def test_detection_images_without_boxes_are_true_negatives():
    samples = [
        det("1", [gt("x", 0.0, 0.0)], [pred("x", 0.9, 0.0, 0.0)]),
        det("empty", [], []),
        det("fp", [], [pred("x", 0.95, 0.5, 0.5)]),
    ]
    result = evaluate_detection(samples, ["x"])
    # .95 miss → TP0 FP1 FN1 → F1 0; .9 hit → TP1 FP1 FN0 → 2/3 → threshold .9 (the .95 box stays an FP).
    empty, fp = result.images[1], result.images[2]
    assert empty.outcomes == () and empty.true_negatives == 1
    assert fp.false_positives == 1 and fp.true_negatives == 0


def test_predictions_for_unknown_labels_are_refused():
    with pytest.raises(ValueError, match="unknown label"):
        evaluate_detection([det("1", [], [pred("zebra", 0.5, 0, 0)])], ["x"])
    with pytest.raises(ValueError, match="≥ 0"):
        Box("x", 0, 0, -0.1, 0.1)
    with pytest.raises(ValueError, match="finite"):
        PredictedBox("x", 0.5, float("inf"), 0, 0.1, 0.1)


# --------------------------------------------------------------------------- properties


def _naive_best(scores: list[float], hits: list[bool], positives: int) -> tuple[float, float]:
    """Brute force §3: every distinct confidence > 0, F1 from the definition, ties → higher threshold."""
    best = (-1.0, 0.0)
    for t in sorted({s for s in scores if s > 0}, reverse=True):
        tp = sum(1 for s, h in zip(scores, hits, strict=True) if s >= t and h)
        fp = sum(1 for s, h in zip(scores, hits, strict=True) if s >= t and not h)
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / positives if positives else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        if f1 > best[0] + 1e-12:
            best = (f1, t)
    return best


@pytest.mark.parametrize("seed", range(40))
def test_random_classification_properties(seed: int):
    rng = np.random.default_rng(seed)
    labels = [f"l{j}" for j in range(int(rng.integers(1, 6)))]
    n = int(rng.integers(1, 30))
    samples = []
    for i in range(n):
        truth = {lab for lab in labels if rng.random() < 0.4}
        # Coarse scores so that ties happen; some labels left out (= 0).
        conf = {lab: float(rng.integers(0, 6)) / 5 for lab in labels if rng.random() < 0.8}
        samples.append(ClassificationSample(f"s3://bkt/{i}.jpg", frozenset(truth), conf))
    result = evaluate_classification(samples, labels)
    for j, r in enumerate(result.label_results):
        assert 0 <= r.precision <= 1 and 0 <= r.recall <= 1 and 0 <= r.f1_score <= 1
        assert r.f1_score <= max(r.precision, r.recall) + 1e-12
        assert r.f1_score >= min(r.precision, r.recall) - 1e-12
        assert 0 < r.threshold <= 1 and 0 <= r.average_precision <= 1
        if r.in_test_set and r.true_positives + r.false_positives:
            scores = [s.confidences.get(labels[j], 0.0) for s in samples]
            hits = [labels[j] in s.true_labels for s in samples]
            f1, t = _naive_best(scores, hits, r.true_positives + r.false_negatives)
            assert close(r.f1_score, f1) and r.threshold == t
    # Per-image counts add up to the per-label counts; every (image, label) pair is exactly one outcome.
    assert sum(i.true_positives for i in result.images) == sum(r.true_positives for r in result.label_results)
    assert sum(i.false_positives for i in result.images) == sum(
        r.false_positives for r in result.label_results
    )
    assert sum(i.false_negatives for i in result.images) == sum(
        r.false_negatives for r in result.label_results
    )
    for image in result.images:
        assert (
            image.true_positives + image.false_positives + image.false_negatives + image.true_negatives
            == len(labels)
        )
    for value in (
        result.precision,
        result.recall,
        result.f1_score,
        *(c.value for c in result.confusion_matrix),
    ):
        assert 0 <= value <= 1 and not math.isnan(value)
    json.loads(
        ev.summary_json(result, project_version_arn=ARN, evaluation_end=END, number_of_training_images=1)
    )


@pytest.mark.parametrize("seed", range(30))
def test_random_detection_properties(seed: int):
    rng = np.random.default_rng(seed)
    labels = ["a", "b", "c"]
    samples = []
    for i in range(int(rng.integers(1, 12))):
        truth = [
            Box(str(rng.choice(labels)), *(float(v) for v in rng.random(2) * 0.8), 0.2, 0.2)
            for _ in range(int(rng.integers(0, 4)))
        ]
        preds = [
            PredictedBox(
                b.label, float(rng.integers(1, 10)) / 10, b.left + float(rng.normal(0, 0.05)), b.top, 0.2, 0.2
            )
            for b in truth
            if rng.random() < 0.8
        ]
        preds += [
            PredictedBox(
                str(rng.choice(labels)), float(rng.random()), *(float(v) for v in rng.random(2)), 0.1, 0.1
            )
            for _ in range(int(rng.integers(0, 3)))
        ]
        samples.append(DetectionSample(f"s3://bkt/{i}.jpg", truth, preds))
    result = evaluate_detection(samples, labels)
    for r in result.label_results:
        assert 0 <= r.precision <= 1 and 0 <= r.recall <= 1 and 0 <= r.f1_score <= 1
        assert r.f1_score <= max(r.precision, r.recall) + 1e-12
        assert 0 <= r.average_precision <= 1 and 0 <= r.max_recall <= 1
        assert r.recall <= r.max_recall + 1e-12
    totals = {
        k: sum(getattr(i, k) for i in result.images)
        for k in ("true_positives", "false_positives", "false_negatives")
    }
    assert totals == {k: sum(getattr(r, k) for r in result.label_results) for k in totals}
    boxes = sum(len(s.ground_truth) for s in samples)
    assert totals["true_positives"] + totals["false_negatives"] == boxes


def test_250_labels_are_fast_and_complete():
    rng = np.random.default_rng(7)
    labels = [f"label-{j:03d}" for j in range(250)]
    samples = []
    for i in range(600):
        truth = frozenset(rng.choice(labels, size=int(rng.integers(1, 4)), replace=False).tolist())
        scores = rng.random(250) * 0.3
        for lab in truth:
            scores[labels.index(lab)] += 0.6
        samples.append(
            ClassificationSample(f"s3://bkt/{i}.jpg", truth, dict(zip(labels, scores.tolist(), strict=True)))
        )
    start = time.perf_counter()
    result = evaluate_classification(samples, labels)
    text = ev.summary_json(
        result, project_version_arn=ARN, evaluation_end=END, number_of_training_images=2400
    )
    elapsed = time.perf_counter() - start
    assert elapsed < 10
    summary = json.loads(text)
    assert len(summary["LabelEvaluationResults"]) == 250
    assert len(summary["AggregatedEvaluationResults"]["Metrics"]["ConfusionMatrix"]) == 250 * 250
    assert result.f1_score == 1.0  # the true labels always score above 0.6, the others below 0.3


# --------------------------------------------------------------------------- summary file


def test_summary_file_has_every_field_of_the_spec_classification():
    result = evaluate_classification(TWO_LABELS + [cls("5", {"c"}, c=0.9)], ["c", "a", "b"])
    summary = json.loads(
        ev.summary_json(result, project_version_arn=ARN, evaluation_end=END, number_of_training_images=960)
    )
    assert list(summary) == [
        "Version",
        "EvaluationDetails",
        "AggregatedEvaluationResults",
        "LabelEvaluationResults",
    ]
    assert summary["Version"] == 1
    assert summary["EvaluationDetails"] == {
        "ProjectVersionArn": ARN,
        "EvaluationEndTimestamp": "2023-07-01T10:12:44.120311",
        "Labels": ["c", "a", "b"],
        "NumberOfTrainingImages": 960,
        "NumberOfTestingImages": 5,
    }
    metrics = summary["AggregatedEvaluationResults"]["Metrics"]
    assert list(metrics) == ["Precision", "Recall", "F1Score", "ConfusionMatrix"]
    # Macro means: P (1 + 2/3 + 2/3)/3 = 7/9, R 1, F1 (1 + .8 + .8)/3.
    assert close(metrics["Precision"], 7 / 9) and metrics["Recall"] == 1.0
    assert close(metrics["F1Score"], 2.6 / 3)
    assert all(
        list(cell) == ["GroundTruthLabel", "PredictedLabel", "Value"] for cell in metrics["ConfusionMatrix"]
    )
    assert len(metrics["ConfusionMatrix"]) == 9
    rows = summary["LabelEvaluationResults"]
    # Ordered by F1 descending: c (1.0), then a and b (0.8 each) in label order.
    assert [r["Label"] for r in rows] == ["c", "a", "b"]
    assert list(rows[0]) == ["Label", "NumberOfTestingImages", "Metrics"]
    assert list(rows[0]["Metrics"]) == ["Threshold", "Precision", "Recall", "F1Score"]
    assert rows[1] == {
        "Label": "a",
        "NumberOfTestingImages": 2,
        "Metrics": {"Threshold": 0.6, "Precision": 2 / 3, "Recall": 1.0, "F1Score": 0.8},
    }
    # The aggregates are the unweighted means of the per-label values (§6 example note).
    assert close(metrics["F1Score"], sum(r["Metrics"]["F1Score"] for r in rows) / 3)


def test_summary_file_detection_variant_and_labels_order_by_f1():
    samples = [
        det(
            "1",
            [gt("cap", 0, 0), gt("relay", 0.5, 0.5)],
            [pred("cap", 0.9, 0, 0), pred("relay", 0.9, 0.6, 0.5)],
        )
    ]
    result = evaluate_detection(samples, ["relay", "cap"])
    summary = json.loads(
        ev.summary_json(result, project_version_arn=ARN, evaluation_end=END, number_of_training_images=3)
    )
    metrics = summary["AggregatedEvaluationResults"]["Metrics"]
    assert list(metrics) == ["Precision", "Recall", "F1Score", "AveragePrecision", "AverageRecall"]
    # cap perfect; relay shifted by .1 (IoU 1/3) → 0. Macro: .5 everywhere.
    assert metrics == {
        "Precision": 0.5,
        "Recall": 0.5,
        "F1Score": 0.5,
        "AveragePrecision": 0.5,
        "AverageRecall": 0.5,
    }
    assert [r["Label"] for r in summary["LabelEvaluationResults"]] == ["cap", "relay"]
    assert summary["EvaluationDetails"]["Labels"] == ["relay", "cap"]


def test_summary_timestamp_is_zone_free_with_microseconds_and_aware_times_become_utc():
    result = evaluate_classification(TWO_LABELS, ["a", "b"])
    aware = datetime(2023, 7, 1, 12, 12, 44, tzinfo=timezone(timedelta(hours=2)))
    summary = json.loads(
        ev.summary_json(result, project_version_arn=ARN, evaluation_end=aware, number_of_training_images=1)
    )
    assert summary["EvaluationDetails"]["EvaluationEndTimestamp"] == "2023-07-01T10:12:44.000000"


def test_summary_readers_accept_the_nested_and_the_flat_form():
    nested = {"AggregatedEvaluationResults": {"Metrics": {"F1Score": 0.8}}}
    flat = {"AggregatedEvaluationResults": {"F1Score": 0.8, "Precision": 0.9}}
    assert ev.summary_metrics(nested)["F1Score"] == 0.8
    assert ev.summary_metrics(flat)["F1Score"] == 0.8
    result = evaluate_classification(TWO_LABELS, ["a", "b"])
    text = ev.summary_json(result, project_version_arn=ARN, evaluation_end=END, number_of_training_images=1)
    assert ev.summary_thresholds(json.loads(text)) == {"a": 0.6, "b": 0.3}


def test_result_to_dict_is_json_ready_for_postgres():
    result = evaluate_classification(TWO_LABELS, ["a", "b"])
    stored = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert stored["f1_score"] == result.f1_score and stored["use_case"] == "IMAGE_LEVEL_LABELS"
    assert [row["threshold"] for row in stored["labels"]] == [0.6, 0.3]
    assert set(stored["labels"][0]) >= {"label", "threshold", "precision", "recall", "f1_score"}


def test_file_names_and_output_keys_follow_the_layout():
    assert ev.summary_file_name("fruit", "v1") == "EvaluationSummary-fruit-v1.json"
    keys = ev.output_keys("out/", "fruit", "v1")
    assert keys.summary == "out/EvaluationSummary-fruit-v1.json"
    assert keys.manifest_summary == "out/v1/validation/manifest_summary.json"
    assert keys.training_validation == "out/v1/validation/training_manifest_with_validation.json"
    assert keys.testing_validation == "out/v1/validation/testing_manifest_with_validation.json"
    assert keys.training_snapshot == "out/v1/snapshot/training.manifest"
    assert keys.testing_snapshot == "out/v1/snapshot/testing.manifest"
    assert ev.output_keys("", "p", "v").summary == "EvaluationSummary-p-v.json"


# --------------------------------------------------------------------------- evaluation manifest snapshot

# The spec's §7 examples, verbatim.
SPEC_CLS_SNAPSHOT = (
    '{"source-ref":"s3://acme-cl-images/fruit/test/p_007.jpg","rekognition-custom-labels-training-0":1,'
    '"rekognition-custom-labels-training-0-metadata":{"confidence":1.0,"job-name":"rekognition-custom-labels-training-job",'
    '"class-name":"rotten","human-annotated":"yes","creation-date":"2023-07-01T09:00:05.000001",'
    '"type":"groundtruth/image-classification"},"rekognition-custom-labels-evaluation-0":1,'
    '"rekognition-custom-labels-evaluation-0-metadata":{"confidence":0.74,"job-name":"rekognition-custom-labels-evaluation-job",'
    '"class-name":"rotten","human-annotated":"no","creation-date":"2023-07-01T10:12:40.000001",'
    '"type":"groundtruth/image-classification","rekognition-custom-labels-evaluation-details":{"version":1,'
    '"ground-truth-labelling-jobs":["rekognition-custom-labels-training-job"],"is-true-positive":true,'
    '"is-true-negative":false,"is-false-positive":false,"is-false-negative":false,"is-present-in-ground-truth":true}}}'
)
SPEC_DET_SNAPSHOT = (
    '{"source-ref":"s3://acme-cl-images/boards/test/b_201.jpg","rekognition-custom-labels-training-0":{"annotations":'
    '[{"class_id":0,"left":300,"top":120,"width":48,"height":30}],"image_size":[{"width":1024,"height":768,"depth":3}]},'
    '"rekognition-custom-labels-training-0-metadata":{"job-name":"rekognition-custom-labels-training-job","class-map":'
    '{"0":"capacitor"},"human-annotated":"yes","objects":[{"confidence":1.0}],"creation-date":"2023-07-02T08:00:00.000001",'
    '"type":"groundtruth/object-detection"},"rekognition-custom-labels-evaluation":{"annotations":[{"class_id":0,'
    '"left":302,"top":118,"width":47,"height":33}],"image_size":[{"width":1024,"height":768,"depth":3}]},'
    '"rekognition-custom-labels-evaluation-metadata":{"confidence":0.91,"job-name":"rekognition-custom-labels-evaluation-job",'
    '"class-map":{"0":"capacitor"},"human-annotated":"no","objects":[{"confidence":0.91,'
    '"rekognition-custom-labels-evaluation-details":{"version":1,"ground-truth-labelling-jobs":'
    '["rekognition-custom-labels-training-job"],"is-true-positive":true,"is-true-negative":false,"is-false-positive":false,'
    '"is-false-negative":false,"is-present-in-ground-truth":true}}],"creation-date":"2023-07-02T09:30:00.000001",'
    '"type":"groundtruth/object-detection"}}'
)


def test_classification_snapshot_line_is_the_spec_example():
    ref = "s3://acme-cl-images/fruit/test/p_007.jpg"
    entry = {
        "source-ref": ref,
        "quality": 1,
        "quality-metadata": {
            "confidence": 1.0,
            "job-name": "fruit-grading",
            "class-name": "rotten",
            "human-annotated": "yes",
            "creation-date": "2023-07-01T09:00:05.000001",
            "type": "groundtruth/image-classification",
        },
        "cl-metadata": {"is_labeled": True},
    }
    truth = ev.ground_truth_from_entry(entry, ev.IMAGE_LEVEL_LABELS)
    assert truth.labels == {"rotten"}
    samples = [
        ClassificationSample(ref, truth.labels, {"ripe": 0.26, "rotten": 0.74}),
        cls("other", {"ripe"}, ripe=0.8, rotten=0.2),
    ]
    # ripe: .8 (T), .26 (F) → threshold .8; rotten: .74 (T), .2 (F) → .74. Image p_007: rotten TP, ripe not
    # shown (below threshold, not true, not the top label). Label index of rotten = 1 (the example's value).
    result = evaluate_classification(samples, ["ripe", "rotten"])
    other = {"source-ref": samples[1].source_ref}
    text = ev.testing_snapshot_text(
        result, {ref: entry, other["source-ref"]: other}, datetime(2023, 7, 1, 10, 12, 40, 1)
    )
    assert text.splitlines()[0] == SPEC_CLS_SNAPSHOT


def test_detection_snapshot_line_is_the_spec_example():
    ref = "s3://acme-cl-images/boards/test/b_201.jpg"
    entry = {
        "source-ref": ref,
        "parts": {
            "annotations": [{"class_id": 0, "left": 300, "top": 120, "width": 48, "height": 30}],
            "image_size": [{"width": 1024, "height": 768, "depth": 3}],
        },
        "parts-metadata": {
            "job-name": "boards-bbox",
            "class-map": {"0": "capacitor"},
            "human-annotated": "yes",
            "objects": [{"confidence": 1.0}],
            "creation-date": "2023-07-02T08:00:00.000001",
            "type": "groundtruth/object-detection",
        },
    }
    truth = ev.ground_truth_from_entry(entry, ev.OBJECT_LOCALIZATION)
    assert truth.boxes == (Box("capacitor", 300 / 1024, 120 / 768, 48 / 1024, 30 / 768),)
    assert truth.image_size == (1024, 768)
    # Predicted 302/118/47/33 px: overlap 46 × 30 = 1380, union 1440 + 1551 − 1380 = 1611 → IoU .86 → TP.
    prediction = PredictedBox("capacitor", 0.91, 302 / 1024, 118 / 768, 47 / 1024, 33 / 768)
    result = evaluate_detection([DetectionSample(ref, truth.boxes, [prediction])], ["capacitor"])
    text = ev.testing_snapshot_text(result, {ref: entry}, datetime(2023, 7, 2, 9, 30, 0, 1))
    assert text == SPEC_DET_SNAPSHOT + "\n"


def _details(meta: dict[str, Any]) -> dict[str, Any]:
    return meta["rekognition-custom-labels-evaluation-details"]


def test_snapshot_details_have_every_key_and_exactly_one_outcome():
    entries = {
        s.source_ref: {
            "source-ref": s.source_ref,
            **{f"l{i}": 0 for i, _ in enumerate(sorted(s.true_labels))},
            **{
                f"l{i}-metadata": {
                    "class-name": name,
                    "confidence": 1,
                    "type": "groundtruth/image-classification",
                    "human-annotated": "yes",
                    "creation-date": "2023-01-01T00:00:00",
                }
                for i, name in enumerate(sorted(s.true_labels))
            },
        }
        for s in TWO_LABELS
    }
    result = evaluate_classification(TWO_LABELS, ["a", "b"])
    lines = [json.loads(line) for line in ev.testing_snapshot_text(result, entries, END).splitlines()]
    assert [line["source-ref"] for line in lines] == [s.source_ref for s in TWO_LABELS]
    kinds = []
    for line in lines:
        metas = [
            v
            for k, v in line.items()
            if k.startswith("rekognition-custom-labels-evaluation-") and k.endswith("-metadata")
        ]
        for meta in metas:
            details = _details(meta)
            assert list(details) == [
                "version",
                "ground-truth-labelling-jobs",
                "is-true-positive",
                "is-true-negative",
                "is-false-positive",
                "is-false-negative",
                "is-present-in-ground-truth",
            ]
            flags = [
                details[k]
                for k in ("is-true-positive", "is-true-negative", "is-false-positive", "is-false-negative")
            ]
            assert flags.count(True) == 1
            assert (
                meta["human-annotated"] == "no"
                and meta["job-name"] == "rekognition-custom-labels-evaluation-job"
            )
            kinds.append((meta["class-name"], flags.index(True)))
    # Image 2 (truth a): a .6 ≥ .6 TP, b .4 ≥ .3 FP.  Image 3 (truth b): a .7 FP, b .3 TP.
    assert kinds == [("a", 0), ("a", 0), ("b", 2), ("a", 2), ("b", 0), ("b", 0)]


def test_detection_snapshot_writes_false_negatives_with_the_missed_box_and_empty_images():
    def entry(ref: str, boxes: list[dict[str, int]]) -> dict[str, Any]:
        return {
            "source-ref": ref,
            "bb": {"image_size": [{"width": 100, "height": 200, "depth": 3}], "annotations": boxes},
            "bb-metadata": {
                "objects": [{"confidence": 1} for _ in boxes],
                "class-map": {"0": "x", "7": "y"},
                "type": "groundtruth/object-detection",
                "human-annotated": "yes",
                "creation-date": "2023-01-01T00:00:00",
            },
        }

    one = entry("s3://bkt/1.jpg", [{"class_id": 0, "left": 10, "top": 20, "width": 30, "height": 40}])
    empty = entry("s3://bkt/2.jpg", [])
    samples = [
        DetectionSample(
            "s3://bkt/1.jpg",
            ev.ground_truth_from_entry(one, ev.OBJECT_LOCALIZATION).boxes,
            [pred("y", 0.9, 0.5, 0.5)],
        ),
        DetectionSample("s3://bkt/2.jpg", (), ()),
    ]
    result = evaluate_detection(samples, ["x", "y"])
    lines = [
        json.loads(t)
        for t in ev.testing_snapshot_text(
            result, {e["source-ref"]: e for e in (one, empty)}, END
        ).splitlines()
    ]
    body, meta = (
        lines[0]["rekognition-custom-labels-evaluation"],
        lines[0]["rekognition-custom-labels-evaluation-metadata"],
    )
    # y FP at (.5, .5, .2, .2) of 100×200 px → 50/100/20/40; the missed x box is written back as 10/20/30/40.
    assert body["annotations"] == [
        {"class_id": 1, "left": 50, "top": 100, "width": 20, "height": 40},
        {"class_id": 0, "left": 10, "top": 20, "width": 30, "height": 40},
    ]
    assert meta["class-map"] == {"0": "x", "1": "y"} and meta["confidence"] == 0.9
    assert [_details(o)["is-false-positive"] for o in meta["objects"]] == [True, False]
    assert [_details(o)["is-false-negative"] for o in meta["objects"]] == [False, True]
    assert [_details(o)["is-present-in-ground-truth"] for o in meta["objects"]] == [False, True]
    assert (
        lines[0]["rekognition-custom-labels-training-0-metadata"]["job-name"]
        == "rekognition-custom-labels-training-job"
    )
    assert lines[1]["rekognition-custom-labels-evaluation"]["annotations"] == []
    assert lines[1]["rekognition-custom-labels-evaluation-metadata"]["confidence"] == 0.0


def test_snapshot_leaves_out_dropped_attributes_boxes_other_use_case_and_service_keys():
    line = json.dumps(
        {
            "source-ref": "s3://acme/b.jpg",
            "parts": {
                "image_size": [{"width": 2000, "height": 1500, "depth": 3}],
                "annotations": [
                    {"class_id": 0, "left": 10, "top": 12, "width": 1, "height": 1},
                    {"class_id": 1, "left": 700, "top": 420, "width": 150, "height": 96},
                ],
            },
            "parts-metadata": {
                "objects": [{"confidence": 1}, {"confidence": 1}],
                "class-map": {"0": "capacitor", "1": "relay"},
                "type": "groundtruth/object-detection",
                "human-annotated": "yes",
                "creation-date": "2023-06-01T10:00:00",
            },
            "kind": 0,
            "kind-metadata": {
                "class-name": "board",
                "confidence": 1,
                "type": "groundtruth/image-classification",
                "human-annotated": "yes",
                "creation-date": "2023-06-01T10:00:00",
            },
            "color": "blue",
            "rekognition-custom-labels-evaluation": "stale",
        }
    )
    entry = parse_line(line).entry
    assert entry is not None
    truth = ev.ground_truth_from_entry(entry, ev.OBJECT_LOCALIZATION)
    assert [b.label for b in truth.boxes] == ["relay"]  # the 1×1 px box was dropped by validation
    snapshot = json.loads(ev.training_snapshot_text([entry], ev.OBJECT_LOCALIZATION))
    assert list(snapshot) == [
        "source-ref",
        "rekognition-custom-labels-training-0",
        "rekognition-custom-labels-training-0-metadata",
        "color",
    ]
    assert snapshot["rekognition-custom-labels-training-0"]["annotations"] == [
        {"class_id": 1, "left": 700, "top": 420, "width": 150, "height": 96}
    ]
    assert snapshot["rekognition-custom-labels-training-0-metadata"]["objects"] == [{"confidence": 1}]
    classification = json.loads(ev.training_snapshot_text([entry], ev.IMAGE_LEVEL_LABELS))
    assert classification["rekognition-custom-labels-training-0-metadata"]["class-name"] == "board"


def test_snapshot_needs_the_entry_of_every_evaluated_image():
    result = evaluate_classification(TWO_LABELS, ["a", "b"])
    with pytest.raises(ValueError, match="no manifest entry"):
        ev.testing_snapshot_text(result, {}, END)


# --------------------------------------------------------------------------- validation manifests

SPEC_VALIDATION_LINE = (
    '{"source-ref":"s3://acme-cl-images/boards/b_90.jpg","parts":{"image_size":[{"width":2000,"height":1500,"depth":3}],'
    '"annotations":[{"class_id":0,"left":10,"top":12,"width":1,"height":1,"errors":[{"code":"ERROR_BOUNDING_BOX_TOO_SMALL",'
    '"message":"The height and width of the bounding box is too small."}]},{"class_id":1,"left":700,"top":420,"width":150,'
    '"height":96}]},"parts-metadata":{"objects":[{"confidence":1},{"confidence":1}],"class-map":{"0":"capacitor","1":"relay"},'
    '"type":"groundtruth/object-detection","human-annotated":"yes","creation-date":"2023-06-01T10:00:00"}}'
)


def _without_errors(text: str) -> str:
    data = json.loads(text)
    for box in data["parts"]["annotations"]:
        box.pop("errors", None)
    return json.dumps(data, separators=(",", ":"))


def test_validation_line_is_the_spec_example():
    original = _without_errors(SPEC_VALIDATION_LINE)
    assert ev.validation_manifest_line(original, parse_line(original)) == SPEC_VALIDATION_LINE


def test_unparseable_line_is_replaced_by_its_error_and_dropped_objects_keep_their_content():
    bad = '{"source-ref": "s3://bkt/x.jpg",'
    assert json.loads(ev.validation_manifest_line(bad, parse_line(bad))) == {
        "errors": [{"code": "ERROR_INVALID_JSON_LINE", "message": "The JSON Line has an invalid format."}]
    }
    missing = '{"label": 1}'
    assert json.loads(ev.validation_manifest_line(missing, parse_line(missing))) == {
        "label": 1,
        "errors": [{"code": "ERROR_MISSING_SOURCE_REF", "message": "The source-ref key is missing."}],
    }


def test_errors_and_warnings_go_where_section_7_6_puts_them():
    unlabeled = '{"source-ref":"s3://bkt/u.jpg"}'
    assert json.loads(ev.validation_manifest_line(unlabeled, parse_line(unlabeled)))["warnings"] == [
        {"code": "WARNING_UNANNOTATED_RECORD", "message": "Record is unannotated."}
    ]
    empty_boxes = json.dumps(
        {
            "source-ref": "s3://bkt/e.jpg",
            "bb": {"image_size": [{"width": 100, "height": 100, "depth": 3}], "annotations": []},
            "bb-metadata": {
                "objects": [],
                "class-map": {},
                "type": "groundtruth/object-detection",
                "human-annotated": "yes",
                "creation-date": "2023-01-01T00:00:00",
            },
        }
    )
    out = json.loads(ev.validation_manifest_line(empty_boxes, parse_line(empty_boxes)))
    assert out["bb"]["warnings"] == [
        {"code": "WARNING_NO_ATTRIBUTE_ANNOTATIONS", "message": "No attribute annotations were found."}
    ]
    assert out["warnings"] == [{"code": "WARNING_NO_ANNOTATIONS", "message": "No annotations were found."}]
    bad_size = json.loads(empty_boxes)
    bad_size["bb"]["image_size"] = "big"
    bad_size["bb"]["annotations"] = [{"class_id": 0, "left": 1, "top": 1, "width": 5, "height": 5}]
    text = json.dumps(bad_size)
    out = json.loads(ev.validation_manifest_line(text, parse_line(text)))
    assert out["bb"]["errors"][0]["code"] == "ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT"
    assert out["errors"][0]["code"] == "ERROR_NO_VALID_LABEL_ATTRIBUTES"
    bad_meta = '{"source-ref":"s3://bkt/m.jpg","q":1,"q-metadata":{"class-name":"a","type":"groundtruth/image-classification"}}'
    out = json.loads(ev.validation_manifest_line(bad_meta, parse_line(bad_meta), [("ERROR_X", "extra")]))
    assert out["q-metadata"]["errors"][0]["code"] == "ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT"
    assert [e["code"] for e in out["errors"]] == ["ERROR_NO_VALID_LABEL_ATTRIBUTES", "ERROR_X"]
    assert "cl-metadata" not in out and "cl-errors" not in out["q-metadata"]


def test_validation_manifest_is_line_for_line():
    texts = [_without_errors(SPEC_VALIDATION_LINE), "not json", '{"source-ref":"s3://bkt/u.jpg"}']
    out = ev.validation_manifest_text((t, parse_line(t)) for t in texts).splitlines()
    assert len(out) == 3 and out[0] == SPEC_VALIDATION_LINE and "errors" in json.loads(out[1])


# --------------------------------------------------------------------------- manifest_summary.json


def test_manifest_summary_counts_and_every_key():
    good_box = _without_errors(SPEC_VALIDATION_LINE)
    image_level = '{"source-ref":"s3://bkt/c.jpg","q":1,"q-metadata":{"class-name":"a","confidence":1,"type":"groundtruth/image-classification","human-annotated":"yes","creation-date":"2023-01-01T00:00:00"}}'
    lines = [
        good_box,
        "oops",
        '{"source-ref":"s3://bkt/u.jpg"}',
        image_level,
        '{"source-ref":"https://x/y.jpg"}',
    ]
    parsed = [(n, parse_line(t)) for n, t in enumerate(lines, start=1)]
    training = ev.dataset_statistics(
        parsed,
        ev.OBJECT_LOCALIZATION,
        [("ERROR_TOO_MANY_INVALID_ROWS_IN_MANIFEST", "The manifest file contains too many invalid rows.")],
    )
    # 5 lines: box line valid; 2 and 5 invalid (dropped); unlabeled and the image-level line are ignored for
    # an OBJECT_LOCALIZATION dataset.
    assert (
        training.total_json_lines,
        training.valid_json_lines,
        training.invalid_json_lines,
        training.ignored_json_lines,
    ) == (5, 1, 2, 2)
    assert training.error_json_line_indices == (2, 5)
    testing = ev.dataset_statistics([(1, parse_line(image_level))], ev.IMAGE_LEVEL_LABELS)
    assert ev.usable_labels([p for _, p in parsed], ev.OBJECT_LOCALIZATION) == {"relay"}
    summary = json.loads(
        ev.manifest_summary_json(
            training,
            testing,
            [
                (
                    "ERROR_INSUFFICIENT_USABLE_LABEL_OVERLAP",
                    "Less than 50% usable label overlap between the training and testing manifest files.",
                )
            ],
        )
    )
    assert list(summary) == ["errors", "statistics"]
    assert summary["errors"][0]["code"] == "ERROR_INSUFFICIENT_USABLE_LABEL_OVERLAP"
    assert list(summary["statistics"]) == ["training", "testing"]
    assert summary["statistics"]["training"] == {
        "use_case": "OBJECT_LOCALIZATION",
        "total_json_lines": 5,
        "valid_json_lines": 1,
        "invalid_json_lines": 2,
        "ignored_json_lines": 2,
        "error_json_line_indices": [2, 5],
        "errors": [
            {
                "code": "ERROR_TOO_MANY_INVALID_ROWS_IN_MANIFEST",
                "message": "The manifest file contains too many invalid rows.",
            }
        ],
    }
    assert summary["statistics"]["testing"]["valid_json_lines"] == 1
    assert summary["statistics"]["testing"]["errors"] == []


def test_manifest_summary_refuses_unknown_use_case():
    with pytest.raises(ValueError):
        ev.dataset_statistics([], "SOMETHING")
    assert ev.dataset_statistics([], ev.NOT_DETERMINED).to_dict()["use_case"] == "NOT_DETERMINED"


def test_timestamps_in_utc_helpers_are_unaffected_by_local_zone():
    moment = datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    result = evaluate_classification(TWO_LABELS, ["a", "b"])
    summary = json.loads(
        ev.summary_json(result, project_version_arn=ARN, evaluation_end=moment, number_of_training_images=0)
    )
    assert summary["EvaluationDetails"]["EvaluationEndTimestamp"] == "2024-01-02T03:04:05.000006"
