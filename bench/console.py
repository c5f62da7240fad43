"""Console page loads: `python -m bench.console [--images 1000] [--test-images 300] [--repeat 3]`.

Starts a throwaway stack with the console (scripts/console_stack.py: Postgres, S3, the services, a
training worker, the console), imports a TRAIN dataset of `--images` generated photos
(scripts/samples.py) and trains a classifier whose TEST dataset has `--test-images` images, then
times in headless chromium (a fresh browser context per load: no HTTP cache):

- the gallery of the 1,000-image dataset (its first page: 50 thumbnails, the default page size), cold (thumbnails made on
  the first request) and warm (served from the thumbnail cache), and its last page;
- the model's evaluation tab (summary, per-label table, confusion matrix);
- its test results (the first page of thumbnails with boxes and badges).

A load ends when every image on the page has loaded (viewport tall enough to hold the page, so lazy
loading loads them all) and the page's own content marker is shown. The baseline, in the same run,
is the same requests made directly (the API calls, then every image the page shows, 6 at a time as a
browser does over HTTP/1.1) by an HTTP client: the ratio is what the browser and the front end add.
Writes bench/results/console.md and prints it.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.project.v1 import project_service_pb2 as pj
from playwright.sync_api import Browser, sync_playwright

from bench import report, workflow
from scripts import samples
from scripts.console_stack import CHROMIUM_FLAGS, ConsoleClient, RunningConsoleStack, console_stack

RESULTS = Path(__file__).resolve().parent / "results" / "console.md"
BUCKET = "bench-console"
# The pages' default page size (gallery and test results).
PAGE = 50
VIEWPORT = {"width": 1360, "height": 6000}
ALL_IMAGES_LOADED = """(minimum) => {
  const images = [...document.querySelectorAll('main img')];
  return images.length >= minimum && images.every((image) => image.complete && image.naturalWidth > 0);
}"""


@dataclass
class Row:
    """One measured page."""

    page: str
    images: int
    browser_s: list[float]
    direct_s: list[float]

    def cells(self) -> list[str]:
        browser, direct = statistics.median(self.browser_s), statistics.median(self.direct_s)
        return [
            self.page,
            str(self.images),
            f"{browser * 1000:.0f}",
            f"{min(self.browser_s) * 1000:.0f}–{max(self.browser_s) * 1000:.0f}",
            f"{direct * 1000:.0f}",
            f"{browser / direct:.2f}",
        ]


def _import(
    running: RunningConsoleStack, project: str, kind: int, items: list[samples.Sample], prefix: str
) -> str:
    services = running.services
    services.store.ensure_bucket(BUCKET)
    lines = []
    for sample in items:
        key = f"{prefix}/{sample.labels[0]}/{sample.file_name}"
        services.store.put_bytes(BUCKET, key, sample.data, "image/jpeg")
        lines.append(samples.manifest_line(f"s3://{BUCKET}/{key}", sample))
    return workflow.import_manifest(services, project, BUCKET, f"{prefix}.manifest", lines, kind)


def _project(running: RunningConsoleStack, name: str) -> str:
    return running.services.project.CreateProject(pj.CreateProjectRequest(project_name=name)).project_arn


def _time_page(
    browser: Browser, running: RunningConsoleStack, api: ConsoleClient, path: str, marker: str, images: int
) -> float:
    context = browser.new_context(viewport=VIEWPORT)
    context.add_cookies([{"name": "cl_session", "value": api.http.cookies["cl_session"], "url": running.url}])
    page = context.new_page()
    try:
        started = time.perf_counter()
        page.goto(running.url + path)
        page.wait_for_selector(marker, timeout=120_000)
        page.wait_for_function(ALL_IMAGES_LOADED, arg=images, timeout=120_000)
        return time.perf_counter() - started
    finally:
        context.close()


def _direct(
    api: ConsoleClient, calls: list[tuple[str, dict]], image_urls: Callable[[list[dict]], list[str]]
) -> float:
    started = time.perf_counter()
    # What every page loads first: the document, its script and styles, the session.
    index = api.http.get("/projects")
    for asset in re.findall(r'(?:src|href)="(/assets/[^"]+)"', index.text):
        assert api.http.get(asset).status_code == 200
    assert api.http.get("/api/session").status_code == 200
    answers = [api.ok(name, body) for name, body in calls]
    urls = image_urls(answers)
    with ThreadPoolExecutor(6) as pool:
        for response in pool.map(api.http.get, urls):
            assert response.status_code == 200, response.text
    return time.perf_counter() - started


def _thumbnail(dataset: str, line: str, size: int = 256) -> str:
    import json

    ref = json.loads(line)["source-ref"]
    return f"/api/image?dataset={quote(dataset)}&ref={quote(ref)}&size={size}"


def main() -> None:
    """Runs the benchmark and writes the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=1000, help="images in the gallery's dataset")
    parser.add_argument("--test-images", type=int, default=300, help="test images of the evaluated model")
    parser.add_argument("--repeat", type=int, default=3, help="loads per page (the median is reported)")
    args = parser.parse_args()
    rows: list[Row] = []
    started = time.perf_counter()
    with console_stack(triton=False) as running, sync_playwright() as playwright:
        api = ConsoleClient(running)
        browser = playwright.chromium.launch(
            executable_path=os.environ.get("CUSTOMLABELS_CHROMIUM", "/usr/bin/chromium"), args=CHROMIUM_FLAGS
        )
        labels = ("circle", "square", "triangle")
        per_label = -(-args.images // len(labels))

        def gallery(seed: int) -> tuple[str, str]:
            name = f"gallery-{uuid.uuid4().hex[:6]}"
            images = samples.classification(per_label, seed=seed, shapes=labels)[: args.images]
            return name, _import(running, _project(running, name), ds.DATASET_TYPE_TRAIN, images, name)

        # Two galleries of different images, so that the browser and the baseline each meet
        # thumbnails that are not made yet.
        (browsed, browsed_arn), (fetched, fetched_arn) = gallery(11), gallery(12)
        shown = len(
            api.ok("ListDatasetEntries", {"DatasetArn": browsed_arn, "MaxResults": PAGE})["DatasetEntries"]
        )
        marker = "main img"

        def gallery_direct(name: str, arn: str) -> float:
            return _direct(
                api,
                [
                    ("DescribeProjects", {"ProjectNames": [name]}),
                    ("DescribeDataset", {"DatasetArn": arn}),
                    ("ListDatasetEntries", {"DatasetArn": arn, "MaxResults": PAGE}),
                    ("ListLabels", {"DatasetArn": arn}),
                ],
                lambda answers: [_thumbnail(arn, line) for line in answers[2]["DatasetEntries"]],
            )

        def gallery_page(name: str) -> float:
            return _time_page(browser, running, api, f"/projects/{name}/datasets/train", marker, shown)

        rows.append(
            Row(
                f"gallery of {args.images}, first page, thumbnails made on request (cold)",
                shown,
                [gallery_page(browsed)],
                [gallery_direct(fetched, fetched_arn)],
            )
        )
        rows.append(
            Row(
                f"gallery of {args.images}, first page, thumbnails cached",
                shown,
                [gallery_page(browsed) for _ in range(args.repeat)],
                [gallery_direct(browsed, browsed_arn) for _ in range(args.repeat)],
            )
        )

        evaluated = f"evaluated-{uuid.uuid4().hex[:6]}"
        evaluated_arn = _project(running, evaluated)
        _import(
            running,
            evaluated_arn,
            ds.DATASET_TYPE_TRAIN,
            samples.classification(20, seed=21, shapes=labels),
            f"{evaluated}-train",
        )
        per_test = -(-args.test_images // len(labels))
        _import(
            running,
            evaluated_arn,
            ds.DATASET_TYPE_TEST,
            samples.classification(per_test, seed=22, shapes=labels)[: args.test_images],
            f"{evaluated}-test",
        )
        description, version_arn, train_s = workflow.train_version(
            running.services, evaluated_arn, BUCKET, f"{evaluated}/out", "v1"
        )
        model_path = f"/projects/{evaluated}/models/v1"
        # The model page reads the project and its versions before its tab's own data.
        page_calls = [
            ("DescribeProjects", {"ProjectNames": [evaluated]}),
            ("DescribeProjectVersions", {"ProjectArn": evaluated_arn}),
        ]
        results = api.ok("ListTestResults", {"ProjectVersionArn": version_arn, "MaxResults": PAGE})
        listed = len(results["TestResults"])
        rows.append(
            Row(
                f"evaluation tab ({args.test_images} test images)",
                0,
                [
                    _time_page(browser, running, api, model_path + "?tab=evaluation", "table", 0)
                    for _ in range(args.repeat)
                ],
                [
                    _direct(
                        api,
                        page_calls + [("GetEvaluation", {"ProjectVersionArn": version_arn})],
                        lambda _: [],
                    )
                    for _ in range(args.repeat)
                ],
            )
        )
        rows.append(
            Row(
                f"test results tab, first page of {args.test_images}",
                listed,
                [
                    _time_page(browser, running, api, model_path + "?tab=results", marker, listed)
                    for _ in range(args.repeat)
                ],
                [
                    _direct(
                        api,
                        [
                            *page_calls,
                            ("ListTestResults", {"ProjectVersionArn": version_arn, "MaxResults": PAGE}),
                        ],
                        lambda answers: [
                            f"/api/image?key={quote(r['Image']['Name'])}&size=512"
                            for r in answers[-1]["TestResults"]
                        ],
                    )
                    for _ in range(args.repeat)
                ],
            )
        )
        browser.close()
        api.close()
    lines = [
        "# Console page loads",
        "",
        f"`python -m bench.console --images {args.images} --test-images {args.test_images} --repeat {args.repeat}`"
        f" on {platform.machine()}, {os.cpu_count()} CPUs; headless chromium, a fresh context per load;"
        f" the whole run took {time.perf_counter() - started:.0f} s (training the evaluated model {train_s:.0f} s,"
        f" F1 {description.evaluation_result.f1_score:.3f}).",
        "",
        "A load ends when the page's content is shown and every image on it has loaded. Direct = an HTTP client"
        " fetching, in the same run, what the page fetches: the document, its script and styles, the session,"
        " the same API calls in order, then the page's images 6 at a time.",
        "",
        "| page | images | browser ms (median) | browser range | direct ms | ratio |",
        "|---|---:|---:|---:|---:|---:|",
        *("| " + " | ".join(row.cells()) + " |" for row in rows),
    ]
    report.write(RESULTS, lines)


if __name__ == "__main__":
    main()
