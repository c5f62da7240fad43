"""All SQL of the serving service (schema `serving`): the deployments that should run on Triton, the
replicas' reports of what their own Triton holds, and the leader lock of the control loop."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

STARTING, RUNNING, STOPPING = "STARTING", "RUNNING", "STOPPING"
# States of a model in a replica's report.
READY, LOADING, FAILED = "READY", "LOADING", "FAILED"

_COLUMNS = "version_arn, model_name, state, min_units, max_units, units, spec, onnx_bucket, onnx_key"
_SELECT = f"{_COLUMNS}, files_ready, error, extract(epoch FROM updated_at)::float8 AS changed_at"
# The key of the leader lock; the code before session locks took the same key as a transaction lock,
# so an old and a new replica never lead together during a rolling upgrade.
LEADER_KEY = "serving:reconcile"
# How a killed or cut-off leader's lock is freed: the process's death closes its socket at once; a
# host that vanished is found by Postgres's keepalives (10 + 3 × 5 s) or the unacknowledged-data
# timeout, and its session (with the lock) ends.
_LOCK_OPTIONS = (
    "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3"
    " -c tcp_user_timeout=25000 -c idle_session_timeout=0 -c statement_timeout=10000"
)


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
    # Whether the model's files are in the Triton repository (every replica loads it from then on).
    files_ready: bool = False
    # Why writing the files failed (the leader turns it into FAILED).
    error: str | None = None
    # When the row last changed (seconds since the epoch, the database's clock).
    changed_at: float = 0.0


@dataclass(frozen=True)
class ModelReport:
    """What one replica's Triton holds of one model, with Triton's cumulative counters."""

    model_name: str
    state: str
    instances: int
    requests: int = 0
    executions: int = 0
    queue_ns: int = 0
    infer_ns: int = 0
    error: str | None = None


@dataclass(frozen=True)
class Replica:
    """A live replica's last report: whether its Triton answers, and the models it holds."""

    replica_id: str
    triton_live: bool
    # The database time of the deployments read that the report answers (epoch seconds).
    snapshot_at: float
    seen_at: float
    models: dict[str, ModelReport] = field(default_factory=dict)


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
                f"SELECT {_SELECT} FROM deployments WHERE version_arn = %(arn)s", {"arn": version_arn}
            ).fetchone()

    def snapshot(self) -> tuple[float, list[Deployment]]:
        """The database's time and every deployment, oldest first, read together."""
        with self.pool.connection() as conn:
            row = conn.execute("SELECT extract(epoch FROM now())::float8").fetchone()
            cur = conn.cursor(row_factory=class_row(Deployment))
            rows = cur.execute(f"SELECT {_SELECT} FROM deployments ORDER BY created_at").fetchall()
            return (float(row[0]) if row else 0.0), rows

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

    def set_files_ready(self, version_arn: str) -> None:
        """Records that a starting version's files are in the Triton repository."""
        with self.pool.connection() as conn:
            conn.execute(
                "UPDATE deployments SET files_ready = true, error = NULL, updated_at = now()"
                " WHERE version_arn = %(arn)s AND state = %(starting)s",
                {"arn": version_arn, "starting": STARTING},
            )

    def set_error(self, version_arn: str, error: str) -> None:
        """Records why a starting version's files could not be written."""
        with self.pool.connection() as conn:
            conn.execute(
                "UPDATE deployments SET error = %(error)s, updated_at = now() WHERE version_arn = %(arn)s",
                {"arn": version_arn, "error": error},
            )

    # -- replicas ---------------------------------------------------------------------------------

    def report(
        self, replica_id: str, triton_live: bool, snapshot_at: float, models: Sequence[ModelReport]
    ) -> None:
        """Replaces a replica's report (its heartbeat) with what its Triton holds now."""
        with self.pool.connection() as conn:
            conn.execute(
                "INSERT INTO replicas (replica_id, triton_live, snapshot_at, seen_at)"
                " VALUES (%(id)s, %(live)s, to_timestamp(%(at)s), now())"
                " ON CONFLICT (replica_id) DO UPDATE SET triton_live = excluded.triton_live,"
                " snapshot_at = excluded.snapshot_at, seen_at = excluded.seen_at",
                {"id": replica_id, "live": triton_live, "at": snapshot_at},
            )
            conn.execute("DELETE FROM replica_models WHERE replica_id = %(id)s", {"id": replica_id})
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO replica_models (replica_id, model_name, state, instances, requests,"
                    " executions, queue_ns, infer_ns, error) VALUES (%(replica_id)s, %(model_name)s,"
                    " %(state)s, %(instances)s, %(requests)s, %(executions)s, %(queue_ns)s, %(infer_ns)s,"
                    " %(error)s)",
                    [{**m.__dict__, "replica_id": replica_id} for m in models],
                )

    def forget_replica(self, replica_id: str) -> None:
        """Removes a replica that shuts down (its reports with it)."""
        with self.pool.connection() as conn:
            conn.execute("DELETE FROM replicas WHERE replica_id = %(id)s", {"id": replica_id})

    def expire_replicas(self, ttl_s: float) -> list[str]:
        """Deletes the replicas not seen for `ttl_s` seconds; returns their ids."""
        with self.pool.connection() as conn:
            rows = conn.execute(
                "DELETE FROM replicas WHERE seen_at < now() - make_interval(secs => %(ttl)s)"
                " RETURNING replica_id",
                {"ttl": ttl_s},
            ).fetchall()
            return [str(r[0]) for r in rows]

    def replicas(self, ttl_s: float) -> list[Replica]:
        """The replicas seen in the last `ttl_s` seconds, with their last reports."""
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT r.replica_id, r.triton_live, extract(epoch FROM r.snapshot_at)::float8,"
                " extract(epoch FROM r.seen_at)::float8, m.model_name, m.state, m.instances, m.requests,"
                " m.executions, m.queue_ns, m.infer_ns, m.error"
                " FROM replicas r LEFT JOIN replica_models m USING (replica_id)"
                " WHERE r.seen_at >= now() - make_interval(secs => %(ttl)s) ORDER BY r.replica_id",
                {"ttl": ttl_s},
            ).fetchall()
        found: dict[str, Replica] = {}
        for rid, live, snapshot_at, seen_at, name, *model in rows:
            replica = found.setdefault(rid, Replica(rid, bool(live), float(snapshot_at), float(seen_at)))
            if name is not None:
                replica.models[name] = ModelReport(name, *model)
        return list(found.values())

    def leader_lock(self, replica_id: str) -> LeaderLock:
        """The leader lock of the control loop, on its own connection (see LeaderLock)."""
        return LeaderLock(self.pool.conninfo, replica_id)


