"""google.protobuf.Timestamp from what our tables hold: a datetime or epoch milliseconds."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp


def timestamp(value: datetime | int) -> Timestamp:
    """A Timestamp of a timezone-aware datetime, or of an int of epoch milliseconds (ARN creation times)."""
    ts = Timestamp()
    if isinstance(value, int):
        ts.FromMilliseconds(value)
    else:
        ts.FromDatetime(value)
    return ts
