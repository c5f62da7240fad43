"""Auto-scaling of a deployment between MinInferenceUnits and MaxInferenceUnits (pure functions).

Every replica records its own Triton's cumulative statistics of each model every few seconds; the
leader's `load_across` turns two samples of each replica into the load of the interval, all replicas
together, and `decide` picks the instance count (which every replica then applies to its Triton):
- requests waited in Triton's queue longer than `scale_up_queue_ms` on average → one more instance
  (up to max and the unit quota);
- the model got no request for `scale_down_idle_s` → back to min;
- otherwise, when one instance fewer could carry the interval's work at most half busy → one fewer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from services.serving.triton import Statistics


@dataclass(frozen=True)
class Load:
    """The load of one model over one sampling interval."""

    requests: int
    queue_ms: float  # mean time a request waited in Triton's queue
    busy: float  # compute time / (interval × instances): 1.0 = every instance always computing


def load_between(before: Statistics, after: Statistics, seconds: float, instances: int) -> Load | None:
    """The load between two samples of a model running `instances` Triton instances; None when the
    counters went back (Triton or the model restarted)."""
    return load_across([(before, after, seconds)], instances)


def load_across(samples: Iterable[tuple[Statistics, Statistics, float]], instances: int) -> Load | None:
    """The load of a model on several Tritons, each running `instances` instances: `samples` holds
    (before, after, seconds between them) per Triton. A Triton whose counters went back (it or the
    model restarted) is left out; None when none is left."""
    requests = queue_ns = infer_ns = 0
    capacity_s = 0.0
    for before, after, seconds in samples:
        delta = (
            after.requests - before.requests,
            after.queue_ns - before.queue_ns,
            after.infer_ns - before.infer_ns,
        )
        if min(delta) < 0 or seconds <= 0:
            continue
        requests, queue_ns, infer_ns = requests + delta[0], queue_ns + delta[1], infer_ns + delta[2]
        capacity_s += seconds * max(instances, 1)
    if capacity_s == 0:
        return None
    return Load(
        requests=requests,
        queue_ms=queue_ns / requests / 1e6 if requests else 0.0,
        busy=infer_ns / 1e9 / capacity_s,
    )


def decide(
    units: int,
    min_units: int,
    max_units: int,
    load: Load,
    idle_s: float,
    *,
    scale_up_queue_ms: float,
    scale_down_idle_s: float,
    spare_units: int,
) -> int:
    """The instance count for the next interval. `idle_s`: how long the model has had no request;
    `spare_units`: how many more units the quota allows."""
    if load.requests == 0:
        return min_units if idle_s >= scale_down_idle_s else units
    if load.queue_ms > scale_up_queue_ms and units < max_units and spare_units > 0:
        return units + 1
    if units > min_units and load.busy * units <= 0.5 * (units - 1):
        return units - 1
    return units
