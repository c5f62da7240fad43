"""Manifest validation core: one SageMaker Ground Truth JSON Line in, one dataset entry out.

Pure functions over text and dicts (no I/O, no gRPC, no database): the dataset service reads the
manifest and the images and calls these. Everything follows spec/manifest.md; section numbers below
(§n) point there, and `†` marks a choice the spec leaves open (each one is documented where it is made).

Outcomes of `parse_line` for one line:

- *dropped* (§6.2, terminal content error): the line is removed at import and counts toward
  `ERROR_TOO_MANY_RECORDS_IN_ERROR`. `ParsedLine.dropped` holds the code.
- an *entry*: the line as the service stores it (§8). Incoming `cl-*` keys are stripped and recomputed:
  `cl-metadata: {"is_labeled": …}` and `cl-errors` at the top level (line errors), `cl-errors` inside
  `<attr>-metadata` (attribute errors) and inside single annotations (box errors).

Scopes (§6.3, §7.4): a *line* error makes the line unusable for training (`ParsedLine.line_error`); an
*attribute* error drops that label attribute; an *annotation* error drops that box. Warnings (§7.5) never
make an entry erroneous; they are reported in `ParsedLine.warnings` only.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from services.common import validation

__all__ = [
    "CLASSIFICATION_TYPE",
    "DEFAULT_LIMITS",
    "DETECTION_TYPE",
    "MULTILABEL_TYPE",
    "MESSAGES",
    "DatasetSummary",
    "Issue",
    "LabelStats",
    "ManifestLimits",
    "ParsedLine",
    "apply_image",
    "count_lines",
    "gt_multilabel_to_lines",
    "image_level_line",
    "iter_lines",
    "parse_line",
    "parse_source_ref",
    "project_model_type",
    "split_lines",
    "summarize",
    "terminal_error",
]


# ---------------------------------------------------------------------------------------------------
# Limits
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestLimits:
    """Every limit the manifest checks use (spec/limits.md §1–2, manifest.md §5); all configurable."""

    max_line_chars: int = 100_000  # longer lines are dropped (§1, §6.2)
    max_lines: int = 250_000  # lines per manifest, blank and invalid ones included (§5)
    max_manifest_bytes: int = 1024**3  # "1 GB" (§5)
    max_invalid_percent: int = 20  # dropped + line-error lines tolerated, in % (§5)
    max_labels: int = 250  # distinct labels per dataset (§5)
    max_label_name_chars: int = 255  # † limits.md: API label shapes allow 255, enforce that (not 256)
    max_labels_per_image: int = 50  # image-level labels per line (§5, † line error)
    max_boxes_per_image: int = 50  # valid boxes per line (§3)
    min_image_side: int = 64  # px (limits.md §1)
    max_image_side: int = 4096  # px
    max_aspect_ratio: float = 20.0  # long side / short side
    training_max_side: int = 1280  # training rescales larger images to this long side (limits.md §1)
    min_box_side: float = 1.0  # a box side must be > this many px after the training rescale
    min_bucket_chars: int = 3  # S3 bucket name length
    max_bucket_chars: int = 63
    max_key_bytes: int = 1024  # S3 object key, UTF-8 bytes
    # † Extra keys may hold any JSON; nesting deeper than this is rejected so that serialising the entry
    # can never hit the interpreter's recursion limit (json recurses once per level).
    max_json_depth: int = 100
    # † Ground Truth writes float boxes (e.g. 143.60000000000002); a box touching the frame edge must not
    # become "off frame" through float rounding, so the frame check allows this much slack.
    frame_tolerance: float = 1e-6


DEFAULT_LIMITS = ManifestLimits()


# ---------------------------------------------------------------------------------------------------
# Codes and messages
# ---------------------------------------------------------------------------------------------------

CLASSIFICATION_TYPE = "groundtruth/image-classification"
DETECTION_TYPE = "groundtruth/object-detection"
MULTILABEL_TYPE = "groundtruth/image-classification-multilabel"  # GT multi-label job output (§11)

SOURCE_REF = "source-ref"
META_SUFFIX = "-metadata"
CL_PREFIX = "cl-"
CL_ERRORS = "cl-errors"
CL_METADATA = "cl-metadata"

# Line errors (§7.4); for dataset import the source-ref ones and INVALID_JSON_LINE drop the line (§6.2).
ERROR_MISSING_SOURCE_REF = "ERROR_MISSING_SOURCE_REF"
ERROR_INVALID_SOURCE_REF_FORMAT = "ERROR_INVALID_SOURCE_REF_FORMAT"
ERROR_INVALID_JSON_LINE = "ERROR_INVALID_JSON_LINE"
# † §6.2 names "line > 100,000 chars" as a terminal content error without a code.
ERROR_LINE_TOO_LONG = "ERROR_LINE_TOO_LONG"
ERROR_NO_LABEL_ATTRIBUTES = "ERROR_NO_LABEL_ATTRIBUTES"
ERROR_NO_VALID_LABEL_ATTRIBUTES = "ERROR_NO_VALID_LABEL_ATTRIBUTES"
ERROR_INVALID_IMAGE = "ERROR_INVALID_IMAGE"
ERROR_INVALID_IMAGE_DIMENSION = "ERROR_INVALID_IMAGE_DIMENSION"
ERROR_TOO_MANY_BOUNDING_BOXES = "ERROR_TOO_MANY_BOUNDING_BOXES"
ERROR_NO_VALID_ANNOTATIONS = "ERROR_NO_VALID_ANNOTATIONS"
# † §5 makes "> 50 labels per image" a line error without naming a code. No documented code fits (reusing
# a format code would send the user looking for a syntax problem); this one follows the pattern of
# ERROR_TOO_MANY_BOUNDING_BOXES and cannot be confused with the dataset-level ERROR_MANIFEST_TOO_MANY_LABELS.
ERROR_TOO_MANY_LABELS_PER_IMAGE = "ERROR_TOO_MANY_LABELS_PER_IMAGE"
# Attribute errors.
ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT = "ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT"
ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT = "ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT"
ERROR_MISSING_BOUNDING_BOX_CONFIDENCE = "ERROR_MISSING_BOUNDING_BOX_CONFIDENCE"
ERROR_MISSING_CLASS_MAP_ID = "ERROR_MISSING_CLASS_MAP_ID"
ERROR_UNSUPPORTED_USE_CASE_TYPE = "ERROR_UNSUPPORTED_USE_CASE_TYPE"
ERROR_INVALID_LABEL_NAME_LENGTH = "ERROR_INVALID_LABEL_NAME_LENGTH"
# Annotation errors.
ERROR_INVALID_BOUNDING_BOX = "ERROR_INVALID_BOUNDING_BOX"
ERROR_BOUNDING_BOX_TOO_SMALL = "ERROR_BOUNDING_BOX_TOO_SMALL"
# Warnings (§7.5).
WARNING_UNANNOTATED_RECORD = "WARNING_UNANNOTATED_RECORD"
WARNING_NO_ANNOTATIONS = "WARNING_NO_ANNOTATIONS"
WARNING_NO_ATTRIBUTE_ANNOTATIONS = "WARNING_NO_ATTRIBUTE_ANNOTATIONS"
# Dataset-level (terminal) errors (§6.1, §7.2).
ERROR_MANIFEST_INACCESSIBLE_OR_UNSUPPORTED_FORMAT = "ERROR_MANIFEST_INACCESSIBLE_OR_UNSUPPORTED_FORMAT"
ERROR_MANIFEST_SIZE_TOO_LARGE = "ERROR_MANIFEST_SIZE_TOO_LARGE"
ERROR_MANIFEST_ROWS_EXCEEDS_MAXIMUM = "ERROR_MANIFEST_ROWS_EXCEEDS_MAXIMUM"
ERROR_TOO_MANY_RECORDS_IN_ERROR = "ERROR_TOO_MANY_RECORDS_IN_ERROR"
ERROR_MANIFEST_TOO_MANY_LABELS = "ERROR_MANIFEST_TOO_MANY_LABELS"
ERROR_EMPTY_MANIFEST = "ERROR_EMPTY_MANIFEST"

# The texts of the spec's tables, verbatim (typos included: "One of more" is what AWS writes).
# Messages that depend on a name or a limit are built by the functions below this table.
MESSAGES: dict[str, str] = {
    ERROR_MISSING_SOURCE_REF: "The source-ref key is missing.",
    ERROR_INVALID_SOURCE_REF_FORMAT: "The format of the source-ref value is invalid.",
    ERROR_NO_LABEL_ATTRIBUTES: "No label attributes found.",
    ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT: "The format of the label attribute metadata is invalid.",
    ERROR_NO_VALID_LABEL_ATTRIBUTES: "No valid label attributes found.",
    ERROR_MISSING_BOUNDING_BOX_CONFIDENCE: "One or more bounding boxes has a missing confidence value.",
    ERROR_MISSING_CLASS_MAP_ID: "One of more class ids is missing from the class map.",
    ERROR_INVALID_JSON_LINE: "The JSON Line has an invalid format.",
    ERROR_INVALID_IMAGE: "The image is invalid. Check S3 path and/or image properties.",
    ERROR_INVALID_IMAGE_DIMENSION: "The image dimension(s) do not conform to allowed dimensions.",
    ERROR_INVALID_BOUNDING_BOX: "The bounding box has off frame values.",
    ERROR_BOUNDING_BOX_TOO_SMALL: "The height and width of the bounding box is too small.",
    ERROR_TOO_MANY_BOUNDING_BOXES: "There are more bounding boxes than the allowed maximum.",
    ERROR_NO_VALID_ANNOTATIONS: "No valid annotations found.",
    ERROR_TOO_MANY_LABELS_PER_IMAGE: "There are more labels than the allowed maximum.",
    WARNING_UNANNOTATED_RECORD: "Record is unannotated.",
    WARNING_NO_ANNOTATIONS: "No annotations were found.",
    WARNING_NO_ATTRIBUTE_ANNOTATIONS: "No attribute annotations were found.",
    ERROR_MANIFEST_INACCESSIBLE_OR_UNSUPPORTED_FORMAT: "The manifest file extension or contents are invalid.",
    ERROR_MANIFEST_SIZE_TOO_LARGE: "The manifest file size exceeds the maximum supported size.",
    ERROR_MANIFEST_ROWS_EXCEEDS_MAXIMUM: "The manifest file has too many rows.",
    ERROR_TOO_MANY_RECORDS_IN_ERROR: "The manifest file has too many terminal errors.",
    ERROR_MANIFEST_TOO_MANY_LABELS: "The manifest file has too many labels.",
    ERROR_EMPTY_MANIFEST: "The manifest file is empty.",
}


def attribute_format_message(attribute: str) -> str:
    """The ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT text; the table's `{}` is the attribute name."""
    return f"The format of the label attribute {attribute} is invalid."


