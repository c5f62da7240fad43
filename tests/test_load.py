"""The short form of the load campaign (bench/load.py) against the embedded stack, every part its own
process: concurrent DetectCustomLabels (gRPC and the edge with boto3) and List*/Describe* answer without
a single error, concurrent imports all complete, and a second round of the same mixed load leaves the
open file descriptors of each of our processes where the first left them (a leak of one descriptor per
request, connection or import would show as dozens)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from bench import load
from bench.load import Mix, Prepared, Settings, Tally

pytestmark = pytest.mark.slow

SETTINGS = replace(Settings.short(), small_entries=100, detect_s=1.0, read_s=1.5, import_every_s=0.5)
# Our processes (the services, the edge, the console, the training worker): their descriptors are
# sockets, log files and pool connections, all bounded. A descriptor or two may come and go with a
# pool connection opened or closed at the edge of a round.
OURS = ("project", "dataset", "training", "serving", "training-worker", "edge", "console")
FD_SLACK = 2
ROUND_S = 2.0


@pytest.fixture(scope="module")
def prepared() -> Iterator[Prepared]:
    """The stack up, the classifier trained and RUNNING, the datasets filled."""
    with load.prepared(SETTINGS) as ready:
        yield ready


def assert_no_errors(tally: Tally) -> None:
    assert tally.calls() > 0
    assert tally.error_count() == 0, "\n".join(
        f"{key}: {n}× {tally.examples.get(key, '')}" for key, n in tally.errors.items()
    )


def test_concurrent_detect_list_and_imports_answer_and_descriptors_do_not_grow(prepared: Prepared) -> None:
    p = prepared
    detect = load.bench_detect(p.stack, p.model, SETTINGS)
    for row in detect:
        assert_no_errors(row.tally)
    assert {(r.path, r.clients) for r in detect} >= {("gRPC", 4), ("edge + boto3", 4)}

    reads = load.bench_read(p.stack, p.services, SETTINGS, p.small, p.large)
    for tally in reads.values():
        assert_no_errors(tally)
    assert set(reads["large×C"].latencies) == {name for name, _ in load.read_calls(p.api, "", "", "", "")}

    alone, runs, _ = load.bench_imports(p.stack, p.services.store, SETTINGS)
    for run in (alone, *runs):
        assert run.status == "DATASET_STATUS_CREATE_COMPLETE"
        assert run.entries == run.images == SETTINGS.import_images

    mix = Mix(p.stack, p.services.store, p.model, p.large, SETTINGS)
    try:
        pids = p.stack.pids()
        mix.run(ROUND_S)  # warm-up: pools, channels and caches reach their size
        first = mix.run(ROUND_S)
        after_first = load.snapshot(pids)
        second = mix.run(ROUND_S)
        after_second = load.snapshot(pids)
    finally:
        mix.close()
    for tally in (first, second):
        assert_no_errors(tally)
        assert tally.calls("import → CREATE_COMPLETE") >= 1
        assert (
            tally.calls("detect edge") and tally.calls("detect grpc") and tally.calls("UpdateDatasetEntries")
        )
    grown = {
        name: (after_first[name].fds, after_second[name].fds)
        for name in OURS
        if after_second[name].fds > after_first[name].fds + FD_SLACK
    }
    assert not grown, f"open descriptors grew over a round of the same load: {grown}"
