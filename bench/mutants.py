"""Hostile input for the bad-input campaign (bench/hostile.py) and its short form (tests/test_hostile.py).

Two generators, both deterministic for a seed:

- `manifest_mutants(bases, count, seed, ref)`: mutated Ground Truth lines. Each starts from a real
  line (the shared datasets' manifests, `base_lines`) and breaks one thing: the JSON itself
  (truncated, unbalanced, trailing commas, BOM, raw control bytes, invalid UTF-8), the type of
  every field in turn, missing and extra fields, huge strings, Unicode oddities, NUL characters
  (escaped `\\u0000` in source-ref, label names, class maps, job names, keys and extra strings, and
  raw 0x00 bytes), path tricks and foreign schemes in `source-ref`, boxes that are negative, NaN,
  huge or off the frame, class ids out of range, deep nesting, and lines of 1 MB.
- `hostile_images(count, seed)`: images that are truncated, empty, extreme in shape, decompression
  bombs, of the wrong format or with a misleading name, in unusual modes (CMYK, 16-bit, alpha,
  palette, grey), with EXIF tricks, and at the exact size limits of spec/limits.md.

Every mutant carries its own unique source-ref (from `ref(i)`) so that no two collide as duplicates,
and the image the bench should store there (the base line's own photo), so that what a line is
judged on is the mutation and not a missing object.
"""

from __future__ import annotations

import copy
import io
import json
import math
import random
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from scripts import shared_data

DATASETS = shared_data.datasets_dir()
SHARED_SETS = ("rock-paper-scissors", "trashnet", "fruit-detection", "flickr-logos-27")


# ---------------------------------------------------------------------------------------------------
# Base lines
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaseLine:
    """A real manifest line and the photo its source-ref names."""

    line: dict[str, Any]
    image: bytes
    dataset: str


def base_lines(root: Path = DATASETS, per_set: int = 40, seed: int = 0) -> list[BaseLine]:
    """`per_set` lines of each shared dataset's train.manifest (a seeded sample), with their photos."""
    rng = random.Random(seed)
    out: list[BaseLine] = []
    for name in SHARED_SETS:
        folder = root / name
        texts = (folder / "train.manifest").read_text().splitlines()
        for text in rng.sample(texts, min(per_set, len(texts))):
            line = json.loads(text)
            image = (folder / "images" / line["source-ref"].rsplit("/", 1)[1]).read_bytes()
            out.append(BaseLine(line, image, name))
    return out


def fixture_lines(root: Path = DATASETS / "manifest-fixtures") -> list[dict[str, Any]]:
    """The first line of every Ground Truth fixture manifest (formats the shared datasets lack)."""
    out = []
    for path in sorted(root.glob("*.manifest")):
        for text in path.read_text(errors="replace").splitlines():
            try:
                line = json.loads(text)
            except ValueError:
                continue
            if isinstance(line, dict) and "source-ref" in line:
                out.append(line)
                break
    return out


def with_ref(line: dict[str, Any], ref: str) -> dict[str, Any]:
    """A deep copy of `line` whose source-ref is `ref`."""
    out = copy.deepcopy(line)
    out["source-ref"] = ref
    return out


