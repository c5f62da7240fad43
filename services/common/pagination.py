"""Opaque, signed page tokens and MaxResults checks (spec/api.md §0.4).

A token carries the keyset position of the next page, a digest of the request's filters and an
expiry, signed with HMAC-SHA256. A token that was altered, expired, or is replayed with other
filters (or on another operation) is refused with InvalidPaginationTokenException.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from services.common.errors import InvalidPaginationToken, InvalidParameter

T = TypeVar("T")

MAX_TOKEN_CHARS = 1024
TOKEN_TTL_S = 24 * 3600


def max_results(value: int | None, present: bool, upper: int, default: int | None = None) -> int:
    """Returns the page size: `default` (else `upper`) when absent, else `value` if within 1..upper."""
    if not present:
        return default if default is not None else upper
    if value is None or not 1 <= value <= upper:
        raise InvalidParameter(f"MaxResults must be between 1 and {upper}, got {value}")
    return value


class PageTokens:
    """Encodes and decodes the NextToken of one operation."""

    def __init__(self, secret: bytes, ttl_s: int = TOKEN_TTL_S) -> None:
        self._secret = secret
        self._ttl_s = ttl_s

    @staticmethod
    def _digest(operation: str, filters: Mapping[str, Any]) -> str:
        blob = json.dumps([operation, filters], sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:16]

    def encode(self, operation: str, filters: Mapping[str, Any], position: list[Any]) -> str:
        """Returns the token for the page that starts after `position` (a JSON-able keyset)."""
        body = {"p": position, "f": self._digest(operation, filters), "e": int(time.time()) + self._ttl_s}
        payload = json.dumps(body, separators=(",", ":"), default=str).encode()
        token = base64.urlsafe_b64encode(self._sign(payload) + payload).decode().rstrip("=")
        if len(token) > MAX_TOKEN_CHARS:
            # Keysets are short (a timestamp, a name, an id); this guards against a design mistake.
            raise RuntimeError("page token exceeds 1024 characters")
        return token

    def decode(self, operation: str, filters: Mapping[str, Any], token: str | None) -> list[Any] | None:
        """Returns the keyset position of `token`, or None for the first page (absent or empty token)."""
        if not token:
            return None
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidPaginationToken("NextToken is longer than 1024 characters")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, TypeError):
            raise InvalidPaginationToken("NextToken is not valid") from None
        signature, payload = raw[:16], raw[16:]
        if len(signature) != 16 or not hmac.compare_digest(signature, self._sign(payload)):
            raise InvalidPaginationToken("NextToken is not valid")
        try:
            body = json.loads(payload)
        except ValueError:
            raise InvalidPaginationToken("NextToken is not valid") from None
        if body.get("f") != self._digest(operation, filters):
            raise InvalidPaginationToken("NextToken was issued for a different request")
        if not isinstance(body.get("e"), int) or body["e"] < time.time():
            raise InvalidPaginationToken("NextToken has expired")
        position = body.get("p")
        if not isinstance(position, list):
            raise InvalidPaginationToken("NextToken is not valid")
        return position


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of results and the token of the next page (None on the last page)."""

    items: list[T]
    next_token: str | None


def keyset_page(
    tokens: PageTokens,
    operation: str,
    filters: Mapping[str, Any],
    next_token: str | None,
    max_results: int,
    fetch: Callable[[list[Any] | None, int], Sequence[T]],
    position_of: Callable[[T], list[Any]],
) -> Page[T]:
    """Runs one keyset-paginated query: `fetch(position, limit)` returns rows after `position` in order.

    One row more than the page is fetched, so a token is only handed out when a next page exists
    (AWS clients loop until NextToken is absent).
    """
    position = tokens.decode(operation, filters, next_token)
    rows = list(fetch(position, max_results + 1))
    more = len(rows) > max_results
    rows = rows[:max_results]
    token = tokens.encode(operation, filters, position_of(rows[-1])) if more else None
    return Page(rows, token)
