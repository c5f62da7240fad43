"""Field checks shared by every service: names, tags, descriptions (spec/api.md §0.3, limits.md §3–4).

Each check raises InvalidParameterException with a message naming the AWS field, so a user of
any client can tell which input to fix.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

from services.common.errors import InvalidParameter

NAME = re.compile(r"^[a-zA-Z0-9_.\-]+$")
DESCRIPTION = re.compile(r"^[a-zA-Z0-9\-_. ()':,;?]+$")
BUCKET = re.compile(r"^[0-9A-Za-z.\-_]*$")
KMS_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:_/+=,@.-]{0,2048}$")
HEX = re.compile(r"^[0-9A-Fa-f]+$")

MAX_TAGS = 200
_TAG_PUNCTUATION = set("_.:/=+-@")


def name(value: str, field: str, max_len: int = 255) -> str:
    """Checks a ProjectName / VersionName / PolicyName: 1..max_len of [a-zA-Z0-9_.-]."""
    if not value:
        raise InvalidParameter(f"{field} is required")
    if len(value) > max_len:
        raise InvalidParameter(f"{field} must be at most {max_len} characters long")
    if not NAME.match(value):
        raise InvalidParameter(f"{field} may contain only letters, digits, '_', '.' and '-': {value[:100]!r}")
    return value


def description(value: str, field: str = "VersionDescription") -> str:
    """Checks a VersionDescription: 1..255 of [a-zA-Z0-9-_. ()':,;?]."""
    if not 1 <= len(value) <= 255:
        raise InvalidParameter(f"{field} must be 1 to 255 characters long")
    if not DESCRIPTION.match(value):
        raise InvalidParameter(f"{field} contains characters outside [a-zA-Z0-9-_. ()':,;?]")
    return value


def bucket(value: str, field: str) -> str:
    """Checks an S3 bucket name field (3..255, [0-9A-Za-z.-_])."""
    if not 3 <= len(value) <= 255 or not BUCKET.match(value):
        raise InvalidParameter(f"{field} must be 3 to 255 characters of [0-9A-Za-z.-_]")
    return value


def object_key(value: str, field: str, max_len: int = 1024, allow_empty: bool = False) -> str:
    """Checks an S3 object key or key prefix (length only, as the service model says)."""
    if not value and not allow_empty:
        raise InvalidParameter(f"{field} is required")
    if len(value) > max_len:
        raise InvalidParameter(f"{field} must be at most {max_len} characters long")
    return value


def kms_key_id(value: str) -> str:
    """Checks a KmsKeyId (key ARN, key id, alias or alias ARN)."""
    if not 1 <= len(value) <= 2048 or not KMS_KEY_ID.match(value):
        raise InvalidParameter("KmsKeyId is not a valid key id, key ARN, alias or alias ARN")
    return value


def _tag_chars_ok(text: str) -> bool:
    # Python's re has no \p{L}; the service model's class is letters, separators, numbers, _.:/=+-@
    return all(unicodedata.category(c)[0] in "LZN" or c in _TAG_PUNCTUATION for c in text)


def tag_key(key: str) -> str:
    """Checks one TagKey: 1..128 chars, no `aws:` prefix, the service model's characters."""
    if not 1 <= len(key) <= 128:
        raise InvalidParameter(f"tag key must be 1 to 128 characters long: {key[:130]!r}")
    if key.lower().startswith("aws:"):
        raise InvalidParameter(f"tag keys may not start with 'aws:': {key!r}")
    if not _tag_chars_ok(key):
        raise InvalidParameter(f"tag key contains characters that are not allowed: {key!r}")
    return key


def tags(value: Mapping[str, str], field: str = "Tags") -> dict[str, str]:
    """Checks a TagMap: at most 200 entries, each key and value valid."""
    if len(value) > MAX_TAGS:
        raise InvalidParameter(f"{field} may hold at most {MAX_TAGS} tags, got {len(value)}")
    for key, val in value.items():
        tag_key(key)
        if len(val) > 256:
            raise InvalidParameter(f"tag value for {key!r} must be at most 256 characters long")
        if not _tag_chars_ok(val):
            raise InvalidParameter(f"tag value for {key!r} contains characters that are not allowed")
    return dict(value)


def tag_keys(keys: Iterable[str]) -> list[str]:
    """Checks a TagKeyList: at most 200 valid keys."""
    out = list(keys)
    if len(out) > MAX_TAGS:
        raise InvalidParameter(f"TagKeys may hold at most {MAX_TAGS} keys, got {len(out)}")
    for key in out:
        tag_key(key)
    return out


def list_size(values: list[str], field: str, low: int, high: int) -> list[str]:
    """Checks an optional list given with low..high items (an absent list is empty here)."""
    if values and not low <= len(values) <= high:
        raise InvalidParameter(f"{field} must hold {low} to {high} items, got {len(values)}")
    return values