def unsupported_type_message(attribute: str) -> str:
    """The ERROR_UNSUPPORTED_USE_CASE_TYPE text, exactly as the §8 example writes it."""
    return (
        f"The use case type of the {attribute}{META_SUFFIX} label attribute metadata is unsupported. "
        "Check the type field."
    )


def label_name_length_message(limits: ManifestLimits = DEFAULT_LIMITS) -> str:
    """† The spec documents no text for ERROR_INVALID_LABEL_NAME_LENGTH; this one says the rule."""
    return f"The label name must be 1 to {limits.max_label_name_chars} characters long."


def line_too_long_message(limits: ManifestLimits = DEFAULT_LIMITS) -> str:
    """The text for ERROR_LINE_TOO_LONG (our code, see above)."""
    return f"The JSON Line is longer than the maximum of {limits.max_line_chars} characters."


# ---------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------

Scope = Literal["line", "attribute", "annotation"]
Kind = Literal["classification", "detection", "unlabeled", "invalid"]


@dataclass(frozen=True, slots=True)
class Issue:
    """One error (or warning) and where it sits in the entry.

    `attribute` names the label attribute for attribute and annotation scope; `index` is the position of
    the box in `<attribute>.annotations` for annotation scope.
    """

    code: str
    message: str
    scope: Scope
    attribute: str | None = None
    index: int | None = None


@dataclass(frozen=True, slots=True)
class ParsedLine:
    """What `parse_line` (and `apply_image`) learned about one manifest line.

    `dropped` is set (with `message`) when the line is removed at import; then `entry` is None.
    Otherwise `entry` is the dict the service stores; `to_json()` gives its text. `labels`,
    `image_labels` and `box_counts` come from label attributes and boxes that passed their own checks;
    they are kept on lines with a line error too (the entry still uses those labels, e.g. for
    ListDatasetLabels and the ContainsLabels filter), while `line_error` says the line cannot be used for
    training. `kind` is 'invalid' for dropped and line-error lines, 'detection' when the line has a
    valid box (even if it also has image-level labels), 'classification' when it has a valid image-level
    label, else 'unlabeled' (warning-only lines that training ignores).
    """

    source_ref: str | None = None
    bucket: str | None = None
    key: str | None = None
    entry: dict[str, Any] | None = None
    dropped: str | None = None
    message: str | None = None
    labels: frozenset[str] = frozenset()
    image_labels: frozenset[str] = frozenset()
    box_counts: Mapping[str, int] = field(default_factory=dict)
    has_errors: bool = False
    line_error: bool = False
    is_labeled: bool = False
    warnings: tuple[str, ...] = ()
    kind: Kind = "invalid"
    image_size: tuple[int, int] | None = None  # declared (width, height) of the first box attribute
    real_size: tuple[int, int] | None = None  # the image's own size, once apply_image knows it
    errors: tuple[Issue, ...] = ()
    annotation_count: int = 0  # boxes in well-formed box attributes, valid or not

    @property
    def ignored(self) -> bool:
        """An entry that training skips without counting it as an error (§7.5): nothing usable, no line error."""
        return self.entry is not None and self.kind == "unlabeled"

    @property
    def box_count(self) -> int:
        """Valid boxes on the line."""
        return sum(self.box_counts.values())

    def to_json(self) -> str:
        """The stored line: compact JSON, key order preserved, non-ASCII kept (lines are measured in chars)."""
        if self.entry is None:
            raise ValueError(f"a dropped line ({self.dropped}) has no entry")
        return _dumps(self.entry)


