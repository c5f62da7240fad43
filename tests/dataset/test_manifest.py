"""services/dataset/manifest.py against spec/manifest.md: every code, precedence, hostile input, real manifests.

Pure unit tests (no stack): lines in, ParsedLine / summaries out. The real manifests come from
../shared/datasets (next to the repository root on CI machines; /work/shared as a fallback).
"""

from __future__ import annotations

import collections
import copy
import gzip
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.dataset import manifest as m
from services.dataset.manifest import ManifestLimits, ParsedLine, parse_line

_NEXT_TO_REPO = Path(__file__).resolve().parents[2].parent / "shared"
SHARED = _NEXT_TO_REPO if _NEXT_TO_REPO.is_dir() else Path("/work/shared")
DATASETS = SHARED / "datasets"
FIXTURES = DATASETS / "manifest-fixtures"

REF = "s3://acme-cl-images/boards/b_17.jpg"
MSG = m.MESSAGES


# --------------------------------------------------------------------------- builders


def cls_meta(label: str = "ripe", **over: Any) -> dict[str, Any]:
    meta = {
        "class-name": label,
        "confidence": 1,
        "type": "groundtruth/image-classification",
        "job-name": "fruit-grading",
        "human-annotated": "yes",
        "creation-date": "2023-05-02T08:30:00.000",
    }
    meta.update(over)
    return {k: v for k, v in meta.items() if v is not DROP}


DROP = object()  # marks a key to leave out


def cls_line(label: str = "ripe", attr: str = "quality", value: Any = 3, **meta: Any) -> dict[str, Any]:
    return {"source-ref": REF, attr: value, f"{attr}-metadata": cls_meta(label, **meta)}


def box(
    class_id: Any = 0, left: Any = 120, top: Any = 80, width: Any = 64, height: Any = 40
) -> dict[str, Any]:
    return {"class_id": class_id, "left": left, "top": top, "width": width, "height": height}


def box_line(
    boxes: list[dict[str, Any]] | None = None,
    size: Any = (1024, 768),
    attr: str = "parts",
    class_map: Any = None,
    objects: Any = None,
    **meta: Any,
) -> dict[str, Any]:
    boxes = [box(0), box(1, 500, 300, 90, 90)] if boxes is None else boxes
    image_size = [{"width": size[0], "height": size[1], "depth": 3}] if isinstance(size, tuple) else size
    metadata = {
        "objects": [{"confidence": 1} for _ in boxes] if objects is None else objects,
        "class-map": {"0": "capacitor", "1": "relay"} if class_map is None else class_map,
        "type": "groundtruth/object-detection",
        "human-annotated": "yes",
        "creation-date": "2023-05-02T09:00:00",
        "job-name": "boards-bbox",
    }
    metadata.update(meta)
    metadata = {k: v for k, v in metadata.items() if v is not DROP}
    return {
        "source-ref": REF,
        attr: {"image_size": image_size, "annotations": boxes},
        f"{attr}-metadata": metadata,
    }


def parse(line: dict[str, Any] | str, limits: ManifestLimits = m.DEFAULT_LIMITS) -> ParsedLine:
    return parse_line(line if isinstance(line, str) else json.dumps(line), limits)


def where(p: ParsedLine) -> list[tuple[str, str, str | None, int | None]]:
    """(code, scope, attribute, index) of every error."""
    return [(i.code, i.scope, i.attribute, i.index) for i in p.errors]


def item(code: str, message: str | None = None) -> dict[str, str]:
    return {"code": code, "message": message or MSG[code]}


def fmt(attr: str) -> str:
    return f"The format of the label attribute {attr} is invalid."


def read(path: Path) -> list[ParsedLine]:
    return [parse_line(t) for t in m.split_lines(path.read_bytes())]


# --------------------------------------------------------------------------- valid lines (§2, §3)


def test_the_spec_examples_are_valid_and_stored_compactly_in_key_order():
    single = cls_line()
    p = parse(single)
    assert p.dropped is None and not p.has_errors and not p.line_error and p.is_labeled
    assert p.kind == "classification" and p.labels == p.image_labels == {"ripe"} and p.box_counts == {}
    assert (p.source_ref, p.bucket, p.key) == (REF, "acme-cl-images", "boards/b_17.jpg")
    assert p.warnings == () and p.errors == ()
    assert p.to_json() == json.dumps({**single, "cl-metadata": {"is_labeled": True}}, separators=(",", ":"))

    multi = {
        "source-ref": "s3://acme-cl-images/flowers/f_0042.png",
        "flower0": 0,
        "flower0-metadata": cls_meta("tulip", confidence=0.9),
        "flower1": 1,
        "flower1-metadata": cls_meta("with_leaves", confidence=0.9),
    }
    p = parse(multi)
    assert p.kind == "classification" and p.image_labels == {"tulip", "with_leaves"} and not p.has_errors

    boxes = box_line()
    p = parse(boxes)
    assert p.kind == "detection" and p.labels == {"capacitor", "relay"} and p.image_labels == frozenset()
    assert p.box_counts == {"capacitor": 1, "relay": 1} and p.box_count == 2 and p.image_size == (1024, 768)
    assert list(json.loads(p.to_json())) == ["source-ref", "parts", "parts-metadata", "cl-metadata"]


def test_stored_line_keeps_non_ascii_floats_and_extra_keys_untouched():
    line = box_line([box(0, 105.2, 143.60000000000002, 140, 154.59999999999997)], size=(375, 500))
    line["color"] = "blue"
    line["object"] = {"nested": [1, {"x": None}]}
    line["parts-metadata"]["class-map"] = {"0": "Äpfel 🍎"}
    line["parts"]["annotations"][0]["label"] = "kept"
    p = parse(line)
    assert not p.has_errors and p.labels == {"Äpfel 🍎"}
    text = p.to_json()
    assert "Äpfel 🍎" in text and "143.60000000000002" in text and "154.59999999999997" in text
    assert ", " not in text and ": " not in text
    back = json.loads(text)
    assert back["color"] == "blue" and back["object"] == {"nested": [1, {"x": None}]}
    assert back["parts"]["annotations"][0]["label"] == "kept"


def test_image_size_may_be_a_plain_object_and_boxes_may_touch_the_edges():
    line = box_line([box(0, 0, 0, 1024, 768)])
    line["parts"]["image_size"] = {"width": 1024, "height": 768, "depth": 3}
    p = parse(line)
    assert not p.has_errors and p.box_counts == {"capacitor": 1} and p.image_size == (1024, 768)


def test_a_line_may_mix_image_level_and_box_attributes():
    line = box_line([box(0)])
    line.update({k: v for k, v in cls_line("ripe").items() if k != "source-ref"})
    p = parse(line)
    assert p.kind == "detection" and p.labels == {"capacitor", "ripe"} and p.image_labels == {"ripe"}


@pytest.mark.parametrize(
    "date",
    [
        "2023-05-02T08:30:00",
        "2019-01-29T13:29:11.798957",
        "2021-06-09T05:26:56.180Z",
        "2023-05-02T08:30:00+02:00",
        "2023-05-02 08:30:00.1",
    ],
)
def test_creation_dates_in_the_forms_ground_truth_and_users_write(date):
    assert not parse(cls_line(**{"creation-date": date})).has_errors
    assert not parse(box_line(**{"creation-date": date})).has_errors


def test_optional_job_name_and_any_integer_attribute_value():
    assert not parse(cls_line(**{"job-name": DROP})).has_errors
    for value in (0, -7, 10**30):
        assert not parse(cls_line(value=value)).has_errors


# --------------------------------------------------------------------------- drops (§6.2)


def test_line_longer_than_100000_chars_is_dropped_and_the_limit_itself_is_fine():
    line = cls_line()
    line["pad"] = ""
    base = len(json.dumps(line))
    line["pad"] = "x" * (100_000 - base)
    assert len(json.dumps(line)) == 100_000 and parse(line).dropped is None
    line["pad"] += "x"
    p = parse(line)
    assert p.dropped == "ERROR_LINE_TOO_LONG" and p.entry is None and p.kind == "invalid"
    assert p.message == "The JSON Line is longer than the maximum of 100000 characters."
    assert parse(line, ManifestLimits(max_line_chars=200_000)).dropped is None
    with pytest.raises(ValueError):
        p.to_json()


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "{",
        '{"source-ref": "s3://bucket/a.jpg"',
        '{"source-ref": "s3://bucket/a.jpg"}}',
        '{"source-ref": "s3://bucket/a.jpg",}',
        "{'source-ref': 's3://bucket/a.jpg'}",
        "[]",
        '[{"source-ref": "s3://bucket/a.jpg"}]',
        "42",
        '"s3://bucket/a.jpg"',
        "null",
        "true",
        '{"source-ref": "s3://bucket/a.jpg", "x": NaN}',
        '{"source-ref": "s3://bucket/a.jpg", "x": Infinity}',
        '{"source-ref": "s3://bucket/a.jpg", "x": -Infinity}',
        '{"source-ref": "s3://bucket/a.jpg", "x": 1e999}',
        '{"source-ref": "s3://bucket/a.jpg", "x": "\\ud800"}',
        '{"source-ref": "s3://bucket/a\\udfff.jpg"}',
        '{"source-ref": "s3://bucket/a.jpg", "x": 1' + "0" * 5000 + "}",
        "\ufeff" + '{"source-ref": "s3://b/a.jpg"}',
        '{"source-ref": "s3://bucket/a.jpg"} {"source-ref": "s3://bucket/b.jpg"}',
        "[" * 100_000,
        "{" * 50_000,
        '{"source-ref": "s3://bucket/a.jpg", "x": ' + "[" * 5000 + "]" * 5000 + "}",
        '{"source-ref": "s3://bucket/a\udcff.jpg"}',
    ],
)
def test_what_is_not_a_json_object_is_dropped_as_invalid_json(text):
    p = parse_line(text)
    assert (p.dropped, p.message, p.entry) == (
        "ERROR_INVALID_JSON_LINE",
        "The JSON Line has an invalid format.",
        None,
    )


