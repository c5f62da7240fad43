"""The short form of the bad-input campaign (bench/hostile.py): 100 mutated manifest lines in one
manifest and 30 hostile images through CreateDataset, UpdateDatasetEntries, UploadImages and
DetectCustomLabels (a classifier trained and started for the module).

Every answer is an AWS error name or a stored per-line code, never INTERNAL/UNKNOWN; NUL characters
in source-refs, label names, job names and metadata strings get a per-line code while the good lines
of the same manifest import; every service is SERVING after each entry point, a normal call works and
a dataset created before the campaign is unchanged.
"""

from __future__ import annotations

import pytest

from bench import hostile, mutants
from bench.hostile import Tally
from scripts.inprocess import LocalServices

# One of each kind the short form sends (the catalogue has 157): the limits' edges and one of every
# family of hostile file.
IMAGE_KINDS = (
    "size/4096x4096/png",
    "size/4096x4096/jpeg",
    "size/4097x4097/png",
    "size/4097x64/jpeg",
    "size/64x64/png",
    "size/63x64/jpeg",
    "size/4096x204/png",
    "size/4096x205/jpeg",
    "truncated/jpeg",
    "truncated/png",
    "magic/empty",
    "magic/png-magic-only",
    "magic/html",
    "bomb/png-1x50000",
    "bomb/png-inflates-past-header",
    "bomb/jpeg-header-65535",
    "bomb/jpeg-5000-scans",
    "mode/cmyk-jpeg",
    "mode/16bit-png",
    "mode/rgba-png",
    "mode/palette-png",
    "mode/mpo",
    "exif/orientation-6",
    "exif/orientation-8-huge",
    "exif/broken-ifd",
    "format/gif",
    "format/webp",
    "format/tiff",
    "name/png-named-jpg",
)
# NUL in these places is a per-line code (a drop for the source-ref); elsewhere it is kept as written.
CODED_NUL = (
    "nul/source-ref",
    "nul/label",
    "nul/label-only-nul",
    "nul/job-name",
    "nul/metadata-string",
    "nul/type",
)


@pytest.fixture(scope="module")
def images() -> list[mutants.HostileImage]:
    """The 30 hostile images: the chosen kinds plus a 30000×30000 decompression bomb."""
    by_kind = {im.kind: im for im in mutants.catalogue(seed=7, quick=True)}
    chosen = [by_kind[kind] for kind in IMAGE_KINDS]
    bomb = mutants.HostileImage("bomb/png-30000x30000", "bomb.png", mutants.png_bomb(30000, 30000), False)
    return [*chosen, bomb]


@pytest.fixture(scope="module")
def tallies(stack: LocalServices, database_url: str, images: list[mutants.HostileImage]) -> dict[str, Tally]:
    """The campaign's answers per entry point (one run for the module)."""
    return {
        t.entry_point: t
        for t in hostile.campaign(
            stack, database_url, 100, len(images), seed=7, per_manifest=100, n_goods=400, images=images
        )
    }


def test_no_entry_point_answers_internal_or_unknown(tallies: dict[str, Tally]) -> None:
    assert len(tallies) == 5
    for tally in tallies.values():
        assert tally.sent >= 30
        assert tally.failures == [], f"{tally.entry_point}: {tally.failures}"
        assert not any("INTERNAL" in a or "UNKNOWN" in a for a in tally.answers)


def test_services_stay_healthy_and_stored_data_unchanged(tallies: dict[str, Tally]) -> None:
    for tally in tallies.values():
        assert tally.health == hostile.HEALTHY, f"after {tally.entry_point}: {tally.health}"


@pytest.mark.parametrize("entry_point", ["CreateDataset (manifest lines)", "UpdateDatasetEntries"])
def test_nul_lines_get_a_per_line_code_while_the_good_lines_import(
    tallies: dict[str, Tally], entry_point: str
) -> None:
    tally = tallies[entry_point]
    nul = [(kind, answer) for kind, answer in tally.answered if kind.startswith("nul/")]
    assert len(nul) >= 10
    for kind, answer in nul:
        if kind.startswith(CODED_NUL):
            assert answer.startswith("dropped: ERROR_") or answer.startswith("stored: ERROR_"), (kind, answer)
    assert any(
        a.startswith("stored: ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT")
        for k, a in nul
        if k == "nul/label"
    )
    # Every mutated line got an answer of its own: the manifest (or batch) as a whole did not fail,
    # and the good lines beside them were imported (a missing one would be a failure).
    assert (
        len([k for k, _ in tally.answered if "/" in k and not k.startswith(("file/", "s3/", "limit/"))])
        == 100
    )


def _answers(tally: Tally, kind: str) -> set[str]:
    return {answer for k, answer in tally.answered if k == kind}


def test_images_at_the_limits_get_the_documented_answers(tallies: dict[str, Tally]) -> None:
    upload, detect = tallies["UploadImages"], tallies["DetectCustomLabels"]
    dataset = tallies["CreateDataset (hostile images)"]
    for kind in (
        "size/4096x4096/png",
        "size/4096x4096/jpeg",
        "size/64x64/png",
        "mode/cmyk-jpeg",
        "exif/orientation-6",
    ):
        assert _answers(upload, kind) == {"accepted"}, kind
        assert _answers(detect, kind) == {"OK"}, kind
        assert _answers(dataset, kind) == {"stored: accepted"}, kind
    for kind in ("size/4097x4097/png", "bomb/png-30000x30000", "bomb/jpeg-header-65535"):
        assert _answers(upload, kind) == {"ImageTooLargeException (per file)"}, kind
        assert _answers(detect, kind) == {"ImageTooLargeException (INVALID_ARGUMENT)"}, kind
        assert _answers(dataset, kind) == {"stored: ERROR_INVALID_IMAGE"}, kind
    for kind in ("magic/html", "truncated/png", "format/gif", "magic/png-magic-only"):
        assert _answers(detect, kind) == {"InvalidImageFormatException (INVALID_ARGUMENT)"}, kind
        assert _answers(dataset, kind) == {"stored: ERROR_INVALID_IMAGE"}, kind
    assert _answers(dataset, "magic/empty") == {"stored: ERROR_INVALID_IMAGE"}
    assert _answers(detect, "magic/empty") == {"InvalidParameterException (INVALID_ARGUMENT)"}
    # A multi-picture JPEG is a JPEG: accepted by both services.
    assert _answers(detect, "mode/mpo") == {"OK"}
    assert _answers(dataset, "mode/mpo") == {"stored: accepted"}
    assert _answers(detect, "size/63x64/jpeg") == {"InvalidParameterException (INVALID_ARGUMENT)"}