@dataclass(frozen=True, slots=True)
class LabelStats:
    """ListDatasetLabels' LabelStats: images using the label, and images with ≥1 box of it († images, not boxes)."""

    entry_count: int = 0
    bounding_box_count: int = 0


ModelType = Literal["IMAGE_CLASSIFICATION", "MULTI_LABEL_CLASSIFICATION", "OBJECT_LOCALIZATION"]


@dataclass(frozen=True, slots=True)
class DatasetSummary:
    """Counts over a dataset's lines (DescribeDataset's DatasetStats, ListDatasetLabels, §4 model type)."""

    total_entries: int
    labeled_entries: int
    error_entries: int  # entries with ≥1 error of any scope (DatasetStats.ErrorEntries, HasErrors)
    labels: dict[str, LabelStats]
    model_type: ModelType | None
    dropped_lines: int = 0
    line_error_entries: int = 0  # entries unusable because of a line-scope error
    ignored_entries: int = 0  # warning-only / unlabeled entries (§7.5)
    classification_entries: int = 0  # usable entries with ≥1 valid image-level label
    detection_entries: int = 0  # usable entries with ≥1 valid box

    @property
    def use_case(self) -> str:
        """The manifest_summary.json `use_case` (evaluation.md §8)."""
        if self.model_type is None:
            return "NOT_DETERMINED"
        return "OBJECT_LOCALIZATION" if self.model_type == "OBJECT_LOCALIZATION" else "IMAGE_LEVEL_LABELS"


# ---------------------------------------------------------------------------------------------------
# Small checks
# ---------------------------------------------------------------------------------------------------

# S3 bucket: letters (upper case too: legacy buckets such as the fixture's `my-rekognition-customlabels-XYZ`
# have them), digits, '.', '-', '_', starting and ending with a letter or digit. Length is checked apart.
_BUCKET = re.compile(r"[0-9A-Za-z](?:[0-9A-Za-z._-]*[0-9A-Za-z])?\Z")
# C0 and C1 control characters (NUL included) and the backslash (a path separator on Windows hosts).
_BAD_KEY_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")
# ISO 8601 date-time as Ground Truth and users write it: 'T' or ' ', optional fraction, optional 'Z'/offset.
_TIMESTAMP = re.compile(
    r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])[T ](?:[01]\d|2[0-3]):[0-5]\d:(?:[0-5]\d|60)"
    r"(?:\.\d{1,9})?(?:Z|[+-](?:[01]\d|2[0-3]):?[0-5]\d)?\Z"
)
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
# JSON can spell U+0000 only as this escape (raw control characters are not JSON), and PostgreSQL text
# cannot hold it: a line without it in its text needs no NUL check.
_NUL_ESCAPE = "\\u0000"
_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def _reject_constant(name: str) -> Any:
    # NaN, Infinity and -Infinity are not JSON (RFC 8259); Python's parser accepts them unless told not to.
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    # 1e999 parses to inf: valid JSON syntax, but it cannot be stored back as JSON, so the line is invalid.
    value = float(text)
    if value - value != 0:
        raise ValueError(f"{text} is out of range")
    return value


# Built once: json.loads/dumps with options construct a new decoder/encoder on every call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_loads = _DECODER.decode
_dumps = _ENCODER.encode


def _too_deep(text: str, limit: int) -> bool:
    """Whether brackets nest deeper than `limit` (strings are skipped: their brackets are not structure)."""
    depth = 0
    for bracket in _BRACKET.findall(_STRING_LITERAL.sub("", text)):
        if bracket in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _is_number(value: Any) -> bool:
    # bool is a subclass of int in Python: JSON true/false must not pass as numbers.
    kind = type(value)
    return kind is int or (kind is float and math.isfinite(value))


def _confidence_ok(value: Any) -> bool:
    return _is_number(value) and 0 <= value <= 1


def _holds_nul(value: Any) -> bool:
    """Whether a NUL (U+0000) sits in any string of `value`, keys included, at any depth."""
    kind = type(value)
    if kind is str:
        return "\x00" in value
    if kind is dict:
        return any("\x00" in k or _holds_nul(v) for k, v in value.items())
    if kind is list:
        return any(_holds_nul(v) for v in value)
    return False


def _timestamp_ok(value: Any) -> bool:
    return type(value) is str and _TIMESTAMP.match(value) is not None


def _common_metadata_ok(meta: dict[str, Any]) -> bool:
    """The keys both metadata formats share: human-annotated, creation-date, optional job-name."""
    if meta.get("human-annotated") not in ("yes", "no"):
        return False
    if not _timestamp_ok(meta.get("creation-date")):
        return False
    job = meta.get("job-name", "")
    return type(job) is str


def parse_source_ref(value: str, limits: ManifestLimits = DEFAULT_LIMITS) -> tuple[str, str] | None:
    """Splits `s3://bucket/key` into (bucket, key); None when it is not a usable S3 URI.

    Beyond the URI shape, keys that could escape or alias a path when the service maps S3 to files are
    refused: a leading '/', empty, '.' or '..' segments, a trailing '/', backslashes, control characters
    and keys of spaces only; so are bucket names that no S3 bucket can have (validation.addressable_bucket).
    The key is taken literally (S3 URIs are not percent-decoded).
    """
    if not value.startswith("s3://"):
        return None
    bucket, sep, key = value[5:].partition("/")
    if not sep or not key:
        return None
    if not limits.min_bucket_chars <= len(bucket) <= limits.max_bucket_chars or not _BUCKET.match(bucket):
        return None
    # Names of the right shape that no S3 bucket can have ("a..b", an IP address): the S3 client
    # refuses them before sending anything, so the image could never be read.
    if not validation.addressable_bucket(bucket):
        return None
    if key[0] == "/" or key[-1] == "/" or "//" in key or _BAD_KEY_CHARS.search(key) or not key.strip():
        return None
    if "." in key:
        padded = f"/{key}/"
        if "/./" in padded or "/../" in padded:
            return None
    # A character is at most 4 UTF-8 bytes: only long keys need encoding to be measured.
    if (
        len(key) * 4 > limits.max_key_bytes
        and len(key.encode("utf-8", "surrogatepass")) > limits.max_key_bytes
    ):
        return None
    return bucket, key