def test_nesting_is_limited_by_the_configured_depth_not_by_the_interpreter_stack():
    deep = '{"source-ref": "s3://bucket/a.jpg", "x": ' + "[" * 99 + "]" * 99 + "}"
    p = parse_line(deep)
    assert p.dropped is None and p.to_json().count("[") == 99
    assert parse_line(deep.replace("[", "[[", 1).replace("]", "]]", 1)).dropped == "ERROR_INVALID_JSON_LINE"
    # brackets inside strings are text, not nesting
    assert parse_line(json.dumps({"source-ref": "s3://bucket/a.jpg", "x": "[" * 500})).dropped is None


@pytest.mark.parametrize(
    "line",
    [{"label": 1}, {"source_ref": REF}, {"Source-Ref": REF}, {"source-ref ": REF}, {"source-ref": None}, {}],
)
def test_missing_source_ref_is_dropped(line):
    p = parse(line)
    assert (p.dropped, p.message) == ("ERROR_MISSING_SOURCE_REF", "The source-ref key is missing.")


@pytest.mark.parametrize(
    "ref",
    [
        "s3://bucket/../etc/passwd",
        "s3://b/../etc/passwd",
        "s3://b//x",
        "s3:/b/x",
        "https://b/x",
        "s3://bucket/a/../../etc/passwd",
        "s3://bucket/..",
        "s3://bucket/a/..",
        "s3://bucket/./a.jpg",
        "s3://bucket/a/./b.jpg",
        "s3://bucket//x",
        "s3://bucket/a//b",
        "s3://bucket/a/",
        "s3://bucket/",
        "s3://bucket",
        "s3:///key.jpg",
        "s3:/bucket/x",
        "s3:bucket/x",
        "https://bucket.s3.amazonaws.com/x.jpg",
        "http://bucket/x",
        "file:///etc/passwd",
        "/etc/passwd",
        "S3://bucket/x",
        " s3://bucket/x",
        "s3://bucket/x\x00.jpg",
        "s3://bucket/x\n.jpg",
        "s3://bucket/x\r",
        "s3://bucket/x\t.jpg",
        "s3://bucket/x\x7f",
        "s3://bucket/x\x85",
        "s3://bucket/..\\..\\x.jpg",
        "s3://bu/x.jpg",
        "s3://" + "b" * 64 + "/x.jpg",
        "s3://-bucket/x",
        "s3://bucket-/x",
        "s3://.bucket/x",
        "s3://buc ket/x",
        "s3://bucket!/x",
        "s3://bücket/x",
        "s3://bucket/" + "k" * 1025,
        "s3://bucket/" + "é" * 513,
        "",
    ],
)
def test_unsafe_or_malformed_source_refs_are_dropped(ref):
    p = parse({"source-ref": ref, **{k: v for k, v in cls_line().items() if k != "source-ref"}})
    assert (p.dropped, p.message) == (
        "ERROR_INVALID_SOURCE_REF_FORMAT",
        "The format of the source-ref value is invalid.",
    )
    assert p.bucket is None and p.key is None


@pytest.mark.parametrize("value", [42, 1.5, True, False, ["s3://bucket/a.jpg"], {"s3": "bucket"}])
def test_a_source_ref_that_is_not_a_string_is_invalid_format(value):
    assert parse({"source-ref": value}).dropped == "ERROR_INVALID_SOURCE_REF_FORMAT"


@pytest.mark.parametrize(
    ("ref", "bucket", "key"),
    [
        (
            "s3://my-rekognition-customlabels-XYZ/animals/img1.jpeg",
            "my-rekognition-customlabels-XYZ",
            "animals/img1.jpeg",
        ),
        (
            "s3://bcbs-logo-training-images/gray_images/BCBS logo 2.png",
            "bcbs-logo-training-images",
            "gray_images/BCBS logo 2.png",
        ),
        ("s3://abc/x", "abc", "x"),
        ("s3://" + "b" * 63 + "/x", "b" * 63, "x"),
        ("s3://a.b_c-d/a..b/.hidden/...jpg", "a.b_c-d", "a..b/.hidden/...jpg"),
        ("s3://bucket/ünïcödé/猫.jpg", "bucket", "ünïcödé/猫.jpg"),
        ("s3://bucket/a%2F..%2Fb.jpg", "bucket", "a%2F..%2Fb.jpg"),
        ("s3://bucket/" + "k" * 1024, "bucket", "k" * 1024),
    ],
)
def test_valid_source_refs_split_into_bucket_and_key(ref, bucket, key):
    p = parse({"source-ref": ref})
    assert (p.dropped, p.source_ref, p.bucket, p.key) == (None, ref, bucket, key)


# --------------------------------------------------------------------------- line-scope codes


def test_only_source_ref_is_an_unlabeled_entry_with_a_warning_not_an_error():
    for line in ({"source-ref": REF}, {"source-ref": REF, "color": "blue", "object": "box", "n": 3}):
        p = parse(line)
        assert p.warnings == ("WARNING_UNANNOTATED_RECORD",) and p.errors == ()
        assert (
            not p.has_errors and not p.line_error and not p.is_labeled and p.kind == "unlabeled" and p.ignored
        )
        assert p.entry == {**line, "cl-metadata": {"is_labeled": False}}


@pytest.mark.parametrize(
    "extra",
    [
        {"quality-metadata": cls_meta()},  # metadata without its attribute
        {"quality": 3, "quality-meta": cls_meta()},  # misnamed metadata key
        {"parts": box_line()["parts"]},  # box attribute without metadata
        {"parts": {"image_size": [{"width": 10, "height": 10, "depth": 3}]}},
        {"parts": {"annotations": []}, "parts-metdata": {}},
    ],
)
def test_attribute_or_metadata_without_its_partner_is_no_label_attributes(extra):
    p = parse({"source-ref": REF, **extra})
    assert where(p) == [("ERROR_NO_LABEL_ATTRIBUTES", "line", None, None)]
    assert (
        p.entry["cl-errors"] == [item("ERROR_NO_LABEL_ATTRIBUTES")]
        and MSG["ERROR_NO_LABEL_ATTRIBUTES"] == "No label attributes found."
    )
    assert (
        p.line_error and p.has_errors and not p.is_labeled and p.kind == "invalid" and p.labels == frozenset()
    )
    assert p.warnings == ()


def test_an_orphan_next_to_a_valid_pair_is_kept_and_ignored():
    line = {**cls_line(), "other-metadata": cls_meta("x"), "loose": {"annotations": []}}
    p = parse(line)
    assert not p.has_errors and p.labels == {"ripe"}
    assert p.entry["other-metadata"] == cls_meta("x") and p.entry["loose"] == {"annotations": []}


def test_no_valid_label_attributes_when_every_attribute_fails():
    line = cls_line(type="groundtruth/bbox")
    line["second"] = "x"
    line["second-metadata"] = cls_meta("y")
    p = parse(line)
    assert where(p) == [
        ("ERROR_UNSUPPORTED_USE_CASE_TYPE", "attribute", "quality", None),
        ("ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT", "attribute", "second", None),
        ("ERROR_NO_VALID_LABEL_ATTRIBUTES", "line", None, None),
    ]
    assert p.entry["cl-errors"] == [
        item("ERROR_NO_VALID_LABEL_ATTRIBUTES", "No valid label attributes found.")
    ]
    assert p.line_error and p.is_labeled and p.kind == "invalid" and p.labels == frozenset()


def test_one_bad_attribute_does_not_stop_the_others():
    line = cls_line("good")
    line["bad"] = True
    line["bad-metadata"] = cls_meta("ignored")
    p = parse(line)
    assert where(p) == [("ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT", "attribute", "bad", None)]
    assert p.has_errors and not p.line_error and p.kind == "classification" and p.labels == {"good"}
    assert p.entry["bad-metadata"]["cl-errors"] == [item("ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT", fmt("bad"))]
    assert "cl-errors" not in p.entry and "cl-errors" not in p.entry["quality-metadata"]


def test_the_section_8_example_is_reproduced_byte_for_byte():
    expected = (
        '{"source-ref":"s3://acme-cl-images/boards/b_31.jpg","BB":{"image_size":[{"width":800,"height":600,"depth":3}],'
        '"annotations":[{"class_id":0,"left":5,"top":5,"width":40,"height":30}]},"BB-metadata":{"objects":'
        '[{"confidence":1}],"class-map":{"0":"fuse"},"type":"groundtruth/bbox","human-annotated":"yes",'
        '"creation-date":"2023-06-02T12:00:00","cl-errors":[{"code":"ERROR_UNSUPPORTED_USE_CASE_TYPE","message":'
        '"The use case type of the BB-metadata label attribute metadata is unsupported. Check the type field."}]},'
        '"cl-metadata":{"is_labeled":true},"cl-errors":[{"code":"ERROR_NO_VALID_LABEL_ATTRIBUTES","message":'
        '"No valid label attributes found."}]}'
    )
    p = parse_line(expected)  # its own cl-* keys are stripped and recomputed to the same thing
    assert p.to_json() == expected
    incoming = json.loads(expected)
    del incoming["cl-metadata"], incoming["cl-errors"], incoming["BB-metadata"]["cl-errors"]
    assert parse(incoming).to_json() == expected


def test_declared_image_size_outside_64_to_4096_is_an_image_dimension_line_error():
    for size in ((63, 500), (500, 63), (4097, 100), (48, 48)):
        p = parse(box_line([box(0, 0, 0, 10, 10)], size=size))
        assert where(p) == [("ERROR_INVALID_IMAGE_DIMENSION", "line", None, None)], size
        assert p.entry["cl-errors"] == [
            item(
                "ERROR_INVALID_IMAGE_DIMENSION",
                "The image dimension(s) do not conform to allowed dimensions.",
            )
        ]
        assert p.line_error and p.kind == "invalid" and p.box_counts == {"capacitor": 1}
    for size in ((64, 64), (4096, 4096), (64, 4096)):
        assert not parse(box_line([box(0, 0, 0, 10, 10)], size=size)).has_errors