def dumps(line: Any) -> str:
    """Compact JSON as Ground Truth writes it (non-ASCII kept)."""
    return json.dumps(line, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------------------------------------------
# Manifest mutants
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mutant:
    """One mutated line: `data` is what goes into the manifest (no newline), `image` what to store at
    `ref` (None: nothing), `nul` whether the line holds a NUL (escaped or raw)."""

    kind: str
    data: bytes
    ref: str
    image: bytes | None
    nul: bool = False

    @property
    def text(self) -> str:
        """The line as text (invalid UTF-8 replaced)."""
        return self.data.decode("utf-8", "replace")


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key/index path below `value` (containers and leaves)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


def _set(line: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        line = line[step]
    line[path[-1]] = value


def _delete(line: Any, path: tuple[Any, ...]) -> None:
    for step in path[:-1]:
        line = line[step]
    del line[path[-1]]


def _get(line: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        line = line[step]
    return line


def _string_paths(line: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [p for p in _paths(line) if isinstance(_get(line, p), str)]


def _meta_key(line: dict[str, Any]) -> str:
    return next((k for k in line if k.endswith("-metadata")), "x-metadata")


# Values of every JSON type, plus the edge cases of each: each one replaces each field in turn.
WRONG_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1.5,
    -0.0,
    10**30,
    "",
    "x",
    "0",
    "yes",
    [],
    [1, 2],
    {},
    {"a": 1},
    "2023-13-45T99:99:99",
)

SOURCE_REF_TRICKS = (
    "s3://{b}/../{k}",
    "s3://{b}/./{k}",
    "s3://{b}//{k}",
    "s3://{b}/{k}/",
    "s3://{b}/a/../../{k}",
    "s3://{b}/%2e%2e/{k}",
    "s3://{b}\\..\\{k}",
    "s3://{b}/{k}\\x",
    "s3:///{k}",
    "s3://{b}",
    "s3://{b}/",
    "s3://",
    "s3:/{b}/{k}",
    "S3://{b}/{k}",
    " s3://{b}/{k}",
    "s3://{b}/{k} ",
    "https://{b}.s3.amazonaws.com/{k}",
    "http://169.254.169.254/latest/meta-data/",
    "file:///etc/passwd",
    "gs://{b}/{k}",
    "/{b}/{k}",
    "{k}",
    "s3://ab/{k}",
    "s3://{long_bucket}/{k}",
    "s3://UPPER_case..bucket/{k}",
    "s3://-{b}/{k}",
    "s3://{b}/{long_key}",
    "s3://{b}/\u202e{k}",
    "s3://{b}/\t{k}",
    "s3://{b}/\x7f{k}",
    "s3://other-bucket-{b}/{k}",
    "s3://a..b/{k}",
    "s3://a.-b/{k}",
    "s3://192.168.0.1/{k}",
    "s3://x-s3alias/{k}",
    "s3://x--ol-s3/{k}",
    "s3://Legacy_Bucket/{k}",
    "s3://{b}/ ",
    "s3://{b}/   /{k}",
)

UNICODE_ODDITIES = (
    "\u202eevil\u202c",  # right-to-left override
    "e\u0301",  # combining accent (NFD)
    "\u00e9",  # the same letter precomposed (NFC)
    "\U0001f600\U0001f4a9",  # emoji (astral plane)
    "\u200b",  # zero-width space only
    "a\u2028b",  # line separator inside a string
    "\ufeffbom",  # BOM inside a value
    "\uffff\ufffe",  # non-characters
    "\uff21\uff22",  # full-width letters
    "\u0000",  # NUL only
    " ",  # a space only
    "\t\n",  # control whitespace
    "\\",  # a backslash
    '"quoted"',
    "\u4e2d\u6587\u6807\u7b7e",  # CJK
    "\U000e0001",  # language tag
    "\ud7ff",  # last BMP letter before surrogates
    "a" * 255 + "\u0301",  # 256 code points, 255 "letters"
)


def _mutate_json(rng: random.Random, line: dict[str, Any]) -> tuple[str, bytes]:
    text = dumps(line)
    cut = rng.randrange(1, len(text) - 1)
    choices: list[tuple[str, bytes]] = [
        ("json/truncated", text[:cut].encode()),
        ("json/no-closing-brace", text[:-1].encode()),
        ("json/extra-closing-brace", (text + "}").encode()),
        ("json/trailing-comma", (text[:-1] + ",}").encode()),
        ("json/single-quotes", text.replace('"', "'").encode()),
        ("json/two-objects", (text + text).encode()),
        ("json/array", ("[" + text + "]").encode()),
        ("json/string", json.dumps(text).encode()),
        ("json/number", b"42"),
        ("json/null", b"null"),
        ("json/garbage", bytes(rng.randrange(33, 127) for _ in range(rng.randrange(1, 200)))),
        ("json/bare-nan", text.replace('"confidence":1', '"confidence":NaN', 1).encode()),
        ("json/infinity", text[:-1].encode() + b',"x":Infinity}'),
        ("json/bom-prefix", "\ufeff".encode() + text.encode()),
        ("json/invalid-utf8", text[:-1].encode() + b',"x":"\xff\xfe\xc3"}'),
        ("json/overlong-utf8", text[:-1].encode() + b',"x":"\xc0\xaf"}'),
        ("json/lone-surrogate-escape", (text[:-1] + ',"x":"\\ud800"}').encode()),
        ("json/raw-control-char", text[:-1].encode() + b',"x":"a\x01b"}'),
        ("json/raw-newline-in-string", text[:-1].encode() + b',"x":"a\rb"}'),
        ("json/cr-in-whitespace", text.replace(",", ",\r", 1).encode()),
        ("json/duplicate-keys", (text[:-1] + ',"source-ref":"s3://elsewhere/x.jpg"}').encode()),
        ("json/huge-integer", text[:-1].encode() + b',"x":' + b"9" * 5000 + b"}"),
        ("json/float-overflow", text[:-1].encode() + b',"x":1e999}'),
        ("json/float-underflow", text[:-1].encode() + b',"x":1e-999}'),
        ("json/escaped-slashes", text.replace("/", "\\/").encode()),
        ("json/unicode-escapes", "".join(f"\\u{ord(c):04x}" if c.isalpha() else c for c in text).encode()),
    ]
    return rng.choice(choices)


def _mutate_type(rng: random.Random, line: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    paths = [p for p in _paths(line) if p != ("source-ref",)]
    path = rng.choice(paths)
    value = rng.choice(WRONG_VALUES)
    _set(line, path, copy.deepcopy(value))
    return f"type/{'.'.join(str(p) for p in path[-2:])}={type(value).__name__}", line


def _mutate_missing(rng: random.Random, line: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    paths = [p for p in _paths(line) if p != ("source-ref",)]
    if rng.random() < 0.1:
        del line["source-ref"]
        return "missing/source-ref", line
    path = rng.choice(paths)
    _delete(line, path)
    return f"missing/{'.'.join(str(p) for p in path[-2:])}", line


def _mutate_extra(rng: random.Random, line: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    meta = _meta_key(line)
    choices: list[tuple[str, Callable[[], None]]] = [
        ("extra/top-level", lambda: line.update({"color": "blue", "rank": 3})),
        ("extra/in-metadata", lambda: line[meta].update({"extra": [1, 2, {"x": None}]})),
        ("extra/forged-cl-errors", lambda: line.update({"cl-errors": [{"code": "FORGED"}]})),
        ("extra/forged-cl-metadata", lambda: line.update({"cl-metadata": {"is_labeled": False}})),
        ("extra/source-ref-metadata", lambda: line.update({"source-ref-metadata": {"type": "x"}})),
        ("extra/orphan-metadata", lambda: line.update({"ghost-metadata": {"class-name": "ghost"}})),
        ("extra/orphan-attribute", lambda: line.update({"ghost": {"annotations": []}})),
        (
            "extra/second-attribute",
            lambda: line.update(
                {
                    "second": 1,
                    "second-metadata": {
                        "class-name": "second",
                        "confidence": 1,
                        "type": "groundtruth/image-classification",
                        "human-annotated": "yes",
                        "creation-date": "2024-01-01T00:00:00",
                    },
                }
            ),
        ),
        ("extra/unknown-type", lambda: line[meta].update({"type": "groundtruth/semantic-segmentation"})),
        (
            "extra/multilabel-type",
            lambda: line[meta].update({"type": "groundtruth/image-classification-multilabel"}),
        ),
    ]
    kind, apply = rng.choice(choices)
    apply()
    return kind, line


def _mutate_huge(rng: random.Random, line: dict[str, Any]) -> tuple[str, dict[str, Any] | str]:
    meta = _meta_key(line)
    n = rng.choice([256, 257, 1000, 20_000, 99_000, 100_001, 300_000])
    where = rng.choice(["label", "job-name", "extra-key", "extra-value", "source-ref"])
    if where == "label":
        if "class-name" in line.get(meta, {}):
            line[meta]["class-name"] = "L" * n
        elif "class-map" in line.get(meta, {}):
            line[meta]["class-map"] = {k: "L" * n for k in line[meta]["class-map"]}
    elif where == "job-name" and isinstance(line.get(meta), dict):
        line[meta]["job-name"] = "j" * n
    elif where == "extra-key":
        line["k" * n] = 1
    elif where == "extra-value":
        line["note"] = "v" * n
    else:
        line["source-ref"] = line["source-ref"] + "x" * n + ".jpg"
    return f"huge/{where}-{n}", line


def _mutate_unicode(rng: random.Random, line: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    meta = _meta_key(line)
    odd = rng.choice(UNICODE_ODDITIES)
    where = rng.choice(["label", "job-name", "key", "source-ref", "value"])
    if where == "label" and isinstance(line.get(meta), dict):
        if "class-name" in line[meta]:
            line[meta]["class-name"] = odd
        elif isinstance(line[meta].get("class-map"), dict):
            line[meta]["class-map"] = {k: v + odd for k, v in line[meta]["class-map"].items()}
    elif where == "job-name" and isinstance(line.get(meta), dict):
        line[meta]["job-name"] = odd
    elif where == "key":
        line[odd] = odd
    elif where == "source-ref":
        base, _, name = line["source-ref"].rpartition("/")
        line["source-ref"] = f"{base}/{odd}{name}"
    else:
        line["note"] = odd
    return f"unicode/{where}", line


def _mutate_nul(rng: random.Random, line: dict[str, Any]) -> tuple[str, dict[str, Any] | bytes]:
    meta = _meta_key(line)
    where = rng.choice(
        [
            "source-ref",
            "label",
            "label",
            "label-only-nul",
            "class-map-unused",
            "job-name",
            "metadata-string",
            "attribute-key",
            "extra-key",
            "extra-value",
            "type",
            "raw-byte",
        ]
    )
    m = line.get(meta) if isinstance(line.get(meta), dict) else {}
    if where == "source-ref":
        base, _, name = line["source-ref"].rpartition("/")
        line["source-ref"] = f"{base}/a\u0000{name}"
    elif where in ("label", "label-only-nul"):
        nul = "\u0000" if where == "label-only-nul" else rng.choice(["\u0000x", "x\u0000", "a\u0000b"])
        if "class-name" in m:
            m["class-name"] = m["class-name"] + nul if where == "label" else nul
        elif isinstance(m.get("class-map"), dict):
            m["class-map"] = {k: v + nul for k, v in m["class-map"].items()}
    elif where == "class-map-unused" and isinstance(m.get("class-map"), dict):
        m["class-map"]["9999"] = "unused\u0000"
    elif where == "class-map-unused":
        m["class-map"] = {"0": "x\u0000"}
    elif where == "job-name":
        m["job-name"] = "job\u0000name"
    elif where == "metadata-string":
        m["human-annotated"] = "yes\u0000"
    elif where == "attribute-key":
        attr = meta.removesuffix("-metadata")
        if attr in line:
            line[attr + "\u0000"] = line.pop(attr)
            line[attr + "\u0000-metadata"] = line.pop(meta)
    elif where == "extra-key":
        line["\u0000"] = 1
    elif where == "extra-value":
        line["note"] = "\u0000" * rng.choice([1, 10, 1000])
    elif where == "type":
        m["type"] = str(m.get("type", "")) + "\u0000"
    else:
        text = dumps(line)
        cut = text.index('"source-ref"')
        return "nul/raw-byte", (text[:cut] + "\x00" + text[cut:]).encode()
    return f"nul/{where}", line


def _mutate_source_ref(rng: random.Random, line: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ref = line["source-ref"]
    bucket, _, key = ref.removeprefix("s3://").partition("/")
    trick = rng.choice(SOURCE_REF_TRICKS)
    line["source-ref"] = trick.format(b=bucket, k=key, long_bucket="b" * 64, long_key="k" * 1025)
    return f"source-ref/{trick.split('{')[0] or trick[:12]}", line


def _box_attr(line: dict[str, Any]) -> str | None:
    return next(
        (k for k, v in line.items() if isinstance(v, dict) and isinstance(v.get("annotations"), list)), None
    )


def _mutate_bbox(rng: random.Random, line: dict[str, Any]) -> tuple[str, dict[str, Any] | bytes]:
    attr = _box_attr(line)
    if attr is None or not line[attr]["annotations"]:
        return _mutate_type(rng, line)
    body = line[attr]
    box = rng.choice(body["annotations"])
    field = rng.choice(["left", "top", "width", "height"])
    size = body["image_size"][0]
    value = rng.choice(
        [
            -1,
            -0.5,
            -(10**9),
            10**9,
            1.7976931348623157e308,
            size["width"] + 1,
            size["height"] * 2,
            0,
            1,
            0.0001,
            "NaN",
            "10",
            None,
            True,
            [5],
        ]
    )
    if rng.random() < 0.15:
        # A bare NaN token: Python writes it, JSON does not allow it.
        box[field] = math.nan
        return f"bbox/{field}=NaN-token", dumps_nan(line)
    box[field] = value
    if rng.random() < 0.2:
        size["width"] = rng.choice([0, -5, 1, 10**7, 4097, "640"])
        return f"bbox/image_size.width={size['width']!r}", line
    if rng.random() < 0.1:
        body["annotations"] = body["annotations"] * 60
        line[attr + "-metadata"]["objects"] = [{"confidence": 1}] * len(body["annotations"])
        return "bbox/60-boxes", line
    return f"bbox/{field}={type(value).__name__}", line


def dumps_nan(line: Any) -> bytes:
    """JSON with bare NaN tokens (what Python's json writes by default, not JSON)."""
    return json.dumps(line, separators=(",", ":")).encode()


def _mutate_class_id(rng: random.Random, line: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    attr = _box_attr(line)
    if attr is None or not line[attr]["annotations"]:
        meta = _meta_key(line)
        if isinstance(line.get(meta), dict):
            line[meta]["class-name"] = rng.choice([None, 0, "", ["x"], {"0": "x"}])
        return "class-id/image-level-class-name", line
    box = rng.choice(line[attr]["annotations"])
    value = rng.choice([-1, 99, 2**31, 2**63, 10**20, "0", 0.0, 1.5, None, True])
    box["class_id"] = value
    if rng.random() < 0.3:
        line[attr + "-metadata"]["class-map"] = rng.choice([{}, {"x": "y"}, {"0": 5}, [], None])
        return "class-id/class-map-broken", line
    return f"class-id/{value!r}"[:40], line


def _mutate_nested(rng: random.Random, line: dict[str, Any]) -> tuple[str, bytes]:
    depth = rng.choice([50, 99, 100, 101, 1000, 20_000, 49_000])
    text = dumps(line)
    opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
    nested = opener * depth + "1" + closer * depth
    return f"nested/{depth}", (text[:-1] + ',"deep":' + nested + "}").encode()


def _mutate_big(rng: random.Random, line: dict[str, Any]) -> tuple[str, bytes]:
    size = rng.choice([100_000, 1_000_000])
    text = dumps(line)
    room = size - len(text) - len(',"pad":""')
    return f"big/{size}", (text[:-1] + ',"pad":"' + "p" * room + '"}').encode()


_MUTATORS: tuple[tuple[str, int, Callable[[random.Random, dict[str, Any]], tuple[str, Any]]], ...] = (
    ("json", 80, _mutate_json),
    ("type", 220, _mutate_type),
    ("missing", 80, _mutate_missing),
    ("extra", 60, _mutate_extra),
    ("huge", 40, _mutate_huge),
    ("unicode", 80, _mutate_unicode),
    ("nul", 120, _mutate_nul),
    ("source-ref", 90, _mutate_source_ref),
    ("bbox", 120, _mutate_bbox),
    ("class-id", 60, _mutate_class_id),
    ("nested", 20, _mutate_nested),
    ("big", 4, _mutate_big),
)


def manifest_mutants(
    bases: Sequence[BaseLine], count: int, seed: int, ref: Callable[[int], str]
) -> list[Mutant]:
    """`count` mutated lines; mutant i starts from a base line with source-ref `ref(i)` (the image to
    store there is the base line's photo). Categories follow the weights of `_MUTATORS`; at least one
    NUL mutant is in every 10."""
    rng = random.Random(seed)
    names = [m[0] for m in _MUTATORS]
    weights = [m[1] for m in _MUTATORS]
    by_name = {m[0]: m[2] for m in _MUTATORS}
    out: list[Mutant] = []
    boxed = [b for b in bases if _box_attr(b.line) and b.line[_box_attr(b.line) or ""]["annotations"]]
    for i in range(count):
        category = "nul" if i % 10 == 0 else rng.choices(names, weights)[0]
        base = rng.choice(boxed if category in ("bbox", "class-id") and boxed else list(bases))
        line = with_ref(base.line, ref(i))
        kind, result = by_name[category](rng, line)
        data = result if isinstance(result, bytes) else dumps(result).encode()
        nul = b"\x00" in data or b"\\u0000" in data
        out.append(Mutant(kind, data, ref(i), base.image, nul))
    return out


def good_lines(bases: Sequence[BaseLine], count: int, ref: Callable[[int], str]) -> list[Mutant]:
    """`count` unmodified real lines (their photos at `ref(i)`): the lines that must import."""
    return [
        Mutant("good", dumps(with_ref(b.line, ref(i))).encode(), ref(i), b.image)
        for i, b in zip(range(count), _cycle(bases), strict=False)
    ]


def _cycle(items: Sequence[Any]) -> Iterator[Any]:
    while True:
        yield from items


def manifest_bytes(
    lines: Sequence[bytes], *, bom: bool = False, crlf: bool = False, blank: bool = False
) -> bytes:
    """A manifest file of `lines`, optionally with a UTF-8 BOM, CRLF line ends and blank lines."""
    end = b"\r\n" if crlf else b"\n"
    body = end.join(lines) + end
    if blank:
        body = end + b"   " + end + body + end + b"\t" + end
    return (b"\xef\xbb\xbf" if bom else b"") + body


# ---------------------------------------------------------------------------------------------------
# Hostile images
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostileImage:
    """One image file: `valid` says whether spec/limits.md accepts it for training (64–4096 px, ratio
    ≤ 20, PNG/JPEG, ≤ 15 MB, decodable; None: either answer is right, e.g. a flipped bit that may or may
    not break the entropy data); `name` is the file name it is sent or stored under."""

    kind: str
    name: str
    data: bytes
    valid: bool | None


def _encode(im: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def _photo(rng: random.Random, width: int, height: int, mode: str = "RGB") -> Image.Image:
    """A cheap image with some structure (gradient + noise tile) so codecs do real work."""
    tile = Image.frombytes("RGB", (32, 32), bytes(rng.randrange(256) for _ in range(32 * 32 * 3)))
    im = tile.resize((width, height), Image.Resampling.NEAREST) if width * height <= 4096 * 4096 else tile
    return im.convert(mode) if mode != "RGB" else im


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int, height: int, bit_depth: int = 1, color: int = 0) -> bytes:
    """A valid PNG of zeros with a huge frame: KBs on disk, `width`×`height` pixels when decoded."""
    row = b"\x00" * (1 + (width * bit_depth * {0: 1, 2: 3, 6: 4}[color] + 7) // 8)
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row * 256) for _ in range(height // 256)]
    parts.append(compressor.compress(row * (height % 256)))
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def png_lying_header(width: int, height: int, inflated: int) -> bytes:
    """A PNG whose image data inflates to `inflated` bytes, whatever its header says."""
    data = zlib.compress(b"\x00" * inflated, 9)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", data)
        + _png_chunk(b"IEND", b"")
    )


def jpeg_with_size(data: bytes, width: int, height: int) -> bytes:
    """A JPEG whose frame header (SOF0) claims another size than its scan holds."""
    at = data.index(b"\xff\xc0")
    return data[: at + 5] + struct.pack(">HH", height, width) + data[at + 9 :]


def _exif(orientation: int, extra: int = 0) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    if extra:
        exif[0x010E] = "E" * extra  # ImageDescription
    return exif.tobytes()


def _generators(rng: random.Random) -> list[Callable[[], HostileImage]]:
    """The catalogue: each callable makes one hostile image (some of them random per call)."""

    def photo_jpeg(w: int = 320, h: int = 240, **kw: Any) -> bytes:
        return _encode(_photo(rng, w, h), "JPEG", quality=85, **kw)

    def photo_png(w: int = 160, h: int = 120, mode: str = "RGB", **kw: Any) -> bytes:
        return _encode(_photo(rng, w, h, mode), "PNG", **kw)

    def truncated(fmt: str) -> HostileImage:
        data = photo_jpeg() if fmt == "jpeg" else photo_png()
        cut = rng.randrange(1, len(data) - 1)
        return HostileImage(f"truncated/{fmt}", f"truncated.{fmt}", data[:cut], False)

    def bitflip(fmt: str) -> HostileImage:
        data = bytearray(photo_jpeg() if fmt == "jpeg" else photo_png())
        for _ in range(rng.randrange(1, 20)):
            data[rng.randrange(20, len(data))] ^= 1 << rng.randrange(8)
        # A flipped bit in JPEG entropy data may decode to an ugly image or fail: either is right.
        return HostileImage(f"bitflip/{fmt}", f"bitflip.{fmt}", bytes(data), None if fmt == "jpeg" else False)

    def sized(w: int, h: int, fmt: str = "png") -> HostileImage:
        ok = min(w, h) >= 64 and max(w, h) <= 4096 and max(w, h) <= 20 * min(w, h)
        if fmt == "png":
            im = Image.new("L", (w, h), 128)
            data = _encode(im, "PNG", optimize=False, compress_level=9)
        else:
            data = _encode(Image.new("RGB", (w, h), (90, 120, 200)), "JPEG", quality=50)
        return HostileImage(f"size/{w}x{h}/{fmt}", f"s{w}x{h}.{fmt}", data, ok)

    def other_format(fmt: str, ext: str) -> HostileImage:
        im = _photo(rng, 128, 96, "RGBA" if fmt in ("WEBP", "GIF") else "RGB")
        return HostileImage(f"format/{fmt.lower()}", f"image.{ext}", _encode(im, fmt), False)

    def mode(name: str, ok: bool = True) -> HostileImage:
        if name == "cmyk-jpeg":
            data = _encode(_photo(rng, 128, 128, "CMYK"), "JPEG")
        elif name == "grey-jpeg":
            data = _encode(_photo(rng, 128, 128, "L"), "JPEG")
        elif name == "progressive-jpeg":
            data = photo_jpeg(progressive=True)
        elif name == "16bit-png":
            data = _encode(_photo(rng, 128, 128, "L").convert("I;16"), "PNG")
        elif name == "16bit-rgb-png":
            data = _png_rgb16(128, 96)
        elif name == "rgba-png":
            data = photo_png(mode="RGBA")
        elif name == "la-png":
            data = photo_png(mode="LA")
        elif name == "palette-png":
            data = photo_png(mode="P")
        elif name == "1bit-png":
            data = photo_png(mode="1")
        elif name == "interlaced-png":
            data = _encode(_photo(rng, 128, 128), "PNG", interlace=1) if _can_interlace() else photo_png()
        elif name == "grey-png":
            data = photo_png(mode="L")
        elif name == "mpo":
            frames = [_photo(rng, 128, 96), _photo(rng, 128, 96)]
            out = io.BytesIO()
            frames[0].save(out, "MPO", save_all=True, append_images=frames[1:])
            data = out.getvalue()
        elif name == "jpeg-trailing-garbage":
            data = photo_jpeg() + bytes(rng.randrange(256) for _ in range(1000))
        elif name == "png-trailing-garbage":
            data = photo_png() + b"garbage" * 100
        else:
            raise ValueError(name)
        return HostileImage(f"mode/{name}", f"{name}.{'png' if 'png' in name else 'jpg'}", data, ok)

    def exif(orientation: int, extra: int = 0) -> HostileImage:
        data = photo_jpeg(400, 100, exif=_exif(orientation, extra))
        return HostileImage(
            f"exif/orientation-{orientation}{'-huge' if extra else ''}", "exif.jpg", data, True
        )

    def exif_broken() -> HostileImage:
        data = photo_jpeg()
        app1 = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff" + bytes(rng.randrange(256) for _ in range(200))
        data = data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:]
        return HostileImage("exif/broken-ifd", "exif-broken.jpg", data, True)

    def many_app_segments() -> HostileImage:
        data = photo_jpeg()
        seg = b"\xff\xe2" + struct.pack(">H", 65535) + b"\x00" * 65533
        return HostileImage("exif/200-app-segments", "apps.jpg", data[:2] + seg * 200 + data[2:], True)

    def mismatch(kind: str) -> HostileImage:
        if kind == "png-named-jpg":
            return HostileImage("name/png-named-jpg", "really-png.jpg", photo_png(), True)
        if kind == "jpeg-named-png":
            return HostileImage("name/jpeg-named-png", "really-jpeg.png", photo_jpeg(), True)
        if kind == "gif-named-jpg":
            return HostileImage("name/gif-named-jpg", "gif.jpg", _encode(_photo(rng, 96, 96), "GIF"), False)
        if kind == "text-named-png":
            return HostileImage("name/text-named-png", "notes.png", b"hello, I am not an image\n" * 10, False)
        raise ValueError(kind)

    def magic(kind: str) -> HostileImage:
        table = {
            "empty": b"",
            "one-byte": b"\xff",
            "jpeg-magic-only": b"\xff\xd8\xff",
            "png-magic-only": b"\x89PNG\r\n\x1a\n",
            "png-magic-then-jpeg": b"\x89PNG\r\n\x1a\n" + photo_jpeg()[3:],
            "jpeg-soi-eoi": b"\xff\xd8\xff\xd9",
            "html": b"<html><body>403 Forbidden</body></html>",
            "gzip": zlib.compress(photo_jpeg()),
            "pdf": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n",
            "svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="9e9" height="9e9"/>',
            "zeros-4k": b"\x00" * 4096,
            "random": bytes(rng.randrange(256) for _ in range(5000)),
        }
        return HostileImage(f"magic/{kind}", f"{kind}.jpg", table[kind], False)

    def bomb(kind: str) -> HostileImage:
        if kind == "png-30000x30000":
            return HostileImage("bomb/png-30000x30000", "bomb.png", png_bomb(30000, 30000), False)
        if kind == "png-4096x4096-rgba":
            return HostileImage("bomb/png-4096-rgba-zeros", "zeros.png", png_bomb(4096, 4096, 8, 6), True)
        if kind == "png-lying-header":
            return HostileImage(
                "bomb/png-inflates-past-header", "lying.png", png_lying_header(64, 64, 50_000_000), None
            )
        if kind == "jpeg-65535":
            return HostileImage(
                "bomb/jpeg-header-65535", "huge.jpg", jpeg_with_size(photo_jpeg(), 65535, 65535), False
            )
        if kind == "jpeg-header-lies-small":
            return HostileImage(
                "bomb/jpeg-header-2000-scan-320", "lies.jpg", jpeg_with_size(photo_jpeg(), 2000, 2000), None
            )
        if kind == "png-1x50000":
            return HostileImage("bomb/png-1x50000", "tall.png", png_bomb(1, 50000, 8), False)
        if kind == "png-50000x1":
            return HostileImage("bomb/png-50000x1", "wide.png", png_bomb(50000, 1, 8), False)
        if kind == "jpeg-many-scans":
            return HostileImage(
                "bomb/jpeg-5000-scans", "scans.jpg", _many_scans(photo_jpeg(64, 64), 5000), False
            )
        raise ValueError(kind)

    def over_bytes() -> HostileImage:
        # Noise does not compress: a 2400×2400 RGB PNG of it is > 15 MB.
        noise = Image.frombytes("RGB", (2400, 2400), rng.randbytes(2400 * 2400 * 3))
        return HostileImage(
            "bytes/png-over-15MB", "noise.png", _encode(noise, "PNG", compress_level=1), False
        )

    def over_4mb_jpeg() -> HostileImage:
        noise = Image.frombytes("RGB", (1800, 1800), rng.randbytes(1800 * 1800 * 3))
        return HostileImage("bytes/jpeg-over-4MB", "noise.jpg", _encode(noise, "JPEG", quality=98), True)

    gens: list[Callable[[], HostileImage]] = []
    gens += [lambda: truncated("jpeg")] * 14 + [lambda: truncated("png")] * 14
    gens += [lambda: bitflip("jpeg")] * 6 + [lambda: bitflip("png")] * 6
    for w, h in [
        (4096, 4096),
        (4097, 4097),
        (4097, 64),
        (64, 4097),
        (4096, 205),
        (4096, 204),
        (64, 64),
        (63, 63),
        (63, 64),
        (1, 1),
        (1, 64),
        (1280, 64),
        (1281, 64),
        (64, 1281),
        (200, 10),
        (4096, 64),
    ]:
        gens += [lambda w=w, h=h: sized(w, h, "png"), lambda w=w, h=h: sized(w, h, "jpeg")]
    for fmt, ext in [
        ("GIF", "gif"),
        ("WEBP", "webp"),
        ("TIFF", "tiff"),
        ("BMP", "bmp"),
        ("ICO", "ico"),
        ("PPM", "ppm"),
    ]:
        gens += [lambda fmt=fmt, ext=ext: other_format(fmt, ext)] * 2
    for name in [
        "cmyk-jpeg",
        "grey-jpeg",
        "progressive-jpeg",
        "16bit-png",
        "16bit-rgb-png",
        "rgba-png",
        "la-png",
        "palette-png",
        "1bit-png",
        "interlaced-png",
        "grey-png",
        "mpo",
        "jpeg-trailing-garbage",
        "png-trailing-garbage",
    ]:
        gens += [lambda name=name: mode(name)] * 2
    for orientation in [1, 2, 3, 4, 5, 6, 7, 8, 0, 9, 65535]:
        gens.append(lambda o=orientation: exif(o))
    gens += [lambda: exif(6, 60000), lambda: exif(8, 30000), exif_broken, many_app_segments]
    for kind in ["png-named-jpg", "jpeg-named-png", "gif-named-jpg", "text-named-png"]:
        gens += [lambda kind=kind: mismatch(kind)] * 2
    for kind in [
        "empty",
        "one-byte",
        "jpeg-magic-only",
        "png-magic-only",
        "png-magic-then-jpeg",
        "jpeg-soi-eoi",
        "html",
        "gzip",
        "pdf",
        "svg",
        "zeros-4k",
        "random",
    ]:
        gens.append(lambda kind=kind: magic(kind))
    for kind in [
        "png-30000x30000",
        "png-4096x4096-rgba",
        "png-lying-header",
        "jpeg-65535",
        "jpeg-header-lies-small",
        "png-1x50000",
        "png-50000x1",
        "jpeg-many-scans",
    ]:
        gens.append(lambda kind=kind: bomb(kind))
    gens += [over_bytes, over_4mb_jpeg]
    return gens


def _can_interlace() -> bool:
    # Pillow writes interlaced PNGs from 11.2 on; older ones ignore the option.
    return True


def _png_rgb16(width: int, height: int) -> bytes:
    """A 16-bit RGB PNG (Pillow cannot write one; built by hand)."""
    row = b"\x00" + b"\x12\x34\x56\x78\x9a\xbc" * width
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(row * height))
        + _png_chunk(b"IEND", b"")
    )


def _many_scans(jpeg: bytes, scans: int) -> bytes:
    """A JPEG with its scan repeated `scans` times (each a pass over the image for a decoder)."""
    sos = jpeg.index(b"\xff\xda")
    return jpeg[:sos] + jpeg[sos:-2] * scans + b"\xff\xd9"


def catalogue(seed: int = 0, *, quick: bool = False) -> list[HostileImage]:
    """One image of each generator of the catalogue (`quick`: without the slow-to-build ones)."""
    return hostile_images(len(_generators(random.Random(seed))), seed, quick=quick)


def hostile_images(count: int = 200, seed: int = 0, *, quick: bool = False) -> list[HostileImage]:
    """`count` hostile images from the catalogue, in catalogue order (it repeats past its end).

    `quick` leaves out the ones that take long to build (the > 15 MB and > 4 MB noise files and the
    30000² bomb), for the test suite's short form.
    """
    rng = random.Random(seed)
    gens = _generators(rng)
    if quick:
        slow = {"over_bytes", "over_4mb_jpeg"}
        gens = [g for g in gens if getattr(g, "__name__", "") not in slow]
    out: list[HostileImage] = []
    i = 0
    while len(out) < count:
        image = gens[i % len(gens)]()
        i += 1
        if quick and image.kind == "bomb/png-30000x30000":
            continue
        out.append(image)
    return out
