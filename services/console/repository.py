"""The console's SQL (schema `console`): sign-in sessions and declared labels."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from psycopg.rows import class_row
from psycopg_pool import ConnectionPool


@dataclass(frozen=True)
class SessionRow:
    """One signed-in session."""

    access_key_id: str
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


class ConsoleRepository:
    """Reads and writes the console's tables."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    # -- sessions ---------------------------------------------------------------------------------

    def create_session(
        self, id_hash: bytes, access_key_id: str, csrf_token: str, now: datetime, expires_at: datetime
    ) -> None:
        """Stores a new session."""
        with self.pool.connection() as conn:
            conn.execute(
                "INSERT INTO sessions (id_hash, access_key_id, csrf_token, created_at, last_seen_at, expires_at)"
                " VALUES (%(id)s, %(key)s, %(csrf)s, %(now)s, %(now)s, %(expires)s)",
                {"id": id_hash, "key": access_key_id, "csrf": csrf_token, "now": now, "expires": expires_at},
            )

    def session(self, id_hash: bytes) -> SessionRow | None:
        """Returns the session with this id hash, expired or not."""
        with self.pool.connection() as conn, conn.cursor(row_factory=class_row(SessionRow)) as cur:
            cur.execute(
                "SELECT access_key_id, csrf_token, created_at, last_seen_at, expires_at FROM sessions"
                " WHERE id_hash = %(id)s",
                {"id": id_hash},
            )
            return cur.fetchone()

    def touch_session(self, id_hash: bytes, now: datetime) -> None:
        """Records activity on a session (its idle timeout starts again)."""
        with self.pool.connection() as conn:
            conn.execute(
                "UPDATE sessions SET last_seen_at = %(now)s WHERE id_hash = %(id)s",
                {"id": id_hash, "now": now},
            )

    def delete_session(self, id_hash: bytes) -> None:
        """Ends a session."""
        with self.pool.connection() as conn:
            conn.execute("DELETE FROM sessions WHERE id_hash = %(id)s", {"id": id_hash})

    def delete_expired_sessions(self, idle_before: datetime, now: datetime) -> int:
        """Removes sessions past their absolute expiry or idle since `idle_before`; returns how many."""
        with self.pool.connection() as conn:
            cur = conn.execute(
                "DELETE FROM sessions WHERE expires_at <= %(now)s OR last_seen_at < %(idle)s",
                {"now": now, "idle": idle_before},
            )
            return cur.rowcount

    # -- declared labels --------------------------------------------------------------------------

    def declared_labels(self, dataset_arn: str) -> list[str]:
        """Returns the labels declared for a dataset, by name."""
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT name FROM declared_labels WHERE dataset_arn = %(arn)s ORDER BY name",
                {"arn": dataset_arn},
            ).fetchall()
        return [r[0] for r in rows]

    def declare_labels(self, dataset_arn: str, names: Sequence[str]) -> None:
        """Declares labels (already declared ones are left as they are)."""
        with self.pool.connection() as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO declared_labels (dataset_arn, name) VALUES (%(arn)s, %(name)s)"
                " ON CONFLICT DO NOTHING",
                [{"arn": dataset_arn, "name": name} for name in names],
            )

    def forget_label(self, dataset_arn: str, name: str) -> None:
        """Removes one declared label."""
        with self.pool.connection() as conn:
            conn.execute(
                "DELETE FROM declared_labels WHERE dataset_arn = %(arn)s AND name = %(name)s",
                {"arn": dataset_arn, "name": name},
            )

    def rename_label(self, dataset_arn: str, old: str, new: str) -> None:
        """Renames a declared label (declares `new` when `old` was not declared)."""
        with self.pool.connection() as conn:
            conn.execute(
                "DELETE FROM declared_labels WHERE dataset_arn = %(arn)s AND name = %(old)s",
                {"arn": dataset_arn, "old": old},
            )
            conn.execute(
                "INSERT INTO declared_labels (dataset_arn, name) VALUES (%(arn)s, %(new)s) ON CONFLICT DO NOTHING",
                {"arn": dataset_arn, "new": new},
            )

    @contextmanager
    def dataset_lock(self, dataset_arn: str) -> Iterator[None]:
        """Holds a lock on one dataset's edits for the block, across every console replica.

        Edits through the console check the stored lines, write and wait for the write to land
        while holding it, so two tabs saving the same entry are serialised and the second sees
        the first's result (ConflictException) instead of overwriting it.
        """
        with self.pool.connection() as conn:
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%(key)s))", {"key": f"console-edit:{dataset_arn}"}
            )
            yield