def test_more_than_50_valid_boxes_is_a_line_error_and_invalid_boxes_do_not_count():
    boxes = [box(0, i, i, 20, 20) for i in range(51)]
    p = parse(box_line(boxes, class_map={"0": "bee"}))
    assert where(p) == [("ERROR_TOO_MANY_BOUNDING_BOXES", "line", None, None)]
    assert p.entry["cl-errors"] == [
        item("ERROR_TOO_MANY_BOUNDING_BOXES", "There are more bounding boxes than the allowed maximum.")
    ]
    assert p.line_error and p.box_counts == {"bee": 51}
    assert not parse(box_line(boxes[:50], class_map={"0": "bee"})).has_errors
    # † 51 boxes of which one is off frame: 50 usable boxes, the line stays usable
    p = parse(box_line([*boxes[:50], box(0, -1, 0, 20, 20)], class_map={"0": "bee"}))
    assert where(p) == [("ERROR_INVALID_BOUNDING_BOX", "annotation", "parts", 50)] and not p.line_error
    # the limit is per image, over all box attributes of the line
    two = box_line(boxes[:30], class_map={"0": "bee"})
    two.update(
        {
            k.replace("parts", "more"): v
            for k, v in box_line(boxes[:21], class_map={"0": "bee"}).items()
            if k != "source-ref"
        }
    )
    assert [i.code for i in parse(two).errors] == ["ERROR_TOO_MANY_BOUNDING_BOXES"]


def test_every_box_invalid_is_no_valid_annotations():
    p = parse(box_line([box(0, -5), box(1, 10, 10, 1, 1)]))
    assert where(p) == [
        ("ERROR_INVALID_BOUNDING_BOX", "annotation", "parts", 0),
        ("ERROR_BOUNDING_BOX_TOO_SMALL", "annotation", "parts", 1),
        ("ERROR_NO_VALID_ANNOTATIONS", "line", None, None),
    ]
    assert p.entry["cl-errors"] == [item("ERROR_NO_VALID_ANNOTATIONS", "No valid annotations found.")]
    assert p.line_error and p.labels == frozenset() and p.box_counts == {} and p.annotation_count == 2


def test_more_than_50_image_level_labels_is_a_line_error():
    line: dict[str, Any] = {"source-ref": REF}
    for i in range(51):
        line[f"l{i}"] = i
        line[f"l{i}-metadata"] = cls_meta(f"label{i}")
    p = parse(line)
    assert where(p) == [("ERROR_TOO_MANY_LABELS_PER_IMAGE", "line", None, None)]
    assert p.entry["cl-errors"] == [
        item("ERROR_TOO_MANY_LABELS_PER_IMAGE", "There are more labels than the allowed maximum.")
    ]
    assert p.line_error and len(p.image_labels) == 51
    del line["l50"], line["l50-metadata"]
    assert not parse(line).has_errors
    # the same label twice is one label
    line["l50"] = 50
    line["l50-metadata"] = cls_meta("label0")
    assert not parse(line).has_errors


# --------------------------------------------------------------------------- attribute-scope codes


@pytest.mark.parametrize("value", ["3", 1.5, 3.0, True, False, None, [3], {"id": 3}])
def test_image_level_value_must_be_an_integer(value):
    p = parse(cls_line(value=value))
    assert where(p) == [
        ("ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT", "attribute", "quality", None),
        ("ERROR_NO_VALID_LABEL_ATTRIBUTES", "line", None, None),
    ]
    assert p.entry["quality-metadata"]["cl-errors"] == [
        item("ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT", "The format of the label attribute quality is invalid.")
    ]


def _set(path: str, value: Any):
    """A mutation of box_line(): path like 'parts.image_size' or 'parts.annotations.0.left'; DROP deletes."""

    def mutate(line: dict[str, Any]) -> dict[str, Any]:
        *parents, last = path.split(".")
        node: Any = line
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if isinstance(node, list):
            node[int(last)] = value
        elif value is DROP:
            del node[last]
        else:
            node[last] = value
        return line

    return mutate


@pytest.mark.parametrize(
    "mutate",
    [
        _set("parts", [1, 2]),
        _set("parts", 7),
        _set("parts", "s3://x/y.png"),
        _set("parts.image_size", DROP),
        _set("parts.image_size", []),
        _set("parts.image_size", [{"width": 9, "height": 9, "depth": 3}] * 2),
        _set("parts.image_size", [[1024, 768]]),
        _set("parts.image_size.0.width", "1024"),
        _set("parts.image_size.0.width", True),
        _set("parts.image_size.0.width", 1024.0),
        _set("parts.image_size.0.height", 0),
        _set("parts.image_size.0.height", -768),
        _set("parts.image_size.0.depth", DROP),
        _set("parts.image_size.0.depth", False),
        _set("parts.annotations", {"0": box()}),
        _set("parts.annotations", "none"),
        _set("parts.annotations.0", [0, 1]),
        _set("parts.annotations.0", None),
        _set("parts.annotations.0.class_id", "0"),
        _set("parts.annotations.0.class_id", True),
        _set("parts.annotations.0.class_id", 0.0),
        _set("parts.annotations.0.class_id", DROP),
        _set("parts.annotations.0.left", "120"),
        _set("parts.annotations.0.left", True),
        _set("parts.annotations.0.left", None),
        _set("parts.annotations.0.width", DROP),
        _set("parts.annotations.1.height", [90]),
    ],
)
def test_malformed_box_attribute_is_attribute_format(mutate):
    p = parse(mutate(box_line()))
    assert where(p) == [
        ("ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT", "attribute", "parts", None),
        ("ERROR_NO_VALID_LABEL_ATTRIBUTES", "line", None, None),
    ]
    assert p.entry["parts-metadata"]["cl-errors"] == [
        item("ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT", fmt("parts"))
    ]


@pytest.mark.parametrize(
    "over",
    [
        {"class-name": DROP},
        {"class-name": 7},
        {"class-name": None},
        {"class-name": ["a"]},
        {"confidence": DROP},
        {"confidence": "1"},
        {"confidence": True},
        {"confidence": None},
        {"confidence": 1.01},
        {"confidence": -0.1},
        {"human-annotated": DROP},
        {"human-annotated": "Yes"},
        {"human-annotated": True},
        {"human-annotated": "maybe"},
        {"creation-date": DROP},
        {"creation-date": 20230502},
        {"creation-date": "yesterday"},
        {"creation-date": "2023-05-02"},
        {"creation-date": "2023-13-02T08:30:00"},
        {"creation-date": "2023-05-02T25:00:00"},
        {"job-name": 5},
        {"job-name": None},
    ],
)
def test_malformed_image_level_metadata_is_metadata_format(over):
    p = parse(cls_line(**over))
    assert where(p) == [
        ("ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT", "attribute", "quality", None),
        ("ERROR_NO_VALID_LABEL_ATTRIBUTES", "line", None, None),
    ]
    assert p.entry["quality-metadata"]["cl-errors"] == [
        item(
            "ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT",
            "The format of the label attribute metadata is invalid.",
        )
    ]


@pytest.mark.parametrize(
    "over",
    [
        {"objects": DROP},
        {"objects": {"0": {"confidence": 1}}},
        {"class-map": DROP},
        {"class-map": [["0", "a"]]},
        {"class-map": {"0": 5, "1": "relay"}},
        {"class-map": {"0": "capacitor", "1": None}},
        {"objects": [{"confidence": "high"}, {"confidence": 1}]},
        {"objects": [{"confidence": True}, {"confidence": 1}]},
        {"objects": [{"confidence": 2}, {"confidence": 1}]},
        {"human-annotated": "no way"},
        {"creation-date": None},
        {"job-name": ["x"]},
    ],
)
def test_malformed_box_metadata_is_metadata_format(over):
    p = parse(box_line(**over))
    assert where(p)[0] == ("ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT", "attribute", "parts", None)
    assert p.entry["parts-metadata"]["cl-errors"] == [item("ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT")]


@pytest.mark.parametrize("meta", [5, "x", None, [cls_meta()], True])
def test_metadata_that_is_not_an_object_is_metadata_format_reported_at_the_top(meta):
    p = parse({"source-ref": REF, "quality": 3, "quality-metadata": meta})
    assert where(p) == [
        ("ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT", "attribute", "quality", None),
        ("ERROR_NO_VALID_LABEL_ATTRIBUTES", "line", None, None),
    ]
    # nowhere inside the metadata to put it, so it goes next to the line errors
    assert p.entry["cl-errors"] == [
        item("ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT"),
        item("ERROR_NO_VALID_LABEL_ATTRIBUTES"),
    ]
    assert p.entry["quality-metadata"] == meta


@pytest.mark.parametrize("kind", [DROP, None, 5, ["groundtruth/image-classification"]])
def test_absent_or_non_string_type_is_metadata_format(kind):
    p = parse(cls_line(type=kind))
    assert where(p)[0] == ("ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT", "attribute", "quality", None)


@pytest.mark.parametrize(
    "kind",
    [
        "groundtruth/bbox",
        "groundtruth/semantic-segmentation",
        "",
        "groundtruth/Image-Classification",
        "groundtruth/object-detection ",
        "groundtruth/image-classification-multilabel-x",
        "custom",
    ],
)
def test_other_types_are_unsupported_use_case(kind):
    for line, attr in ((cls_line(type=kind), "quality"), (box_line(type=kind), "parts")):
        p = parse(line)
        assert where(p) == [
            ("ERROR_UNSUPPORTED_USE_CASE_TYPE", "attribute", attr, None),
            ("ERROR_NO_VALID_LABEL_ATTRIBUTES", "line", None, None),
        ]
        message = f"The use case type of the {attr}-metadata label attribute metadata is unsupported. Check the type field."
        assert p.entry[f"{attr}-metadata"]["cl-errors"] == [item("ERROR_UNSUPPORTED_USE_CASE_TYPE", message)]


