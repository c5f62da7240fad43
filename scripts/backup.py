"""Backups: `python -m scripts.backup backup --out DIR` and `python -m scripts.backup restore --from DIR`.

A backup is a folder:

    postgres.dump   pg_dump of the whole database (custom format), taken from one snapshot
    objects/<bucket>/<key>   every object of the images, models and Triton buckets and of the training
                    output buckets the versions name (keys unsafe as a path go to objects/<bucket>/_keys/)
    manifest.json   what was taken: per bucket every key with its size and SHA-256, the row counts of the
                    main tables in the dump's snapshot, and the object references the snapshot holds

Order (docs/backup.md explains it): the database first, then the objects. Every object a row refers to
is written before that row commits and never changed afterwards (images and model files are written
once under new keys), so objects copied after the snapshot include every object the snapshot refers to.
Only a delete during the window can take one away; the backup checks every reference of the snapshot
(entries' stored images, deployments' ONNX files) against the copied objects and fails when one is
missing. Restore goes the other way: objects first, then the database, so services started on it never
see a row whose object is not there yet.

Where the stack is: `--data-dir D` (the embedded stack's D/stack.env), `--env FILE` (KEY=value lines), or
the environment (DATABASE_URL, CUSTOMLABELS_S3_ENDPOINT/_ACCESS_KEY/_SECRET_KEY, CUSTOMLABELS_*_BUCKET).
`restore` needs an empty database and an object store without those buckets' keys (a fresh stack); it
checks the copies' checksums and the restored row counts against the manifest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from scripts.embedded import postgres_bindir
from services.common.storage import ObjectStore
from services.dataset.importers import path_problem

FORMAT = 1
WORKERS = 8
# Row counts recorded in the manifest and compared after a restore (table -> what it holds).
COUNTED = (
    "project.projects",
    "dataset.datasets",
    "dataset.entries",
    "training.versions",
    "serving.deployments",
)
BUCKET_VARIABLES = ("CUSTOMLABELS_IMAGES_BUCKET", "CUSTOMLABELS_MODELS_BUCKET", "CUSTOMLABELS_TRITON_BUCKET")


class BackupError(Exception):
    """The backup or restore cannot be completed as asked; the message says why."""


@dataclass(frozen=True)
class Target:
    """Where a stack keeps its data."""

    database_url: str
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str
    buckets: tuple[str, ...]

    def store(self) -> ObjectStore:
        """A client of the stack's object store."""
        return ObjectStore(self.s3_endpoint, self.s3_access_key, self.s3_secret_key)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines (shell-quoted values, `#` comments), as scripts/stack.py writes stack.env."""
    env: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        parts = shlex.split(value)
        env[key.strip()] = parts[0] if parts else ""
    return env


def target_from(env: Mapping[str, str], extra_buckets: Iterable[str] = ()) -> Target:
    """The stack `env` describes; BackupError naming what is missing."""
    needed = (
        "DATABASE_URL",
        "CUSTOMLABELS_S3_ENDPOINT",
        "CUSTOMLABELS_S3_ACCESS_KEY",
        "CUSTOMLABELS_S3_SECRET_KEY",
    )
    missing = [k for k in needed if not env.get(k)]
    if missing:
        raise BackupError(f"missing settings: {', '.join(missing)} (give --data-dir, --env or set them)")
    defaults = ("customlabels-images", "customlabels-models", "customlabels-triton")
    buckets = [env.get(var) or default for var, default in zip(BUCKET_VARIABLES, defaults, strict=True)]
    buckets += [b for b in extra_buckets if b not in buckets]
    return Target(
        env["DATABASE_URL"],
        env["CUSTOMLABELS_S3_ENDPOINT"],
        env["CUSTOMLABELS_S3_ACCESS_KEY"],
        env["CUSTOMLABELS_S3_SECRET_KEY"],
        tuple(buckets),
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def object_file(bucket: str, key: str) -> str:
    """Where a key's copy lives in the backup folder (relative): its own path when that is safe."""
    if path_problem(key) is None and not key.endswith("/") and not key.startswith("_keys/"):
        return f"objects/{bucket}/{key}"
    return f"objects/{bucket}/_keys/{_sha256(key.encode())}"


