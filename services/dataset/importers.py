"""The "more ways in": S3 folder imports (spec/manifest.md §12) and COCO files (§10) as manifest lines.

Pure functions, no I/O: the dataset service lists the bucket or reads the COCO file, calls these,
and feeds the lines it gets to the same validation and ingest as a Ground Truth manifest.

S3 folder import (`folder_label`, `folder_lines`):
- only keys ending in .jpg, .jpeg or .png (any case) are imported; the content check of the ingest
  still decides whether they really are images. Folder markers (keys ending in "/"), hidden files
  and anything inside a hidden folder (a segment below the prefix starting with ".", such as
  .DS_Store or .thumbnails/) are skipped;
- keys that play path tricks (a "." or ".." segment, an empty segment such as "a//b" or a leading
  "/", control characters) are skipped with a reason, never imported;
- an image directly under the prefix is unlabeled; one under <prefix><child>/... gets the
  image-level label <child>; a child longer than 255 characters is skipped with a reason;
- lines use the image-level format of §2 with attribute "label" (several labels: "label0",
  "label1", ...), human-annotated "yes", confidence 1; unlabeled images get a source-ref-only line.

COCO (`coco_lines`): see the function. Problems with single images, categories or annotations
skip that item and are reported in `CocoResult.problems`; only a file that is unusable as a whole
raises `CocoError`.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
MAX_LABEL_LENGTH = 255
MAX_KEY_LENGTH = 1024
# A hostile file may hold millions of bad annotations: the problem list keeps the first ones only.
MAX_PROBLEMS = 100

FOLDER_ATTRIBUTE = "label"
FOLDER_JOB_NAME = "s3-folder-import"
COCO_JOB_NAME = "coco-import"
COCO_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
MANIFEST_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"

CLASSIFICATION_TYPE = "groundtruth/image-classification"
DETECTION_TYPE = "groundtruth/object-detection"

CocoMode = Literal["OBJECT_LOCALIZATION", "IMAGE_LEVEL_LABELS"]
COCO_MODES: tuple[CocoMode, ...] = ("OBJECT_LOCALIZATION", "IMAGE_LEVEL_LABELS")


# --------------------------------------------------------------------------- shared helpers


def path_problem(path: str) -> str | None:
    """Returns why an object key or relative file name is unsafe to use, or None when it is fine.

    Unsafe: empty, longer than 1024 characters, control characters, a leading "/", an empty
    segment ("a//b"), or a "." or ".." segment; backslashes count as separators for the segment
    checks, so "a\\..\\b" is caught too.
    """
    if not path:
        return "empty key"
    if len(path) > MAX_KEY_LENGTH:
        return f"key longer than {MAX_KEY_LENGTH} characters"
    if any(unicodedata.category(char) == "Cc" for char in path):
        return "key contains control characters"
    if path.startswith(("/", "\\")):
        return "absolute path"
    body = path[:-1] if path.endswith("/") else path  # a folder marker's trailing "/" is no empty segment
    segments = body.replace("\\", "/").split("/")
    if "" in segments:
        return "empty path segment ('//')"
    if any(segment in (".", "..") for segment in segments):
        return "'.' or '..' path segment"
    return None


def is_image_name(name: str) -> bool:
    """Tells whether a key or file name has an image extension (.jpg, .jpeg, .png, any case)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def label_problem(label: str) -> str | None:
    """Returns why a label name is not allowed (1-255 characters), or None."""
    if not label:
        return "empty label name"
    if len(label) > MAX_LABEL_LENGTH:
        return f"label name longer than {MAX_LABEL_LENGTH} characters"
    return None