@pytest.mark.parametrize(
    "objects",
    [
        [{"confidence": 1}],
        [],
        [{"confidence": 1}, {}],
        [{"confidence": 1}, {"confidence": None}],
        [{"confidence": 1}, "1"],
        [{"confidence": 1}, None],
        [{"score": 1}, {"confidence": 1}],
    ],
)
def test_missing_box_confidence(objects):
    p = parse(box_line(objects=objects))
    assert where(p) == [
        ("ERROR_MISSING_BOUNDING_BOX_CONFIDENCE", "attribute", "parts", None),
        ("ERROR_NO_VALID_LABEL_ATTRIBUTES", "line", None, None),
    ]
    assert p.entry["parts-metadata"]["cl-errors"] == [
        item(
            "ERROR_MISSING_BOUNDING_BOX_CONFIDENCE",
            "One or more bounding boxes has a missing confidence value.",
        )
    ]


def test_extra_objects_beyond_the_boxes_are_ignored_and_confidence_zero_is_fine():
    assert not parse(
        box_line(objects=[{"confidence": 0}, {"confidence": 0.09}, {"confidence": 1}])
    ).has_errors


def test_missing_class_map_id():
    for class_map in ({"0": "capacitor"}, {"1": "relay"}, {}, {"00": "capacitor", "1": "relay"}):
        p = parse(box_line(class_map=class_map))
        assert where(p) == [
            ("ERROR_MISSING_CLASS_MAP_ID", "attribute", "parts", None),
            ("ERROR_NO_VALID_LABEL_ATTRIBUTES", "line", None, None),
        ]
        assert p.entry["parts-metadata"]["cl-errors"] == [
            item("ERROR_MISSING_CLASS_MAP_ID", "One of more class ids is missing from the class map.")
        ]
    # sparse ids and unused entries are fine (rekognition-animals fixture: ids 0/4/5)
    p = parse(box_line([box(5), box(4, 10, 10, 20, 20)], class_map={"0": "animal", "4": "dog", "5": "cat"}))
    assert not p.has_errors and p.box_counts == {"cat": 1, "dog": 1}


def test_label_names_longer_than_255_chars_or_empty_are_invalid_length():
    message = "The label name must be 1 to 255 characters long."
    assert not parse(cls_line("n" * 255)).has_errors
    for name in ("n" * 256, ""):
        p = parse(cls_line(name))
        assert where(p)[0] == ("ERROR_INVALID_LABEL_NAME_LENGTH", "attribute", "quality", None)
        assert p.entry["quality-metadata"]["cl-errors"] == [item("ERROR_INVALID_LABEL_NAME_LENGTH", message)]
    p = parse(box_line(class_map={"0": "c" * 256, "1": "relay"}))
    assert where(p)[0] == ("ERROR_INVALID_LABEL_NAME_LENGTH", "attribute", "parts", None)
    assert p.entry["parts-metadata"]["cl-errors"] == [item("ERROR_INVALID_LABEL_NAME_LENGTH", message)]
    # a long name nobody uses never becomes a label
    assert not parse(box_line(class_map={"0": "capacitor", "1": "relay", "9": "c" * 300})).has_errors
    assert not parse(cls_line("n" * 256), ManifestLimits(max_label_name_chars=256)).has_errors


# --------------------------------------------------------------------------- annotation-scope codes


@pytest.mark.parametrize(
    "bad",
    [
        box(0, -1, 80),
        box(0, 120, -0.5),
        box(0, 120, 80, -64, 40),
        box(0, 120, 80, 64, -40),
        box(0, 961, 80, 64, 40),
        box(0, 120, 729, 64, 40),
        box(0, 1024, 0, 10, 10),
        box(0, 0, 768, 10, 10),
        box(0, 0, 0, 1025, 10),
        box(0, 960.5, 80, 64, 40),
    ],
)
def test_negative_or_off_frame_boxes_are_invalid_bounding_box(bad):
    p = parse(box_line([bad, box(1, 500, 300, 90, 90)]))
    assert where(p) == [("ERROR_INVALID_BOUNDING_BOX", "annotation", "parts", 0)]
    assert p.entry["parts"]["annotations"][0]["cl-errors"] == [
        item("ERROR_INVALID_BOUNDING_BOX", "The bounding box has off frame values.")
    ]
    assert "cl-errors" not in p.entry["parts"]["annotations"][1] and "cl-errors" not in p.entry
    assert p.has_errors and not p.line_error and p.kind == "detection" and p.box_counts == {"relay": 1}
    assert p.labels == {"relay"}  # the class of the dropped box is not used by this image


def test_float_rounding_at_the_frame_edge_is_not_off_frame():
    assert not parse(box_line([box(0, 105.2, 0, 269.80000000000007, 10)], size=(375, 500))).has_errors
    assert parse(box_line([box(0, 105.2, 0, 269.81, 10)], size=(375, 500))).has_errors


def test_boxes_must_be_bigger_than_one_pixel_after_the_1280_training_rescale():
    message = "The height and width of the bounding box is too small."
    for size, w, h in (
        ((640, 480), 1, 10),
        ((640, 480), 10, 1),
        ((640, 480), 0, 0),
        ((2560, 1000), 2, 50),
        ((1000, 2560), 50, 2),
        ((4096, 4096), 3.2, 100),
    ):
        p = parse(box_line([box(0, 0, 0, w, h), box(1, 100, 100, 90, 90)], size=size))
        assert where(p) == [("ERROR_BOUNDING_BOX_TOO_SMALL", "annotation", "parts", 0)], (size, w, h)
        assert p.entry["parts"]["annotations"][0]["cl-errors"] == [
            item("ERROR_BOUNDING_BOX_TOO_SMALL", message)
        ]
    for size, w, h in (
        ((640, 480), 1.01, 2),
        ((1280, 720), 2, 2),
        ((2560, 1000), 2.01, 3),
        ((4096, 4096), 3.21, 3.3),
    ):
        assert not parse(box_line([box(0, 0, 0, w, h)], size=size)).has_errors, (size, w, h)


def test_the_section_7_6_example_marks_only_the_tiny_box():
    line = box_line([box(0, 10, 12, 1, 1), box(1, 700, 420, 150, 96)], size=(2000, 1500))
    p = parse(line)
    assert where(p) == [("ERROR_BOUNDING_BOX_TOO_SMALL", "annotation", "parts", 0)]
    assert p.box_counts == {"relay": 1} and not p.line_error


# --------------------------------------------------------------------------- warnings (§7.5)


def test_box_attribute_without_boxes_is_ignored_with_warnings():
    for boxes_key in ([], DROP):
        line = box_line([], objects=[], class_map={})
        if boxes_key is DROP:
            del line["parts"]["annotations"]
        p = parse(line)
        assert p.warnings == ("WARNING_NO_ATTRIBUTE_ANNOTATIONS", "WARNING_NO_ANNOTATIONS")
        assert p.errors == () and not p.has_errors and not p.line_error and not p.is_labeled
        assert p.kind == "unlabeled" and p.ignored and "cl-errors" not in p.entry
        assert p.entry["cl-metadata"] == {"is_labeled": False}
    p = parse(box_line([], objects=[], class_map={}, **{"human-annotated": "no"}))
    assert p.warnings == ("WARNING_NO_ATTRIBUTE_ANNOTATIONS",)
    # an empty box attribute is not checked against the image-size limits: nothing would be trained on
    assert parse(box_line([], size=(24, 24), objects=[], class_map={})).errors == ()
    assert MSG["WARNING_NO_ANNOTATIONS"] == "No annotations were found."
    assert MSG["WARNING_NO_ATTRIBUTE_ANNOTATIONS"] == "No attribute annotations were found."
    assert MSG["WARNING_UNANNOTATED_RECORD"] == "Record is unannotated."


def test_an_empty_box_attribute_next_to_a_label_leaves_the_line_usable():
    line = box_line([], objects=[], class_map={})
    line.update({k: v for k, v in cls_line().items() if k != "source-ref"})
    p = parse(line)
    assert p.warnings == ("WARNING_NO_ATTRIBUTE_ANNOTATIONS",) and p.kind == "classification" and p.is_labeled


def test_an_empty_box_attribute_must_still_be_well_formed():
    p = parse(box_line([], objects=[], class_map={}, **{"creation-date": DROP}))
    assert [i.code for i in p.errors] == [
        "ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT",
        "ERROR_NO_VALID_LABEL_ATTRIBUTES",
    ]
    assert p.warnings == ()


# --------------------------------------------------------------------------- precedence (§5)


def test_precedence_drops_come_before_everything_and_stop_the_line():
    assert parse({"nothing": {"annotations": "bad"}}).dropped == "ERROR_MISSING_SOURCE_REF"
    assert (
        parse({**box_line(boxes=[box(0, -1)]), "source-ref": "https://x/y"}).dropped
        == "ERROR_INVALID_SOURCE_REF_FORMAT"
    )
    long_bad = "{" + " " * 100_001
    assert parse_line(long_bad).dropped == "ERROR_LINE_TOO_LONG"