def _pg_tool(name: str) -> str:
    path = postgres_bindir() / name
    return str(path) if path.exists() else name


# ---------------------------------------------------------------------------------------------------
# Backup
# ---------------------------------------------------------------------------------------------------


def backup(target: Target, out: Path) -> dict[str, Any]:
    """Dumps the database from one snapshot, then copies the buckets; writes and returns the manifest."""
    began = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise BackupError(f"{out} is not empty")
    with psycopg.connect(target.database_url, autocommit=True) as conn:
        # The snapshot stays open while pg_dump reads it and while the references are listed from it.
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        (snapshot,) = conn.execute("SELECT pg_export_snapshot()").fetchone()  # type: ignore[misc]
        subprocess.run(
            [
                _pg_tool("pg_dump"),
                "--format=custom",
                f"--snapshot={snapshot}",
                f"--file={out / 'postgres.dump'}",
                f"--dbname={target.database_url}",
            ],
            check=True,
        )
        counts = {table: _count(conn, table) for table in COUNTED}
        references = _references(conn, target)
        output_buckets = _output_buckets(conn)
        conn.execute("COMMIT")
    dumped = time.monotonic()
    buckets = list(target.buckets) + [b for b in output_buckets if b not in target.buckets]
    store = target.store()
    objects = {bucket: _copy_bucket(store, bucket, out) for bucket in buckets}
    present = {(bucket, o["key"]) for bucket, listing in objects.items() for o in listing}
    missing = sorted({ref for ref in references if ref not in present})
    manifest = {
        "format": FORMAT,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "postgres": {"file": "postgres.dump", "sha256": _file_sha256(out / "postgres.dump"), "rows": counts},
        "buckets": objects,
        "references": len(references),
        "missing_references": [f"s3://{b}/{k}" for b, k in missing[:100]],
        "seconds": {"postgres": round(dumped - began, 2), "objects": round(time.monotonic() - dumped, 2)},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    if missing:
        raise BackupError(
            f"{len(missing)} objects the database refers to were deleted during the backup (first:"
            f" {manifest['missing_references'][0]}); stop writers or run the backup again"
        )
    return manifest


def _table_exists(conn: psycopg.Connection, table: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]  # type: ignore[index]


def _count(conn: psycopg.Connection, table: str) -> int | None:
    if not _table_exists(conn, table):
        return None
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]  # fixed names


def _references(conn: psycopg.Connection, target: Target) -> set[tuple[str, str]]:
    """The objects the snapshot's rows point to: stored images and the ONNX files of deployments."""
    refs: set[tuple[str, str]] = set()
    if _table_exists(conn, "dataset.entries"):
        images = target.buckets[0]
        rows = conn.execute("SELECT DISTINCT image_key FROM dataset.entries WHERE image_key IS NOT NULL")
        refs |= {(images, key) for (key,) in rows}
    if _table_exists(conn, "serving.deployments"):
        refs |= {(b, k) for b, k in conn.execute("SELECT onnx_bucket, onnx_key FROM serving.deployments")}
    return refs


def _output_buckets(conn: psycopg.Connection) -> list[str]:
    if not _table_exists(conn, "training.versions"):
        return []
    return [b for (b,) in conn.execute("SELECT DISTINCT output_bucket FROM training.versions ORDER BY 1")]


def _copy_bucket(store: ObjectStore, bucket: str, out: Path) -> list[dict[str, Any]]:
    if not store.client.bucket_exists(bucket):
        return []
    keys = store.list_keys(bucket)

    def copy(key: str) -> dict[str, Any]:
        response = store.client.get_object(bucket, key)
        try:
            data = response.read()
            content_type = response.headers.get("Content-Type") or "application/octet-stream"
        finally:
            response.close()
            response.release_conn()
        path = out / object_file(bucket, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return {
            "key": key,
            "file": object_file(bucket, key),
            "size": len(data),
            "sha256": _sha256(data),
            "content_type": content_type,
        }

    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(copy, keys))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------
