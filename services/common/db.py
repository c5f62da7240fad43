"""Postgres access: one psycopg 3 connection pool per service and a numbered-SQL migration runner.

Each service owns one Postgres schema; its pool sets `search_path` to it, so the SQL in a
service's repository module never names the schema. Migrations are `NNN_name.sql` files in the
service's `migrations/` folder, applied in order at start, each once, under an advisory lock so
replicas starting together do not race.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

log = logging.getLogger("customlabels.db")

_MIGRATION = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")


def create_pool(database_url: str, schema: str, min_size: int = 1, max_size: int = 10) -> ConnectionPool:
    """Opens a pool whose connections use `schema` first; waits until the database answers."""
    pool = ConnectionPool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        check=ConnectionPool.check_connection,
        kwargs={"options": f"-c search_path={schema},public", "autocommit": False},
        name=f"customlabels-{schema}",
    )
    pool.open(wait=True, timeout=30)
    return pool


def migration_files(folder: Path) -> list[tuple[int, Path]]:
    """Returns the migrations of `folder` sorted by number; rejects duplicates and stray names."""
    found: dict[int, Path] = {}
    for path in folder.glob("*.sql"):
        match = _MIGRATION.match(path.name)
        if not match:
            raise ValueError(f"migration file name must be NNN_name.sql: {path.name}")
        number = int(match.group(1))
        if number in found:
            raise ValueError(f"two migrations numbered {number}: {found[number].name}, {path.name}")
        found[number] = path
    return sorted(found.items())


def migrate(database_url: str, schema: str, folder: Path) -> list[int]:
    """Creates `schema` if needed and applies its pending migrations; returns the numbers applied."""
    applied: list[int] = []
    with psycopg.connect(database_url, autocommit=False) as conn:
        # One lock per schema: concurrent starts of the same service wait, other services don't.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%(s)s))", {"s": f"migrate:{schema}"})
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(sql.Identifier(schema))
        )
        done = {
            row[0]
            for row in conn.execute(
                sql.SQL("SELECT version FROM {}.schema_migrations").format(sql.Identifier(schema))
            )
        }
        conn.execute(sql.SQL("SET LOCAL search_path TO {}, public").format(sql.Identifier(schema)))
        for number, path in migration_files(folder):
            if number in done:
                continue
            conn.execute(path.read_text())  # type: ignore[arg-type]  # trusted files shipped with the code
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%(v)s, %(n)s)",
                {"v": number, "n": path.name},
            )
            applied.append(number)
        conn.commit()
    if applied:
        log.info("migrations applied", extra={"schema": schema, "versions": applied})
    return applied
