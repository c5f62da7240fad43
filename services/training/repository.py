"""All SQL of the training service (schema `training`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from services.common.jobs import JobQueue, JobRow


@dataclass(frozen=True)
class VersionRow:
    """One model version as stored."""

    id: int
    arn: str
    project_arn: str
    version_name: str
    status: str
    status_message: str
    created_ms: int
    created_at: datetime
    training_end_at: datetime | None
    billable_s: int | None
    description: str | None
    kms_key_id: str | None
    feature: str
    output_bucket: str
    output_prefix: str
    source_version_arn: str | None
    min_units: int | None
    max_units: int | None
    model_type: str | None
    f1: float | None
    map: float | None
    labels: list[str] | None
    files: dict[str, str]
    inputs: dict[str, Any]
    progress: dict[str, Any] | None


class NameTaken(Exception):
    """The project already has a version with that name."""


_COLUMNS = (
    "id, arn, project_arn, version_name, status, status_message, created_ms, created_at, training_end_at,"
    " billable_s, description, kms_key_id, feature, output_bucket, output_prefix, source_version_arn, min_units,"
    " max_units, model_type, f1, map, labels, files, inputs, progress"
)


class VersionRepository:
    """Reads and writes model versions and their jobs."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self.jobs = JobQueue(pool, "version_id")

    def create(
        self, values: dict[str, Any], job: tuple[str, dict[str, Any]] | None, max_versions: int
    ) -> VersionRow | None:
        """Inserts a version (and its job); None when the project's version quota is reached."""
        columns = list(values)
        params = {k: Jsonb(v) if isinstance(v, dict | list) else v for k, v in values.items()}
        with self.pool.connection() as conn:
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%(p)s))", {"p": f"versions:{values['project_arn']}"}
            )
            (count,) = conn.execute(
                "SELECT count(*) FROM versions WHERE project_arn = %(p)s", {"p": values["project_arn"]}
            ).fetchone() or (0,)
            if count >= max_versions:
                return None
            try:
                with conn.cursor(row_factory=class_row(VersionRow)) as cur:
                    cur.execute(
                        f"INSERT INTO versions ({', '.join(columns)}) VALUES"
                        f" ({', '.join(f'%({c})s' for c in columns)}) RETURNING {_COLUMNS}",
                        params,
                    )
                    row = cur.fetchone()
            except psycopg.errors.UniqueViolation:
                raise NameTaken(values["version_name"]) from None
            assert row is not None
            if job:
                self.jobs.enqueue(conn, row.id, *job)
            return row

    def get(self, arn: str) -> VersionRow | None:
        """Returns a version by ARN."""
        with self.pool.connection() as conn, conn.cursor(row_factory=class_row(VersionRow)) as cur:
            cur.execute(f"SELECT {_COLUMNS} FROM versions WHERE arn = %(arn)s", {"arn": arn})
            return cur.fetchone()

    def get_by_id(self, version_id: int) -> VersionRow | None:
        """Returns a version by id."""
        with self.pool.connection() as conn, conn.cursor(row_factory=class_row(VersionRow)) as cur:
            cur.execute(f"SELECT {_COLUMNS} FROM versions WHERE id = %(id)s", {"id": version_id})
            return cur.fetchone()

    def list(
        self, project_arn: str, names: Sequence[str], after: tuple[int, int] | None, limit: int
    ) -> list[VersionRow]:
        """Returns up to `limit` versions of a project, newest first, after the keyset `after`."""
        clauses = ["project_arn = %(p)s"]
        params: dict[str, Any] = {"p": project_arn, "limit": limit}
        if names:
            clauses.append("version_name = ANY(%(names)s)")
            params["names"] = list(names)
        if after is not None:
            clauses.append("(created_ms, id) < (%(ms)s, %(id)s)")
            params["ms"], params["id"] = after
        with self.pool.connection() as conn, conn.cursor(row_factory=class_row(VersionRow)) as cur:
            cur.execute(
                f"SELECT {_COLUMNS} FROM versions WHERE {' AND '.join(clauses)}"
                " ORDER BY created_ms DESC, id DESC LIMIT %(limit)s",
                params,
            )
            return cur.fetchall()

    def count(self, project_arn: str) -> int:
        """Counts a project's versions."""
        with self.pool.connection() as conn:
            (n,) = conn.execute(
                "SELECT count(*) FROM versions WHERE project_arn = %(p)s", {"p": project_arn}
            ).fetchone() or (0,)
        return int(n)

    def transition(
        self,
        arn: str,
        expected: Sequence[str],
        status: str,
        message: str | None = None,
        units: tuple[int | None, int | None] | None = None,
    ) -> tuple[str, str] | None:
        """Compare-and-set of a version's status; returns (previous, new) or None when not in `expected`.

        An empty `expected` accepts any status. `units` sets (min, max) inference units.
        """
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT status FROM versions WHERE arn = %(arn)s FOR UPDATE", {"arn": arn}
            ).fetchone()
            if row is None:
                raise KeyError(arn)
            if expected and row[0] not in expected:
                return None
            sets = ["status = %(status)s"]
            params: dict[str, Any] = {"arn": arn, "status": status}
            if message is not None:
                sets.append("status_message = %(message)s")
                params["message"] = message
            if units is not None:
                sets += ["min_units = %(min)s", "max_units = %(max)s"]
                params["min"], params["max"] = units
            conn.execute(f"UPDATE versions SET {', '.join(sets)} WHERE arn = %(arn)s", params)
            return row[0], status

    def delete(self, version_id: int) -> None:
        """Removes a version (and its jobs)."""
        with self.pool.connection() as conn:
            conn.execute("DELETE FROM versions WHERE id = %(id)s", {"id": version_id})

    def set_progress(self, version_id: int, progress: dict[str, Any], message: str) -> None:
        """Records training progress (shown in DescribeProjectVersions while training)."""
        with self.pool.connection() as conn:
            conn.execute(
                "UPDATE versions SET progress = %(p)s, status_message = %(m)s"
                " WHERE id = %(id)s AND status IN ('TRAINING_IN_PROGRESS', 'COPYING_IN_PROGRESS')",
                {"p": Jsonb(progress), "m": message, "id": version_id},
            )

    def finish(self, job: JobRow, owner: str, values: dict[str, Any], job_state: str = "done") -> None:
        """Lands a job's results on its version and ends the job, in one transaction."""
        params = {k: Jsonb(v) if isinstance(v, dict | list) else v for k, v in values.items()}
        params["id"] = job.subject_id
        with self.pool.connection() as conn:
            self.jobs.finish(
                conn,
                job.id,
                owner,
                job_state,
                values.get("status_message") if job_state == "failed" else None,
            )
            conn.execute(
                f"UPDATE versions SET {', '.join(f'{k} = %({k})s' for k in values)} WHERE id = %(id)s", params
            )