# ---------------------------------------------------------------------------------------------------
# parse_line
# ---------------------------------------------------------------------------------------------------


def _drop(code: str, message: str | None = None, source_ref: str | None = None) -> ParsedLine:
    return ParsedLine(source_ref=source_ref, dropped=code, message=message or MESSAGES[code], kind="invalid")


def parse_line(text: str, limits: ManifestLimits = DEFAULT_LIMITS) -> ParsedLine:
    """Validates one manifest line (without its newline) and returns the entry to store, or the drop reason.

    Drops (terminal content errors, §6.2), checked in this order: ERROR_LINE_TOO_LONG (> 100,000 chars),
    ERROR_INVALID_JSON_LINE (not JSON, not an object, NaN/Infinity, numbers out of range, lone surrogates,
    nesting deeper than `max_json_depth`), ERROR_MISSING_SOURCE_REF (absent or null),
    ERROR_INVALID_SOURCE_REF_FORMAT (not a string, or not a safe `s3://bucket/key`).
    Every other problem is recorded inside the entry (see `_build`). A NUL (U+0000) drops the line when it
    is in the source-ref, and makes the label attribute's metadata invalid when it is in any of its
    strings (label names, class map, job name, ...): a NUL is no label a user means, and PostgreSQL text
    cannot store one. NULs in keys and values the service does not interpret are kept as written.
    """
    if len(text) > limits.max_line_chars:
        return _drop(ERROR_LINE_TOO_LONG, line_too_long_message(limits))
    # Invalid UTF-8 decoded with surrogateescape (split_lines) leaves lone surrogates; they cannot be
    # stored as UTF-8, so such a line is not a JSON Line. isascii() is O(1): only non-ASCII text is scanned.
    if not text.isascii() and _LONE_SURROGATE.search(text):
        return _drop(ERROR_INVALID_JSON_LINE)
    if (text.count("[") + text.count("{")) > limits.max_json_depth and _too_deep(text, limits.max_json_depth):
        return _drop(ERROR_INVALID_JSON_LINE)
    try:
        data = _loads(text)
    except (ValueError, RecursionError):
        return _drop(ERROR_INVALID_JSON_LINE)
    if type(data) is not dict:
        return _drop(ERROR_INVALID_JSON_LINE)
    if "\\u" in text:
        # A \ud800-style escape decodes to a lone surrogate, which UTF-8 cannot store.
        try:
            _dumps(data).encode("utf-8")
        except UnicodeEncodeError:
            return _drop(ERROR_INVALID_JSON_LINE)
    ref = data.get(SOURCE_REF)
    if ref is None:
        return _drop(ERROR_MISSING_SOURCE_REF)
    if type(ref) is not str:
        return _drop(ERROR_INVALID_SOURCE_REF_FORMAT)
    parts = parse_source_ref(ref, limits)
    if parts is None:
        return _drop(ERROR_INVALID_SOURCE_REF_FORMAT, source_ref=ref)
    # Without '"cl-' (or a \u escape that could spell it) in the text there is nothing to strip.
    has_cl = '"cl-' in text or "\\u" in text
    maybe_multilabel = "-multilabel" in text or "\\u" in text
    return _build(
        data,
        ref,
        parts[0],
        parts[1],
        limits,
        None,
        has_cl=has_cl,
        maybe_multilabel=maybe_multilabel,
        has_nul=_NUL_ESCAPE in text,
    )


def _strip_cl(data: dict[str, Any]) -> dict[str, Any]:
    """Removes incoming `cl-*` keys at every place the service writes them (§8 †: recomputed, never trusted).

    Top-level `cl-*` keys go too, so attribute names starting with `cl-` are reserved.
    """
    out = {k: v for k, v in data.items() if not k.startswith(CL_PREFIX)}
    for value in out.values():
        if type(value) is dict:
            for k in [k for k in value if k.startswith(CL_PREFIX)]:
                del value[k]
            annotations = value.get("annotations")
            if type(annotations) is list:
                for box in annotations:
                    if type(box) is dict:
                        for k in [k for k in box if k.startswith(CL_PREFIX)]:
                            del box[k]
    return out


class _Recorder:
    """Collects issues and writes them where §8 puts them, while the entry is being checked."""

    __slots__ = ("data", "issues", "line_errors", "top_extra")

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.issues: list[Issue] = []
        self.line_errors: list[dict[str, str]] = []
        # Attribute errors whose metadata is not an object cannot sit inside it: they go to the top level.
        self.top_extra: list[dict[str, str]] = []

    def line(self, code: str, message: str | None = None) -> None:
        message = message or MESSAGES[code]
        if any(e["code"] == code for e in self.line_errors):
            return
        self.issues.append(Issue(code, message, "line"))
        self.line_errors.append({"code": code, "message": message})

    def attribute(self, attribute: str, code: str, message: str | None = None) -> None:
        message = message or MESSAGES[code]
        self.issues.append(Issue(code, message, "attribute", attribute))
        meta = self.data.get(attribute + META_SUFFIX)
        item = {"code": code, "message": message}
        if type(meta) is dict:
            meta.setdefault(CL_ERRORS, []).append(item)
        else:
            self.top_extra.append(item)

    def annotation(self, attribute: str, index: int, box: dict[str, Any], code: str) -> None:
        message = MESSAGES[code]
        self.issues.append(Issue(code, message, "annotation", attribute, index))
        box.setdefault(CL_ERRORS, []).append({"code": code, "message": message})


_LABEL_KEYS = ("annotations", "image_size", "class-name", "class-map")


def _looks_like_label_part(value: Any) -> bool:
    """A label body or label metadata under a key that has no partner (e.g. `quality-meta`): an object with
    box or class keys, or a Ground Truth `type`. Plain extra keys (e.g. "color": "blue" in the greengrass
    fixtures) are not label parts and stay untouched."""
    if type(value) is not dict:
        return False
    kind = value.get("type")
    return any(k in value for k in _LABEL_KEYS) or (type(kind) is str and kind.startswith("groundtruth/"))


