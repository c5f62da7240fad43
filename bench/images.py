"""Image ingest throughput: `python -m bench.images [--images N] [--workers 1,4,8,16]`.

Starts a local S3 server (SeaweedFS, scripts/embedded.py), uploads N photo-like 640×480 JPEGs (quality
90, 50–100 KB, every one distinct), then measures images/s of
- a plain sequential `ObjectStore.get_bytes` of every image (the floor: what reading alone costs);
- `inspect` alone on bytes already in memory (CPU only, one thread);
- `ImageIngestor.ingest_many` for each worker count, each run into a fresh images bucket so every image
  is really written (no run profits from copies an earlier one made).
Writes a Markdown table to bench/results/images.md and prints it.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
from minio.error import S3Error
from PIL import Image

from bench import report
from scripts.embedded import SeaweedS3
from services.common.errors import ImageTooLarge, InvalidS3Object
from services.common.storage import ObjectStore
from services.dataset.images import ImageIngestor, inspect

RESULTS = Path(__file__).resolve().parent / "results" / "images.md"


def photo_like_jpegs(count: int, seed: int = 7) -> list[bytes]:
    """`count` distinct 640×480 JPEGs: a few smooth random 'scenes', each copy with its own noise.

    Smooth low-frequency structure plus sensor-like noise gives the 50–100 KB a quality-90 photo has.
    """
    rng = np.random.default_rng(seed)
    scenes = []
    for _ in range(8):
        coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        scene = np.asarray(Image.fromarray(coarse).resize((640, 480), Image.Resampling.BICUBIC), np.float32)
        y, x = np.mgrid[0:480, 0:640]
        scene += (20 * np.sin(x / rng.uniform(8, 40)) * np.cos(y / rng.uniform(8, 40)))[..., None]
        scenes.append(scene)
    out = []
    for i in range(count):
        noisy = scenes[i % len(scenes)] + rng.normal(0, 7, (480, 640, 3))
        buf = io.BytesIO()
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


class OneGetStore(ObjectStore):
    """ObjectStore whose capped get_bytes takes the size from the GET's Content-Length, not a stat first.

    Measures what that change to services/common/storage.py would gain (one request less per image).
    """

    def get_bytes(
        self, bucket: str, key: str, max_bytes: int | None = None, version: str | None = None
    ) -> bytes:
        """As ObjectStore.get_bytes, in one request."""
        try:
            response = self.client.get_object(bucket, key, version_id=version)
        except S3Error as exc:
            raise InvalidS3Object(f"cannot access s3://{bucket}/{key}: {exc.code}") from None
        try:
            size = int(response.headers.get("Content-Length", "0"))
            if max_bytes is not None and size > max_bytes:
                raise ImageTooLarge(f"s3://{bucket}/{key} is {size} bytes; the limit is {max_bytes}")
            data = response.read(max_bytes + 1) if max_bytes is not None else response.read()
        finally:
            response.close()
            response.release_conn()
        if max_bytes is not None and len(data) > max_bytes:
            raise ImageTooLarge(f"s3://{bucket}/{key} exceeds {max_bytes} bytes")
        return data


def upload(store: ObjectStore, bucket: str, blobs: list[bytes]) -> list[tuple[str, str]]:
    """Writes the images as img/NNNNN.jpg (8 threads) and returns their refs."""
    refs = [(bucket, f"img/{i:05d}.jpg") for i in range(len(blobs))]
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda r_b: store.put_bytes(*r_b[0], r_b[1], "image/jpeg"), zip(refs, blobs, strict=True)
            )
        )
    return refs


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Row(NamedTuple):
    """One measured run."""

    name: str
    seconds: float
    images: int
    our_cpu_ms: float  # CPU of this process per image
    server_cpu_ms: float  # CPU of the S3 server per image


def measure(name: str, fn: Callable[[], int], server_pid: int) -> Row:
    """Runs fn (which returns how many images it handled) and records time and CPU per image."""
    ours, theirs = os.times(), process_cpu_seconds(server_pid)
    start = time.perf_counter()
    n = fn()
    seconds = time.perf_counter() - start
    after = os.times()
    our_cpu = after.user + after.system - ours.user - ours.system
    server_cpu = process_cpu_seconds(server_pid) - theirs
    row = Row(name, seconds, n, 1000 * our_cpu / n, 1000 * server_cpu / n)
    print(f"{name}: {n / seconds:,.0f} images/s", file=sys.stderr)
    return row


def fresh_bucket(store: ObjectStore) -> str:
    """A new bucket, warmed with a few writes: SeaweedFS grows a volume for a new bucket on first use."""
    bucket = f"bench-img-{uuid.uuid4().hex[:8]}"
    store.ensure_bucket(bucket)
    for i in range(20):
        store.put_bytes(bucket, f"warm-up/{i}", os.urandom(64 * 1024))
    return bucket


def ingest_all(ingestor: ImageIngestor, refs: list[tuple[str, str]]) -> int:
    """Ingests every ref; all of them must be accepted."""
    ok = sum(result.ok for _, result in ingestor.ingest_many(refs))
    if ok != len(refs):
        raise RuntimeError(f"only {ok} of {len(refs)} images were accepted")
    return ok


def main(argv: list[str] | None = None) -> None:
    """Runs the benchmark and writes bench/results/images.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--workers", default="1,4,8,16")
    args = parser.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",")]
    best = 8 if 8 in workers else max(workers)

    print(f"generating {args.images} JPEGs …", file=sys.stderr)
    blobs = photo_like_jpegs(args.images)
    sizes = np.array([len(b) for b in blobs])

    load_before = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="bench-images-"))
    access, secret = "bench" + secrets.token_hex(6), secrets.token_hex(20)
    server = SeaweedS3(
        workdir / "s3", SeaweedS3.pick_ports(), access, secret, workdir / "s3.log", die_with_parent=True
    )
    rows: list[Row] = []
    try:
        server.start()
        server.wait_ready(90)
        assert server.ref is not None
        pid = server.ref.pid
        store = ObjectStore(server.endpoint, access, secret)
        source = f"bench-src-{uuid.uuid4().hex[:8]}"
        store.ensure_bucket(source)
        print("uploading …", file=sys.stderr)
        refs = upload(store, source, blobs)

        def read_all() -> int:
            for bucket, key in refs:
                store.get_bytes(bucket, key, max_bytes=15 * 1024 * 1024)
            return len(refs)

        def inspect_all(threads: int) -> int:
            with ThreadPoolExecutor(threads) as pool:
                return sum(1 for _ in pool.map(inspect, blobs))

        read_all()  # warm the server's caches and our connection pool
        rows.append(measure("sequential get_bytes only (baseline)", read_all, pid))
        rows.append(measure("inspect only, bytes in memory, 1 thread", lambda: inspect_all(1), pid))
        rows.append(measure("inspect only, bytes in memory, 2 threads", lambda: inspect_all(2), pid))
        for n in workers:
            ingestor = ImageIngestor(store, fresh_bucket(store), max_workers=n)
            name = f"ingest_many, {n} worker{'s' if n > 1 else ''}"
            rows.append(measure(name, lambda i=ingestor: ingest_all(i, refs), pid))
        # A second import of the same images (a fresh ingestor, so its cache is cold): a stat, no write.
        again = ImageIngestor(store, ingestor.images_bucket, max_workers=max(workers))
        name = f"ingest_many, {max(workers)} workers, images already stored"
        rows.append(measure(name, lambda: ingest_all(again, refs), pid))
        # One request less per image (OneGetStore): what the proposed storage.py change gains.
        one_get = OneGetStore(server.endpoint, access, secret)
        ingestor = ImageIngestor(one_get, fresh_bucket(one_get), max_workers=best)
        name = f"ingest_many, {best} workers, GET without stat (proposed)"
        rows.append(measure(name, lambda: ingest_all(ingestor, refs), pid))
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    base = rows[0].images / rows[0].seconds
    lines = [
        "# Image ingest throughput",
        "",
        f"{len(blobs)} distinct 640×480 JPEGs, quality 90, {sizes.mean() / 1024:.0f} KB mean "
        f"({sizes.min() / 1024:.0f}–{sizes.max() / 1024:.0f} KB); SeaweedFS `weed mini` on the same "
        f"machine; {os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}, "
        f"Pillow {Image.__version__}. CPU columns: milliseconds of CPU per image, of this process and of "
        f"the S3 server. Load average (1 min) {load_before:.1f} before the run, {os.getloadavg()[0]:.1f} "
        "after: other work on the machine makes the rates lower and noisier.",
        "",
        "| Run | Seconds | Images/s | vs. baseline | Our CPU ms/img | S3 server CPU ms/img |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        rate = row.images / row.seconds
        lines.append(
            f"| {row.name} | {row.seconds:.2f} | {rate:,.0f} | {rate / base:.2f}× "
            f"| {row.our_cpu_ms:.2f} | {row.server_cpu_ms:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    report.write(RESULTS, [text])


if __name__ == "__main__":
    main()
