"""All SQL of the serving service (schema `serving`): the deployments that should run on Triton."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

STARTING, RUNNING, STOPPING = "STARTING", "RUNNING", "STOPPING"

_COLUMNS = "version_arn, model_name, state, min_units, max_units, units, spec, onnx_bucket, onnx_key"


@dataclass(frozen=True)
class Deployment:
    """One version that should run (or is being started or stopped) on Triton."""

    version_arn: str
    model_name: str
    state: str
    min_units: int
    max_units: int | None
    units: int
    spec: dict[str, Any]
    onnx_bucket: str
    onnx_key: str


class DeploymentRepository:
    """Reads and writes the deployments table."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def installation(self) -> str:
        """This installation's id (8 characters, made once by the migration): the prefix of its models."""
        with self.pool.connection() as conn:
            row = conn.execute("SELECT id FROM installation").fetchone()
        if row is None:
            raise RuntimeError("serving.installation is empty; run the serving migrations")
        return str(row[0])

    def create(self, d: Deployment, max_total_units: int) -> tuple[bool, int]:
        """Inserts a STARTING deployment unless the version has one or the unit quota would be passed.

        Returns (inserted, units in use by the others). The quota is checked under a lock on the
        table, so two concurrent starts cannot both take the last units.
        """
        with self.pool.connection() as conn:
            conn.execute("LOCK TABLE deployments IN SHARE ROW EXCLUSIVE MODE")
            used = conn.execute("SELECT coalesce(sum(units), 0) FROM deployments").fetchone()
            in_use = int(used[0]) if used else 0
            if in_use + d.min_units > max_total_units:
                return False, in_use
            row = conn.execute(
                f"INSERT INTO deployments ({_COLUMNS}) VALUES (%(version_arn)s, %(model_name)s, %(state)s,"
                " %(min_units)s, %(max_units)s, %(units)s, %(spec)s, %(onnx_bucket)s, %(onnx_key)s)"
                " ON CONFLICT DO NOTHING RETURNING 1",
                {**d.__dict__, "spec": Jsonb(d.spec)},
            ).fetchone()
            return row is not None, in_use

    def get(self, version_arn: str) -> Deployment | None:
        """The deployment of a version, if any."""
        with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(Deployment))
            return cur.execute(
                f"SELECT {_COLUMNS} FROM deployments WHERE version_arn = %(arn)s", {"arn": version_arn}
            ).fetchone()

    def all(self) -> list[Deployment]:
        """Every deployment, oldest first."""
        with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(Deployment))
            return cur.execute(f"SELECT {_COLUMNS} FROM deployments ORDER BY created_at").fetchall()

    def units_in_use(self) -> int:
        """The instances all deployments run together."""
        with self.pool.connection() as conn:
            row = conn.execute("SELECT coalesce(sum(units), 0) FROM deployments").fetchone()
            return int(row[0]) if row else 0

    def set_state(self, version_arn: str, state: str, expected: str) -> bool:
        """Compare-and-set of a deployment's state; False when it is not in `expected`."""
        with self.pool.connection() as conn:
            row = conn.execute(
                "UPDATE deployments SET state = %(state)s, updated_at = now()"
                " WHERE version_arn = %(arn)s AND state = %(expected)s RETURNING 1",
                {"arn": version_arn, "state": state, "expected": expected},
            ).fetchone()
            return row is not None

    def set_units(self, version_arn: str, units: int) -> None:
        """Records the instance count Triton runs now."""
        with self.pool.connection() as conn:
            conn.execute(
                "UPDATE deployments SET units = %(units)s, updated_at = now() WHERE version_arn = %(arn)s",
                {"arn": version_arn, "units": units},
            )

    def age_s(self, version_arn: str) -> float | None:
        """Seconds since the deployment last changed; None when there is none."""
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT extract(epoch FROM now() - updated_at) FROM deployments WHERE version_arn = %(arn)s",
                {"arn": version_arn},
            ).fetchone()
            return None if row is None else float(row[0])

    def delete(self, version_arn: str) -> None:
        """Forgets a deployment (the version no longer runs)."""
        with self.pool.connection() as conn:
            conn.execute("DELETE FROM deployments WHERE version_arn = %(arn)s", {"arn": version_arn})

    @contextmanager
    def leader(self) -> Iterator[bool]:
        """Yields True for the one replica that may reconcile now (a transaction advisory lock)."""
        with self.pool.connection() as conn:
            # Held until this connection's transaction ends, i.e. for the whole round.
            row = conn.execute("SELECT pg_try_advisory_xact_lock(hashtext('serving:reconcile'))").fetchone()
            yield bool(row and row[0])
