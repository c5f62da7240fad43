"""All SQL of the dataset service (schema `dataset`).

Entries change only inside one transaction per operation (`commit_*`), which also moves the dataset
to its final status and marks the job done: readers see the old entries or the new ones, and a job
is never half applied nor applied twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg_pool import ConnectionPool

from services.common.jobs import JobQueue, JobRow

IN_PROGRESS = ("CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "DELETE_IN_PROGRESS")

# The folder of a source-ref (up to its last "/"), exactly as indexed by migration 003.
FOLDER_EXPR = "substring(source_ref FROM '^.*/')"
# Past these, SourceRefContains falls back to the trigram index (a dataset with an image per folder).
MAX_FOLDERS = 1_000
MAX_RANGES = 100


@dataclass(frozen=True)
class DatasetRow:
    """One dataset as stored."""

    id: int
    arn: str
    project_arn: str
    dataset_type: str
    status: str
    status_message: str
    status_message_code: str
    model_type: str | None
    total_entries: int
    labeled_entries: int
    error_entries: int
    total_labels: int
    created_ms: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class EntryRow:
    """One entry as the service writes it."""

    source_ref: str
    line: str
    labels: list[str]
    image_labels: list[str]
    box_labels: list[str]
    is_labeled: bool
    has_errors: bool
    usable: bool
    image_key: str | None
    image_width: int | None
    image_height: int | None


@dataclass(frozen=True)
class LabelRow:
    """A label of a dataset with its statistics."""

    name: str
    entry_count: int
    bounding_box_count: int


@dataclass(frozen=True)
class EntryFilter:
    """ListDatasetEntries filters (AND-combined)."""

    contains_labels: Sequence[str] = ()
    labeled: bool | None = None
    source_ref_contains: str | None = None
    has_errors: bool = False


class AlreadyExists(Exception):
    """The project already has a dataset of this type."""


_DATASET_COLUMNS = (
    "id, arn, project_arn, dataset_type, status, status_message, status_message_code, model_type, total_entries,"
    " labeled_entries, error_entries, total_labels, created_ms, created_at, updated_at"
)
_ENTRY_COLUMNS = (
    "source_ref, line, labels, image_labels, box_labels, is_labeled, has_errors, usable, image_key, image_width,"
    " image_height"
)


class DatasetRepository:
    """Reads and writes datasets, entries, labels and jobs."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self.jobs = JobQueue(pool, "dataset_id")

    # -- datasets ---------------------------------------------------------------------------------

    def create(
        self,
        arn: str,
        project_arn: str,
        dataset_type: str,
        created_ms: int,
        now: datetime,
        job: tuple[str, dict[str, Any]] | None,
    ) -> DatasetRow:
        """Inserts a dataset (CREATE_IN_PROGRESS with its job, or CREATE_COMPLETE when empty)."""
        status = "CREATE_IN_PROGRESS" if job else "CREATE_COMPLETE"
        message = "" if job else "The dataset was created."
        with self.pool.connection() as conn:
            try:
                with conn.cursor(row_factory=class_row(DatasetRow)) as cur:
                    cur.execute(
                        "INSERT INTO datasets (arn, project_arn, dataset_type, status, status_message, created_ms,"
                        " created_at, updated_at) VALUES (%(arn)s, %(project)s, %(type)s, %(status)s, %(msg)s,"
                        f" %(ms)s, %(now)s, %(now)s) RETURNING {_DATASET_COLUMNS}",
                        {
                            "arn": arn,
                            "project": project_arn,
                            "type": dataset_type,
                            "status": status,
                            "msg": message,
                            "ms": created_ms,
                            "now": now,
                        },
                    )
                    row = cur.fetchone()
            except psycopg.errors.UniqueViolation:
                raise AlreadyExists(dataset_type) from None
            assert row is not None
            if job:
                self.jobs.enqueue(conn, row.id, *job)
            return row

    def get(self, arn: str) -> DatasetRow | None:
        """Returns a dataset by ARN."""
        with self.pool.connection() as conn, conn.cursor(row_factory=class_row(DatasetRow)) as cur:
            cur.execute(f"SELECT {_DATASET_COLUMNS} FROM datasets WHERE arn = %(arn)s", {"arn": arn})
            return cur.fetchone()

    def get_by_id(self, dataset_id: int) -> DatasetRow | None:
        """Returns a dataset by id."""
        with self.pool.connection() as conn, conn.cursor(row_factory=class_row(DatasetRow)) as cur:
            cur.execute(f"SELECT {_DATASET_COLUMNS} FROM datasets WHERE id = %(id)s", {"id": dataset_id})
            return cur.fetchone()

    def for_projects(self, project_arns: Sequence[str]) -> list[DatasetRow]:
        """Returns the datasets of the given projects."""
        with self.pool.connection() as conn, conn.cursor(row_factory=class_row(DatasetRow)) as cur:
            cur.execute(
                f"SELECT {_DATASET_COLUMNS} FROM datasets WHERE project_arn = ANY(%(arns)s)"
                " ORDER BY project_arn, dataset_type DESC",
                {"arns": list(project_arns)},
            )
            return cur.fetchall()

    def begin(
        self,
        dataset_ids: Sequence[int],
        allowed: Sequence[str],
        status: str,
        job: tuple[str, dict[str, Any]] | None,
        now: datetime,
    ) -> list[str] | None:
        """Moves every dataset to `status` and enqueues `job` (on the first), all or nothing.

        Returns None on success, else the current statuses (some dataset was not in `allowed`).
        The row locks make concurrent callers queue here, so exactly one of them wins.
        """
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT id, status FROM datasets WHERE id = ANY(%(ids)s) ORDER BY id FOR UPDATE",
                {"ids": list(dataset_ids)},
            ).fetchall()
            statuses = [s for _, s in rows]
            if len(rows) != len(dataset_ids) or any(s not in allowed for s in statuses):
                return statuses or ["<missing>"]
            conn.execute(
                "UPDATE datasets SET status = %(status)s, status_message = '', status_message_code = 'SUCCESS',"
                " updated_at = %(now)s WHERE id = ANY(%(ids)s)",
                {"status": status, "now": now, "ids": list(dataset_ids)},
            )
            if job:
                self.jobs.enqueue(conn, dataset_ids[0], *job)
            return None

    def delete(self, dataset_id: int) -> None:
        """Removes a dataset with its entries, labels and jobs."""
        with self.pool.connection() as conn:
            conn.execute("DELETE FROM datasets WHERE id = %(id)s", {"id": dataset_id})

    # -- entries ----------------------------------------------------------------------------------

    def list_entries(
        self, dataset_id: int, flt: EntryFilter, after: str | None, limit: int
    ) -> list[tuple[str, str]]:
        """Returns up to `limit` (source_ref, line) pairs in source-ref order after `after`.

        SourceRefContains is a substring match. With a "/" in the text it is answered from prefix
        ranges of the primary key (`folder_prefixes`), so a page costs the same whether the match
        is one image or half of a 100k dataset; otherwise (or on a dataset with more folders than
        MAX_FOLDERS) from the trigram index.
        """
        clauses = ["dataset_id = %(id)s"]
        params: dict[str, Any] = {"id": dataset_id, "limit": limit}
        if after is not None:
            clauses.append("source_ref > %(after)s")
            params["after"] = after
        if flt.contains_labels:
            clauses.append("labels && %(labels)s::text[]")
            params["labels"] = list(flt.contains_labels)
        if flt.labeled is not None:
            clauses.append("is_labeled = %(labeled)s")
            params["labeled"] = flt.labeled
        if flt.has_errors:
            clauses.append("has_errors")
        with self.pool.connection() as conn:
            text = flt.source_ref_contains
            ranges = self._contains_ranges(conn, dataset_id, text) if text and "/" in text else None
            if text and ranges is None:
                # LIKE (not strpos) so the trigram index applies; the user's text is matched literally.
                clauses.append("source_ref LIKE %(contains)s")
                params["contains"] = f"%{_like_escape(text)}%"
            if ranges is None:
                return conn.execute(
                    f"SELECT source_ref, line FROM entries WHERE {' AND '.join(clauses)}"
                    " ORDER BY source_ref LIMIT %(limit)s",
                    params,
                ).fetchall()
            ranges = [(lo, hi) for lo, hi in ranges if after is None or hi > after]
            if not ranges:
                return []
            # One ordered index range scan per prefix; the ranges are disjoint, so Postgres merges
            # them (Merge Append) and stops after `limit` rows.
            where = " AND ".join(clauses)
            parts = []
            for i, (lo, hi) in enumerate(ranges):
                params[f"lo{i}"], params[f"hi{i}"] = lo, hi
                parts.append(
                    f"(SELECT source_ref, line FROM entries WHERE {where}"
                    f" AND source_ref >= %(lo{i})s AND source_ref < %(hi{i})s ORDER BY source_ref LIMIT %(limit)s)"
                )
            return conn.execute(
                f"SELECT source_ref, line FROM ({' UNION ALL '.join(parts)}) AS m ORDER BY source_ref LIMIT %(limit)s",
                params,
            ).fetchall()

    def _contains_ranges(
        self, conn: psycopg.Connection, dataset_id: int, text: str
    ) -> list[tuple[str, str]] | None:
        """The [lo, hi) source-ref ranges holding exactly the entries whose source-ref contains `text`
        (which holds a "/"), or None when the dataset has too many folders for this to pay."""
        rows = conn.execute(
            "WITH RECURSIVE f(folder) AS ("
            f"  (SELECT {FOLDER_EXPR} FROM entries WHERE dataset_id = %(id)s AND {FOLDER_EXPR} IS NOT NULL"
            "   ORDER BY 1 LIMIT 1)"
            "  UNION ALL"
            f"  SELECT (SELECT {FOLDER_EXPR} FROM entries WHERE dataset_id = %(id)s AND {FOLDER_EXPR} > f.folder"
            "   ORDER BY 1 LIMIT 1) FROM f WHERE f.folder IS NOT NULL"
            ") SELECT folder FROM f WHERE folder IS NOT NULL LIMIT %(cap)s",
            {"id": dataset_id, "cap": MAX_FOLDERS + 1},
        ).fetchall()
        if len(rows) > MAX_FOLDERS:
            return None
        prefixes = folder_prefixes([r[0] for r in rows], text)
        if len(prefixes) > MAX_RANGES:
            return None
        return [(p, prefix_end(p)) for p in prefixes]

    def entries(self, dataset_id: int) -> list[EntryRow]:
        """Returns every entry of a dataset (for copies and distribution)."""
        with self.pool.connection() as conn, conn.cursor(row_factory=class_row(EntryRow)) as cur:
            cur.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE dataset_id = %(id)s ORDER BY source_ref",
                {"id": dataset_id},
            )
            return cur.fetchall()

    def entry(self, dataset_id: int, source_ref: str) -> EntryRow | None:
        """Returns one entry by its source-ref (a primary-key lookup)."""
        with self.pool.connection() as conn, conn.cursor(row_factory=class_row(EntryRow)) as cur:
            cur.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE dataset_id = %(id)s AND source_ref = %(ref)s",
                {"id": dataset_id, "ref": source_ref},
            )
            return cur.fetchone()

    def existing_refs(self, dataset_id: int, refs: Sequence[str]) -> set[str]:
        """Returns which of `refs` already are entries of the dataset."""
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT source_ref FROM entries WHERE dataset_id = %(id)s AND source_ref = ANY(%(refs)s)",
                {"id": dataset_id, "refs": list(refs)},
            ).fetchall()
        return {r[0] for r in rows}

    def export(
        self, dataset_id: int, include_errors: bool, include_unlabeled: bool, batch: int
    ) -> Iterator[list[EntryRow]]:
        """Yields the entries in batches from one consistent snapshot (a single REPEATABLE READ transaction)."""
        clauses = ["dataset_id = %(id)s"]
        if not include_errors:
            clauses.append("usable")
        if not include_unlabeled:
            clauses.append("is_labeled")
        with self.pool.connection() as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            with conn.transaction(), conn.cursor(name="export", row_factory=class_row(EntryRow)) as cur:
                cur.execute(
                    f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE {' AND '.join(clauses)} ORDER BY source_ref",
                    {"id": dataset_id},
                )
                while rows := cur.fetchmany(batch):
                    yield rows
            conn.isolation_level = None

    def list_labels(self, dataset_id: int, after: str | None, limit: int) -> list[LabelRow]:
        """Returns up to `limit` labels by name after `after`."""
        with self.pool.connection() as conn, conn.cursor(row_factory=class_row(LabelRow)) as cur:
            cur.execute(
                "SELECT name, entry_count, bounding_box_count FROM labels WHERE dataset_id = %(id)s"
                " AND (%(after)s::text IS NULL OR name > %(after)s) ORDER BY name LIMIT %(limit)s",
                {"id": dataset_id, "after": after, "limit": limit},
            )
            return cur.fetchall()

    def label_names(self, dataset_id: int) -> set[str]:
        """Returns the names of a dataset's labels."""
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT name FROM labels WHERE dataset_id = %(id)s", {"id": dataset_id}
            ).fetchall()
        return {r[0] for r in rows}

    # -- jobs -------------------------------------------------------------------------------------

    def fail(
        self,
        job: JobRow,
        owner: str,
        dataset_ids: Sequence[int],
        status: str,
        message: str,
        code: str,
        now: datetime,
    ) -> None:
        """Ends a job as failed and moves its datasets to `status` with the message; entries untouched."""
        with self.pool.connection() as conn:
            self.jobs.finish(conn, job.id, owner, "failed", message)
            conn.execute(
                "UPDATE datasets SET status = %(status)s, status_message = %(msg)s, status_message_code = %(code)s,"
                " updated_at = %(now)s WHERE id = ANY(%(ids)s)",
                {"status": status, "msg": message, "code": code, "now": now, "ids": list(dataset_ids)},
            )

    def commit(
        self,
        job: JobRow,
        owner: str,
        dataset_id: int,
        entries: Iterable[EntryRow],
        replace_all: bool,
        status: str,
        message: str,
        now: datetime,
    ) -> None:
        """Applies a job's entries (all of them, or upserted by source-ref), recomputes stats, ends the job."""
        with self.pool.connection() as conn:
            self.jobs.finish(conn, job.id, owner, "done", None)
            if replace_all:
                conn.execute("DELETE FROM entries WHERE dataset_id = %(id)s", {"id": dataset_id})
            conn.execute("CREATE TEMP TABLE incoming (LIKE entries INCLUDING DEFAULTS) ON COMMIT DROP")
            with (
                conn.cursor() as cur,
                cur.copy(f"COPY incoming (dataset_id, {_ENTRY_COLUMNS}) FROM STDIN") as copy,
            ):
                for e in entries:
                    copy.write_row(
                        (
                            dataset_id,
                            e.source_ref,
                            e.line,
                            e.labels,
                            e.image_labels,
                            e.box_labels,
                            e.is_labeled,
                            e.has_errors,
                            e.usable,
                            e.image_key,
                            e.image_width,
                            e.image_height,
                        )
                    )
            conn.execute(
                f"INSERT INTO entries (dataset_id, {_ENTRY_COLUMNS}) SELECT dataset_id, {_ENTRY_COLUMNS}"
                " FROM incoming ON CONFLICT (dataset_id, source_ref) DO UPDATE SET"
                " line = EXCLUDED.line, labels = EXCLUDED.labels, image_labels = EXCLUDED.image_labels,"
                " box_labels = EXCLUDED.box_labels, is_labeled = EXCLUDED.is_labeled,"
                " has_errors = EXCLUDED.has_errors, usable = EXCLUDED.usable, image_key = EXCLUDED.image_key,"
                " image_width = EXCLUDED.image_width, image_height = EXCLUDED.image_height"
            )
            self._refresh_stats(conn, dataset_id)
            self._set_final(conn, [dataset_id], status, message, now)

    def commit_move(
        self,
        job: JobRow,
        owner: str,
        train_id: int,
        test_id: int,
        refs: Sequence[str],
        message: str,
        now: datetime,
    ) -> None:
        """Moves entries from the TRAIN to the TEST dataset (DistributeDatasetEntries) in one transaction."""
        with self.pool.connection() as conn:
            self.jobs.finish(conn, job.id, owner, "done", None)
            conn.execute(
                "UPDATE entries SET dataset_id = %(test)s WHERE dataset_id = %(train)s AND source_ref = ANY(%(refs)s)",
                {"test": test_id, "train": train_id, "refs": list(refs)},
            )
            for dataset_id in (train_id, test_id):
                self._refresh_stats(conn, dataset_id)
            self._set_final(conn, [train_id, test_id], "UPDATE_COMPLETE", message, now)

    @staticmethod
    def _set_final(
        conn: psycopg.Connection, ids: Sequence[int], status: str, message: str, now: datetime
    ) -> None:
        conn.execute(
            "UPDATE datasets SET status = %(status)s, status_message = %(msg)s, status_message_code = 'SUCCESS',"
            " updated_at = %(now)s WHERE id = ANY(%(ids)s)",
            {"status": status, "msg": message, "now": now, "ids": list(ids)},
        )

    @staticmethod
    def _refresh_stats(conn: psycopg.Connection, dataset_id: int) -> None:
        params = {"id": dataset_id}
        conn.execute("DELETE FROM labels WHERE dataset_id = %(id)s", params)
        conn.execute(
            "INSERT INTO labels (dataset_id, name, entry_count, bounding_box_count)"
            " SELECT %(id)s, l, count(*), count(*) FILTER (WHERE l = ANY(box_labels))"
            " FROM entries, unnest(labels) AS l WHERE dataset_id = %(id)s GROUP BY l",
            params,
        )
        # The model type the labels imply (spec/manifest.md §4): the format with more usable labeled
        # lines wins; image-level lines carrying several labels make it multi-label.
        conn.execute(
            "UPDATE datasets d SET"
            " total_entries = s.total, labeled_entries = s.labeled, error_entries = s.errors,"
            " total_labels = (SELECT count(*) FROM labels WHERE dataset_id = %(id)s),"
            " model_type = CASE"
            "   WHEN s.det = 0 AND s.cls = 0 THEN NULL"
            "   WHEN s.det > s.cls THEN 'OBJECT_LOCALIZATION'"
            "   WHEN s.multi THEN 'MULTI_LABEL_CLASSIFICATION'"
            "   ELSE 'IMAGE_CLASSIFICATION' END"
            " FROM (SELECT count(*) AS total, count(*) FILTER (WHERE is_labeled) AS labeled,"
            "   count(*) FILTER (WHERE has_errors) AS errors,"
            "   count(*) FILTER (WHERE usable AND cardinality(box_labels) > 0) AS det,"
            "   count(*) FILTER (WHERE usable AND cardinality(image_labels) > 0) AS cls,"
            "   coalesce(bool_or(usable AND cardinality(image_labels) > 1), false) AS multi"
            "   FROM entries WHERE dataset_id = %(id)s) s"
            " WHERE d.id = %(id)s",
            params,
        )


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def folder_prefixes(folders: Iterable[str], text: str) -> list[str]:
    """The source-ref prefixes whose entries are exactly those containing `text` (which holds a "/"),
    given every folder (source-ref up to its last "/") of the dataset; sorted, none inside another.

    An occurrence of `text` puts its last "/" on some "/" of the source-ref: the part of the ref up to
    that "/" (an ancestor folder) ends with `text` up to its last "/", and the ref goes on with the
    rest of `text` (which holds no "/"). So the matches are the refs starting with
    <ancestor folder ending with head> + tail, for the ancestors of the dataset's folders.
    """
    cut = text.rindex("/") + 1
    head, tail = text[:cut], text[cut:]
    found: set[str] = set()
    for folder in folders:
        slash = folder.find("/")
        while slash != -1:
            ancestor = folder[: slash + 1]
            if ancestor.endswith(head):
                found.add(ancestor + tail)
            slash = folder.find("/", slash + 1)
    prefixes: list[str] = []
    for prefix in sorted(found):  # byte order = code-point order, as the "C" collation sorts
        if not prefixes or not prefix.startswith(prefixes[-1]):
            prefixes.append(prefix)
    return prefixes


def prefix_end(prefix: str) -> str:
    """The least string above every string starting with `prefix`, in code-point ("C") order."""
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code == 0xD800:  # surrogates are no characters: the next one is U+E000
            code = 0xE000
        if code <= 0x10FFFF:
            return "".join(chars) + chr(code)
    raise ValueError("no string follows every string with this prefix")