def _build(
    data: dict[str, Any],
    source_ref: str,
    bucket: str,
    key: str,
    limits: ManifestLimits,
    frame: tuple[int, int] | None,
    *,
    has_cl: bool = True,
    maybe_multilabel: bool = True,
    has_nul: bool = True,
) -> ParsedLine:
    """Checks a parsed line that has a valid source-ref and builds its entry (mutates `data`'s nested dicts).

    `frame` (width, height), when given, replaces every declared `image_size` for the box and dimension
    checks (apply_image: the real image wins). Per label attribute the checks run in the §5 order and the
    first failure stops that attribute (its boxes are then not checked):
    type (METADATA_FORMAT when absent / not a string; UNSUPPORTED_USE_CASE_TYPE when not one of the two
    accepted values: the type decides what a valid body is, so it goes first; METADATA_FORMAT as well when
    `has_nul` and a string of the metadata holds a NUL), ATTRIBUTE_FORMAT,
    METADATA_FORMAT, MISSING_BOUNDING_BOX_CONFIDENCE, MISSING_CLASS_MAP_ID, INVALID_LABEL_NAME_LENGTH;
    then box by box INVALID_BOUNDING_BOX before BOUNDING_BOX_TOO_SMALL. Line errors follow:
    NO_VALID_LABEL_ATTRIBUTES, INVALID_IMAGE_DIMENSION, TOO_MANY_BOUNDING_BOXES, NO_VALID_ANNOTATIONS,
    TOO_MANY_LABELS_PER_IMAGE.
    """
    if has_cl:
        data = _strip_cl(data)
    failed: dict[str, str] = {}
    if maybe_multilabel and any(type(v) is dict and v.get("type") == MULTILABEL_TYPE for v in data.values()):
        data, failed = _convert_multilabel(data)
    rec = _Recorder(data)
    attributes = [k for k in data if k != SOURCE_REF and k + META_SUFFIX in data]
    warnings: list[str] = []
    image_labels: dict[str, None] = {}  # insertion-ordered set
    box_counts: dict[str, int] = {}
    is_labeled = False
    valid_attributes = 0
    annotation_total = 0
    valid_boxes = 0
    dimension_error = False
    image_size: tuple[int, int] | None = None
    empty_human_annotated = False
    has_empty_box_attribute = False

    if not attributes:
        orphan = any(
            (k.endswith(META_SUFFIX) and k != SOURCE_REF + META_SUFFIX) or _looks_like_label_part(v)
            for k, v in data.items()
            if k != SOURCE_REF
        )
        if orphan:
            # An attribute without its -metadata key, or metadata without its attribute (§7.4).
            rec.line(ERROR_NO_LABEL_ATTRIBUTES)
        else:
            warnings.append(WARNING_UNANNOTATED_RECORD)

    for attr in attributes:
        body = data[attr]
        meta = data[attr + META_SUFFIX]
        kind = meta.get("type") if type(meta) is dict else None
        # Every pair counts as labeling except a well-typed box attribute without boxes (§7.5: the image
        # has no labels); this is what makes the §8 example (invalid type) `is_labeled: true`.
        if not (kind == DETECTION_TYPE and type(body) is dict and not body.get("annotations")):
            is_labeled = True
        if attr in failed:
            code = failed[attr]
            rec.attribute(
                attr,
                code,
                attribute_format_message(attr) if code == ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT else None,
            )
            continue
        if type(meta) is not dict or type(kind) is not str or (has_nul and _holds_nul(meta)):
            rec.attribute(attr, ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT)
            continue
        if kind == CLASSIFICATION_TYPE:
            name = _check_classification(attr, body, meta, rec, limits)
            if name is not None:
                valid_attributes += 1
                image_labels[name] = None
        elif kind == DETECTION_TYPE:
            result = _check_detection(attr, body, meta, rec, limits, frame)
            if result is None:
                continue
            valid_attributes += 1
            size, checked, names, valid = result
            if image_size is None:
                image_size = size
            if checked == 0:
                warnings.append(WARNING_NO_ATTRIBUTE_ANNOTATIONS)
                has_empty_box_attribute = True
                empty_human_annotated = empty_human_annotated or meta.get("human-annotated") == "yes"
                continue
            annotation_total += checked
            valid_boxes += sum(valid.values())
            for label, count in valid.items():
                box_counts[label] = box_counts.get(label, 0) + count
            width, height = frame or size
            if not _side_ok(width, height, limits):
                dimension_error = True
        else:
            rec.attribute(attr, ERROR_UNSUPPORTED_USE_CASE_TYPE, unsupported_type_message(attr))

    if attributes and valid_attributes == 0:
        rec.line(ERROR_NO_VALID_LABEL_ATTRIBUTES)
    if dimension_error:
        rec.line(ERROR_INVALID_IMAGE_DIMENSION)
    if valid_boxes > limits.max_boxes_per_image:
        rec.line(ERROR_TOO_MANY_BOUNDING_BOXES)
    if annotation_total and not valid_boxes:
        rec.line(ERROR_NO_VALID_ANNOTATIONS)
    if len(image_labels) > limits.max_labels_per_image:
        rec.line(ERROR_TOO_MANY_LABELS_PER_IMAGE)
    if has_empty_box_attribute and not annotation_total and not image_labels and empty_human_annotated:
        # §7.5: an object line that a human reviewed and found no boxes in (and nothing else labels it).
        warnings.append(WARNING_NO_ANNOTATIONS)

    data[CL_METADATA] = {"is_labeled": is_labeled}
    top = rec.top_extra + rec.line_errors
    if top:
        data[CL_ERRORS] = top
    line_error = bool(rec.line_errors)
    if line_error:
        kind_out: Kind = "invalid"
    elif box_counts:
        kind_out = "detection"
    elif image_labels:
        kind_out = "classification"
    else:
        kind_out = "unlabeled"
    image_set = frozenset(image_labels)
    return ParsedLine(
        source_ref=source_ref,
        bucket=bucket,
        key=key,
        entry=data,
        labels=image_set.union(box_counts) if box_counts else image_set,
        image_labels=image_set,
        box_counts=box_counts,
        has_errors=bool(rec.issues),
        line_error=line_error,
        is_labeled=is_labeled,
        warnings=tuple(dict.fromkeys(warnings)) if warnings else (),
        kind=kind_out,
        image_size=image_size,
        real_size=frame,
        errors=tuple(rec.issues),
        annotation_count=annotation_total,
    )


def _side_ok(width: int, height: int, limits: ManifestLimits) -> bool:
    return limits.min_image_side <= min(width, height) and max(width, height) <= limits.max_image_side


def _name_length_ok(name: str, limits: ManifestLimits) -> bool:
    return 1 <= len(name) <= limits.max_label_name_chars


def _check_classification(
    attr: str, body: Any, meta: dict[str, Any], rec: _Recorder, limits: ManifestLimits
) -> str | None:
    """An image-level attribute (§2); returns its label when valid."""
    # The value is a "label attribute identifier": any integer, but an integer (JSON true is not one).
    if type(body) is not int:
        rec.attribute(attr, ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT, attribute_format_message(attr))
        return None
    name = meta.get("class-name")
    if type(name) is not str or not _confidence_ok(meta.get("confidence")) or not _common_metadata_ok(meta):
        rec.attribute(attr, ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT)
        return None
    if not _name_length_ok(name, limits):
        rec.attribute(attr, ERROR_INVALID_LABEL_NAME_LENGTH, label_name_length_message(limits))
        return None
    return name


