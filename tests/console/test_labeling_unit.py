"""Unit tests of the console's labeling lines (services/console/labeling.py) and upload parsing
(services/console/uploads.py): pure functions, no services."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from services.common.errors import InvalidParameter
from services.console.labeling import (
    CONSOLE_JOB,
    Box,
    Edit,
    check_line,
    edited_line,
    parse_edits,
    renamed_line,
)
from services.console.uploads import file_name, parse_labels
from services.dataset import manifest

ARN = "arn:aws:rekognition:local:000000000000:project/p/dataset/train/1"
REF = "s3://bucket/images/a.jpg"
NOW = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
SIZE = (320, 240, 3)


def classification(name: str, key: str = "label0", **meta: Any) -> dict[str, Any]:
    return {
        key: 0,
        f"{key}-metadata": {
            "class-name": name,
            "confidence": 1,
            "type": manifest.CLASSIFICATION_TYPE,
            "job-name": "gt-job",
            "human-annotated": "no",
            "creation-date": "2023-05-02T08:30:00.000",
            **meta,
        },
    }


def detection(
    boxes: list[tuple[str, int, int, int, int]], key: str = "parts", size=(320, 240)
) -> dict[str, Any]:
    names = sorted({b[0] for b in boxes})
    ids = {n: i for i, n in enumerate(names)}
    return {
        key: {
            "image_size": [{"width": size[0], "height": size[1], "depth": 3}],
            "annotations": [
                {"class_id": ids[n], "left": x, "top": y, "width": w, "height": h} for n, x, y, w, h in boxes
            ],
        },
        f"{key}-metadata": {
            "objects": [{"confidence": 1} for _ in boxes],
            "class-map": {str(i): n for n, i in ids.items()},
            "type": manifest.DETECTION_TYPE,
            "human-annotated": "yes",
            "creation-date": "2023-05-02T09:00:00",
        },
    }


def edit(labels: tuple[str, ...] = (), boxes: tuple[Box, ...] = ()) -> Edit:
    return Edit(REF, "{}", labels, boxes)


def dumps(line: dict[str, Any]) -> str:
    return json.dumps(line, separators=(",", ":"))


# -- parse_edits ------------------------------------------------------------------------------------


def test_parse_edits_reads_entries_boxes_and_dedupes_labels() -> None:
    arn, edits = parse_edits(
        {
            "DatasetArn": ARN,
            "Entries": [
                {
                    "SourceRef": REF,
                    "Base": '{"source-ref":"s3://bucket/images/a.jpg"}',
                    "Labels": ["cat", "dog", "cat"],
                    "Boxes": [{"Label": "cat", "Left": 1.5, "Top": 2, "Width": 30, "Height": 40}],
                }
            ],
        }
    )
    assert arn == ARN
    (only,) = edits
    assert only.labels == ("cat", "dog")
    assert only.boxes == (Box("cat", 1.5, 2.0, 30.0, 40.0),)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (None, "Entries must hold 1 to 100"),
        ([], "Entries must hold 1 to 100"),
        ([{"SourceRef": REF, "Base": "{}"}] * 101, "Entries must hold 1 to 100"),
        ([{"SourceRef": REF, "Base": "{}"}, {"SourceRef": REF, "Base": "{}"}], "appears twice"),
        ([{"SourceRef": REF, "Base": ""}], "Base must be a string"),
        ([{"SourceRef": REF, "Base": "{}", "Labels": "cat"}], "Labels must be a list"),
        ([{"SourceRef": REF, "Base": "{}", "Labels": ["x" * 300]}], "1 to 255 characters long"),
        ([{"SourceRef": REF, "Base": "{}", "Labels": ["   "]}], "blank"),
        ([{"SourceRef": REF, "Base": "{}", "Labels": ["a\nb"]}], "control characters"),
        (
            [
                {
                    "SourceRef": REF,
                    "Base": "{}",
                    "Boxes": [{"Label": "a", "Left": True, "Top": 0, "Width": 1, "Height": 1}],
                }
            ],
            "finite number",
        ),
        (
            [
                {
                    "SourceRef": REF,
                    "Base": "{}",
                    "Boxes": [{"Label": "a", "Left": "1", "Top": 0, "Width": 1, "Height": 1}],
                }
            ],
            "finite number",
        ),
        (
            [{"SourceRef": REF, "Base": "{}", "Boxes": [{"Left": 0, "Top": 0, "Width": 1, "Height": 1}]}],
            "must be a string",
        ),
    ],
)
def test_parse_edits_refuses_malformed_requests(entries: Any, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        parse_edits({"DatasetArn": ARN, "Entries": entries})


def test_parse_edits_names_the_length_of_a_long_label() -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_edits({"DatasetArn": ARN, "Entries": [{"SourceRef": REF, "Base": "{}", "Labels": ["y" * 300]}]})
    assert "has 300" in info.value.message


# -- edited_line ------------------------------------------------------------------------------------


def test_edited_line_keeps_kept_labels_drops_removed_and_adds_new_ones() -> None:
    base = {
        "source-ref": REF,
        **classification("cat"),
        **classification("dog", "label1"),
        "color": "blue",
        "cl-metadata": {"is_labeled": True},
    }
    line = edited_line(base, edit(("cat", "bird")), None, NOW)
    assert line["label0-metadata"]["job-name"] == "gt-job"
    assert line["label0-metadata"]["creation-date"] == "2023-05-02T08:30:00.000"
    assert line["label0-metadata"]["human-annotated"] == "yes"
    assert "label1" not in line and "label1-metadata" not in line
    assert line["color"] == "blue"
    assert "cl-metadata" not in line
    added = line["label-0-metadata"]
    assert added["class-name"] == "bird"
    assert added["job-name"] == CONSOLE_JOB
    assert added["creation-date"] == "2026-01-02T03:04:05.678"
    check_line(dumps(line), None, dumps(base))


def test_edited_line_picks_a_free_attribute_name() -> None:
    base = {"source-ref": REF, **classification("cat", "label-0")}
    line = edited_line(base, edit(("dog",)), None, NOW)
    assert "label-0" not in line
    assert line["label-1-metadata"]["class-name"] == "dog"


def test_edited_line_writes_boxes_in_whole_pixels_with_a_class_map() -> None:
    boxes = (Box("car", 10.4, 20.6, 50.2, 30.0), Box("bike", 0, 0, 320, 240), Box("car", 100, 100, 10, 10))
    line = edited_line({"source-ref": REF}, edit(boxes=boxes), SIZE, NOW)
    body, meta = line["bounding-box"], line["bounding-box-metadata"]
    assert body["image_size"] == [{"width": 320, "height": 240, "depth": 3}]
    assert body["annotations"] == [
        {"class_id": 0, "left": 10, "top": 21, "width": 51, "height": 30},
        {"class_id": 1, "left": 0, "top": 0, "width": 320, "height": 240},
        {"class_id": 0, "left": 100, "top": 100, "width": 10, "height": 10},
    ]
    assert meta["class-map"] == {"0": "car", "1": "bike"}
    assert meta["objects"] == [{"confidence": 1}] * 3
    assert meta["type"] == manifest.DETECTION_TYPE
    check_line(dumps(line), (320, 240))


def test_edited_line_reuses_the_box_attribute_and_removes_it_when_no_box_is_left() -> None:
    base = {"source-ref": REF, **detection([("car", 1, 2, 30, 40)])}
    moved = edited_line(base, edit(boxes=(Box("truck", 5, 5, 20, 20),)), SIZE, NOW)
    assert list(moved) == ["source-ref", "parts", "parts-metadata"]
    assert moved["parts-metadata"]["class-map"] == {"0": "truck"}
    emptied = edited_line(base, edit(), SIZE, NOW)
    assert emptied == {"source-ref": REF}
    check_line(dumps(emptied), None, dumps(base))


@pytest.mark.parametrize(
    ("box", "message"),
    [
        (Box("car", 300, 20, 50, 40), "lies outside the 320×240 image"),
        (Box("car", -1, 0, 10, 10), "lies outside"),
        (Box("car", 0, 200, 10, 41), "lies outside"),
        (Box("car", 10, 10, 0, 10), "has no area"),
        (Box("car", 10, 10, 0.3, 10), "has no area"),
    ],
)
def test_edited_line_refuses_boxes_outside_the_image_or_without_area(box: Box, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        edited_line({"source-ref": REF}, edit(boxes=(box,)), SIZE, NOW)


def test_edited_line_rounds_a_box_touching_the_edge_into_the_image() -> None:
    line = edited_line({"source-ref": REF}, edit(boxes=(Box("car", 299.6, 0.4, 20.3, 239.5),)), SIZE, NOW)
    assert line["bounding-box"]["annotations"] == [
        {"class_id": 0, "left": 300, "top": 0, "width": 20, "height": 240}
    ]


def test_edited_line_needs_the_size_for_boxes() -> None:
    with pytest.raises(ValueError):
        edited_line({"source-ref": REF}, edit(boxes=(Box("car", 1, 1, 5, 5),)), None, NOW)


def test_edited_line_rewrites_a_kept_label_the_service_flagged() -> None:
    broken = classification("cat", confidence="high")
    broken["label0-metadata"]["cl-errors"] = [
        {"code": "ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT", "message": "x"}
    ]
    line = edited_line({"source-ref": REF, **broken}, edit(("cat",)), None, NOW)
    assert line["label0-metadata"]["confidence"] == 1
    assert line["label0-metadata"]["job-name"] == CONSOLE_JOB
    check_line(dumps(line), None)


# -- check_line -------------------------------------------------------------------------------------


def test_check_line_refuses_a_box_too_small_for_training() -> None:
    # 4096 px is scaled to 1280 for training: a 3 px box is under 1 px there.
    line = {"source-ref": REF, **detection([("dot", 10, 10, 3, 40)], size=(4096, 3072))}
    with pytest.raises(InvalidParameter, match=manifest.ERROR_BOUNDING_BOX_TOO_SMALL):
        check_line(dumps(line), (4096, 3072))
    check_line(
        dumps({"source-ref": REF, **detection([("dot", 10, 10, 4, 40)], size=(4096, 3072))}), (4096, 3072)
    )


def test_check_line_checks_boxes_against_the_real_size_not_the_declared_one() -> None:
    line = {"source-ref": REF, **detection([("car", 200, 10, 100, 40)], size=(320, 240))}
    with pytest.raises(InvalidParameter, match=manifest.ERROR_INVALID_BOUNDING_BOX):
        check_line(dumps(line), (256, 240))


def test_check_line_refuses_a_long_label_and_a_dropped_line() -> None:
    with pytest.raises(InvalidParameter, match=manifest.ERROR_INVALID_LABEL_NAME_LENGTH):
        check_line(dumps({"source-ref": REF, **classification("z" * 300)}), None)
    with pytest.raises(InvalidParameter, match=manifest.ERROR_INVALID_SOURCE_REF_FORMAT):
        check_line(dumps({"source-ref": "not-s3", **classification("cat")}), None)


def test_check_line_lets_errors_the_stored_line_had_through_but_no_new_ones() -> None:
    odd = {"seg": 0, "seg-metadata": {"type": "groundtruth/semantic-segmentation", "class-name": "x"}}
    base = {"source-ref": REF, **classification("cat"), **odd}
    assert manifest.parse_line(dumps(base)).errors, "the fixture must hold an error"
    with pytest.raises(InvalidParameter):
        check_line(dumps(base), None)
    kept = edited_line(base, edit(("cat", "dog")), None, NOW)
    assert kept["seg-metadata"] == odd["seg-metadata"]
    check_line(dumps(kept), None, dumps(base))
    worse = {**kept, **classification("q" * 300, "label9")}
    with pytest.raises(InvalidParameter, match=manifest.ERROR_INVALID_LABEL_NAME_LENGTH):
        check_line(dumps(worse), None, dumps(base))


# -- renamed_line -----------------------------------------------------------------------------------


def test_renamed_line_renames_image_level_labels_and_class_maps() -> None:
    base = {
        "source-ref": REF,
        **classification("cat"),
        **classification("dog", "label1"),
        **detection([("cat", 1, 2, 30, 40), ("mouse", 50, 60, 10, 10)]),
        "cl-metadata": {"is_labeled": True},
        "cl-errors": [],
    }
    base["parts"]["annotations"][0]["cl-errors"] = []
    line = renamed_line(base, "cat", "kitten")
    assert line["label0-metadata"]["class-name"] == "kitten"
    assert line["label1-metadata"]["class-name"] == "dog"
    assert line["parts-metadata"]["class-map"] == {"0": "kitten", "1": "mouse"}
    assert line["parts"]["annotations"] == base["parts"]["annotations"]
    assert not any(key.startswith("cl-") for key in line)
    check_line(dumps(line), (320, 240))


def test_renamed_line_merges_an_image_that_had_both_labels() -> None:
    base = {"source-ref": REF, **classification("cat"), **classification("kitten", "label1")}
    line = renamed_line(base, "cat", "kitten")
    names = [v["class-name"] for k, v in line.items() if k.endswith("-metadata")]
    assert names == ["kitten"]


def test_renamed_line_leaves_lines_without_the_label_unchanged() -> None:
    base = {"source-ref": REF, **classification("dog"), "color": "blue"}
    assert renamed_line(base, "cat", "kitten") == base


# -- uploads ----------------------------------------------------------------------------------------


def test_file_name_undoes_the_browsers_multipart_escapes() -> None:
    assert file_name("%22><img src=x onerror=alert(1)>.jpg") == '"><img src=x onerror=alert(1)>.jpg'
    assert file_name("a%0d%0Ab.jpg") == "a\r\nb.jpg"
    assert file_name("photos/cats/100%.jpg") == "photos/cats/100%.jpg"


def test_parse_labels_takes_one_list_per_file() -> None:
    assert parse_labels(None, 2) == [(), ()]
    assert parse_labels('[["cat", "cat"], []]', 2) == [("cat",), ()]
    with pytest.raises(InvalidParameter, match="one list of labels for each of the 3 files"):
        parse_labels('[["cat"]]', 3)
    with pytest.raises(InvalidParameter, match="1 to 255"):
        parse_labels(json.dumps([["x" * 256]]), 1)
