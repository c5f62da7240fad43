"""S3 folder labels (spec/manifest.md §12) and COCO -> manifest (§10): pure conversions, no services."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.dataset import importers
from services.dataset.importers import CocoError, ImportedLine, coco_lines, folder_label, folder_lines

NOW = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
NOW_TEXT = "2024-05-06T07:08:09"


def _shared() -> Path:
    near = Path(__file__).resolve().parents[2].parent / "shared"
    return near if near.is_dir() else Path("/work/shared")


FRUIT = _shared() / "datasets" / "fruit-detection"


def parsed(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines]


# --------------------------------------------------------------------------- folder labels (§12)


@pytest.mark.parametrize(
    ("prefix", "key", "expected"),
    [
        # P = s3://acme/devices/
        ("devices/", "devices/speaker/a.png", "speaker"),
        ("devices/", "devices/hub/white/b.png", "hub"),
        ("devices/", "devices/c.png", None),
        ("devices/", "other/speaker/a.png", False),
        ("devices/", "devicesX/a.png", False),  # a sibling sharing the text, not the folder
        # P = s3://acme/devices/hub/
        ("devices/hub/", "devices/hub/white/b.png", "white"),
        ("devices/hub/", "devices/hub/b.png", None),
        ("devices/hub/", "devices/speaker/a.png", False),
        # the trailing slash is optional, a leading one is dropped
        ("devices", "devices/speaker/a.png", "speaker"),
        ("/devices", "devices/c.png", None),
        # bucket root
        ("", "a.png", None),
        ("", "speaker/x/y/a.png", "speaker"),
        ("/", "speaker/a.png", "speaker"),
        # folder markers are not images
        ("devices/", "devices/", False),
        ("devices/", "devices/speaker/", False),
    ],
)
def test_folder_label_follows_the_spec_examples(prefix: str, key: str, expected: object) -> None:
    label = folder_label(prefix, key)
    assert label is expected if expected is None or expected is False else label == expected


@pytest.mark.parametrize(
    "key",
    [
        "devices/../secret/a.png",
        "devices/speaker/../../a.png",
        "devices/./a.png",
        "devices//a.png",
        "devices/speaker//a.png",
        "devices/spe\x00aker/a.png",
        "devices/speaker/a\n.png",
        "devices/\x7fx/a.png",
        "devices/a\\..\\..\\b.png",
    ],
)
def test_folder_label_refuses_path_tricks(key: str) -> None:
    assert folder_label("devices/", key) is False
    (line,) = folder_lines("acme", "devices/", [key], label_by_folder=True, now=NOW)
    assert line.line is None
    assert line.skipped_reason


def test_root_keys_with_path_tricks_are_refused() -> None:
    assert folder_label("", "/a.png") is False
    assert folder_label("", "../a.png") is False


@pytest.mark.parametrize("prefix", ["a/../b/", "a//b", "x\x00/"])
def test_a_prefix_with_path_tricks_is_a_value_error(prefix: str) -> None:
    with pytest.raises(ValueError, match="invalid S3 key prefix"):
        folder_label(prefix, "a/b.png")
    with pytest.raises(ValueError, match="invalid S3 key prefix"):
        folder_lines("acme", prefix, ["a/b.png"], True)


def test_a_folder_name_longer_than_a_label_is_skipped() -> None:
    ok, long = "d/" + "x" * 255 + "/a.png", "d/" + "x" * 256 + "/a.png"
    assert folder_label("d/", ok) == "x" * 255
    assert folder_label("d/", long) is False
    lines = {line.source_ref: line for line in folder_lines("b", "d/", [ok, long], True, now=NOW)}
    assert lines[f"s3://b/{ok}"].line is not None
    assert "no valid label" in str(lines[f"s3://b/{long}"].skipped_reason)


def test_folder_lines_label_images_by_folder_in_key_order() -> None:
    keys = [
        "devices/speaker/a.png",
        "devices/hub/white/b.PNG",
        "devices/c.jpeg",
        "devices/hub/d.JPG",
        "devices/notes.txt",
        "devices/.DS_Store",
        "devices/speaker/.hidden.jpg",
        "devices/.thumbnails/e.jpg",
        "devices/speaker/",
        "devices/hub/noext",
        "devices/hub/d.JPG",  # listed twice
    ]
    lines = list(folder_lines("acme", "devices/", keys, label_by_folder=True, now=NOW))
    assert [line.source_ref for line in lines] == [f"s3://acme/{key}" for key in sorted(keys)]
    imported = {line.source_ref: json.loads(line.line) for line in lines if line.line is not None}
    skipped = {
        line.source_ref.removeprefix("s3://acme/"): line.skipped_reason for line in lines if not line.line
    }
    assert imported == {
        "s3://acme/devices/c.jpeg": {"source-ref": "s3://acme/devices/c.jpeg"},
        "s3://acme/devices/hub/d.JPG": _classification("s3://acme/devices/hub/d.JPG", "hub"),
        "s3://acme/devices/hub/white/b.PNG": _classification("s3://acme/devices/hub/white/b.PNG", "hub"),
        "s3://acme/devices/speaker/a.png": _classification("s3://acme/devices/speaker/a.png", "speaker"),
    }
    assert skipped == {
        "devices/notes.txt": "not a .jpg, .jpeg or .png file",
        "devices/hub/noext": "not a .jpg, .jpeg or .png file",
        "devices/.DS_Store": "hidden file or folder",
        "devices/speaker/.hidden.jpg": "hidden file or folder",
        "devices/.thumbnails/e.jpg": "hidden file or folder",
        "devices/speaker/": "folder marker",
        "devices/hub/d.JPG": "duplicate key",
    }


def _classification(
    source_ref: str, label: str, attribute: str = "label", job: str = "s3-folder-import"
) -> dict:
    return {
        "source-ref": source_ref,
        attribute: 0,
        f"{attribute}-metadata": {
            "class-name": label,
            "confidence": 1,
            "type": "groundtruth/image-classification",
            "job-name": job,
            "human-annotated": "yes",
            "creation-date": NOW_TEXT,
        },
    }


def test_folder_lines_without_folder_labels_are_all_unlabeled() -> None:
    keys = ["devices/speaker/a.png", "devices/c.png"]
    lines = list(folder_lines("acme", "devices", keys, label_by_folder=False, now=NOW))
    assert [json.loads(str(line.line)) for line in lines] == [
        {"source-ref": "s3://acme/devices/c.png"},
        {"source-ref": "s3://acme/devices/speaker/a.png"},
    ]


def test_folder_lines_mark_keys_outside_the_prefix() -> None:
    (line,) = folder_lines("acme", "devices/hub/", ["devices/speaker/a.png"], True, now=NOW)
    assert line == ImportedLine("s3://acme/devices/speaker/a.png", None, "outside the prefix")


def test_folder_lines_are_compact_json_lines_with_unicode_kept() -> None:
    (line,) = folder_lines("acme", "", ["café/a.png"], True, now=NOW)
    assert line.line is not None
    assert "\n" not in line.line and ": " not in line.line
    assert '"class-name":"café"' in line.line


def test_folder_lines_default_creation_date_is_now() -> None:
    (line,) = folder_lines("acme", "", ["x/a.png"], True)
    date = json.loads(str(line.line))["label-metadata"]["creation-date"]
    stamp = datetime.strptime(date, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60


# --------------------------------------------------------------------------- COCO (§10)


def coco_document() -> dict[str, Any]:
    """2 categories, 3 images (one without annotations), sparse ids, every ignored COCO field present."""
    return {
        "info": {"description": "boards", "version": "1.0"},
        "licenses": [{"id": 1, "name": "CC", "url": "http://example.com"}],
        "categories": [
            {"id": 7, "name": "capacitor", "supercategory": "part"},
            {"id": 3, "name": "relay", "supercategory": "part"},
        ],
        "images": [
            {
                "id": 1000,
                "file_name": "b_17.jpg",
                "width": 1024,
                "height": 768,
                "date_captured": "2023-05-02 09:00:00",
                "license": 1,
                "flickr_url": "http://example.com/b_17.jpg",
                "coco_url": "http://example.com/coco/b_17.jpg",
            },
            {
                "id": 5,
                "file_name": "sub/b_18.png",
                "width": 800,
                "height": 600,
                "date_captured": "2023-05-03",
            },
            {
                "id": 42,
                "file_name": "ignored.jpg",
                "coco_url": "s3://other-bucket/boards/b_19.jpg",
                "width": 640.0,
                "height": 480,
            },
        ],
        "annotations": [
            {
                "id": 900,
                "image_id": 1000,
                "category_id": 7,
                "bbox": [120, 80, 64, 40],
                "area": 2560,
                "iscrowd": 0,
                "segmentation": [[120, 80, 184, 80, 184, 120]],
            },
            {"id": 901, "image_id": 1000, "category_id": 3, "bbox": [500.5, 300.25, 90, 90.75], "iscrowd": 1},
            {"id": 17, "image_id": 42, "category_id": 7, "bbox": [1, 2, 3, 4]},
            {"id": 18, "image_id": 42, "category_id": 7, "bbox": [10, 20, 30, 40]},
        ],
    }


def test_coco_object_localization_lines_follow_section_10_field_by_field() -> None:
    result = coco_lines(coco_document(), "acme-cl-images", "boards/", "OBJECT_LOCALIZATION", now=NOW)
    assert result.problems == []
    first, second, third = parsed(result.lines)

    assert list(first) == ["source-ref", "bounding-box", "bounding-box-metadata"]
    # coco_url is http: the source-ref is bucket + prefix + file_name
    assert first["source-ref"] == "s3://acme-cl-images/boards/b_17.jpg"
    assert first["bounding-box"] == {
        "image_size": [{"width": 1024, "height": 768, "depth": 3}],
        "annotations": [
            {"class_id": 7, "left": 120, "top": 80, "width": 64, "height": 40},
            {"class_id": 3, "left": 500.5, "top": 300.25, "width": 90, "height": 90.75},
        ],
    }
    assert first["bounding-box-metadata"] == {
        "objects": [{"confidence": 1}, {"confidence": 1}],
        "class-map": {"3": "relay", "7": "capacitor"},
        "type": "groundtruth/object-detection",
        "human-annotated": "yes",
        "creation-date": "2023-05-02T09:00:00",
        "job-name": "coco-import",
    }

    # no annotations: an empty box list; a date in another format falls back to now
    assert second["source-ref"] == "s3://acme-cl-images/boards/sub/b_18.png"
    assert second["bounding-box"] == {
        "image_size": [{"width": 800, "height": 600, "depth": 3}],
        "annotations": [],
    }
    assert second["bounding-box-metadata"]["objects"] == []
    assert second["bounding-box-metadata"]["class-map"] == {}
    assert second["bounding-box-metadata"]["creation-date"] == NOW_TEXT

    # coco_url already an S3 location: used as is; only the categories used appear in the class-map
    assert third["source-ref"] == "s3://other-bucket/boards/b_19.jpg"
    assert third["bounding-box"]["image_size"] == [{"width": 640, "height": 480, "depth": 3}]
    assert [box["class_id"] for box in third["bounding-box"]["annotations"]] == [7, 7]
    assert third["bounding-box-metadata"]["class-map"] == {"7": "capacitor"}
    assert third["bounding-box-metadata"]["objects"] == [{"confidence": 1}] * 2
    assert third["bounding-box-metadata"]["creation-date"] == NOW_TEXT

    for line in result.lines:
        for ignored in ("segmentation", "iscrowd", "area", "supercategory", "license", "flickr_url"):
            assert ignored not in line


def test_coco_attribute_name_is_configurable() -> None:
    result = coco_lines(coco_document(), "acme", "", attribute="parts", now=NOW)
    line = json.loads(result.lines[0])
    assert "parts" in line and "parts-metadata" in line
    assert line["source-ref"] == "s3://acme/b_17.jpg"


def test_coco_unspecified_mode_is_object_localization() -> None:
    assert coco_lines(coco_document(), "acme", "p/", None, now=NOW) == coco_lines(
        coco_document(), "acme", "p/", "OBJECT_LOCALIZATION", now=NOW
    )
    with pytest.raises(ValueError, match="mode"):
        coco_lines(coco_document(), "acme", "p/", "SEGMENTATION", now=NOW)  # type: ignore[arg-type]


def test_coco_image_level_labels_give_each_image_the_names_of_its_boxes() -> None:
    result = coco_lines(coco_document(), "acme-cl-images", "boards/", "IMAGE_LEVEL_LABELS", now=NOW)
    assert result.problems == []
    first, second, third = parsed(result.lines)
    # two categories: multi-label, names sorted, one attribute/metadata pair each
    assert first == {
        "source-ref": "s3://acme-cl-images/boards/b_17.jpg",
        "label0": 0,
        "label0-metadata": _classification("", "capacitor", job="coco-import")["label-metadata"]
        | {"creation-date": "2023-05-02T09:00:00"},
        "label1": 1,
        "label1-metadata": _classification("", "relay", job="coco-import")["label-metadata"]
        | {"creation-date": "2023-05-02T09:00:00"},
    }
    assert second == {"source-ref": "s3://acme-cl-images/boards/sub/b_18.png"}  # unlabeled
    # two boxes of one category: one label
    assert third == _classification("s3://other-bucket/boards/b_19.jpg", "capacitor", job="coco-import")


def test_coco_accepts_bytes_and_text() -> None:
    expected = coco_lines(coco_document(), "acme", "p/", now=NOW)
    text = json.dumps(coco_document())
    assert coco_lines(text, "acme", "p/", now=NOW) == expected
    assert coco_lines(text.encode(), "acme", "p/", now=NOW) == expected


@pytest.mark.parametrize(
    ("coco", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (b"[1, 2]", "must be a JSON object, not list"),
        (b'"text"', "must be a JSON object, not str"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (b'{"images": [{"id": 1' + b"1" * 5000 + b"}]}", "not valid JSON"),
        ({"annotations": [], "categories": []}, "no 'images' list"),
        ({"images": {"id": 1}, "categories": []}, "'images' must be a list, not dict"),
        ({"images": [], "categories": []}, "'images' list is empty"),
        (
            {"images": [{"id": 1, "file_name": "a.jpg", "width": 1, "height": 1}], "annotations": {}},
            "'annotations' must be a list",
        ),
        (
            {"images": [{"id": 1, "file_name": "a.jpg", "width": 1, "height": 1}], "categories": "x"},
            "'categories' must be a list",
        ),
        ({"images": [{"id": 1, "file_name": "../a.jpg", "width": 1, "height": 1}]}, "no usable image"),
    ],
)
def test_coco_files_that_are_unusable_as_a_whole_raise(coco: Any, message: str) -> None:
    with pytest.raises(CocoError, match=message) as caught:
        coco_lines(coco, "acme", "p/", now=NOW)
    assert caught.value.message == str(caught.value)


def _image(image_id: Any = 1, **overrides: Any) -> dict[str, Any]:
    return {"id": image_id, "file_name": f"img_{image_id}.jpg", "width": 100, "height": 80} | overrides


def _box(image_id: Any = 1, category_id: Any = 1, bbox: Any = (1, 2, 3, 4), **extra: Any) -> dict[str, Any]:
    return {
        "image_id": image_id,
        "category_id": category_id,
        "bbox": list(bbox) if isinstance(bbox, tuple) else bbox,
    } | extra


CATS = [{"id": 1, "name": "cat"}]


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        ("not an object", "images[1] skipped: not an object"),
        (_image(None), "images[1] skipped: id None is not an integer or string"),
        (_image(True), "images[1] skipped: id True is not an integer or string"),
        (_image(2.5), "images[1] skipped: id 2.5"),
        (_image(1), "image id 1 skipped: duplicate image id"),
        (
            _image(2, file_name="../etc/passwd.jpg"),
            "image id 2 skipped: file_name '../etc/passwd.jpg' is unsafe: '.' or '..' path segment",
        ),
        (_image(2, file_name="a/../../b.jpg"), "unsafe: '.' or '..' path segment"),
        (_image(2, file_name="/abs/b.jpg"), "unsafe: absolute path"),
        (_image(2, file_name="C:\\data\\b.jpg"), "unsafe: absolute path"),
        (_image(2, file_name="a//b.jpg"), "unsafe: empty path segment"),
        (_image(2, file_name="a\x00b.jpg"), "unsafe: key contains control characters"),
        (_image(2, file_name=""), "file_name is missing or not a string"),
        (_image(2, file_name=7), "file_name is missing or not a string"),
        (_image(2, file_name="x" * 2000), "unsafe: key longer than 1024"),
        (
            _image(2, coco_url="s3://bucket/../x.jpg"),
            "coco_url 's3://bucket/../x.jpg' is no usable S3 location",
        ),
        (_image(2, coco_url="s3:///x.jpg"), "is no usable S3 location: no bucket"),
        (_image(2, width=0), "width and height must be positive whole numbers"),
        (_image(2, height=-5), "width and height must be positive whole numbers"),
        (_image(2, width="640"), "width and height must be positive whole numbers"),
        (_image(2, width=10.5), "width and height must be positive whole numbers"),
        (_image(2, width=float("nan")), "width and height must be positive whole numbers"),
        (
            {k: v for k, v in _image(2).items() if k != "height"},
            "width and height must be positive whole numbers",
        ),
        (_image(2, file_name="img_1.jpg"), "s3://acme/p/img_1.jpg is already used by another image"),
    ],
)
def test_coco_bad_images_are_skipped_with_a_problem(image: Any, problem: str) -> None:
    coco = {"images": [_image(1), image], "categories": CATS, "annotations": [_box(1)]}
    result = coco_lines(coco, "acme", "p/", now=NOW)
    assert len(result.problems) == 1, result.problems
    assert problem in result.problems[0]
    assert [json.loads(line)["source-ref"] for line in result.lines] == ["s3://acme/p/img_1.jpg"]


def test_coco_annotations_of_a_skipped_image_are_dropped_silently() -> None:
    coco = {
        "images": [_image(1), _image(2, width=0)],
        "categories": CATS,
        "annotations": [_box(1), _box(2), _box(2)],
    }
    result = coco_lines(coco, "acme", "p/", now=NOW)
    assert len(result.problems) == 1 and "image id 2 skipped" in result.problems[0]
    assert len(result.lines) == 1


def test_coco_duplicate_image_ids_keep_the_first_image() -> None:
    coco = {
        "images": [_image(1), _image(1, file_name="other.jpg")],
        "categories": CATS,
        "annotations": [_box(1)],
    }
    result = coco_lines(coco, "acme", "p/", now=NOW)
    (line,) = parsed(result.lines)
    assert line["source-ref"] == "s3://acme/p/img_1.jpg"
    assert len(line["bounding-box"]["annotations"]) == 1


@pytest.mark.parametrize(
    ("annotation", "problem"),
    [
        ("box", "annotations[1] skipped: not an object"),
        (_box(99, id=5), "annotation id 5 skipped: image_id 99 names no image"),
        (_box(None), "annotations[1] skipped: image_id None names no image"),
        (_box("1"), "image_id '1' names no image"),  # ids are compared with their JSON type
        (_box(1, 2), "category_id 2 names no category"),
        (_box(1, "1"), "category_id '1' names no category"),
        (_box(1, True), "category_id True names no category"),
        (_box(1, 1, (1, 2, 3)), "bbox [1, 2, 3] is not a list of 4 finite numbers"),
        (_box(1, 1, (1, 2, 3, 4, 5)), "is not a list of 4 finite numbers"),
        (_box(1, 1, (1, 2, "3", 4)), "is not a list of 4 finite numbers"),
        (_box(1, 1, (1, 2, True, 4)), "is not a list of 4 finite numbers"),
        (_box(1, 1, (1, 2, float("inf"), 4)), "is not a list of 4 finite numbers"),
        (_box(1, 1, (1, 2, float("nan"), 4)), "is not a list of 4 finite numbers"),
        (_box(1, 1, {"x": 1}), "is not a list of 4 finite numbers"),
        ({"image_id": 1, "category_id": 1}, "bbox None is not a list"),
        (_box(1, 3), "its category 3 was skipped"),
    ],
)
def test_coco_bad_annotations_are_skipped_with_a_problem(annotation: Any, problem: str) -> None:
    categories = [*CATS, {"id": 3, "name": ""}]
    coco = {"images": [_image(1)], "categories": categories, "annotations": [_box(1), annotation]}
    result = coco_lines(coco, "acme", "p/", now=NOW)
    assert result.problems[0] == "category id 3 skipped: empty label name"
    assert len(result.problems) == 2, result.problems
    assert problem in result.problems[1]
    (line,) = parsed(result.lines)
    assert line["bounding-box"]["annotations"] == [
        {"class_id": 1, "left": 1, "top": 2, "width": 3, "height": 4}
    ]


@pytest.mark.parametrize(
    ("category", "problem"),
    [
        ("cat", "categories[1] skipped: not an object"),
        ({"id": "2", "name": "dog"}, "categories[1] skipped: id '2' is not an integer"),
        ({"id": 1, "name": "dog"}, "category id 1 skipped: duplicate category id"),
        ({"id": 2}, "category id 2 skipped: name is missing or not a string"),
        ({"id": 2, "name": "x" * 256}, "category id 2 skipped: label name longer than 255"),
    ],
)
def test_coco_bad_categories_are_skipped_with_a_problem(category: Any, problem: str) -> None:
    coco = {"images": [_image(1)], "categories": [*CATS, category], "annotations": [_box(1)]}
    result = coco_lines(coco, "acme", "p/", now=NOW)
    assert len(result.problems) == 1, result.problems
    assert problem in result.problems[0]
    (line,) = parsed(result.lines)
    assert line["bounding-box-metadata"]["class-map"] == {"1": "cat"}  # the first "cat" wins


def test_coco_missing_annotations_or_categories_are_empty_with_a_problem() -> None:
    result = coco_lines({"images": [_image(1)]}, "acme", "p/", now=NOW)
    assert result.problems == [
        "the COCO file has no 'annotations' list; treated as empty",
        "the COCO file has no 'categories' list; treated as empty",
    ]
    (line,) = parsed(result.lines)
    assert line["bounding-box"]["annotations"] == []


def test_coco_without_an_images_bucket_needs_s3_urls() -> None:
    coco = {"images": [_image(1), _image(2, coco_url="s3://b/k.jpg")], "categories": CATS, "annotations": []}
    result = coco_lines(coco, "", "", now=NOW)
    assert [json.loads(line)["source-ref"] for line in result.lines] == ["s3://b/k.jpg"]
    assert "no images bucket given" in result.problems[0]


def test_coco_problem_list_is_capped() -> None:
    coco = {
        "images": [_image(1)],
        "categories": CATS,
        "annotations": [_box(99)] * 1000,
    }
    result = coco_lines(coco, "acme", "p/", now=NOW)
    assert result.problem_count == 1000
    assert len(result.problems) == importers.MAX_PROBLEMS + 1
    assert result.problems[-1] == f"... and {1000 - importers.MAX_PROBLEMS} more problems"


# --------------------------------------------------------------------------- round trip on real data


def manifest_to_coco(lines: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    """A COCO document holding the boxes of Ground Truth object-detection lines (sparse ids)."""
    categories: dict[int, str] = {}
    images, annotations = [], []
    for index, line in enumerate(lines):
        image_id = 10 + index * 7
        size = line["bounding-box"]["image_size"][0]
        date = datetime.strptime(line["bounding-box-metadata"]["creation-date"], "%Y-%m-%dT%H:%M:%S")
        images.append(
            {
                "id": image_id,
                "file_name": line["source-ref"].removeprefix(prefix),
                "width": size["width"],
                "height": size["height"],
                "date_captured": date.strftime("%Y-%m-%d %H:%M:%S"),
            }
        )
        class_map = line["bounding-box-metadata"]["class-map"]
        for box in line["bounding-box"]["annotations"]:
            categories[box["class_id"]] = class_map[str(box["class_id"])]
            bbox = [box["left"], box["top"], box["width"], box["height"]]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": box["class_id"],
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": 0,
                }
            )
    # Annotations of later images first: only the order within an image matters.
    annotations.sort(key=lambda annotation: -annotation["image_id"])
    return {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": cid, "name": name} for cid, name in sorted(categories.items())],
    }


@pytest.mark.skipif(not FRUIT.is_dir(), reason="shared datasets not available")
def test_coco_round_trip_of_the_fruit_detection_manifest() -> None:
    manifest = [json.loads(line) for line in (FRUIT / "train.manifest").read_text().splitlines() if line]
    assert len(manifest) == 240
    prefix = "s3://datasets/fruit-detection/images/"
    coco = json.dumps(manifest_to_coco(manifest, prefix)).encode()

    result = coco_lines(coco, "datasets", "fruit-detection/images/", "OBJECT_LOCALIZATION", now=NOW)
    assert result.problems == []
    assert len(result.lines) == len(manifest)
    total_boxes = 0
    for original, converted in zip(manifest, parsed(result.lines), strict=True):
        assert converted["source-ref"] == original["source-ref"]
        assert converted["bounding-box"] == original["bounding-box"]
        metadata = dict(original["bounding-box-metadata"])
        metadata["job-name"] = "coco-import"
        assert converted["bounding-box-metadata"] == metadata
        total_boxes += len(converted["bounding-box"]["annotations"])
    assert total_boxes == 465  # as the dataset's README counts

    # the same COCO as image-level labels matches the dataset's multi-label manifest
    multilabel = {
        line["source-ref"]: sorted(v["class-name"] for k, v in line.items() if k.endswith("-metadata"))
        for line in map(json.loads, (FRUIT / "multilabel-train.manifest").read_text().splitlines())
    }
    labels = coco_lines(coco, "datasets", "fruit-detection/images/", "IMAGE_LEVEL_LABELS", now=NOW)
    assert labels.problems == []
    converted_labels = {
        line["source-ref"]: [v["class-name"] for k, v in line.items() if k.endswith("-metadata")]
        for line in parsed(labels.lines)
    }
    assert converted_labels == multilabel
    assert sum(len(names) > 1 for names in converted_labels.values()) == 19  # multi-label images of TRAIN
