"""All SQL of the project service (schema `project`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row
from psycopg_pool import ConnectionPool


@dataclass(frozen=True)
class ProjectRow:
    """One project as stored."""

    id: int
    name: str
    arn: str
    feature: str
    auto_update: str | None
    status: str
    created_ms: int
    created_at: datetime


@dataclass(frozen=True)
class PolicyRow:
    """One project policy as stored."""

    project_arn: str
    name: str
    revision_id: str
    document: str
    created_at: datetime
    updated_at: datetime


class NameTaken(Exception):
    """A project with that name already exists."""


_PROJECT_COLUMNS = "id, name, arn, feature, auto_update, status, created_ms, created_at"


class ProjectRepository:
    """Reads and writes projects, tags and policies."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    # -- projects ---------------------------------------------------------------------------------

    def insert_project(
        self,
        name: str,
        arn: str,
        feature: str,
        auto_update: str | None,
        created_ms: int,
        created_at: datetime,
        tags: dict[str, str],
        max_projects: int,
    ) -> ProjectRow | None:
        """Inserts a CREATED project with its tags; None when the quota is reached; NameTaken on a duplicate."""
        with self.pool.connection() as conn:
            # Serialise creations so the quota check and the insert are one step.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('project:create'))")
            (count,) = conn.execute("SELECT count(*) FROM projects").fetchone() or (0,)
            if count >= max_projects:
                return None
            try:
                with conn.cursor(row_factory=class_row(ProjectRow)) as cur:
                    cur.execute(
                        f"INSERT INTO projects (name, arn, feature, auto_update, status, created_ms, created_at)"
                        f" VALUES (%(name)s, %(arn)s, %(feature)s, %(auto)s, 'CREATED', %(ms)s, %(at)s)"
                        f" RETURNING {_PROJECT_COLUMNS}",
                        {
                            "name": name,
                            "arn": arn,
                            "feature": feature,
                            "auto": auto_update,
                            "ms": created_ms,
                            "at": created_at,
                        },
                    )
                    row = cur.fetchone()
            except psycopg.errors.UniqueViolation:
                raise NameTaken(name) from None
            self._put_tags(conn, arn, tags)
            return row

    def get_project_by_arn(self, arn: str) -> ProjectRow | None:
        """Returns the project with this ARN, if it exists."""
        with self.pool.connection() as conn, conn.cursor(row_factory=class_row(ProjectRow)) as cur:
            cur.execute(f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE arn = %(arn)s", {"arn": arn})
            return cur.fetchone()

    def get_project_by_name(self, name: str) -> ProjectRow | None:
        """Returns the project with this name, if it exists."""
        with self.pool.connection() as conn, conn.cursor(row_factory=class_row(ProjectRow)) as cur:
            cur.execute(f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE name = %(name)s", {"name": name})
            return cur.fetchone()

    def list_projects(
        self, names: list[str], features: list[str], after: tuple[int, int] | None, limit: int
    ) -> list[ProjectRow]:
        """Returns up to `limit` projects oldest first, after the keyset `after` (created_ms, id)."""
        clauses = ["feature = ANY(%(features)s)"]
        params: dict[str, object] = {"features": features, "limit": limit}
        if names:
            clauses.append("name = ANY(%(names)s)")
            params["names"] = names
        if after is not None:
            clauses.append("(created_ms, id) > (%(ms)s, %(id)s)")
            params["ms"], params["id"] = after
        with self.pool.connection() as conn, conn.cursor(row_factory=class_row(ProjectRow)) as cur:
            cur.execute(
                f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE {' AND '.join(clauses)}"
                " ORDER BY created_ms, id LIMIT %(limit)s",
                params,
            )
            return cur.fetchall()

    def set_status(self, arn: str, expected: str, status: str) -> bool:
        """Moves a project from `expected` to `status`; False when it was not in `expected`."""
        with self.pool.connection() as conn:
            cur = conn.execute(
                "UPDATE projects SET status = %(status)s WHERE arn = %(arn)s AND status = %(expected)s",
                {"arn": arn, "status": status, "expected": expected},
            )
            return cur.rowcount == 1

    def delete_project(self, arn: str) -> None:
        """Removes a project, its policies (cascade) and its tags."""
        with self.pool.connection() as conn:
            conn.execute("DELETE FROM tags WHERE resource_arn = %(arn)s", {"arn": arn})
            conn.execute("DELETE FROM projects WHERE arn = %(arn)s", {"arn": arn})

    # -- tags -------------------------------------------------------------------------------------

    @staticmethod
    def _put_tags(conn: psycopg.Connection, arn: str, tags: dict[str, str]) -> None:
        if not tags:
            return
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO tags (resource_arn, key, value) VALUES (%(arn)s, %(key)s, %(value)s)"
                " ON CONFLICT (resource_arn, key) DO UPDATE SET value = EXCLUDED.value",
                [{"arn": arn, "key": k, "value": v} for k, v in tags.items()],
            )

    def tag(self, arn: str, tags: dict[str, str], max_tags: int) -> bool:
        """Adds or overwrites tags; False (and no change) when the resource would exceed `max_tags`."""
        with self.pool.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%(k)s))", {"k": f"tags:{arn}"})
            existing = {
                row[0]
                for row in conn.execute("SELECT key FROM tags WHERE resource_arn = %(arn)s", {"arn": arn})
            }
            if len(existing | set(tags)) > max_tags:
                return False
            self._put_tags(conn, arn, tags)
            return True

    def untag(self, arn: str, keys: list[str]) -> None:
        """Removes the given keys; unknown keys are ignored."""
        with self.pool.connection() as conn:
            conn.execute(
                "DELETE FROM tags WHERE resource_arn = %(arn)s AND key = ANY(%(keys)s)",
                {"arn": arn, "keys": keys},
            )

    def replace_tags(self, arn: str, tags: dict[str, str]) -> None:
        """Replaces the whole tag set of a resource."""
        with self.pool.connection() as conn:
            conn.execute("DELETE FROM tags WHERE resource_arn = %(arn)s", {"arn": arn})
            self._put_tags(conn, arn, tags)

    def delete_tags(self, arn: str) -> None:
        """Removes every tag of a resource."""
        with self.pool.connection() as conn:
            conn.execute("DELETE FROM tags WHERE resource_arn = %(arn)s", {"arn": arn})

    def list_tags(self, arn: str) -> dict[str, str]:
        """Returns every tag of a resource."""
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT key, value FROM tags WHERE resource_arn = %(arn)s ORDER BY key", {"arn": arn}
            ).fetchall()
        return {k: v for k, v in rows}

    # -- policies ---------------------------------------------------------------------------------

    def put_policy(
        self,
        project_arn: str,
        name: str,
        expected_revision: str | None,
        new_revision: str,
        document: str,
        now: datetime,
        max_policies: int,
    ) -> str:
        """Creates or updates a policy; returns "ok", "not_found", "exists", "revision" or "limit"."""
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT id FROM projects WHERE arn = %(arn)s FOR UPDATE", {"arn": project_arn}
            ).fetchone()
            if row is None:
                return "not_found"
            project_id = row[0]
            current = conn.execute(
                "SELECT revision_id FROM project_policies WHERE project_id = %(p)s AND name = %(n)s",
                {"p": project_id, "n": name},
            ).fetchone()
            if current is None:
                if expected_revision is not None:
                    return "revision"
                (count,) = conn.execute(
                    "SELECT count(*) FROM project_policies WHERE project_id = %(p)s", {"p": project_id}
                ).fetchone() or (0,)
                if count >= max_policies:
                    return "limit"
                conn.execute(
                    "INSERT INTO project_policies (project_id, name, revision_id, document, created_at, updated_at)"
                    " VALUES (%(p)s, %(n)s, %(r)s, %(d)s, %(now)s, %(now)s)",
                    {"p": project_id, "n": name, "r": new_revision, "d": document, "now": now},
                )
                return "ok"
            if expected_revision is None:
                return "exists"
            if current[0].lower() != expected_revision.lower():
                return "revision"
            conn.execute(
                "UPDATE project_policies SET revision_id = %(r)s, document = %(d)s, updated_at = %(now)s"
                " WHERE project_id = %(p)s AND name = %(n)s",
                {"p": project_id, "n": name, "r": new_revision, "d": document, "now": now},
            )
            return "ok"

    def delete_policy(self, project_arn: str, name: str, expected_revision: str | None) -> str:
        """Deletes a policy; returns "ok", "not_found" or "revision"."""
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT pp.revision_id FROM project_policies pp JOIN projects p ON p.id = pp.project_id"
                " WHERE p.arn = %(arn)s AND pp.name = %(n)s FOR UPDATE OF pp",
                {"arn": project_arn, "n": name},
            ).fetchone()
            if row is None:
                return "not_found"
            if expected_revision is not None and row[0].lower() != expected_revision.lower():
                return "revision"
            conn.execute(
                "DELETE FROM project_policies pp USING projects p"
                " WHERE p.id = pp.project_id AND p.arn = %(arn)s AND pp.name = %(n)s",
                {"arn": project_arn, "n": name},
            )
            return "ok"

    def policy_documents(self, project_arn: str) -> list[tuple[str, str]]:
        """Returns (name, document) of every policy of a project."""
        with self.pool.connection() as conn:
            return conn.execute(
                "SELECT pp.name, pp.document FROM project_policies pp JOIN projects p ON p.id = pp.project_id"
                " WHERE p.arn = %(arn)s ORDER BY pp.name",
                {"arn": project_arn},
            ).fetchall()

    def list_policies(self, project_arn: str, after: str | None, limit: int) -> list[PolicyRow]:
        """Returns up to `limit` policies of a project by name, after the name `after`."""
        with self.pool.connection() as conn, conn.cursor(row_factory=class_row(PolicyRow)) as cur:
            cur.execute(
                "SELECT p.arn AS project_arn, pp.name, pp.revision_id, pp.document, pp.created_at, pp.updated_at"
                " FROM project_policies pp JOIN projects p ON p.id = pp.project_id"
                " WHERE p.arn = %(arn)s AND (%(after)s::text IS NULL OR pp.name > %(after)s)"
                " ORDER BY pp.name LIMIT %(limit)s",
                {"arn": project_arn, "after": after, "limit": limit},
            )
            return cur.fetchall()
