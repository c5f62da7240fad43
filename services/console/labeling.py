"""Labeling from the console: save edited entries, and manage a dataset's labels.

The dataset service has one way to change entries, UpdateDatasetEntries (JSON lines matched by
source-ref, applied asynchronously), and no label-management API (spec/api.md: removing a label is
rewriting every entry that uses it). The console builds those lines here:

- `save` takes, per entry, the image-level labels and boxes the user sees plus the line the page
  loaded (`Base`). Label attributes the user kept stay as they were (job name, creation date);
  new labels get new attributes; the boxes become one box attribute. Every line is checked with the
  dataset service's own parser against the image's real size before anything is sent, so a box
  outside the image or a 300-character label is refused with InvalidParameterException and nothing
  stored changes (errors the stored line already had, which labeling cannot fix, do not block it;
  a kept label whose attribute the service flagged is written afresh). Only entries with boxes need
  the image's size, so only their images are read. Under a per-dataset lock
  (ConsoleRepository.dataset_lock) each entry's stored line must still equal its `Base`: otherwise
  someone saved it since the page loaded it and the save is refused with ConflictException. The
  lock is held until the update has landed, so two tabs saving the same entry are serialised and
  the second gets the conflict. The labels the saved entries used before and after are declared,
  so a label stays listed when its last image loses it.
- labels: the list is the dataset's labels in use (ListDatasetLabels) plus those declared in the
  console and not yet assigned (kept in the console's table). Rename rewrites every entry that
  uses the label; delete removes a declared label that no entry uses (on an image or on a box).
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from customlabels.dataset.v1 import dataset_service_pb2 as ds

from services.common.errors import (
    AlreadyExists,
    Conflict,
    InternalServerError,
    InUse,
    InvalidParameter,
    NotFound,
)
from services.console.backends import Backends
from services.console.repository import ConsoleRepository
from services.dataset import manifest

MAX_ENTRIES_PER_SAVE = 100
MAX_LABEL_CHARS = 255
MAX_LABELS_PER_DATASET = 250
# UpdateDatasetEntries takes under 5 MB per call (spec/limits.md §3).
MAX_UPDATE_BYTES = 5_000_000
CONSOLE_JOB = "customlabels-console"
BOX_ATTRIBUTE = "bounding-box"
LABEL_ATTRIBUTE = "label-"
WAIT_FOR_UPDATE_S = 120.0
IN_PROGRESS = ("UPDATE_IN_PROGRESS", "CREATE_IN_PROGRESS")


@dataclass(frozen=True)
class Box:
    """A bounding box in pixels of the image as displayed."""

    label: str
    left: float
    top: float
    width: float
    height: float


@dataclass(frozen=True)
class Edit:
    """What the user wants one entry to say."""

    source_ref: str
    base: str
    labels: tuple[str, ...]
    boxes: tuple[Box, ...]


def _text(value: Any, what: str, low: int = 1, high: int = 2048) -> str:
    if type(value) is not str or not low <= len(value) <= high:
        raise InvalidParameter(f"{what} must be a string of {low} to {high} characters")
    return value


def check_label(value: Any, what: str = "A label") -> str:
    """A label name as the API takes it: 1-255 characters, not only spaces, no control characters."""
    if type(value) is not str:
        raise InvalidParameter(f"{what} must be a string")
    if not 1 <= len(value) <= MAX_LABEL_CHARS:
        shown = value if len(value) <= 40 else value[:40] + "…"
        raise InvalidParameter(
            f"{what} must be 1 to {MAX_LABEL_CHARS} characters long; {shown!r} has {len(value)}"
        )
    if not value.strip() or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidParameter(f"{what} must not be blank or hold control characters")
    return value


def _number(value: Any, what: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise InvalidParameter(f"{what} must be a finite number")
    return float(value)


def parse_edits(document: Mapping[str, Any]) -> tuple[str, list[Edit]]:
    """Reads a SaveDatasetEntries request: {DatasetArn, Entries: [{SourceRef, Base, Labels, Boxes}]}."""
    arn = _text(document.get("DatasetArn"), "DatasetArn", 20)
    raw = document.get("Entries")
    if type(raw) is not list or not 1 <= len(raw) <= MAX_ENTRIES_PER_SAVE:
        raise InvalidParameter(f"Entries must hold 1 to {MAX_ENTRIES_PER_SAVE} entries")
    edits: list[Edit] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        where = f"Entries[{index}]"
        if type(item) is not dict:
            raise InvalidParameter(f"{where} must be an object")
        ref = _text(item.get("SourceRef"), f"{where}.SourceRef")
        if ref in seen:
            raise InvalidParameter(f"{where}: the image {ref} appears twice")
        seen.add(ref)
        base = _text(item.get("Base"), f"{where}.Base", 1, 200_000)
        labels = item.get("Labels", [])
        if type(labels) is not list:
            raise InvalidParameter(f"{where}.Labels must be a list")
        names = tuple(dict.fromkeys(check_label(label, f"{where}: a label") for label in labels))
        boxes_raw = item.get("Boxes", [])
        if type(boxes_raw) is not list or len(boxes_raw) > 1000:
            raise InvalidParameter(f"{where}.Boxes must be a list")
        boxes = []
        for number, box in enumerate(boxes_raw):
            at = f"{where}.Boxes[{number}]"
            if type(box) is not dict:
                raise InvalidParameter(f"{at} must be an object")
            boxes.append(
                Box(
                    check_label(box.get("Label"), f"{at}.Label"),
                    *(_number(box.get(k), f"{at}.{k}") for k in ("Left", "Top", "Width", "Height")),
                )
            )
        edits.append(Edit(ref, base, names, tuple(boxes)))
    return arn, edits


def _stamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def _free(base: str, taken: set[str]) -> str:
    index = 0
    while f"{base}{index}" in taken or f"{base}{index}{manifest.META_SUFFIX}" in taken:
        index += 1
    return f"{base}{index}"


def _pixel_boxes(
    boxes: Sequence[Box], width: int, height: int, ref: str
) -> list[tuple[str, int, int, int, int]]:
    """Rounds boxes to whole pixels; a box that lies outside the image is refused (no silent clipping)."""
    out = []
    for number, box in enumerate(boxes, start=1):
        left, top = round(box.left), round(box.top)
        right, bottom = round(box.left + box.width), round(box.top + box.height)
        if box.width <= 0 or box.height <= 0 or right - left < 1 or bottom - top < 1:
            raise InvalidParameter(f"{ref}: box {number} ({box.label}) has no area")
        if left < 0 or top < 0 or right > width or bottom > height:
            raise InvalidParameter(
                f"{ref}: box {number} ({box.label}) lies outside the {width}×{height} image"
                f" (left {left}, top {top}, right {right}, bottom {bottom})"
            )
        out.append((box.label, left, top, right - left, bottom - top))
    return out


def _classification_meta(name: str, stamp: str) -> dict[str, Any]:
    return {
        "class-name": name,
        "confidence": 1,
        "type": manifest.CLASSIFICATION_TYPE,
        "job-name": CONSOLE_JOB,
        "human-annotated": "yes",
        "creation-date": stamp,
    }


def edited_line(
    base: Mapping[str, Any], edit: Edit, size: tuple[int, int, int] | None, now: datetime
) -> dict[str, Any]:
    """The line `edit` asks for, built from the stored line `base` (see the module docstring).

    `size` is the image's real (width, height, depth) as displayed; it is needed when the edit has
    boxes. A kept image-level attribute that the dataset service flagged (cl-errors in its metadata)
    is written afresh under the same name, so that keeping a label repairs it rather than failing.
    """
    stamp = _stamp(now)
    wanted = list(edit.labels)
    line: dict[str, Any] = {manifest.SOURCE_REF: edit.source_ref}
    kept: set[str] = set()
    box_name: str | None = None
    for key, value in base.items():
        if (
            key == manifest.SOURCE_REF
            or key.startswith(manifest.CL_PREFIX)
            or key.endswith(manifest.META_SUFFIX)
        ):
            continue
        meta = base.get(key + manifest.META_SUFFIX)
        kind = meta.get("type") if isinstance(meta, dict) else None
        if kind == manifest.CLASSIFICATION_TYPE:
            name = meta.get("class-name") if isinstance(meta, dict) else None
            if name in wanted and name not in kept:
                kept.add(name)
                if manifest.CL_ERRORS in meta or type(value) is not int:
                    line[key] = 0
                    line[key + manifest.META_SUFFIX] = _classification_meta(name, stamp)
                    continue
                line[key] = value
                # Saved from the editor = reviewed by a person.
                line[key + manifest.META_SUFFIX] = {
                    k: v for k, v in meta.items() if not k.startswith(manifest.CL_PREFIX)
                } | {"human-annotated": "yes"}
        elif kind == manifest.DETECTION_TYPE:
            box_name = box_name or key
        elif meta is None:
            line[key] = value  # not a label attribute: kept as it was
        else:
            # A label attribute of a type the service does not train on: left untouched.
            line[key] = value
            line[key + manifest.META_SUFFIX] = meta
    taken = set(base)
    for name in wanted:
        if name in kept:
            continue
        attribute = _free(LABEL_ATTRIBUTE, taken)
        taken.add(attribute)
        line[attribute] = 0
        line[attribute + manifest.META_SUFFIX] = _classification_meta(name, stamp)
    if edit.boxes:
        if size is None:
            raise ValueError("the image size is needed to write boxes")
        width, height, depth = size
        pixels = _pixel_boxes(edit.boxes, width, height, edit.source_ref)
        class_ids: dict[str, int] = {}
        for label, *_ in pixels:
            class_ids.setdefault(label, len(class_ids))
        attribute = box_name or (
            _free(BOX_ATTRIBUTE + "-", taken) if BOX_ATTRIBUTE in taken else BOX_ATTRIBUTE
        )
        line[attribute] = {
            "image_size": [{"width": width, "height": height, "depth": depth}],
            "annotations": [
                {"class_id": class_ids[label], "left": left, "top": top, "width": w, "height": h}
                for label, left, top, w, h in pixels
            ],
        }
        line[attribute + manifest.META_SUFFIX] = {
            "objects": [{"confidence": 1} for _ in pixels],
            "class-map": {str(i): label for label, i in class_ids.items()},
            "type": manifest.DETECTION_TYPE,
            "job-name": CONSOLE_JOB,
            "human-annotated": "yes",
            "creation-date": stamp,
        }
    return line


def _parsed(text: str, size: tuple[int, int] | None) -> manifest.ParsedLine:
    parsed = manifest.parse_line(text)
    if parsed.entry is not None and size is not None:
        parsed = manifest.apply_image(parsed, size[0], size[1], None)
    return parsed


def check_line(text: str, size: tuple[int, int] | None, base: str | None = None) -> None:
    """Refuses a line that the dataset service would store with a new error (its own parser decides).

    `size` is the image's real (width, height), when known (it is for lines with boxes). Errors the
    stored line `base` already had (say an image the service found too small) do not block a save:
    labeling cannot fix them, and the save does not make them worse; every other error does.
    """
    parsed = _parsed(text, size)
    if parsed.entry is None:
        raise InvalidParameter(f"{parsed.dropped}: {parsed.message or 'the entry is not valid'}")
    before = Counter(issue.code for issue in _parsed(base, size).errors) if base is not None else Counter()
    for issue in parsed.errors:
        if before[issue.code] > 0:
            before[issue.code] -= 1
            continue
        raise InvalidParameter(f"{parsed.source_ref}: {issue.code}: {issue.message}")


def renamed_line(line: Mapping[str, Any], old: str, new: str) -> dict[str, Any]:
    """`line` with label `old` called `new` in image-level attributes and class maps (duplicates merged)."""
    out: dict[str, Any] = {}
    names: set[str] = set()
    for key, value in line.items():
        if key.startswith(manifest.CL_PREFIX) or key.endswith(manifest.META_SUFFIX):
            continue
        meta = line.get(key + manifest.META_SUFFIX)
        if not isinstance(meta, dict):
            out[key] = value
            continue
        meta = {k: v for k, v in meta.items() if not k.startswith(manifest.CL_PREFIX)}
        if meta.get("type") == manifest.CLASSIFICATION_TYPE:
            name = new if meta.get("class-name") == old else meta.get("class-name")
            if name in names:
                continue  # the image had both labels: one attribute is enough
            names.add(name)
            meta["class-name"] = name
        elif meta.get("type") == manifest.DETECTION_TYPE and isinstance(meta.get("class-map"), dict):
            meta["class-map"] = {k: (new if v == old else v) for k, v in meta["class-map"].items()}
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if not k.startswith(manifest.CL_PREFIX)}
        out[key] = value
        out[key + manifest.META_SUFFIX] = meta
    return out


def _dumps(line: Mapping[str, Any]) -> str:
    return json.dumps(line, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _batches(lines: Iterable[str], limit: int = MAX_UPDATE_BYTES) -> Iterator[list[str]]:
    batch: list[str] = []
    size = 0
    for line in lines:
        length = len(line.encode()) + 1
        if batch and size + length > limit:
            yield batch
            batch, size = [], 0
        batch.append(line)
        size += length
    if batch:
        yield batch


class Labeling:
    """The console's labeling operations, on top of the dataset service."""

    def __init__(
        self,
        backends: Backends,
        repo: ConsoleRepository,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        wait_s: float = WAIT_FOR_UPDATE_S,
    ) -> None:
        self.backends = backends
        self.repo = repo
        self.clock = clock
        self.sleep = sleep
        self.wait_s = wait_s

    # -- reading ----------------------------------------------------------------------------------

    def _describe(self, arn: str) -> ds.DatasetDescription:
        return self.backends.call(
            "DescribeDataset", ds.DescribeDatasetRequest(dataset_arn=arn)
        ).dataset_description

    def stored_line(self, arn: str, ref: str) -> str | None:
        """The entry of `ref` as stored, or None."""
        token = ""
        while True:
            page = self.backends.call(
                "ListDatasetEntries",
                ds.ListDatasetEntriesRequest(dataset_arn=arn, source_ref_contains=ref, next_token=token),
            )
            for line in page.dataset_entries:
                if json.loads(line).get(manifest.SOURCE_REF) == ref:
                    return line
            token = page.next_token
            if not token:
                return None

    def image_size(self, arn: str, ref: str) -> tuple[int, int, int]:
        """The real (width, height, depth) of an entry's image, as displayed; from the dataset service."""
        request = ds.GetDatasetImageRequest(dataset_arn=arn, source_ref=ref, max_side=0)
        stream = self.backends.stream("GetDatasetImage", request)
        try:
            first = next(stream, None)
        finally:
            stream.close()
        if first is None or not first.HasField("header"):
            raise InternalServerError("the dataset service sent no image header")
        return first.header.width, first.header.height, 3

    def dataset_labels(self, arn: str) -> list[dict[str, Any]]:
        """Every label of the dataset: in use (with counts) and declared."""
        labels: dict[str, dict[str, Any]] = {}
        token = ""
        while True:
            page = self.backends.call(
                "ListDatasetLabels", ds.ListDatasetLabelsRequest(dataset_arn=arn, next_token=token)
            )
            for item in page.dataset_label_descriptions:
                labels[item.label_name] = {
                    "Name": item.label_name,
                    "EntryCount": item.label_stats.entry_count,
                    "BoundingBoxCount": item.label_stats.bounding_box_count,
                }
            token = page.next_token
            if not token:
                break
        for name in self.repo.declared_labels(arn):
            labels.setdefault(name, {"Name": name, "EntryCount": 0, "BoundingBoxCount": 0})
        return sorted(labels.values(), key=lambda label: label["Name"])

    # -- writing ----------------------------------------------------------------------------------

    def _update(self, arn: str, lines: Sequence[str]) -> ds.DatasetDescription:
        """Sends the lines (in < 5 MB calls) and waits for each update to land; returns the final description."""
        description = self._describe(arn)
        for batch in _batches(lines):
            self.backends.call(
                "UpdateDatasetEntries",
                ds.UpdateDatasetEntriesRequest(
                    dataset_arn=arn, changes=ds.DatasetChanges(ground_truth="\n".join(batch).encode())
                ),
            )
            description = self._wait(arn)
            if description.status == ds.DATASET_STATUS_UPDATE_FAILED:
                raise InvalidParameter(
                    f"The dataset service refused the change: {description.status_message}"
                )
        return description

    def _wait(self, arn: str) -> ds.DatasetDescription:
        deadline = self.clock() + self.wait_s
        delay = 0.05
        while True:
            description = self._describe(arn)
            if ds.DatasetStatus.Name(description.status).removeprefix("DATASET_STATUS_") not in IN_PROGRESS:
                return description
            if self.clock() >= deadline:
                raise InUse(
                    "The dataset is still being updated; its entries will show the change when it ends"
                )
            self.sleep(delay)
            delay = min(delay * 2, 0.5)

    def save(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """SaveDatasetEntries: writes the edited entries; returns their stored lines and the dataset status."""
        arn, edits = parse_edits(document)
        now = datetime.fromtimestamp(self.clock(), UTC)
        with self.repo.dataset_lock(arn):
            lines: list[str] = []
            conflicts: list[str] = []
            # Labels stay in the dataset's list when their last image loses them (until deleted).
            used: dict[str, None] = {}
            for edit in edits:
                stored = self.stored_line(arn, edit.source_ref)
                if stored is None:
                    raise NotFound(f"The dataset has no image {edit.source_ref}")
                if stored != edit.base:
                    conflicts.append(edit.source_ref)
                    continue
                # Only boxes need the image's size (and reading the image for it costs a transfer).
                size = self.image_size(arn, edit.source_ref) if edit.boxes else None
                text = _dumps(edited_line(json.loads(stored), edit, size, now))
                check_line(text, (size[0], size[1]) if size else None, stored)
                lines.append(text)
                used.update(dict.fromkeys(sorted(manifest.parse_line(stored).labels)))
                used.update(dict.fromkeys((*edit.labels, *(box.label for box in edit.boxes))))
            if conflicts:
                shown = ", ".join(conflicts[:3]) + (
                    f" and {len(conflicts) - 3} more" if len(conflicts) > 3 else ""
                )
                raise Conflict(
                    f"{shown} changed since this page loaded it (another tab or user saved it). "
                    "Nothing was saved; reload to see the current labels."
                )
            description = self._update(arn, lines)
            self.repo.declare_labels(arn, list(used))
            saved = {edit.source_ref: self.stored_line(arn, edit.source_ref) for edit in edits}
        return {
            "Entries": [line for line in saved.values() if line is not None],
            "Status": ds.DatasetStatus.Name(description.status).removeprefix("DATASET_STATUS_"),
            "StatusMessage": description.status_message,
        }

    def list_labels(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """ListLabels: {DatasetArn} → {Labels: [{Name, EntryCount, BoundingBoxCount}]}."""
        arn = _text(document.get("DatasetArn"), "DatasetArn", 20)
        return {"Labels": self.dataset_labels(arn)}

    def add_labels(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """AddLabels: {DatasetArn, Labels: [...]} declares labels; refused past 250 labels."""
        arn = _text(document.get("DatasetArn"), "DatasetArn", 20)
        raw = document.get("Labels")
        if type(raw) is not list or not 1 <= len(raw) <= MAX_LABELS_PER_DATASET:
            raise InvalidParameter(f"Labels must hold 1 to {MAX_LABELS_PER_DATASET} names")
        names = list(dict.fromkeys(check_label(name) for name in raw))
        existing = {label["Name"] for label in self.dataset_labels(arn)}
        if len(existing | set(names)) > MAX_LABELS_PER_DATASET:
            raise InvalidParameter(f"A dataset can have at most {MAX_LABELS_PER_DATASET} labels")
        self.repo.declare_labels(arn, [name for name in names if name not in existing])
        return {"Labels": self.dataset_labels(arn)}

    def import_labels(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """ImportLabels: {DatasetArn, SourceDatasetArn} declares the other dataset's labels here too."""
        source = _text(document.get("SourceDatasetArn"), "SourceDatasetArn", 20)
        names = [label["Name"] for label in self.dataset_labels(source)]
        if not names:
            raise InvalidParameter("The source dataset has no labels")
        return self.add_labels({"DatasetArn": document.get("DatasetArn"), "Labels": names})

    def delete_label(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """DeleteLabel: {DatasetArn, Label}; refused (ResourceInUseException) while an image uses it."""
        arn = _text(document.get("DatasetArn"), "DatasetArn", 20)
        name = check_label(document.get("Label"))
        current = {label["Name"]: label for label in self.dataset_labels(arn)}
        if name not in current:
            raise NotFound(f"The dataset has no label {name!r}")
        images = max(current[name]["EntryCount"], current[name]["BoundingBoxCount"])
        if images:
            raise InUse(
                f"The label {name!r} is assigned to {images} image(s); remove it from them before deleting it"
            )
        self.repo.forget_label(arn, name)
        return {"Labels": self.dataset_labels(arn)}

    def rename_label(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """RenameLabel: {DatasetArn, Label, NewLabel} rewrites every entry that uses the label."""
        arn = _text(document.get("DatasetArn"), "DatasetArn", 20)
        old = check_label(document.get("Label"))
        new = check_label(document.get("NewLabel"), "The new label")
        current = {label["Name"] for label in self.dataset_labels(arn)}
        if old not in current:
            raise NotFound(f"The dataset has no label {old!r}")
        if new in current:
            raise AlreadyExists(f"The dataset already has a label {new!r}")
        with self.repo.dataset_lock(arn):
            lines = []
            token = ""
            while True:
                page = self.backends.call(
                    "ListDatasetEntries",
                    ds.ListDatasetEntriesRequest(dataset_arn=arn, contains_labels=[old], next_token=token),
                )
                lines += [_dumps(renamed_line(json.loads(line), old, new)) for line in page.dataset_entries]
                token = page.next_token
                if not token:
                    break
            if lines:
                self._update(arn, lines)
            self.repo.rename_label(arn, old, new)
        return {"Labels": self.dataset_labels(arn), "RenamedEntries": len(lines)}
