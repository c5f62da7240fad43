"""Dataset benchmarks (issue 3): end-to-end import speed, and ListDatasetEntries page time vs. size.

`python -m bench.datasets` starts its own Postgres and S3 server (scripts/embedded.py) and the
project + dataset services in-process, then measures:

1. Import: a 2,000-image Ground Truth manifest (640×480 JPEGs, ~80 KB, already in the S3 store),
   CreateDataset → CREATE_COMPLETE, in images/s. Baselines in the same run: the same 2,000 objects
   read sequentially with plain GETs, and copied server-side by a plain `minio` client
   (copy_object) on as many threads as the import uses.
2. Page time: ListDatasetEntries on a 1,000-entry and a 100,000-entry dataset, for the first page,
   a deep page, and each filter; p50 of 30 calls; the ratio 100k / 1k must stay flat (≤ 1.5).
   The large dataset's rows are written straight into its table (100k image imports would only
   measure the import again); the read path measured is the real gRPC one.

Results go to bench/results/datasets.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.project.v1 import project_service_pb2 as pj
from minio import Minio
from minio.commonconfig import CopySource

from bench import report, workflow
from bench.images import photo_like_jpegs
from scripts import inprocess

RESULTS = Path(__file__).resolve().parent / "results" / "datasets.md"
LABELS = ("apple", "banana", "cherry", "date")
# The dataset service's ingest threads (services/dataset/app.py).
INGEST_THREADS = 16


def line(ref: str, label: str) -> str:
    return json.dumps(
        {
            "source-ref": ref,
            "l": 0,
            "l-metadata": {
                "class-name": label,
                "confidence": 1,
                "type": "groundtruth/image-classification",
                "human-annotated": "yes",
                "creation-date": "2024-01-01T00:00:00",
            },
        }
    )


def bench_import(services: inprocess.LocalServices, count: int) -> list[tuple[str, float, float]]:
    blobs = photo_like_jpegs(count)
    bucket = "bench-source"
    services.store.ensure_bucket(bucket)
    refs = []
    for i, blob in enumerate(blobs):
        services.store.put_bytes(bucket, f"img/{i:05d}.jpg", blob)
        refs.append(f"s3://{bucket}/img/{i:05d}.jpg")
    manifest = "\n".join(line(r, LABELS[i % 4]) for i, r in enumerate(refs)).encode()
    services.store.put_bytes(bucket, "bench.manifest", manifest)

    start = time.perf_counter()
    for i in range(count):
        services.store.get_bytes(bucket, f"img/{i:05d}.jpg")
    sequential = time.perf_counter() - start

    # A plain minio client copying the same objects server-side, on as many threads as the import uses.
    client = Minio(services.s3.address, services.s3.access_key, services.s3.secret_key, secure=False)
    client.make_bucket("bench-copy")
    start = time.perf_counter()
    with ThreadPoolExecutor(INGEST_THREADS) as pool:
        list(
            pool.map(
                lambda i: client.copy_object(
                    "bench-copy", f"{i:05d}", CopySource(bucket, f"img/{i:05d}.jpg")
                ),
                range(count),
            )
        )
    copied = time.perf_counter() - start

    project = services.project.CreateProject(pj.CreateProjectRequest(project_name="bench-import")).project_arn
    start = time.perf_counter()
    arn = services.dataset.CreateDataset(
        ds.CreateDatasetRequest(
            project_arn=project,
            dataset_type=ds.DATASET_TYPE_TRAIN,
            dataset_source=ds.DatasetSource(
                ground_truth_manifest={"s3_object": {"bucket": bucket, "name": "bench.manifest"}}
            ),
        )
    ).dataset_arn
    desc = workflow.wait_dataset(services, arn, poll=0.05)
    elapsed = time.perf_counter() - start
    assert desc.status == ds.DATASET_STATUS_CREATE_COMPLETE, desc.status_message
    assert desc.dataset_stats.total_entries == count
    return [
        ("sequential GET of every image (baseline)", sequential, count / sequential),
        (f"minio copy_object of every image, {INGEST_THREADS} threads (baseline)", copied, count / copied),
        ("CreateDataset → CREATE_COMPLETE", elapsed, count / elapsed),
    ]


def fill(database_url: str, services: inprocess.LocalServices, name: str, size: int) -> str:
    """A dataset of `size` entries: created empty through the API, rows written with COPY."""
    project = services.project.CreateProject(pj.CreateProjectRequest(project_name=name)).project_arn
    arn = services.dataset.CreateDataset(
        ds.CreateDatasetRequest(project_arn=project, dataset_type=ds.DATASET_TYPE_TRAIN)
    ).dataset_arn
    with psycopg.connect(database_url) as conn:
        (dataset_id,) = conn.execute("SELECT id FROM dataset.datasets WHERE arn = %s", (arn,)).fetchone()
        with conn.cursor().copy(
            "COPY dataset.entries (dataset_id, source_ref, line, labels, image_labels, is_labeled, has_errors, usable,"
            " image_key) FROM STDIN"
        ) as copy:
            for i in range(size):
                ref = f"s3://bench/{'odd' if i % 2 else 'even'}/{i:07d}.jpg"
                label = LABELS[i % 4]
                has_errors = i % 97 == 0
                copy.write_row(
                    (
                        dataset_id,
                        ref,
                        line(ref, label),
                        [label],
                        [label],
                        i % 10 != 0,
                        has_errors,
                        not has_errors,
                        f"sha256/{i:064x}",
                    )
                )
        conn.execute("ANALYZE dataset.entries")
    return arn


def p50_ms(call, n: int = 30) -> float:
    call()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def bench_pages(database_url: str, services: inprocess.LocalServices) -> list[tuple[str, float, float]]:
    small = fill(database_url, services, "bench-1k", 1_000)
    large = fill(database_url, services, "bench-100k", 100_000)

    def deep_token(arn: str, size: int) -> str:
        # A token pointing into the middle of the dataset, obtained the way a client would.
        page = services.dataset.ListDatasetEntries(
            ds.ListDatasetEntriesRequest(dataset_arn=arn, max_results=100)
        )
        token, skip = page.next_token, size // 200
        for _ in range(skip):
            token = services.dataset.ListDatasetEntries(
                ds.ListDatasetEntriesRequest(dataset_arn=arn, max_results=100, next_token=token)
            ).next_token
        return token

    deep = {small: deep_token(small, 1_000), large: deep_token(large, 100_000)}
    queries = {
        "first page (100)": lambda arn: ds.ListDatasetEntriesRequest(dataset_arn=arn),
        "page in the middle": lambda arn: ds.ListDatasetEntriesRequest(dataset_arn=arn, next_token=deep[arn]),
        "ContainsLabels=[apple]": lambda arn: ds.ListDatasetEntriesRequest(
            dataset_arn=arn, contains_labels=["apple"]
        ),
        "Labeled=false": lambda arn: ds.ListDatasetEntriesRequest(dataset_arn=arn, labeled=False),
        "HasErrors=true": lambda arn: ds.ListDatasetEntriesRequest(dataset_arn=arn, has_errors=True),
        "SourceRefContains=<one image>": lambda arn: ds.ListDatasetEntriesRequest(
            dataset_arn=arn, source_ref_contains="/odd/0000777.jpg"
        ),
        # A "folder" holding half the entries, sorted after the other half: the first page scans
        # past every entry of the other folder.
        "SourceRefContains=/odd/ (half the entries)": lambda arn: ds.ListDatasetEntriesRequest(
            dataset_arn=arn, source_ref_contains="/odd/"
        ),
        "ListDatasetLabels": None,
    }
    rows = []
    for name, build in queries.items():
        if build is None:
            t_small = p50_ms(
                lambda: services.dataset.ListDatasetLabels(ds.ListDatasetLabelsRequest(dataset_arn=small))
            )
            t_large = p50_ms(
                lambda: services.dataset.ListDatasetLabels(ds.ListDatasetLabelsRequest(dataset_arn=large))
            )
        else:
            t_small = p50_ms(lambda build=build: services.dataset.ListDatasetEntries(build(small)))
            t_large = p50_ms(lambda build=build: services.dataset.ListDatasetEntries(build(large)))
        rows.append((name, t_small, t_large))
    return rows


def main(argv: list[str] | None = None) -> None:
    """Runs both benchmarks and writes the Markdown table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=2000, help="images to import (0: skip the import)")
    args = parser.parse_args(argv)
    with inprocess.embedded_stack("customlabels-bench-") as stack:
        imports = bench_import(stack.services, args.images) if args.images else []
        pages = bench_pages(stack.database_url, stack.services)
    out = [
        "# Dataset benchmarks",
        "",
        f"2 CPUs; Postgres 15 and SeaweedFS on the same machine; services in-process over real gRPC. {args.images}"
        " distinct 640×480 JPEGs (~80 KB).",
        "",
        *(
            [
                "| Import | Seconds | Images/s |",
                "|---|---:|---:|",
                *[f"| {name} | {sec:.2f} | {rate:,.0f} |" for name, sec, rate in imports],
                "",
                f"Import / sequential GET throughput: {imports[2][2] / imports[0][2]:.2f}×; import / minio"
                f" copy_object throughput: {imports[2][2] / imports[1][2]:.2f}×",
                "",
            ]
            if imports
            else []
        ),
        "| ListDatasetEntries (p50 of 30) | 1k entries, ms | 100k entries, ms | 100k / 1k |",
        "|---|---:|---:|---:|",
        *[f"| {name} | {a:.2f} | {b:.2f} | {b / a:.2f} |" for name, a, b in pages],
        "",
    ]
    report.write(RESULTS, out)


if __name__ == "__main__":
    main()