def manifest_date(moment: datetime) -> str:
    """Formats a timestamp as a manifest creation-date (UTC, `2023-05-02T08:30:00`)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime(MANIFEST_DATE_FORMAT)


def _now() -> datetime:
    return datetime.now(UTC)


def _dumps(line: Mapping[str, Any]) -> str:
    # Compact, non-ASCII kept: lines count characters against the 100,000 limit.
    return json.dumps(line, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _image_level_line(
    source_ref: str, labels: Sequence[str], creation_date: str, job_name: str, attribute: str
) -> str:
    """Returns an image-level manifest line (§2); no labels gives a source-ref-only (unlabeled) line."""
    line: dict[str, Any] = {"source-ref": source_ref}
    names = [attribute] if len(labels) == 1 else [f"{attribute}{i}" for i in range(len(labels))]
    for index, (name, label) in enumerate(zip(names, labels, strict=True)):
        line[name] = index
        line[f"{name}-metadata"] = {
            "class-name": label,
            "confidence": 1,
            "type": CLASSIFICATION_TYPE,
            "job-name": job_name,
            "human-annotated": "yes",
            "creation-date": creation_date,
        }
    return _dumps(line)


# --------------------------------------------------------------------------- S3 folders (§12)


@dataclass(frozen=True)
class ImportedLine:
    """One listed object: its manifest line, or why it is not imported (then `line` is None)."""

    source_ref: str
    line: str | None
    skipped_reason: str | None = None


def normalize_prefix(prefix: str) -> str:
    """Returns the key prefix as a folder: leading "/" dropped, one trailing "/" ("" = bucket root).

    Raises ValueError when the prefix itself plays path tricks.
    """
    stripped = prefix.lstrip("/")
    if not stripped:
        return ""
    folder = stripped if stripped.endswith("/") else stripped + "/"
    problem = path_problem(folder)
    if problem is not None:
        raise ValueError(f"invalid S3 key prefix {prefix[:200]!r}: {problem}")
    return folder


def folder_label(prefix: str, key: str) -> str | None | Literal[False]:
    """Returns the label the folder layout gives `key` under the folder `prefix` (§12).

    None: the key sits directly in the prefix (imported unlabeled); "<child>": it sits anywhere
    below <prefix><child>/ (deeper folders are ignored); False: it is not imported at all (outside
    the prefix, a folder marker, a path trick, or a child name that is no valid label).
    `prefix` is a key prefix with or without its trailing "/"; "" means the bucket root.
    Raises ValueError when the prefix itself is invalid.
    """
    label, _ = _folder_label(normalize_prefix(prefix), key)
    return label


def _folder_label(folder: str, key: str) -> tuple[str | None | Literal[False], str | None]:
    """Returns (label, reason not imported) for a normalized folder prefix."""
    if not key.startswith(folder):
        return False, "outside the prefix"
    problem = path_problem(key)
    if problem is not None:
        return False, problem
    relative = key[len(folder) :]
    if not relative or relative.endswith("/"):
        return False, "folder marker"
    *folders, _ = relative.split("/")
    if not folders:
        return None, None
    child = folders[0]
    problem = label_problem(child)
    if problem is not None:
        return False, f"folder name is no valid label: {problem}"
    return child, None


def folder_lines(
    bucket: str, prefix: str, keys: Iterable[str], label_by_folder: bool, now: datetime | None = None
) -> Iterator[ImportedLine]:
    """Yields one ImportedLine per listed key, in key order, for an S3 folder import (§12).

    Images get an image-level line labeled with their folder (or a source-ref-only line when they
    sit directly in the prefix or `label_by_folder` is false); every other key comes back with
    `line` None and the reason it is skipped. Duplicate keys are reported once as skipped.
    Raises ValueError (before yielding anything) when the prefix is invalid.
    """
    folder = normalize_prefix(prefix)
    creation_date = manifest_date(now or _now())
    return _folder_lines(bucket, folder, sorted(keys), label_by_folder, creation_date)


def _folder_lines(
    bucket: str, folder: str, keys: list[str], label_by_folder: bool, creation_date: str
) -> Iterator[ImportedLine]:
    previous: str | None = None
    for key in keys:
        source_ref = f"s3://{bucket}/{key}"
        if key == previous:
            yield ImportedLine(source_ref, None, "duplicate key")
            continue
        previous = key
        label, reason = _folder_label(folder, key)
        if label is False:
            yield ImportedLine(source_ref, None, reason)
            continue
        relative_segments = key[len(folder) :].split("/")
        if any(segment.startswith(".") for segment in relative_segments):
            yield ImportedLine(source_ref, None, "hidden file or folder")
            continue
        if not is_image_name(key):
            yield ImportedLine(source_ref, None, "not a .jpg, .jpeg or .png file")
            continue
        labels = [label] if label_by_folder and label is not None else []
        line = _image_level_line(source_ref, labels, creation_date, FOLDER_JOB_NAME, FOLDER_ATTRIBUTE)
        yield ImportedLine(source_ref, line)


# --------------------------------------------------------------------------- COCO (§10)


class CocoError(ValueError):
    """The COCO file as a whole cannot be used (not JSON, not an object, no images section...)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class CocoResult:
    """The manifest lines of a COCO file (in its image order) and what was skipped, and why."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # How many problems there were in all; `problems` keeps the first MAX_PROBLEMS.
    problem_count: int = 0

    def problem(self, message: str) -> None:
        """Records one problem (the text is kept for the first MAX_PROBLEMS only)."""
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(message)


@dataclass
class _Image:
    id: Any
    source_ref: str
    width: int
    height: int
    creation_date: str
    boxes: list[tuple[int, list[float | int]]] = field(default_factory=list)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _is_id(value: Any) -> bool:
    return _is_int(value) or (isinstance(value, str) and 0 < len(value) <= 256)


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _pixels(value: Any) -> int | None:
    """Returns a positive whole pixel count (640 or 640.0), else None."""
    if _is_int(value) and value > 0:
        return value
    if isinstance(value, float) and math.isfinite(value) and value > 0 and value.is_integer():
        return int(value)
    return None


def _coco_date(value: Any, now: datetime) -> str:
    if isinstance(value, str):
        try:
            return datetime.strptime(value, COCO_DATE_FORMAT).strftime(MANIFEST_DATE_FORMAT)
        except ValueError:
            pass
    return manifest_date(now)


def _parse(coco: Mapping[str, Any] | bytes | str) -> Mapping[str, Any]:
    if isinstance(coco, bytes | bytearray | str):
        try:
            coco = json.loads(coco)
        except UnicodeDecodeError:
            raise CocoError("the COCO file is not UTF-8 text") from None
        except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
            raise CocoError(f"the COCO file is not valid JSON: {exc}") from None
        except RecursionError:
            raise CocoError("the COCO file is not valid JSON: nested too deeply") from None
    if not isinstance(coco, Mapping):
        raise CocoError(f"the COCO file must be a JSON object, not {type(coco).__name__}")
    return coco


def _section(coco: Mapping[str, Any], name: str, result: CocoResult, required: bool) -> list[Any]:
    value = coco.get(name)
    if value is None:
        if required:
            raise CocoError(f"the COCO file has no '{name}' list")
        result.problem(f"the COCO file has no '{name}' list; treated as empty")
        return []
    if not isinstance(value, list):
        raise CocoError(f"the COCO file's '{name}' must be a list, not {type(value).__name__}")
    return value


def _source_ref(raw: Mapping[str, Any], images_bucket: str, images_prefix: str) -> tuple[str | None, str]:
    """Returns (source-ref, "") or (None, why the image cannot be located)."""
    url = raw.get("coco_url")
    if isinstance(url, str) and url.startswith("s3://"):
        bucket, _, key = url.removeprefix("s3://").partition("/")
        problem = path_problem(key) if bucket and "/" not in bucket else "no bucket"
        if problem is None and key.endswith("/"):
            problem = "names a folder"
        if problem is not None:
            return None, f"coco_url {_describe(url)} is no usable S3 location: {problem}"
        return url, ""
    file_name = raw.get("file_name")
    if not isinstance(file_name, str) or not file_name:
        return None, "file_name is missing or not a string"
    problem = path_problem(file_name) or ("names a folder" if file_name.endswith("/") else None)
    if problem is None and len(file_name) > 2 and file_name[1] == ":" and file_name[2] in "/\\":
        problem = "absolute path"
    if problem is not None:
        return None, f"file_name {_describe(file_name)} is unsafe: {problem}"
    if not images_bucket:
        return None, "no images bucket given and coco_url is no S3 location"
    key = images_prefix + file_name
    if len(key) > MAX_KEY_LENGTH:
        return None, f"object key longer than {MAX_KEY_LENGTH} characters"
    return f"s3://{images_bucket}/{key}", ""


def _images(
    raws: list[Any], images_bucket: str, images_prefix: str, now: datetime, result: CocoResult
) -> tuple[list[_Image], dict[Any, _Image | None]]:
    """Returns the usable images in file order and every image id seen (None: skipped image)."""
    images: list[_Image] = []
    by_id: dict[Any, _Image | None] = {}
    refs: set[str] = set()
    for index, raw in enumerate(raws):
        where = f"images[{index}]"
        if not isinstance(raw, Mapping):
            result.problem(f"{where} skipped: not an object")
            continue
        image_id = raw.get("id")
        if not _is_id(image_id):
            result.problem(f"{where} skipped: id {_describe(image_id)} is not an integer or string")
            continue
        where = f"image id {image_id!r}"
        if image_id in by_id:
            result.problem(f"{where} skipped: duplicate image id (the first image with it is kept)")
            continue
        by_id[image_id] = None
        source_ref, problem = _source_ref(raw, images_bucket, images_prefix)
        width, height = _pixels(raw.get("width")), _pixels(raw.get("height"))
        if source_ref is None:
            result.problem(f"{where} skipped: {problem}")
        elif width is None or height is None:
            result.problem(f"{where} skipped: width and height must be positive whole numbers")
        elif source_ref in refs:
            result.problem(f"{where} skipped: {source_ref} is already used by another image")
        else:
            refs.add(source_ref)
            image = _Image(image_id, source_ref, width, height, _coco_date(raw.get("date_captured"), now))
            by_id[image_id] = image
            images.append(image)
    return images, by_id


def _categories(raws: list[Any], result: CocoResult) -> dict[int, str | None]:
    """Returns every category id seen -> its name (None: skipped category)."""
    names: dict[int, str | None] = {}
    for index, raw in enumerate(raws):
        if not isinstance(raw, Mapping):
            result.problem(f"categories[{index}] skipped: not an object")
            continue
        category_id = raw.get("id")
        if not _is_int(category_id):
            result.problem(f"categories[{index}] skipped: id {_describe(category_id)} is not an integer")
            continue
        where = f"category id {category_id}"
        if category_id in names:
            result.problem(f"{where} skipped: duplicate category id (the first category with it is kept)")
            continue
        name = raw.get("name")
        problem = label_problem(name) if isinstance(name, str) else "name is missing or not a string"
        if problem is not None:
            result.problem(f"{where} skipped: {problem}")
            names[category_id] = None
            continue
        names[category_id] = name
    return names


def _annotations(
    raws: list[Any], images: dict[Any, _Image | None], categories: dict[int, str | None], result: CocoResult
) -> None:
    """Attaches each usable annotation's (category id, bbox) to its image, in file order."""
    for index, raw in enumerate(raws):
        where = f"annotations[{index}]"
        if not isinstance(raw, Mapping):
            result.problem(f"{where} skipped: not an object")
            continue
        if "id" in raw and _is_id(raw["id"]):
            where = f"annotation id {raw['id']!r}"
        image_id, category_id, bbox = raw.get("image_id"), raw.get("category_id"), raw.get("bbox")
        if not _is_id(image_id) or image_id not in images:
            result.problem(f"{where} skipped: image_id {_describe(image_id)} names no image")
            continue
        image = images[image_id]
        if image is None:
            continue  # the image was skipped, and said so
        if not _is_int(category_id) or category_id not in categories:
            result.problem(f"{where} skipped: category_id {_describe(category_id)} names no category")
            continue
        if categories[category_id] is None:
            result.problem(f"{where} skipped: its category {category_id} was skipped")
            continue
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
            result.problem(f"{where} skipped: bbox {_describe(bbox)} is not a list of 4 finite numbers")
            continue
        image.boxes.append((category_id, list(bbox)))


