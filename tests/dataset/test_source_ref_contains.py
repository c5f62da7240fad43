"""SourceRefContains answered from prefix ranges (repository.list_entries) on a real Postgres: every
page of every filter equals a plain substring match over the same entries, in source-ref order."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from psycopg_pool import ConnectionPool

from services.common import db
from services.dataset import app as dataset_app
from services.dataset.repository import (
    DatasetRepository,
    EntryFilter,
    folder_prefixes,
    prefix_end,
)

REFS = [
    "s3://bench/even/0000000.jpg",
    "s3://bench/even/0000002.jpg",
    "s3://bench/odd/0000001.jpg",
    "s3://bench/odd/0000777.jpg",
    "s3://bench/odd/deeper/0000003.jpg",
    "s3://bench/oddity/0000005.jpg",
    "s3://bench/odd.jpg",
    "s3://other/odd/0000009.jpg",
    "s3://other/x/odd/0000011.jpg",
    "s3://other/a%b/c_d/1.jpg",
    "s3://other/a\\b/2.jpg",
    "s3://other/ünï/çødé/3.jpg",
    "s3://other/ünï/z.jpg",
    "s3://bucket//double/4.jpg",
    "s3://bench/even/odd/0000013.jpg",
]
TEXTS = [
    "/odd/",
    "odd/",
    "/odd",
    "odd",
    "/odd/0000777.jpg",
    "/odd/0000",
    "s3://bench/odd/",
    "s3://",
    "://",
    "/",
    "//",
    "//double/",
    "bench/",
    "h/odd/",
    "/even/odd/",
    "a%b/",
    "%",
    "_",
    "c_d/",
    "a\\b/",
    "ünï/",
    "ünï/çø",
    "/deeper/",
    "nowhere/",
    "0000003.jpg",
]


@pytest.fixture(scope="module")
def repo(database_url: str) -> Iterator[DatasetRepository]:
    db.migrate(database_url, dataset_app.SCHEMA, dataset_app.MIGRATIONS)
    pool: ConnectionPool = db.create_pool(database_url, dataset_app.SCHEMA)
    yield DatasetRepository(pool)
    pool.close()


@pytest.fixture(scope="module")
def dataset_id(repo: DatasetRepository) -> int:
    now = datetime.now(UTC)
    row = repo.create("arn:test:contains", "arn:test:project", "TRAIN", 0, now, None)
    with repo.pool.connection() as conn:
        for i, ref in enumerate(REFS):
            conn.execute(
                "INSERT INTO entries (dataset_id, source_ref, line, labels, is_labeled, has_errors, usable)"
                " VALUES (%s, %s, %s, %s, %s, %s, true)",
                (row.id, ref, f'{{"source-ref": "{i}"}}', ["a"] if i % 2 else [], i % 2 == 1, i % 3 == 0),
            )
    return row.id


def all_pages(repo: DatasetRepository, dataset_id: int, flt: EntryFilter, size: int) -> list[str]:
    """Every page of `size`, fetched the way keyset_page does (one row more, then after the last)."""
    out: list[str] = []
    after = None
    while True:
        rows = repo.list_entries(dataset_id, flt, after, size + 1)
        out += [ref for ref, _ in rows[:size]]
        if len(rows) <= size:
            return out
        after = rows[size - 1][0]


@pytest.mark.parametrize("text", TEXTS)
def test_every_page_equals_a_plain_substring_match(repo, dataset_id, text):
    expected = sorted((r for r in REFS if text in r), key=lambda r: r.encode())
    for size in (1, 2, 100):
        assert all_pages(repo, dataset_id, EntryFilter(source_ref_contains=text), size) == expected


def test_source_ref_contains_combines_with_the_other_filters(repo, dataset_id):
    for labeled in (True, False):
        expected = sorted(
            (r for i, r in enumerate(REFS) if "/odd/" in r and (i % 2 == 1) == labeled),
            key=lambda r: r.encode(),
        )
        flt = EntryFilter(source_ref_contains="/odd/", labeled=labeled)
        assert all_pages(repo, dataset_id, flt, 1) == expected
    expected = sorted((r for i, r in enumerate(REFS) if "/" in r and i % 3 == 0), key=lambda r: r.encode())
    flt = EntryFilter(source_ref_contains="/", has_errors=True)
    assert all_pages(repo, dataset_id, flt, 2) == expected
    flt = EntryFilter(source_ref_contains="s3://", contains_labels=["a"])
    assert all_pages(repo, dataset_id, flt, 3) == sorted(REFS[1::2], key=lambda r: r.encode())


def test_a_page_after_the_last_match_is_empty(repo, dataset_id):
    assert repo.list_entries(dataset_id, EntryFilter(source_ref_contains="/odd/"), "s3://zzz", 10) == []


def test_folder_prefixes_keep_only_the_outermost_ranges():
    folders = ["s3://b/odd/", "s3://b/odd/deeper/", "s3://b/x/odd/", "s3://c/odd/"]
    assert folder_prefixes(folders, "/odd/") == ["s3://b/odd/", "s3://b/x/odd/", "s3://c/odd/"]
    assert folder_prefixes(folders, "b/") == ["s3://b/"]
    # Candidates, not matches: an image at s3://c/odd/deep.jpg would match too.
    assert folder_prefixes(folders, "odd/dee") == ["s3://b/odd/dee", "s3://b/x/odd/dee", "s3://c/odd/dee"]
    assert folder_prefixes(folders, "nothing/") == []


def test_prefix_end_is_the_least_string_past_the_prefix():
    assert prefix_end("s3://a/") == "s3://a0"
    assert prefix_end("ab\U0010ffff") == "ac"
    assert prefix_end("a\ud7ff") == "a\ue000"
    with pytest.raises(ValueError):
        prefix_end("\U0010ffff")
