"""ListTestResults: a trained version's test images with ground truth, predictions and outcomes.

Read from the files training already wrote, never recomputed:
- the evaluation manifest snapshot (`TestingDataResult.Output`, in the version's OutputConfig bucket),
  read back with `evaluation.parse_testing_snapshot`: per image, its ground truth and every evaluation
  record (TP/FP predictions above threshold, FN records for what was missed, TN records the manifest
  carries for classification), in the order of the file;
- the service-private snapshot in the models bucket (`<snapshot>/testing.jsonl`, then `training.jsonl`
  for any image not found there), whose lines name the content-addressed copy of each image, so the
  console can fetch it with the dataset service's GetDatasetImage.

A version's evaluation never changes, so the parsed result is kept in a small LRU cache keyed by the
version, the manifest's key and its ETag: paging through a version parses it once, and a manifest
that was overwritten is parsed again (one HEAD request per call checks it still exists).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from services.common.errors import InvalidS3Object, NotFound
from services.common.storage import ObjectStore
from services.training import evaluation
from services.training.repository import VersionRow


@dataclass(frozen=True, slots=True)
class StoredImage:
    """Where the copy of a test image is, and its displayed size (0 when not known)."""

    bucket: str
    key: str
    width: int = 0
    height: int = 0


@dataclass(frozen=True, slots=True)
class ResultImage:
    """One test image of a version: its position in the manifest, its evaluation and its stored copy."""

    index: int
    evaluated: evaluation.EvaluatedImage
    image: StoredImage | None
    width: int
    height: int
    labels: frozenset[str]  # ground truth and record labels (the Labels filter)
    kinds: frozenset[str]  # the outcome kinds of its records: TP, FP, FN, TN (the Outcome filter)


@dataclass(frozen=True, slots=True)
class VersionResults:
    """Every test image of one version, in manifest order."""

    images: tuple[ResultImage, ...]

    def matching(self, labels: Sequence[str], kind: str | None) -> list[ResultImage]:
        """The images with any of `labels` (none: all) and a record of `kind` (None: any), in order."""
        wanted = frozenset(labels)
        return [
            image
            for image in self.images
            if (not wanted or image.labels & wanted) and (kind is None or kind in image.kinds)
        ]


def snapshot_copies(text: str, refs: set[str]) -> dict[str, StoredImage]:
    """source-ref → stored copy for the `refs` found in the text of a snapshot file (one JSON line per
    entry: `{"line": <the entry's JSON line>, "image": {"bucket", "key", "width", "height"} | null}`)."""
    found: dict[str, StoredImage] = {}
    for raw in text.split("\n"):
        if not raw:
            continue
        item = json.loads(raw)
        image = item.get("image")
        if not image:
            continue
        ref = json.loads(item["line"]).get("source-ref")
        if ref in refs and ref not in found:
            found[ref] = StoredImage(
                image["bucket"], image["key"], int(image.get("width") or 0), int(image.get("height") or 0)
            )
    return found


def load(store: ObjectStore, models_bucket: str, row: VersionRow, manifest: str) -> VersionResults:
    """Parses a version's evaluation manifest (the text `manifest`) and finds each image's stored copy."""
    try:
        parsed = evaluation.parse_testing_snapshot(manifest)
    except ValueError as exc:
        where = f"s3://{row.output_bucket}/{row.files['test_output']}"
        raise InvalidS3Object(f"the evaluation manifest {where} cannot be read: {exc}") from None
    missing = {p.source_ref for p in parsed}
    copies: dict[str, StoredImage] = {}
    snapshot = row.files.get("snapshot")
    # The test images are in testing.jsonl; training.jsonl is read only for any it lacks (a layout
    # where an auto-split test set stayed in the TRAIN snapshot).
    for name in ("testing.jsonl", "training.jsonl"):
        if not missing or not snapshot:
            break
        try:
            text = store.get_bytes(models_bucket, f"{snapshot}/{name}").decode()
        except InvalidS3Object:
            continue  # a version trained before the file existed: its images stay unknown
        found = snapshot_copies(text, missing)
        copies.update(found)
        missing -= set(found)
    images = []
    for index, p in enumerate(parsed):
        copy = copies.get(p.source_ref)
        width, height = (
            (copy.width, copy.height) if copy and copy.width else p.ground_truth.image_size or (0, 0)
        )
        images.append(
            ResultImage(index, p, copy, width, height, p.labels, frozenset(o.kind for o in p.outcomes))
        )
    return VersionResults(tuple(images))


class ResultsCache:
    """A thread-safe LRU of parsed evaluations, keyed by (version ARN, manifest key, manifest ETag)."""

    def __init__(self, size: int = 16) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self.size = size
        self._items: OrderedDict[tuple[str, str, str], VersionResults] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> VersionResults | None:
        """The cached results, or None."""
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[str, str, str], results: VersionResults) -> None:
        """Caches `results`, dropping the least recently used entries past `size`."""
        with self._lock:
            self._items[key] = results
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class TestResultsReader:
    """Reads (and caches) the test results of versions."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, store: ObjectStore, models_bucket: str, cache: ResultsCache | None = None) -> None:
        self.store = store
        self.models_bucket = models_bucket
        self.cache = cache or ResultsCache()

    def results(self, row: VersionRow) -> VersionResults:
        """The version's parsed test results; NotFound when its evaluation manifest was deleted."""
        bucket, key = row.output_bucket, row.files["test_output"]
        try:
            etag = self.store.stat(bucket, key).etag
        except InvalidS3Object:
            if not self.store.exists(bucket, key):
                raise NotFound(f"the evaluation manifest s3://{bucket}/{key} does not exist") from None
            raise
        cache_key = (row.arn, key, etag)
        cached = self.cache.get(cache_key)
        if cached is not None:
            return cached
        try:
            text = self.store.get_bytes(bucket, key).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidS3Object(f"the evaluation manifest s3://{bucket}/{key} is not UTF-8 text") from None
        results = load(self.store, self.models_bucket, row, text)
        self.cache.put(cache_key, results)
        return results