def test_precedence_within_an_attribute_first_failure_wins():
    # type before body format: a semantic-segmentation body is not judged as a box body
    assert [i.code for i in parse(box_line(type="groundtruth/semantic-segmentation", objects=5)).errors][
        0
    ] == "ERROR_UNSUPPORTED_USE_CASE_TYPE"
    # attribute format before metadata format
    p = parse(cls_line(value="x", confidence=None))
    assert [i.code for i in p.errors] == [
        "ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT",
        "ERROR_NO_VALID_LABEL_ATTRIBUTES",
    ]
    p = parse(box_line([box("0")], objects=[]))
    assert [i.code for i in p.errors][0] == "ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT"
    # metadata format before missing confidence
    p = parse(box_line(objects=[{"confidence": 1}], **{"human-annotated": "?"}))
    assert [i.code for i in p.errors][0] == "ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT"
    # missing confidence before missing class-map id
    p = parse(box_line([box(7)], objects=[]))
    assert [i.code for i in p.errors][0] == "ERROR_MISSING_BOUNDING_BOX_CONFIDENCE"
    # missing class-map id before the boxes are looked at
    p = parse(box_line([box(7, -1, -1, 0, 0)]))
    assert [i.code for i in p.errors] == ["ERROR_MISSING_CLASS_MAP_ID", "ERROR_NO_VALID_LABEL_ATTRIBUTES"]
    assert "cl-errors" not in p.entry["parts"]["annotations"][0]
    # name length before the boxes
    p = parse(box_line([box(0, -1)], class_map={"0": "x" * 256}))
    assert [i.code for i in p.errors][0] == "ERROR_INVALID_LABEL_NAME_LENGTH"
    # off frame before too small: one error per box
    p = parse(box_line([box(0, -1, 0, 1, 1), box(1)]))
    assert where(p) == [("ERROR_INVALID_BOUNDING_BOX", "annotation", "parts", 0)]


# --------------------------------------------------------------------------- cl-* keys (§8)


def test_incoming_cl_keys_are_stripped_and_recomputed_everywhere():
    line = box_line([box(0, -1), box(1)])
    line["cl-metadata"] = {"is_labeled": False}
    line["cl-errors"] = [item("ERROR_NO_VALID_ANNOTATIONS")]
    line["cl-anything"] = 1
    line["parts"]["cl-x"] = 1
    line["parts-metadata"]["cl-errors"] = [item("ERROR_MISSING_CLASS_MAP_ID")]
    line["parts"]["annotations"][0]["cl-errors"] = [item("ERROR_BOUNDING_BOX_TOO_SMALL")]
    line["parts"]["annotations"][1]["cl-errors"] = [item("ERROR_BOUNDING_BOX_TOO_SMALL")]
    p = parse(line)
    assert where(p) == [("ERROR_INVALID_BOUNDING_BOX", "annotation", "parts", 0)]
    e = p.entry
    assert e["cl-metadata"] == {"is_labeled": True} and "cl-errors" not in e and "cl-anything" not in e
    assert "cl-x" not in e["parts"] and "cl-errors" not in e["parts-metadata"]
    assert e["parts"]["annotations"][0]["cl-errors"] == [item("ERROR_INVALID_BOUNDING_BOX")]
    assert "cl-errors" not in e["parts"]["annotations"][1]
    assert list(e)[-1] == "cl-metadata"


def test_cl_keys_spelled_with_unicode_escapes_are_stripped_too():
    text = json.dumps(cls_line())[:-1] + ', "\\u0063l-errors": [{"code": "FAKE", "message": "x"}]}'
    p = parse_line(text)
    assert not p.has_errors and "cl-errors" not in p.entry


def test_attributes_named_cl_are_reserved():
    line = {"source-ref": REF, "cl-label": 1, "cl-label-metadata": cls_meta()}
    p = parse(line)
    assert p.warnings == ("WARNING_UNANNOTATED_RECORD",) and "cl-label" not in p.entry


def test_parsing_a_stored_line_gives_the_same_line():
    for line in (
        cls_line(),
        box_line([box(0, -1), box(1), box(0, 1, 1, 1, 1)]),
        cls_line(type="x"),
        box_line([], objects=[], class_map={}),
        {"source-ref": REF, "x-metadata": {}},
    ):
        first = parse(line)
        second = parse_line(first.to_json())
        assert second.to_json() == first.to_json() and second.errors == first.errors


def test_parse_does_not_share_state_between_calls():
    text = json.dumps(box_line([box(0, -1), box(1)]))
    a, b = parse_line(text), parse_line(text)
    a.entry["parts"]["annotations"][1]["x"] = 1
    assert "x" not in b.entry["parts"]["annotations"][1]


# --------------------------------------------------------------------------- Ground Truth multi-label (§11)

GT_MULTI = {
    "source-ref": "s3://bucket/path/example1.jpg",
    "image-label-attribute-name": [1, 0],
    "image-label-attribute-name-metadata": {
        "job-name": "labeling-job/image-label-attribute-name",
        "class-map": {"1": "dog", "0": "cat"},
        "human-annotated": "yes",
        "creation-date": "2018-10-18T22:18:13.527256",
        "type": "groundtruth/image-classification-multilabel",
        "confidence-map": {"1": 0.79, "0": 0.93},
    },
}


def test_gt_multilabel_output_becomes_one_image_level_pair_per_label():
    before = copy.deepcopy(GT_MULTI)
    out = m.gt_multilabel_to_lines(GT_MULTI)
    assert before == GT_MULTI
    assert out == {
        "source-ref": "s3://bucket/path/example1.jpg",
        "image-label-attribute-name0": 0,
        "image-label-attribute-name0-metadata": {
            "class-name": "dog",
            "confidence": 0.79,
            "type": "groundtruth/image-classification",
            "job-name": "labeling-job/image-label-attribute-name",
            "human-annotated": "yes",
            "creation-date": "2018-10-18T22:18:13.527256",
        },
        "image-label-attribute-name1": 1,
        "image-label-attribute-name1-metadata": {
            "class-name": "cat",
            "confidence": 0.93,
            "type": "groundtruth/image-classification",
            "job-name": "labeling-job/image-label-attribute-name",
            "human-annotated": "yes",
            "creation-date": "2018-10-18T22:18:13.527256",
        },
    }
    assert m.gt_multilabel_to_lines(cls_line()) == cls_line()  # nothing to convert


def test_gt_multilabel_names_never_collide_with_existing_keys():
    line = {**GT_MULTI, "image-label-attribute-name0": "taken"}
    out = m.gt_multilabel_to_lines(line)
    assert out["image-label-attribute-name0"] == "taken"
    assert out["image-label-attribute-name0-1-metadata"]["class-name"] == "dog"
    assert out["image-label-attribute-name1-metadata"]["class-name"] == "cat"


@pytest.mark.parametrize(
    ("path", "value", "code"),
    [
        ("image-label-attribute-name", "1", "ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT"),
        ("image-label-attribute-name", [True], "ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT"),
        (
            "image-label-attribute-name-metadata.class-map",
            DROP,
            "ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT",
        ),
        (
            "image-label-attribute-name-metadata.confidence-map",
            DROP,
            "ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT",
        ),
        ("image-label-attribute-name", [1, 2], "ERROR_MISSING_CLASS_MAP_ID"),
    ],
)
def test_malformed_gt_multilabel_is_refused(path, value, code):
    line = copy.deepcopy(GT_MULTI)
    _set(path, value)(line)
    with pytest.raises(ValueError, match=code):
        m.gt_multilabel_to_lines(line)
    p = parse(line)
    assert where(p) == [
        (code, "attribute", "image-label-attribute-name", None),
        ("ERROR_NO_VALID_LABEL_ATTRIBUTES", "line", None, None),
    ]
    assert p.entry["image-label-attribute-name-metadata"]["cl-errors"][0]["code"] == code


def test_parse_line_accepts_gt_multilabel_lines_transparently():
    p = parse(GT_MULTI)
    assert not p.has_errors and p.kind == "classification" and p.image_labels == {"dog", "cat"}
    assert json.loads(p.to_json()) == {
        **m.gt_multilabel_to_lines(GT_MULTI),
        "cl-metadata": {"is_labeled": True},
    }
    # a confidence the map lacks surfaces as a metadata error of that one label
    line = copy.deepcopy(GT_MULTI)
    del line["image-label-attribute-name-metadata"]["confidence-map"]["0"]
    p = parse(line)
    assert where(p) == [
        ("ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT", "attribute", "image-label-attribute-name1", None)
    ]
    assert p.image_labels == {"dog"}
    # an empty list is an unlabeled image
    line = copy.deepcopy(GT_MULTI)
    line["image-label-attribute-name"] = []
    assert parse(line).warnings == ("WARNING_UNANNOTATED_RECORD",)


# --------------------------------------------------------------------------- image_level_line (§12)