# Restore
# ---------------------------------------------------------------------------------------------------


def restore(source: Path, target: Target, replace: bool = False) -> dict[str, Any]:
    """Puts the objects back, then the database; checks checksums and row counts. Returns a summary.

    The database must hold none of our schemas, unless `replace`: then they are dropped first (a new,
    idle stack whose services created empty schemas at start-up)."""
    manifest = json.loads((source / "manifest.json").read_text())
    if manifest.get("format") != FORMAT:
        raise BackupError(f"unknown backup format {manifest.get('format')!r}")
    dump = source / manifest["postgres"]["file"]
    if _file_sha256(dump) != manifest["postgres"]["sha256"]:
        raise BackupError(f"{dump} does not match its checksum")
    with psycopg.connect(target.database_url, autocommit=True) as conn:
        ours = [
            r[0]
            for r in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname IN ('project', 'dataset', 'training', 'serving', 'console')"
            )
        ]
        if ours and replace:
            for schema in ours:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
            ours = []
    if ours:
        raise BackupError(f"the target database already holds {', '.join(ours)}: restore needs an empty one")
    store = target.store()
    restored = 0
    for bucket, listing in manifest["buckets"].items():
        store.ensure_bucket(bucket)

        def put(item: dict[str, Any], bucket: str = bucket) -> None:
            data = (source / item["file"]).read_bytes()
            if _sha256(data) != item["sha256"]:
                raise BackupError(f"{item['file']} does not match its checksum")
            store.put_bytes(bucket, item["key"], data, content_type=item["content_type"])

        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(put, listing))
        restored += len(listing)
    subprocess.run(
        [
            _pg_tool("pg_restore"),
            "--no-owner",
            "--no-acl",
            "--exit-on-error",
            "--single-transaction",
            f"--dbname={target.database_url}",
            str(dump),
        ],
        check=True,
    )
    with psycopg.connect(target.database_url, autocommit=True) as conn:
        counts = {table: _count(conn, table) for table in COUNTED}
    if counts != manifest["postgres"]["rows"]:
        raise BackupError(
            f"restored row counts {counts} differ from the backup's {manifest['postgres']['rows']}"
        )
    return {"objects": restored, "rows": counts}


# ---------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------


def _environment(args: argparse.Namespace) -> dict[str, str]:
    if args.data_dir is not None:
        return read_env_file(args.data_dir / "stack.env")
    if args.env is not None:
        return read_env_file(args.env)
    return dict(os.environ)


def main(argv: list[str] | None = None) -> int:
    """`backup --out DIR` or `restore --from DIR`, against the stack given by --data-dir, --env or the environment."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("backup", "restore"):
        sub = commands.add_parser(name)
        where = sub.add_mutually_exclusive_group()
        where.add_argument(
            "--data-dir", type=Path, help="the embedded stack's data directory (reads stack.env)"
        )
        where.add_argument("--env", type=Path, help="a file of KEY=value lines")
        if name == "backup":
            sub.add_argument("--out", type=Path, required=True, help="an empty or new folder")
            sub.add_argument("--bucket", action="append", default=[], help="another bucket to include")
        else:
            sub.add_argument("--from", dest="source", type=Path, required=True, help="a backup folder")
            sub.add_argument(
                "--replace", action="store_true", help="drop our schemas first (a new, idle stack)"
            )
    args = parser.parse_args(argv)
    try:
        target = target_from(_environment(args), getattr(args, "bucket", []))
        if args.command == "backup":
            manifest = backup(target, args.out)
            objects = sum(len(v) for v in manifest["buckets"].values())
            print(
                f"backup written to {args.out}: rows {manifest['postgres']['rows']}, {objects} objects,"
                f" {manifest['references']} references checked"
            )
        else:
            summary = restore(args.source, target, replace=args.replace)
            print(f"restored {summary['objects']} objects and rows {summary['rows']}; start the services now")
    except (BackupError, subprocess.CalledProcessError, psycopg.Error) as exc:
        print(f"{args.command} failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