class LeaderLock:
    """The one replica that moves statuses (a session advisory lock on a dedicated connection).

    The connection is in autocommit mode and holds no transaction between its statements: the lock is
    held for as long as the session lives, not for a transaction, so no Triton load and no long round
    ever runs with a transaction open. A leader that dies loses it with its session (see _LOCK_OPTIONS);
    another replica takes it at its next round.
    """

    def __init__(self, conninfo: str, replica_id: str) -> None:
        self.conninfo = conninfo
        self.replica_id = replica_id
        self._conn: psycopg.Connection[Any] | None = None
        self._held = False

    def hold(self) -> bool:
        """Whether this replica leads now: keeps the lock it has (if its session is alive) or tries to take it."""
        try:
            if self._conn is None or self._conn.closed:
                self._held = False
                self._conn = psycopg.connect(
                    self.conninfo,
                    autocommit=True,
                    application_name=f"customlabels-serving-leader:{self.replica_id}"[:63],
                    options=_LOCK_OPTIONS,
                    connect_timeout=5,
                )
            if self._held:
                self._conn.execute("SELECT 1")
            else:
                row = self._conn.execute(
                    "SELECT pg_try_advisory_lock(hashtext(%(k)s))", {"k": LEADER_KEY}
                ).fetchone()
                self._held = bool(row and row[0])
        except psycopg.Error:
            # A lost session lost the lock with it.
            self.close()
            return False
        return self._held

    def release(self) -> None:
        """Gives the lock up (at shutdown, so another replica leads at once) and closes the connection."""
        if self._conn is not None and self._held:
            with contextlib.suppress(psycopg.Error):
                self._conn.execute("SELECT pg_advisory_unlock(hashtext(%(k)s))", {"k": LEADER_KEY})
        self.close()

    def close(self) -> None:
        """Closes the connection (which frees the lock)."""
        self._held = False
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None