def test_image_level_line_writes_a_valid_line_with_millisecond_utc_dates():
    now = datetime(2024, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)
    text = m.image_level_line("s3://acme/devices/hub/b.png", ["hub", "white", "hub"], now=now)
    assert text == (
        '{"source-ref":"s3://acme/devices/hub/b.png","label0":0,"label0-metadata":{"class-name":"hub","confidence":1,'
        '"type":"groundtruth/image-classification","human-annotated":"yes","creation-date":"2024-03-01T12:30:45.123"},'
        '"label1":1,"label1-metadata":{"class-name":"white","confidence":1,"type":"groundtruth/image-classification",'
        '"human-annotated":"yes","creation-date":"2024-03-01T12:30:45.123"}}'
    )
    p = parse_line(text)
    assert not p.has_errors and p.image_labels == {"hub", "white"}
    fresh = json.loads(m.image_level_line("s3://acme/x.png", ["speaker"], "device"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", fresh["device0-metadata"]["creation-date"])
    assert parse_line(m.image_level_line("s3://acme/devices/loose.jpg", [])).warnings == (
        "WARNING_UNANNOTATED_RECORD",
    )


@pytest.mark.parametrize(
    ("ref", "labels", "prefix"),
    [
        ("https://x/y.png", ["a"], "label"),
        ("s3://acme/x.png", [""], "label"),
        ("s3://acme/x.png", ["x" * 256], "label"),
        ("s3://acme/x.png", [3], "label"),
        ("s3://acme/x.png", ["a"], ""),
        ("s3://acme/x.png", ["a"], "cl-"),
    ],
)
def test_image_level_line_refuses_bad_input(ref, labels, prefix):
    with pytest.raises(ValueError):
        m.image_level_line(ref, labels, prefix)


# --------------------------------------------------------------------------- apply_image


class Rejected:
    def __init__(self, code: str, message: str) -> None:
        self.code, self.message = code, message


def test_apply_image_adds_the_service_s_image_error_as_a_line_error():
    p = parse(cls_line())
    q = m.apply_image(
        p, None, None, ("ERROR_INVALID_IMAGE", "The image is invalid. Check S3 path and/or image properties.")
    )
    assert where(q) == [("ERROR_INVALID_IMAGE", "line", None, None)]
    assert (
        q.entry["cl-errors"] == [item("ERROR_INVALID_IMAGE")]
        and q.line_error
        and q.has_errors
        and q.kind == "invalid"
    )
    assert q.labels == {"ripe"} and q.is_labeled
    # immutable style: the input is untouched
    assert not p.has_errors and "cl-errors" not in p.entry and p.kind == "classification"
    r = m.apply_image(q, None, None, Rejected("ERROR_INVALID_IMAGE_DIMENSION", "s3://... is 10x10 px"))
    assert [i.code for i in r.errors] == [
        "ERROR_INVALID_IMAGE_DIMENSION"
    ]  # re-applied from scratch, not stacked
    assert r.entry["cl-errors"] == [item("ERROR_INVALID_IMAGE_DIMENSION", "s3://... is 10x10 px")]
    assert m.apply_image(p, None, None, ("ERROR_INVALID_IMAGE", "")).entry["cl-errors"] == [
        item("ERROR_INVALID_IMAGE")
    ]
    assert m.apply_image(p, None, None, None) is p
    with pytest.raises(ValueError):
        m.apply_image(p, None, None, ("ERROR_NO_VALID_ANNOTATIONS", "x"))
    dropped = parse_line("[]")
    assert m.apply_image(dropped, 100, 100, ("ERROR_INVALID_IMAGE", "x")) is dropped


def test_apply_image_rechecks_boxes_against_the_real_frame():
    line = box_line([box(0, 10, 10, 300, 200), box(1, 500, 300, 90, 90)], size=(1024, 768))
    p = parse(line)
    assert not p.has_errors
    q = m.apply_image(p, 512, 384, None)  # the real image is smaller than declared
    assert where(q) == [("ERROR_INVALID_BOUNDING_BOX", "annotation", "parts", 1)]
    assert q.box_counts == {"capacitor": 1} and q.labels == {"capacitor"} and q.real_size == (512, 384)
    assert q.image_size == (1024, 768) and q.entry["parts"]["image_size"] == [
        {"width": 1024, "height": 768, "depth": 3}
    ]
    # a declared size below 64 px that the real image does not have is no error any more
    small = parse(box_line([box(0, 0, 0, 40, 40)], size=(48, 48)))
    assert [i.code for i in small.errors] == ["ERROR_INVALID_IMAGE_DIMENSION"]
    fixed = m.apply_image(small, 640, 640, None)
    assert fixed.errors == () and not fixed.line_error and fixed.kind == "detection"
    # and a real image below 64 px is, for box lines
    tiny = m.apply_image(parse(line), 1024, 60, None)
    assert "ERROR_INVALID_IMAGE_DIMENSION" in [i.code for i in tiny.errors] and tiny.line_error
    # too-small checks use the real frame's rescale: 2 px are fine at 1280, too small at 2560
    p = parse(box_line([box(0, 0, 0, 2, 2), box(1, 100, 100, 90, 90)], size=(1280, 720)))
    assert not p.has_errors
    assert [i.code for i in m.apply_image(p, 2560, 1440, None).errors] == ["ERROR_BOUNDING_BOX_TOO_SMALL"]


def test_apply_image_checks_the_real_size_of_image_level_lines():
    p = parse(cls_line())
    assert m.apply_image(p, 640, 480, None).errors == ()
    assert m.apply_image(p, 640, 480, None).real_size == (640, 480)
    for w, h in ((63, 480), (640, 4097), (2100, 100)):
        q = m.apply_image(p, w, h, None)
        assert [i.code for i in q.errors] == ["ERROR_INVALID_IMAGE"] and q.line_error, (w, h)
    assert m.apply_image(p, 2000, 100, None).errors == ()  # 20:1 exactly
    with pytest.raises(ValueError):
        m.apply_image(p, 0, 10, None)


# --------------------------------------------------------------------------- split_lines / count_lines


def test_split_lines_handles_bom_crlf_blank_lines_and_a_missing_final_newline():
    a, b = json.dumps(cls_line("a")), json.dumps(cls_line("b"))
    data = b"\xef\xbb\xbf" + a.encode() + b"\r\n\r\n   \n\t\r\n" + b.encode()
    assert list(m.split_lines(data)) == [a, b]
    assert list(m.iter_lines(data)) == [(1, a), (5, b)]
    assert m.count_lines(data) == 5 and m.count_lines(data + b"\n") == 5 and m.count_lines(b"") == 0
    assert m.count_lines(b"\n\n") == 2 and list(m.split_lines(b"\n\n")) == []


def test_split_lines_keeps_unicode_line_separators_inside_strings():
    line = json.dumps({**cls_line("a\u2028b\u0085c\u2029"), "note": "x\u2028y"}, ensure_ascii=False)
    assert list(m.split_lines(line.encode())) == [line]
    assert parse_line(line).image_labels == {"a\u2028b\u0085c\u2029"}


def test_invalid_utf8_drops_only_its_own_line():
    good = json.dumps(cls_line()).encode()
    bad = good.replace(b"ripe", b"r\xffpe")
    lines = list(m.split_lines(good + b"\n" + bad + b"\n" + good.replace(b"ripe", "reif ü".encode()) + b"\n"))
    parsed = [parse_line(t) for t in lines]
    assert [p.dropped for p in parsed] == [None, "ERROR_INVALID_JSON_LINE", None]
    assert parsed[2].image_labels == {"reif ü"}


def test_a_gzip_or_binary_manifest_is_an_unsupported_format():
    for data in (gzip.compress(b"\0" * 100_000), bytes(range(256)) * 100, b"\x89PNG\r\n\x1a\n" + b"\0" * 100):
        lines = list(m.split_lines(data))
        parsed = [parse_line(t) for t in lines]
        assert parsed and all(p.dropped for p in parsed)
        code, message = m.terminal_error(
            m.count_lines(data), len(parsed), 0, 0, blank_lines=m.count_lines(data) - len(lines)
        )
        assert code == "ERROR_MANIFEST_INACCESSIBLE_OR_UNSUPPORTED_FORMAT"
        assert (
            message
            == "ERROR_MANIFEST_INACCESSIBLE_OR_UNSUPPORTED_FORMAT: The manifest file extension or contents are invalid."
        )
    pretty = json.dumps(cls_line(), indent=2).encode()
    assert all(parse_line(t).dropped for t in m.split_lines(pretty))


# --------------------------------------------------------------------------- terminal_error (§6.1)


def test_terminal_errors_of_a_dataset_import():
    t = m.terminal_error
    assert t(1000, 0, 0, 2) is None
    assert t(250_000, 0, 0, 2) is None
    assert t(250_001, 0, 0, 2) == (
        "ERROR_MANIFEST_ROWS_EXCEEDS_MAXIMUM",
        "ERROR_MANIFEST_ROWS_EXCEEDS_MAXIMUM: The manifest file has too many rows.",
    )
    assert t(250_001, 0, 0, 2, ManifestLimits(max_lines=500_000)) is None
    assert t(0, 0, 0, 0) == ("ERROR_EMPTY_MANIFEST", "ERROR_EMPTY_MANIFEST: The manifest file is empty.")
    assert t(3, 0, 0, 0, blank_lines=3)[0] == "ERROR_EMPTY_MANIFEST"
    assert t(10, 10, 0, 0)[0] == "ERROR_MANIFEST_INACCESSIBLE_OR_UNSUPPORTED_FORMAT"
    # > 20 % of the non-ignored, non-blank lines are dropped or have line errors
    assert t(100, 10, 10, 2) is None  # exactly 20 %
    assert t(100, 10, 11, 2) == (
        "ERROR_TOO_MANY_RECORDS_IN_ERROR",
        "ERROR_TOO_MANY_RECORDS_IN_ERROR: The manifest file has too many terminal errors.",
    )
    assert t(9, 3, 0, 2)[0] == "ERROR_TOO_MANY_RECORDS_IN_ERROR"
    assert t(110, 10, 10, 2, blank_lines=10) is None
    # warning-only lines are not part of the base: 20 errors in 100 lines of which 10 are ignored → 22 %
    assert t(100, 10, 10, 2, ignored_lines=10)[0] == "ERROR_TOO_MANY_RECORDS_IN_ERROR"
    assert t(100, 0, 0, 0, ignored_lines=100) is None  # an all-unlabeled manifest is fine
    assert t(100, 10, 11, 2, ManifestLimits(max_invalid_percent=25)) is None
    assert t(100, 0, 0, 250) is None
    assert t(100, 0, 0, 251) == (
        "ERROR_MANIFEST_TOO_MANY_LABELS",
        "ERROR_MANIFEST_TOO_MANY_LABELS: The manifest file has too many labels.",
    )
    assert t(100, 0, 0, 2, size_bytes=1024**3) is None
    assert t(100, 0, 0, 2, size_bytes=1024**3 + 1) == (
        "ERROR_MANIFEST_SIZE_TOO_LARGE",
        "ERROR_MANIFEST_SIZE_TOO_LARGE: The manifest file size exceeds the maximum supported size.",
    )
    # order: file size, rows, empty, format, records in error, labels
    assert t(250_001, 250_001, 0, 300, size_bytes=2 * 1024**3)[0] == "ERROR_MANIFEST_SIZE_TOO_LARGE"
    assert t(250_001, 250_001, 0, 300)[0] == "ERROR_MANIFEST_ROWS_EXCEEDS_MAXIMUM"
    assert t(100, 50, 0, 300)[0] == "ERROR_TOO_MANY_RECORDS_IN_ERROR"


def test_limits_have_the_spec_defaults_and_are_frozen():
    lim = ManifestLimits()
    assert (
        lim.max_line_chars,
        lim.max_lines,
        lim.max_manifest_bytes,
        lim.max_invalid_percent,
        lim.max_labels,
    ) == (100_000, 250_000, 1024**3, 20, 250)
    assert (lim.max_label_name_chars, lim.max_labels_per_image, lim.max_boxes_per_image) == (255, 50, 50)
    assert (lim.min_image_side, lim.max_image_side, lim.max_aspect_ratio, lim.training_max_side) == (
        64,
        4096,
        20.0,
        1280,
    )
    with pytest.raises(AttributeError):
        lim.max_lines = 1  # type: ignore[misc]


def test_configured_limits_change_the_line_checks():
    lim = ManifestLimits(max_boxes_per_image=1, min_image_side=2000, max_labels_per_image=0)
    assert [i.code for i in parse(box_line(), lim).errors] == [
        "ERROR_INVALID_IMAGE_DIMENSION",
        "ERROR_TOO_MANY_BOUNDING_BOXES",
    ]
    assert [i.code for i in parse(cls_line(), lim).errors] == ["ERROR_TOO_MANY_LABELS_PER_IMAGE"]


# --------------------------------------------------------------------------- summarize (§4, DatasetStats)


def test_summary_counts_entries_labels_and_images_with_boxes():
    lines = [
        parse(box_line([box(0), box(0, 10, 10, 20, 20), box(1, 500, 300, 90, 90)])),
        parse(box_line([box(0, -1), box(1)])),  # one box dropped, still usable
        parse(
            box_line([box(0, 0, 0, 10, 10)], size=(32, 32), class_map={"0": "capacitor"})
        ),  # line error, labels kept
        parse({"source-ref": REF}),
        parse(box_line([], objects=[], class_map={})),
        parse(cls_line("ripe")),
        parse_line("nope"),
    ]
    s = m.summarize(lines)
    assert (s.total_entries, s.labeled_entries, s.error_entries, s.dropped_lines) == (6, 4, 2, 1)
    assert (s.line_error_entries, s.ignored_entries, s.classification_entries, s.detection_entries) == (
        1,
        2,
        1,
        2,
    )
    assert s.labels == {
        "capacitor": m.LabelStats(2, 2),  # images, not boxes
        "relay": m.LabelStats(2, 2),
        "ripe": m.LabelStats(1, 0),
    }
    assert s.model_type == "OBJECT_LOCALIZATION" and s.use_case == "OBJECT_LOCALIZATION"


def test_model_type_follows_the_format_with_more_usable_lines():
    cls = parse(cls_line("a"))
    det = parse(box_line())
    bad_det = parse(box_line([box(0, -1)]))
    assert m.summarize([cls, cls, det]).model_type == "IMAGE_CLASSIFICATION"
    assert m.summarize([cls, cls, det]).use_case == "IMAGE_LEVEL_LABELS"
    assert m.summarize([cls, det, det]).model_type == "OBJECT_LOCALIZATION"
    assert m.summarize([cls, det]).model_type == "OBJECT_LOCALIZATION"  # † a tie goes to boxes
    assert (
        m.summarize([cls, bad_det, bad_det]).model_type == "IMAGE_CLASSIFICATION"
    )  # line errors do not vote
    two = cls_line("a")
    two.update({"b": 1, "b-metadata": cls_meta("b")})
    assert m.summarize([cls, parse(two)]).model_type == "MULTI_LABEL_CLASSIFICATION"
    none = m.summarize([parse({"source-ref": REF})])
    assert none.model_type is None and none.use_case == "NOT_DETERMINED"
    assert m.summarize([]).total_entries == 0
    # brand detection: image-level TRAIN, boxed TEST
    assert m.project_model_type(m.summarize([cls, cls]), m.summarize([det])) == "OBJECT_LOCALIZATION"
    assert m.project_model_type(m.summarize([cls, cls]), m.summarize([cls])) == "IMAGE_CLASSIFICATION"
    assert m.project_model_type(m.summarize([cls, cls])) == "IMAGE_CLASSIFICATION"


# --------------------------------------------------------------------------- real datasets


def readme_table(name: str) -> list[list[str]]:
    """The rows of the class table of a dataset README: | id | class-name | train | test |."""
    rows = []
    for line in (DATASETS / name / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].isdigit():
            rows.append(cells)
    assert rows, name
    return rows


@pytest.mark.parametrize(("name", "attr"), [("rock-paper-scissors", "gesture"), ("trashnet", "material")])
def test_classification_datasets_parse_cleanly_with_the_readme_counts(name, attr):
    table = readme_table(name)
    for split, column in (("train", 2), ("test", 3)):
        lines = read(DATASETS / name / f"{split}.manifest")
        assert all(p.dropped is None and p.errors == () and p.warnings == () for p in lines)
        assert all(p.kind == "classification" and p.is_labeled and len(p.image_labels) == 1 for p in lines)
        s = m.summarize(lines)
        assert s.model_type == "IMAGE_CLASSIFICATION"
        assert s.total_entries == s.labeled_entries == len(lines) == sum(int(r[column]) for r in table)
        assert s.error_entries == 0
        assert {k: v.entry_count for k, v in s.labels.items()} == {r[1]: int(r[column]) for r in table}
        assert all(v.bounding_box_count == 0 for v in s.labels.values())
        # the class id of the README is the attribute value
        ids = {r[1]: int(r[0]) for r in table}
        assert all(p.entry[attr] == ids[next(iter(p.image_labels))] for p in lines)
        # stored lines are the input lines, compacted, plus cl-metadata
        raw = (DATASETS / name / f"{split}.manifest").read_text().splitlines()
        assert all(
            json.loads(p.to_json()) == {**json.loads(r), "cl-metadata": {"is_labeled": True}}
            for p, r in zip(lines, raw, strict=True)
        )


def test_fruit_detection_parses_cleanly_with_the_readme_box_counts():
    table = readme_table("fruit-detection")
    for split, column, images, boxes in (("train", 2, 240, 465), ("test", 3, 60, 117)):
        lines = read(DATASETS / "fruit-detection" / f"{split}.manifest")
        assert len(lines) == images and all(
            p.errors == () and p.warnings == () and p.kind == "detection" for p in lines
        )
        per_class = collections.Counter()
        for p in lines:
            per_class.update(p.box_counts)
        assert per_class == {r[1]: int(r[column]) for r in table} and sum(per_class.values()) == boxes
        s = m.summarize(lines)
        assert s.model_type == "OBJECT_LOCALIZATION" and set(s.labels) == {"apple", "banana", "orange"}
        assert all(v.entry_count == v.bounding_box_count for v in s.labels.values())


def test_fruit_multilabel_matches_the_classes_boxed_in_each_image():
    multi_images = 0
    for split in ("train", "test"):
        boxed = {p.source_ref: p.labels for p in read(DATASETS / "fruit-detection" / f"{split}.manifest")}
        lines = read(DATASETS / "fruit-detection" / f"multilabel-{split}.manifest")
        assert all(p.errors == () and p.kind == "classification" for p in lines)
        assert {p.source_ref: p.image_labels for p in lines} == boxed
        multi_images += sum(len(p.image_labels) > 1 for p in lines)
        s = m.summarize(lines)
        assert s.model_type == "MULTI_LABEL_CLASSIFICATION" and set(s.labels) == {"apple", "banana", "orange"}
    assert multi_images == 24  # README: "24 images carry more than one label"


def test_flickr_logos_parse_with_the_readme_counts_and_only_the_errors_the_spec_requires():
    """The README's counts hold for every box; the spec still rejects some lines (reported, not hidden):
    images whose declared (= real) size is below 64 px get ERROR_INVALID_IMAGE_DIMENSION, the one image
    with 52 boxes gets ERROR_TOO_MANY_BOUNDING_BOXES, and the one image without boxes is ignored."""
    table = readme_table("flickr-logos-27")
    for split, column, images, boxes, small, crowded, empty in (
        ("train", 2, 647, 1006, 18, 1, 1),
        ("test", 3, 162, 251, 4, 0, 0),
    ):
        path = DATASETS / "flickr-logos-27" / f"{split}.manifest"
        raw = [json.loads(t) for t in path.read_text().splitlines()]
        lines = read(path)
        assert len(lines) == images and all(p.dropped is None for p in lines)
        per_class = collections.Counter()
        for p in lines:
            per_class.update(p.box_counts)
        assert per_class == {r[1]: int(r[column]) for r in table} and sum(per_class.values()) == boxes
        for p, r in zip(lines, raw, strict=True):
            size = r["bounding-box"]["image_size"][0]
            n = len(r["bounding-box"]["annotations"])
            expected = []
            if n and min(size["width"], size["height"]) < 64:
                expected.append("ERROR_INVALID_IMAGE_DIMENSION")
            if n > 50:
                expected.append("ERROR_TOO_MANY_BOUNDING_BOXES")
            assert [i.code for i in p.errors] == expected
            assert all(i.scope == "line" for i in p.errors)
            assert p.warnings == (() if n else ("WARNING_NO_ATTRIBUTE_ANNOTATIONS", "WARNING_NO_ANNOTATIONS"))
        codes = collections.Counter(i.code for p in lines for i in p.errors)
        assert codes == {
            k: v
            for k, v in {
                "ERROR_INVALID_IMAGE_DIMENSION": small,
                "ERROR_TOO_MANY_BOUNDING_BOXES": crowded,
            }.items()
            if v
        }
        s = m.summarize(lines)
        assert s.model_type == "OBJECT_LOCALIZATION" and len(s.labels) == 27 and s.ignored_entries == empty
        assert s.line_error_entries == small + crowded and s.error_entries == small + crowded
        assert (
            m.terminal_error(
                len(lines), 0, s.line_error_entries, len(s.labels), ignored_lines=s.ignored_entries
            )
            is None
        )


# --------------------------------------------------------------------------- manifest fixtures


def test_fixture_semantic_segmentation_is_cleanly_rejected():
    (p,) = read(FIXTURES / "lookout-for-vision.semantic-segmentation.output.manifest")
    assert where(p) == [
        ("ERROR_UNSUPPORTED_USE_CASE_TYPE", "attribute", "S10-label3-ref", None),
        ("ERROR_NO_VALID_LABEL_ATTRIBUTES", "line", None, None),
    ]
    assert p.entry["S10-label3-ref-metadata"]["cl-errors"] == [
        item(
            "ERROR_UNSUPPORTED_USE_CASE_TYPE",
            "The use case type of the S10-label3-ref-metadata label attribute metadata is unsupported. Check the type field.",
        )
    ]
    assert p.line_error and p.is_labeled and p.labels == frozenset() and m.summarize([p]).model_type is None


def test_fixture_gluoncv_empty_annotations_are_warnings_and_odd_names_are_fine():
    lines = read(FIXTURES / "gluoncv-logo-detection.output.manifest")
    assert len(lines) == 470 and all(p.dropped is None and p.errors == () for p in lines)
    empty = [p for p in lines if p.box_count == 0]
    assert len(empty) == 42 and all(
        p.warnings == ("WARNING_NO_ATTRIBUTE_ANNOTATIONS", "WARNING_NO_ANNOTATIONS") for p in empty
    )
    assert any(" " in p.key for p in lines) and any(p.key.lower().endswith(".png") for p in lines)
    s = m.summarize(lines)
    assert s.model_type == "OBJECT_LOCALIZATION" and set(s.labels) == {"BCBS"} and s.ignored_entries == 42
    assert s.labeled_entries == 428 and s.error_entries == 0


def test_fixture_ground_truth_cat_labels_and_their_input_manifest():
    out = read(FIXTURES / "aws-ground-truth-cat-labels.output.manifest")
    assert [p.kind for p in out] == ["unlabeled", "detection", "detection", "detection"]
    assert all(p.errors == () for p in out) and out[0].warnings == (
        "WARNING_NO_ATTRIBUTE_ANNOTATIONS",
        "WARNING_NO_ANNOTATIONS",
    )
    assert sum(p.box_count for p in out) == 4 and m.summarize(out).labels == {"Cat": m.LabelStats(3, 3)}
    inp = read(FIXTURES / "aws-ground-truth-cat-labels.input.manifest")
    assert len(inp) == 10 and all(
        p.warnings == ("WARNING_UNANNOTATED_RECORD",) and not p.is_labeled for p in inp
    )
    assert {p.source_ref for p in out} <= {p.source_ref for p in inp}


@pytest.mark.parametrize("name", ["blue-box-small", "yellow-box-small", "blue-box-large"])
def test_fixture_greengrass_extra_keys_are_kept_and_ignored(name):
    path = FIXTURES / f"aws-samples-greengrass.{name}.output.manifest"
    lines = read(path)
    raw = [json.loads(t) for t in path.read_text().splitlines()]
    assert all(p.errors == () for p in lines)
    for p, r in zip(lines, raw, strict=True):
        assert (p.entry["color"], p.entry["object"]) == (r["color"], r["object"])
        assert p.image_size == (1920, 1080) and p.kind == (
            "detection" if r["bb"]["annotations"] else "unlabeled"
        )
    assert set(m.summarize(lines).labels) == {"storage box"}


def test_fixture_sagemaker_bees_float_boxes_are_accepted():
    for split, crowded in (("train", 2), ("validation", 0)):
        path = FIXTURES / f"sagemaker-bees.{split}.manifest"
        lines = read(path)
        raw = [json.loads(t) for t in path.read_text().splitlines()]
        assert any(isinstance(b["top"], float) for r in raw for b in r["bees-500"]["annotations"])
        for p, r in zip(lines, raw, strict=True):
            n = len(r["bees-500"]["annotations"])
            assert [i.code for i in p.errors] == (["ERROR_TOO_MANY_BOUNDING_BOXES"] if n > 50 else [])
            assert p.box_count == n
            assert json.loads(p.to_json())["bees-500"] == r["bees-500"]  # floats round-trip exactly
        assert sum(p.line_error for p in lines) == crowded
        assert m.summarize(lines).model_type == "OBJECT_LOCALIZATION"


@pytest.mark.parametrize("split", ["train", "validation"])
def test_fixture_bax_bees_other_key_order_and_zero_confidence(split):
    path = FIXTURES / f"bax-bees.{split}.manifest"
    lines = read(path)
    assert all(p.errors == () for p in lines)
    first = json.loads(path.read_text().splitlines()[0])
    assert list(lines[0].entry["bax-bees"]) == list(first["bax-bees"]) == ["image_size", "annotations"]
    assert list(lines[0].entry["bax-bees-metadata"])[:2] == ["objects", "class-map"]
    assert set(m.summarize(lines).labels) == {"bee"}


def test_fixture_rekognition_animals_sparse_ids_and_z_dates():
    lines = read(FIXTURES / "rekognition-animals.manifest")
    assert len(lines) == 10 and all(p.errors == () and p.kind == "detection" for p in lines)
    assert all(p.bucket == "my-rekognition-customlabels-XYZ" and p.key.startswith("animals/") for p in lines)
    first = lines[0]
    assert first.box_counts == {"cat": 1, "animal": 2, "dog": 1}
    assert sum(p.box_count for p in lines) == sum(
        len(json.loads(t)["custom-labels_BB"]["annotations"])
        for t in (FIXTURES / "rekognition-animals.manifest").read_text().splitlines()
    )


def test_fixture_bird_classification_without_confidence_follows_the_spec():
    """spec §2 makes `confidence` required in image-level metadata; this real Ground Truth output has none,
    so every labeled line is ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT (and the import would fail with
    ERROR_TOO_MANY_RECORDS_IN_ERROR). The matching input manifest imports as unlabeled images."""
    out = read(FIXTURES / "bird-classification.output.manifest")
    assert len(out) == 477
    assert all(
        where(p)
        == [
            ("ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT", "attribute", "label", None),
            ("ERROR_NO_VALID_LABEL_ATTRIBUTES", "line", None, None),
        ]
        for p in out
    )
    assert m.terminal_error(477, 0, 477, 0)[0] == "ERROR_TOO_MANY_RECORDS_IN_ERROR"
    inp = read(FIXTURES / "bird-classification.input.manifest")
    assert len(inp) == 477 and all(p.kind == "unlabeled" and p.errors == () for p in inp)
    s = m.summarize(inp)
    assert m.terminal_error(477, 0, 0, 0, ignored_lines=s.ignored_entries) is None


def test_every_real_manifest_line_survives_a_store_and_reparse_round_trip():
    paths = sorted(DATASETS.glob("*/*.manifest"))
    assert len(paths) >= 23
    for path in paths:
        for p in read(path):
            assert p.dropped is None, path
            again = parse_line(p.to_json())
            assert again.to_json() == p.to_json() and again.errors == p.errors and again.labels == p.labels


# --------------------------------------------------------------------------- wrong types everywhere

_FUZZ_KEYS = [
    "source-ref", "a", "a-metadata", "a-metadata-metadata", "cl-errors", "cl-metadata", "type", "class-name",
    "confidence", "human-annotated", "creation-date", "job-name", "objects", "class-map", "image_size",
    "annotations", "class_id", "left", "top", "width", "height", "depth", "confidence-map", "0",
]  # fmt: skip
_FUZZ_SCALARS = [
    0, 1, -1, 5, 64, 1280, 5000, 0.5, 1.5, True, False, None, "s3://bucket/a.jpg", "groundtruth/object-detection",
    "groundtruth/image-classification", "groundtruth/image-classification-multilabel", "yes", "2023-05-02T08:30:00",
    "x", "", "0",
]  # fmt: skip


def test_random_structures_never_crash_and_stored_lines_reparse_identically():
    import random

    rnd = random.Random(20240101)

    def value(depth: int) -> Any:
        r = rnd.random()
        if depth > 3 or r < 0.35:
            return rnd.choice(_FUZZ_SCALARS)
        if r < 0.6:
            return [value(depth + 1) for _ in range(rnd.randint(0, 3))]
        return {rnd.choice(_FUZZ_KEYS): value(depth + 1) for _ in range(rnd.randint(0, 5))}

    def mutated() -> dict[str, Any]:
        line = rnd.choice([cls_line(), box_line(), copy.deepcopy(GT_MULTI), box_line([])])
        for _ in range(rnd.randint(1, 3)):
            node: Any = line
            while isinstance(node, dict | list) and node and rnd.random() < 0.7:
                key = rnd.choice(list(node) if isinstance(node, dict) else range(len(node)))
                if not isinstance(node[key], dict | list):
                    break
                node = node[key]
            if isinstance(node, dict) and node:
                node[rnd.choice([*node, *_FUZZ_KEYS])] = value(2)
            elif isinstance(node, list) and node:
                node[rnd.randrange(len(node))] = value(2)
        return line

    entries = 0
    for _ in range(3000):
        extra = {rnd.choice(_FUZZ_KEYS): value(1) for _ in range(rnd.randint(0, 5))}
        line = mutated() if rnd.random() < 0.7 else {"source-ref": REF, **extra}
        p = parse(line)
        if p.entry is None:
            continue
        entries += 1
        text = p.to_json()
        again = parse_line(text)
        assert again.to_json() == text and again.errors == p.errors
        q = m.apply_image(
            p,
            rnd.choice([50, 640, 5000]),
            rnd.choice([50, 480]),
            rnd.choice([None, ("ERROR_INVALID_IMAGE", "x")]),
        )
        assert q.to_json() and p.to_json() == text
    assert entries > 2000
