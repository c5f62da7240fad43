"""The edge's Prometheus metrics, kept in memory and written in the text exposition format (0.0.4).

Requests by operation and HTTP status, errors by operation and AWS exception name, a latency
histogram per operation, and the requests in flight. Label values are bounded: operations come from
the edge's table (anything else is `unknown`), errors from the AWS exception names.
"""

from __future__ import annotations

import threading
from collections import defaultdict

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds; control-plane calls take milliseconds, DetectCustomLabels on a CPU up to seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
PREFIX = "customlabels_edge"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{name}="{_label(value)}"' for name, value in labels.items()) + "}"


def _counter(
    name: str, help_text: str, keys: tuple[str, str], counts: dict[tuple[str, str], int]
) -> list[str]:
    """A counter family in the text format: HELP, TYPE and one sample per label pair."""
    lines = [f"# HELP {PREFIX}_{name} {help_text}", f"# TYPE {PREFIX}_{name} counter"]
    lines += [
        f"{PREFIX}_{name}{_labels(**dict(zip(keys, pair, strict=True)))} {count}"
        for pair, count in sorted(counts.items())
    ]
    return lines


class Metrics:
    """Thread-safe counters and histograms of the requests the edge answered."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str], int] = defaultdict(int)
        self._errors: dict[tuple[str, str], int] = defaultdict(int)
        self._buckets: dict[str, list[int]] = {}
        self._sums: dict[str, float] = defaultdict(float)
        self._in_flight = 0

    def started(self) -> None:
        """Counts a request in flight."""
        with self._lock:
            self._in_flight += 1

    def observe(self, operation: str, status: int, error: str | None, seconds: float) -> None:
        """Records one answered request (and ends its in-flight count)."""
        with self._lock:
            self._in_flight -= 1
            self._requests[(operation, str(status))] += 1
            if error:
                self._errors[(operation, error)] += 1
            counts = self._buckets.setdefault(operation, [0] * (len(BUCKETS) + 1))
            for index, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    counts[index] += 1
            counts[-1] += 1  # +Inf, which is also the count
            self._sums[operation] += seconds

    def render(self) -> str:
        """Returns every metric in the Prometheus text format."""
        with self._lock:
            lines = _counter(
                "requests_total",
                "Requests answered, by operation and HTTP status.",
                ("operation", "status"),
                self._requests,
            )
            lines += _counter(
                "errors_total",
                "Requests answered with an error, by operation and AWS exception.",
                ("operation", "error"),
                self._errors,
            )
            lines += [
                f"# HELP {PREFIX}_request_duration_seconds Time from the request's arrival to its answer.",
                f"# TYPE {PREFIX}_request_duration_seconds histogram",
            ]
            for op, counts in sorted(self._buckets.items()):
                for bound, count in zip((*BUCKETS, "+Inf"), counts, strict=True):
                    le = bound if isinstance(bound, str) else repr(float(bound))
                    lines.append(
                        f"{PREFIX}_request_duration_seconds_bucket{_labels(operation=op, le=le)} {count}"
                    )
                lines.append(
                    f"{PREFIX}_request_duration_seconds_sum{_labels(operation=op)} {self._sums[op]!r}"
                )
                lines.append(f"{PREFIX}_request_duration_seconds_count{_labels(operation=op)} {counts[-1]}")
            lines += [
                f"# HELP {PREFIX}_requests_in_flight Requests being handled now.",
                f"# TYPE {PREFIX}_requests_in_flight gauge",
                f"{PREFIX}_requests_in_flight {self._in_flight}",
            ]
        return "\n".join(lines) + "\n"
