"""Field checks shared by every service: names, tags, descriptions (spec/api.md §0.3, limits.md §3–4).

Each check raises InvalidParameterException with a message naming the AWS field, so a user of
any client can tell which input to fix.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

from services.common.errors import InvalidParameter, InvalidS3Object

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


# What the S3 protocol client (minio) refuses before sending a request: valid for the API's shapes, but
# no S3 server can hold such a bucket or address such a key, so they cannot be accessed.
_ADDRESSABLE_BUCKET = re.compile(r"^[a-z0-9][a-z0-9_.\-:]{1,61}[a-z0-9]$", re.IGNORECASE)
_IPV4 = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")


def addressable_bucket(value: str) -> bool:
    """Whether an S3 client can address a bucket of this name (3–63 characters, no '..', '.-' or '-.',
    no IP address, none of the reserved suffixes)."""
    return bool(
        _ADDRESSABLE_BUCKET.match(value)
        and not _IPV4.match(value)
        and not any(pair in value for pair in ("..", ".-", "-."))
        and not value.endswith(("-s3alias", "--ol-s3"))
    )


def bucket(value: str, field: str) -> str:
    """Checks an S3 bucket name field (3..255, [0-9A-Za-z.-_]); InvalidS3ObjectException for a name
    of that shape that no S3 bucket can have (longer than 63, '..', an IP address …)."""
    if not 3 <= len(value) <= 255 or not BUCKET.match(value):
        raise InvalidParameter(f"{field} must be 3 to 255 characters of [0-9A-Za-z.-_]")
    if not addressable_bucket(value):
        raise InvalidS3Object(f"{field}: no S3 bucket can be named {value[:80]!r}; it cannot be accessed")
    return value


def no_nul(value: str, field: str) -> str:
    """Refuses a NUL character (U+0000): no name, key or label of ours holds one, and PostgreSQL text
    cannot store or compare one (the query would fail instead of answering)."""
    if "\x00" in value:
        raise InvalidParameter(f"{field} must not contain NUL (U+0000) characters")
    return value


def object_key(value: str, field: str, max_len: int = 1024, allow_empty: bool = False) -> str:
    """Checks an S3 object key or key prefix: length as the service model says, no NUL, nothing the S3
    client refuses to address (a key: InvalidS3ObjectException; a prefix: InvalidParameterException)."""
    if not value and not allow_empty:
        raise InvalidParameter(f"{field} is required")
    if len(value) > max_len:
        raise InvalidParameter(f"{field} must be at most {max_len} characters long")
    no_nul(value, field)
    segments = value.split("/")
    if "." in segments or ".." in segments or (value and not value.strip()):
        # S3 allows these keys, the S3 protocol client does not send them (they would be path tricks).
        if allow_empty:
            raise InvalidParameter(f"{field} must not hold '.' or '..' segments or only spaces")
        raise InvalidS3Object(
            f"{field}: an object key with '.' or '..' segments or only spaces cannot be read"
        )
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