def _detection_line(image: _Image, categories: Mapping[int, str | None], attribute: str) -> str:
    used = sorted({category_id for category_id, _ in image.boxes})
    line = {
        "source-ref": image.source_ref,
        attribute: {
            "image_size": [{"width": image.width, "height": image.height, "depth": 3}],
            "annotations": [
                {
                    "class_id": category_id,
                    "left": bbox[0],
                    "top": bbox[1],
                    "width": bbox[2],
                    "height": bbox[3],
                }
                for category_id, bbox in image.boxes
            ],
        },
        f"{attribute}-metadata": {
            "objects": [{"confidence": 1} for _ in image.boxes],
            "class-map": {str(category_id): categories[category_id] for category_id in used},
            "type": DETECTION_TYPE,
            "human-annotated": "yes",
            "creation-date": image.creation_date,
            "job-name": COCO_JOB_NAME,
        },
    }
    return _dumps(line)


def coco_lines(
    coco: Mapping[str, Any] | bytes | str,
    images_bucket: str,
    images_prefix: str,
    mode: CocoMode | None = "OBJECT_LOCALIZATION",
    attribute: str | None = None,
    now: datetime | None = None,
) -> CocoResult:
    """Converts a COCO annotation file into manifest lines (spec/manifest.md §10), one per image.

    source-ref = s3://<images_bucket>/<images_prefix><file_name> (plain concatenation), or the
    image's coco_url when it already is an s3:// location. OBJECT_LOCALIZATION (attribute default
    "bounding-box"): one box line per image with class_id = category_id, left/top/width/height =
    bbox (numbers kept as they are), class-map of the categories used on the image, one
    {"confidence": 1} per box, image_size from width/height with depth 3, creation-date from
    date_captured ("%Y-%m-%d %H:%M:%S", else now); an image without annotations gets empty
    annotations. IMAGE_LEVEL_LABELS (attribute default "label"): one image-level line per image
    with the distinct category names of its boxes, sorted (several = multi-label); an image
    without annotations gets an unlabeled (source-ref-only) line. segmentation, iscrowd, area,
    info and licenses are ignored.

    Skipped items (bad image, duplicate image id, unsafe file_name, annotation naming an unknown
    image or category, bbox not 4 finite numbers, ...) are listed in `problems`. Raises CocoError
    when the file is not a JSON object, lacks an `images` list, has a section of the wrong type,
    or yields no usable image.
    """
    mode = mode or "OBJECT_LOCALIZATION"  # CocoImportMode UNSPECIFIED means localization
    if mode not in COCO_MODES:
        raise ValueError(f"unknown COCO import mode {mode!r}")
    document = _parse(coco)
    result = CocoResult()
    raw_images = _section(document, "images", result, required=True)
    raw_annotations = _section(document, "annotations", result, required=False)
    raw_categories = _section(document, "categories", result, required=False)
    if not raw_images:
        raise CocoError("the COCO file's 'images' list is empty")
    images, by_id = _images(raw_images, images_bucket, images_prefix, now or _now(), result)
    if not images:
        shown = "; ".join(result.problems[:3])
        raise CocoError(f"no usable image in the COCO file ({result.problem_count} problems): {shown}")
    categories = _categories(raw_categories, result)
    _annotations(raw_annotations, by_id, categories, result)
    for image in images:
        if mode == "OBJECT_LOCALIZATION":
            result.lines.append(_detection_line(image, categories, attribute or "bounding-box"))
        else:
            labels = sorted({str(categories[category_id]) for category_id, _ in image.boxes})
            result.lines.append(
                _image_level_line(
                    image.source_ref, labels, image.creation_date, COCO_JOB_NAME, attribute or "label"
                )
            )
    if result.problem_count > len(result.problems):
        result.problems.append(f"... and {result.problem_count - len(result.problems)} more problems")
    return result