def _image_size(body: dict[str, Any]) -> tuple[int, int] | None:
    size = body.get("image_size")
    # §3: an array with ONE object; the COCO example writes a plain object († accept both).
    if type(size) is list:
        if len(size) != 1:
            return None
        size = size[0]
    if type(size) is not dict:
        return None
    width, height, depth = size.get("width"), size.get("height"), size.get("depth")
    if type(width) is not int or type(height) is not int or type(depth) is not int:
        return None
    if width < 1 or height < 1 or depth < 1:
        return None
    return width, height


def _check_detection(
    attr: str,
    body: Any,
    meta: dict[str, Any],
    rec: _Recorder,
    limits: ManifestLimits,
    frame: tuple[int, int] | None,
) -> tuple[tuple[int, int], int, list[str], dict[str, int]] | None:
    """A box attribute (§3). None when the attribute is invalid; else (declared size, boxes checked,
    label per box, valid boxes per label). Zero boxes checked = missing/empty `annotations` (a warning)."""
    size = _image_size(body) if type(body) is dict else None
    annotations = body.get("annotations") if type(body) is dict else None
    if annotations is None:
        annotations = []  # missing annotations = no boxes (§7.5 WARNING_NO_ATTRIBUTE_ANNOTATIONS)
    if size is None or type(annotations) is not list or not _boxes_ok(annotations):
        rec.attribute(attr, ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT, attribute_format_message(attr))
        return None
    objects = meta.get("objects")
    class_map = meta.get("class-map")
    if (
        type(objects) is not list
        or type(class_map) is not dict
        or not all(type(v) is str for v in class_map.values())
        or not _common_metadata_ok(meta)
        or not _confidences_ok(objects)
    ):
        rec.attribute(attr, ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT)
        return None
    count = len(annotations)
    if not count:
        return size, 0, [], {}
    if len(objects) < count:
        rec.attribute(attr, ERROR_MISSING_BOUNDING_BOX_CONFIDENCE)
        return None
    for obj in objects[:count]:
        if type(obj) is not dict or obj.get("confidence") is None:
            rec.attribute(attr, ERROR_MISSING_BOUNDING_BOX_CONFIDENCE)
            return None
    names: list[str] = []
    longest = limits.max_label_name_chars
    for box in annotations:
        name = class_map.get(str(box["class_id"]))
        if name is None:
            rec.attribute(attr, ERROR_MISSING_CLASS_MAP_ID)
            return None
        names.append(name)
    # Only names in use become labels, so only they are length-checked (after every id resolved: §5 order).
    for name in set(names):
        if not 1 <= len(name) <= longest:
            rec.attribute(attr, ERROR_INVALID_LABEL_NAME_LENGTH, label_name_length_message(limits))
            return None
    width, height = frame or size
    scale = min(1.0, limits.training_max_side / max(width, height))
    right, bottom = width + limits.frame_tolerance, height + limits.frame_tolerance
    smallest = limits.min_box_side
    valid: dict[str, int] = {}
    for index, (box, name) in enumerate(zip(annotations, names, strict=True)):
        left, top, w, h = box["left"], box["top"], box["width"], box["height"]
        if left < 0 or top < 0 or w < 0 or h < 0 or left + w > right or top + h > bottom:
            rec.annotation(attr, index, box, ERROR_INVALID_BOUNDING_BOX)
        elif w * scale <= smallest or h * scale <= smallest:
            rec.annotation(attr, index, box, ERROR_BOUNDING_BOX_TOO_SMALL)
        else:
            valid[name] = valid.get(name, 0) + 1
    return size, count, names, valid


def _boxes_ok(annotations: list[Any]) -> bool:
    """Every box is an object with an integer class_id and numeric left/top/width/height (floats allowed:
    Ground Truth writes them; bools are not numbers). Inlined loop: this runs for every box of every line."""
    for box in annotations:
        if type(box) is not dict or type(box.get("class_id")) is not int:
            return False
        for value in (box.get("left"), box.get("top"), box.get("width"), box.get("height")):
            kind = type(value)
            # value - value is 0 for finite floats, nan for inf/nan.
            if kind is not int and (kind is not float or value - value != 0):
                return False
    return True


def _confidences_ok(objects: list[Any]) -> bool:
    """A missing confidence is ERROR_MISSING_BOUNDING_BOX_CONFIDENCE (checked later); one that is present
    but not a number in 0..1 is malformed metadata."""
    for obj in objects:
        if type(obj) is dict:
            value = obj.get("confidence")
            if value is not None and not _confidence_ok(value):
                return False
    return True


# ---------------------------------------------------------------------------------------------------
# Ground Truth multi-label output (§11)
# ---------------------------------------------------------------------------------------------------


def _free_name(base: str, index: int, taken: set[str]) -> str:
    name = f"{base}{index}"
    n = 0
    while name in taken or name + META_SUFFIX in taken:
        n += 1
        name = f"{base}{index}-{n}"
    return name


def _convert_multilabel(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Rewrites every GT multi-label pair into one image-level pair per listed class (§11).

    Returns the new dict (key order kept: the new pairs take the place of the old attribute) and, for pairs
    that cannot be converted, attribute → error code (they are left as they are).
    """
    failed: dict[str, str] = {}
    convert: dict[str, list[tuple[str, int, dict[str, Any]]]] = {}
    taken = set(data)
    for attr, body in data.items():
        meta = data.get(attr + META_SUFFIX)
        if attr == SOURCE_REF or type(meta) is not dict or meta.get("type") != MULTILABEL_TYPE:
            continue
        class_map = meta.get("class-map")
        confidences = meta.get("confidence-map")
        if type(body) is not list or not all(type(c) is int for c in body):
            failed[attr] = ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT
            continue
        if (
            type(class_map) is not dict
            or not all(type(v) is str for v in class_map.values())
            or type(confidences) is not dict
        ):
            failed[attr] = ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT
            continue
        if any(str(c) not in class_map for c in body):
            failed[attr] = ERROR_MISSING_CLASS_MAP_ID
            continue
        pairs = []
        for index, class_id in enumerate(body):
            name = _free_name(attr, index, taken)
            taken.add(name)
            new_meta: dict[str, Any] = {"class-name": class_map[str(class_id)]}
            if str(class_id) in confidences:
                new_meta["confidence"] = confidences[str(class_id)]
            # §11: only groundtruth/image-classification is accepted, so the type is set explicitly.
            new_meta["type"] = CLASSIFICATION_TYPE
            for k in ("job-name", "human-annotated", "creation-date"):
                if k in meta:
                    new_meta[k] = meta[k]
            pairs.append((name, index, new_meta))
        convert[attr] = pairs
    if not convert:
        return data, failed
    out: dict[str, Any] = {}
    skip = {attr + META_SUFFIX for attr in convert}
    for k, v in data.items():
        if k in convert:
            for name, index, new_meta in convert[k]:
                out[name] = index
                out[name + META_SUFFIX] = new_meta
        elif k not in skip:
            out[k] = v
    return out, failed


def gt_multilabel_to_lines(line: Mapping[str, Any]) -> dict[str, Any]:
    """Converts a SageMaker GT multi-label output line into the Custom Labels form (§11).

    `<job>: [ids]` + `<job>-metadata {class-map, confidence-map, …}` becomes, for the i-th listed id,
    `<job><i>: i` + `<job><i>-metadata {class-name, confidence, type: groundtruth/image-classification,
    job-name, human-annotated, creation-date}`. Other keys are kept in place; the input is not changed.
    Raises ValueError when a multi-label pair is malformed (body not a list of ids, no class-map or
    confidence-map, an id missing from the class-map).
    """
    data = json.loads(_dumps(line))  # a deep copy that also rejects what JSON cannot hold
    out, failed = _convert_multilabel(data)
    if failed:
        attr, code = next(iter(failed.items()))
        raise ValueError(f"multi-label attribute {attr!r} cannot be converted: {code}")
    return out


# ---------------------------------------------------------------------------------------------------
# apply_image
# ---------------------------------------------------------------------------------------------------

_IMAGE_CODES = (ERROR_INVALID_IMAGE, ERROR_INVALID_IMAGE_DIMENSION)


def apply_image(
    parsed: ParsedLine,
    width: int | None,
    height: int | None,
    error: tuple[str, str] | Any | None,
    limits: ManifestLimits = DEFAULT_LIMITS,
) -> ParsedLine:
    """Adds what the service learned from reading the image; returns a new ParsedLine (`parsed` is unchanged).

    - `error`: (code, message), or any object with `.code` and `.message` (e.g. the ingestor's rejection),
      with code ERROR_INVALID_IMAGE or ERROR_INVALID_IMAGE_DIMENSION: stored as a line error (an empty
      message is replaced by the spec's text).
    - `width`/`height`: the real size. † Training uses the real pixels, so when the line has box attributes
      every box and the dimension check are re-done against the REAL frame (the declared `image_size` stays
      in the entry as the user wrote it; a declared-size problem that the real image does not have goes
      away). The real size is also checked here: a side outside 64–4096 px is ERROR_INVALID_IMAGE_DIMENSION
      for a line with boxes ("reported for box images", §7.4) and ERROR_INVALID_IMAGE otherwise; an aspect
      ratio above 20:1 is ERROR_INVALID_IMAGE.
    Dropped lines come back unchanged.
    """
    if parsed.entry is None or parsed.source_ref is None or parsed.bucket is None or parsed.key is None:
        return parsed
    image_errors: list[tuple[str, str]] = []
    if error is not None:
        code, message = error if isinstance(error, tuple) else (error.code, error.message)
        if code not in _IMAGE_CODES:
            raise ValueError(f"apply_image takes {' or '.join(_IMAGE_CODES)}, not {code!r}")
        image_errors.append((code, message or MESSAGES[code]))
    frame: tuple[int, int] | None = None
    if width is not None and height is not None:
        if width < 1 or height < 1:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        frame = (width, height)
    if frame is None and not image_errors:
        return parsed
    # A copy through JSON: the stored entry is plain JSON, and the result must not share dicts with it.
    text = _dumps(parsed.entry)
    data = json.loads(text)
    # Re-validating with the real frame gives the same result when it equals the declared size, and
    # re-building from the stored entry is also how the result gets its own copy of the dicts.
    result = _build(
        data, parsed.source_ref, parsed.bucket, parsed.key, limits, frame, has_nul=_NUL_ESCAPE in text
    )
    if frame is not None:
        if not _side_ok(*frame, limits) and not result.annotation_count:
            # Box lines got ERROR_INVALID_IMAGE_DIMENSION from the frame check in _build.
            image_errors.append((ERROR_INVALID_IMAGE, MESSAGES[ERROR_INVALID_IMAGE]))
        if max(frame) > limits.max_aspect_ratio * min(frame):
            image_errors.append((ERROR_INVALID_IMAGE, MESSAGES[ERROR_INVALID_IMAGE]))
    return _add_line_errors(result, image_errors)


def _add_line_errors(parsed: ParsedLine, errors: list[tuple[str, str]]) -> ParsedLine:
    assert parsed.entry is not None
    entry = parsed.entry
    present = {e.code for e in parsed.errors if e.scope == "line"}
    issues = list(parsed.errors)
    for code, message in errors:
        if code in present:
            continue
        present.add(code)
        issues.append(Issue(code, message, "line"))
        entry.setdefault(CL_ERRORS, []).append({"code": code, "message": message})
    if len(issues) == len(parsed.errors):
        return parsed
    return replace(parsed, errors=tuple(issues), has_errors=True, line_error=True, kind="invalid")


# ---------------------------------------------------------------------------------------------------
# Reading manifests
# ---------------------------------------------------------------------------------------------------

_BOM = b"\xef\xbb\xbf"


def iter_lines(data: bytes) -> Iterator[tuple[int, str]]:
    """Yields (1-based physical line number, text) for every non-blank line of a manifest.

    Lines end at b"\\n" (a trailing b"\\r" is removed: CRLF files work); other Unicode line breaks such as
    U+2028 may legally sit inside JSON strings and do not split. A UTF-8 BOM at the start is skipped.
    Invalid UTF-8 is decoded with surrogateescape, so parse_line drops that line as ERROR_INVALID_JSON_LINE
    instead of the whole import failing. Blank (whitespace-only) lines are skipped: they are no entries
    and no errors, but they do count toward the line limit (§5) — use `count_lines` for that.
    """
    start = 3 if data.startswith(_BOM) else 0
    end = len(data)
    number = 0
    while start < end:
        stop = data.find(b"\n", start)
        if stop == -1:
            stop = end
        number += 1
        chunk = data[start:stop]
        start = stop + 1
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
        if not chunk.strip():
            continue
        yield number, chunk.decode("utf-8", "surrogateescape")


def split_lines(data: bytes) -> Iterator[str]:
    """The non-blank lines of a manifest as text (see `iter_lines`)."""
    for _, text in iter_lines(data):
        yield text


def count_lines(data: bytes) -> int:
    """Physical lines of a manifest, blank ones included (the §5 line limit counts them); a final newline
    does not start another line."""
    if not data:
        return 0
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


# ---------------------------------------------------------------------------------------------------
# Dataset level
# ---------------------------------------------------------------------------------------------------


def summarize(lines: Iterable[ParsedLine]) -> DatasetSummary:
    """Counts a dataset's lines in one pass.

    Dropped lines are not entries (only `dropped_lines` counts them). Label statistics cover every entry,
    line-error ones included (they still carry those labels); the model type (§4) counts only usable
    entries (no line error): the format with more such lines wins († a tie goes to OBJECT_LOCALIZATION,
    boxes being the richer labeling), and image-level wins as MULTI_LABEL_CLASSIFICATION when some usable
    entry carries ≥ 2 image-level labels. None when no entry is usable.
    """
    total = labeled = errors = dropped = line_errors = ignored = cls = det = 0
    multi = False
    entry_counts: dict[str, int] = {}
    box_images: dict[str, int] = {}
    for line in lines:
        if line.entry is None:
            dropped += 1
            continue
        total += 1
        labeled += line.is_labeled
        errors += line.has_errors
        for label in line.labels:
            entry_counts[label] = entry_counts.get(label, 0) + 1
        for label, count in line.box_counts.items():
            if count:
                box_images[label] = box_images.get(label, 0) + 1
        if line.line_error:
            line_errors += 1
            continue
        if line.kind == "unlabeled":
            ignored += 1
        if line.image_labels:
            cls += 1
            multi = multi or len(line.image_labels) >= 2
        if line.box_counts:
            det += 1
    model_type: ModelType | None
    if not cls and not det:
        model_type = None
    elif det >= cls:
        model_type = "OBJECT_LOCALIZATION"
    else:
        model_type = "MULTI_LABEL_CLASSIFICATION" if multi else "IMAGE_CLASSIFICATION"
    labels = {
        label: LabelStats(entry_counts[label], box_images.get(label, 0)) for label in sorted(entry_counts)
    }
    return DatasetSummary(
        total_entries=total,
        labeled_entries=labeled,
        error_entries=errors,
        labels=labels,
        model_type=model_type,
        dropped_lines=dropped,
        line_error_entries=line_errors,
        ignored_entries=ignored,
        classification_entries=cls,
        detection_entries=det,
    )


def project_model_type(train: DatasetSummary, test: DatasetSummary | None = None) -> ModelType | None:
    """§4 † for a project: TRAIN decides, except that a TEST set of box lines forces OBJECT_LOCALIZATION
    (brand detection: image-level logos in TRAIN, boxed TEST)."""
    if test is not None and test.model_type == "OBJECT_LOCALIZATION":
        return "OBJECT_LOCALIZATION"
    return train.model_type


def _terminal(code: str) -> tuple[str, str]:
    return code, f"{code}: {MESSAGES[code]}"


def terminal_error(
    total_lines: int,
    dropped: int,
    line_errors: int,
    label_count: int,
    limits: ManifestLimits = DEFAULT_LIMITS,
    *,
    ignored_lines: int = 0,
    blank_lines: int = 0,
    size_bytes: int | None = None,
) -> tuple[str, str] | None:
    """The dataset-import terminal checks of §6.1 that need no I/O; (code, "CODE: message") or None.

    Arguments: `total_lines` = lines read, blank ones included when the caller counts them (`count_lines`);
    `blank_lines` = how many of those were blank; `dropped` = lines removed as terminal content errors
    (parse_line drops and duplicate source-refs); `line_errors` = entries with a line-scope error
    (`ParsedLine.line_error`); `ignored_lines` = warning-only entries (`ParsedLine.ignored`);
    `label_count` = distinct labels; `size_bytes` = the manifest's size, when known.

    In order: ERROR_MANIFEST_SIZE_TOO_LARGE (> 1 GB); ERROR_MANIFEST_ROWS_EXCEEDS_MAXIMUM (> 250,000 lines);
    ERROR_EMPTY_MANIFEST (no non-blank line); ERROR_MANIFEST_INACCESSIBLE_OR_UNSUPPORTED_FORMAT (every
    non-blank line dropped: a binary or gzip file, a pretty-printed JSON document, …);
    ERROR_TOO_MANY_RECORDS_IN_ERROR when dropped + line_errors > 20 % of the non-blank lines that are not
    ignored (warning-only lines are neither errors nor part of the base, §5 / limits.md §2);
    ERROR_MANIFEST_TOO_MANY_LABELS (> 250).
    """
    if size_bytes is not None and size_bytes > limits.max_manifest_bytes:
        return _terminal(ERROR_MANIFEST_SIZE_TOO_LARGE)
    if total_lines > limits.max_lines:
        return _terminal(ERROR_MANIFEST_ROWS_EXCEEDS_MAXIMUM)
    lines = total_lines - blank_lines
    if lines <= 0:
        return _terminal(ERROR_EMPTY_MANIFEST)
    if dropped >= lines:
        return _terminal(ERROR_MANIFEST_INACCESSIBLE_OR_UNSUPPORTED_FORMAT)
    base = lines - ignored_lines
    # Integer arithmetic: "> 20 %" exactly, no float rounding at the boundary.
    if (dropped + line_errors) * 100 > base * limits.max_invalid_percent:
        return _terminal(ERROR_TOO_MANY_RECORDS_IN_ERROR)
    if label_count > limits.max_labels:
        return _terminal(ERROR_MANIFEST_TOO_MANY_LABELS)
    return None


# ---------------------------------------------------------------------------------------------------
# Writing lines (§12)
# ---------------------------------------------------------------------------------------------------


def image_level_line(
    source_ref: str,
    labels: list[str],
    attribute_prefix: str = "label",
    *,
    now: datetime | None = None,
    limits: ManifestLimits = DEFAULT_LIMITS,
) -> str:
    """A valid image-level line (§2) with one attribute pair per label: `<prefix><i>: i` and its metadata
    (class-name, confidence 1, type, human-annotated "yes", creation-date = now in UTC with milliseconds).

    No labels gives a source-ref-only (unlabeled) line; repeated labels are written once.
    Raises ValueError for an unusable source-ref, label or prefix (a caller bug, not user data).
    """
    if parse_source_ref(source_ref, limits) is None:
        raise ValueError(f"not a valid s3:// source-ref: {source_ref!r}")
    if not attribute_prefix or attribute_prefix.startswith(CL_PREFIX):
        raise ValueError(f"unusable attribute prefix {attribute_prefix!r}")
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    line: dict[str, Any] = {SOURCE_REF: source_ref}
    for index, label in enumerate(dict.fromkeys(labels)):
        if type(label) is not str or not _name_length_ok(label, limits):
            raise ValueError(f"label names must be 1 to {limits.max_label_name_chars} characters: {label!r}")
        name = f"{attribute_prefix}{index}"
        line[name] = index
        line[name + META_SUFFIX] = {
            "class-name": label,
            "confidence": 1,
            "type": CLASSIFICATION_TYPE,
            "human-annotated": "yes",
            "creation-date": stamp,
        }
    return _dumps(line)


MIN_LABEL_OVERLAP = 0.5


def label_overlap(train_labels: set[str], test_labels: set[str]) -> float | None:
    """|train ∩ test| / |train| (spec/manifest.md §5); None when TRAIN has no labels.

    Training fails with ERROR_INSUFFICIENT_LABEL_OVERLAP below MIN_LABEL_OVERLAP; the dataset service
    uses it to warn as soon as both datasets exist.
    """
    if not train_labels:
        return None
    return len(train_labels & test_labels) / len(train_labels)
