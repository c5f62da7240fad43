"""Datasets in the console, in a real browser: creating them (upload with folder labels, S3 folder,
Ground Truth manifest, copy), adding images, and the gallery (filters, errors, label counts, paging)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from scripts.console_stack import RunningConsoleStack
from tests.console.conftest import ApiClient
from tests.console.dataset_data import (
    HOSTILE_LABEL,
    HOSTILE_NAME,
    create_project,
    entries,
    fake_drop,
    image,
    image_labels,
    upload,
    wait_dataset,
    watch_dialogs,
)

Shoot = Callable[[Page, str], Path]
DONE = "[data-testid=dataset-status] [data-status$=_COMPLETE]"


@pytest.fixture(scope="module")
def images_bucket(console: RunningConsoleStack) -> str:
    """A bucket of the module's S3 holding images and manifests to import."""
    bucket = f"console-import-{console.access_key_id[-8:].lower()}"
    console.services.store.ensure_bucket(bucket)
    return bucket


@pytest.fixture(scope="module")
def gallery(api: ApiClient, console: RunningConsoleStack, images_bucket: str) -> dict[str, str]:
    """A dataset of 30 images from a manifest: 12 circle, 8 square (one also has a box outside the
    frame: a non-terminal error), 10 unlabeled."""
    store = console.services.store
    lines = []
    for i in range(30):
        key = f"gallery/img_{i:02d}.jpg"
        store.put_bytes(images_bucket, key, image(96, 72, seed=i))
        line: dict = {"source-ref": f"s3://{images_bucket}/{key}"}
        label = "circle" if i < 12 else "square" if i < 20 else None
        if label:
            line |= {
                "shape": 1,
                "shape-metadata": {
                    "class-name": label,
                    "confidence": 1,
                    "type": "groundtruth/image-classification",
                    "human-annotated": "yes",
                    "creation-date": "2024-01-01T00:00:00.000",
                },
            }
        if i == 15:
            line |= {
                "box": {
                    "image_size": [{"width": 96, "height": 72, "depth": 3}],
                    "annotations": [{"class_id": 0, "left": 80, "top": 10, "width": 40, "height": 20}],
                },
                "box-metadata": {
                    "objects": [{"confidence": 1}],
                    "class-map": {"0": "square"},
                    "type": "groundtruth/object-detection",
                    "human-annotated": "yes",
                    "creation-date": "2024-01-01T00:00:00.000",
                },
            }
        lines.append(json.dumps(line))
    store.put_bytes(images_bucket, "gallery/data.manifest", "\n".join(lines).encode())
    project, project_arn = create_project(api, "gallery")
    arn = api.ok(
        "CreateDataset",
        {
            "ProjectArn": project_arn,
            "DatasetType": "TRAIN",
            "DatasetSource": {
                "GroundTruthManifest": {
                    "S3Object": {"Bucket": images_bucket, "Name": "gallery/data.manifest"}
                }
            },
        },
    )["DatasetArn"]
    assert wait_dataset(api, arn)["Status"] == "CREATE_COMPLETE"
    return {"project": project, "arn": arn}


def test_create_dataset_by_uploading_a_folder_labels_images_by_their_sub_folders(
    signed_in: Page, console: RunningConsoleStack, api: ApiClient, shoot: Shoot, tmp_path: Path
) -> None:
    root = tmp_path / "photos"
    for folder, count in (("circle", 28), ("square", 27)):
        (root / folder).mkdir(parents=True)
        for i in range(count):
            (root / folder / f"{i:03d}.jpg").write_bytes(image(80, 64, seed=i))
    (root / "notes.txt").write_text("not an image")
    (root / "huge.jpg").write_bytes(b"\xff\xd8" + bytes(16 * 1024 * 1024))
    (root / ".DS_Store").write_bytes(b"x")
    project, _ = create_project(api, "upload")
    page = signed_in
    page.goto(f"{console.url}/projects/{project}/datasets/new")
    page.set_input_files("[data-testid=upload-train] [data-testid=folder-input]", str(root))
    chips = page.locator("[data-testid=folder-labels] li")
    expect(chips).to_have_count(2)
    expect(chips.nth(0)).to_contain_text("circle")
    expect(chips.nth(0)).to_contain_text("28")
    expect(chips.nth(1)).to_contain_text("square")
    count = page.get_by_test_id("upload-count")
    expect(count).to_contain_text("55 images to upload")
    expect(count).to_contain_text("2 will not be uploaded")
    expect(count).to_contain_text("1 hidden files skipped")
    expect(page.locator("[data-testid=file-row]", has_text="notes.txt")).to_contain_text(
        "Only PNG and JPEG images"
    )
    expect(page.locator("[data-testid=file-row]", has_text="huge.jpg")).to_contain_text(
        "ImageTooLargeException"
    )
    # Unticking the box uploads the same files unlabeled; ticking it again brings the labels back.
    page.get_by_test_id("use-folder-labels").uncheck()
    expect(page.locator("[data-testid=file-row]", has_text="circle/000.jpg")).to_contain_text("none")
    page.get_by_test_id("use-folder-labels").check()
    expect(page.locator("[data-testid=file-row]", has_text="circle/000.jpg")).to_contain_text("circle")
    shoot(page, "create-dataset")
    page.get_by_test_id("create-dataset-submit").click()
    # 55 files travel in two requests (50 + 5); the second waits for the first import to end.
    expect(page.get_by_test_id("upload-tally")).to_contain_text(
        "57 of 57 files done · 55 accepted · 2 refused", timeout=60_000
    )
    expect(page.locator(DONE)).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("stat-total")).to_have_text("55")
    shoot(page, "create-dataset-done")
    arn = api.ok("DescribeProjects", {"ProjectNames": [project]})["ProjectDescriptions"][0]["Datasets"][0][
        "DatasetArn"
    ]
    stored = entries(api, arn)
    assert len(stored) == 55
    by_label = {label: sum(label in image_labels(e) for e in stored) for label in ("circle", "square")}
    assert by_label == {"circle": 28, "square": 27}


def test_dropped_folders_are_read_recursively_and_each_top_folder_is_a_label(
    signed_in: Page, console: RunningConsoleStack, api: ApiClient
) -> None:
    project, _ = create_project(api, "drop")
    page = signed_in
    dialogs = watch_dialogs(page)
    page.goto(f"{console.url}/projects/{project}/datasets/new")
    expect(page.get_by_test_id("drop-zone")).to_be_visible()
    fake_drop(
        page,
        [
            ("cats/a.jpg", image(seed=1)),
            ("cats/b.jpg", image(seed=2)),
            ("dogs/puppies/c.jpg", image(seed=3)),
            (f"{HOSTILE_NAME}/d.jpg", image(seed=4)),
            ("loose.jpg", image(seed=5)),
        ],
    )
    rows = page.get_by_test_id("file-row")
    expect(rows).to_have_count(5)
    expect(page.locator("[data-testid=file-row]", has_text="dogs/puppies/c.jpg")).to_contain_text("dogs")
    expect(page.locator("[data-testid=file-row]", has_text="loose.jpg")).to_contain_text("none")
    expect(page.get_by_test_id("folder-labels")).to_contain_text(HOSTILE_NAME)
    page.get_by_test_id("create-dataset-submit").click()
    expect(page.locator(DONE)).to_be_visible(timeout=30_000)
    arn = api.ok("DescribeProjects", {"ProjectNames": [project]})["ProjectDescriptions"][0]["Datasets"][0][
        "DatasetArn"
    ]
    labels = sorted(label for e in entries(api, arn) for label in image_labels(e))
    assert labels == sorted([HOSTILE_NAME, "cats", "cats", "dogs"])
    page.get_by_test_id("open-train").click()
    expect(page.locator("[data-testid=label-filter]", has_text=HOSTILE_NAME)).to_be_visible()
    expect(page.locator("img[src='x']")).to_have_count(0)
    assert dialogs == []


def test_training_from_an_s3_folder_and_test_from_a_manifest(
    signed_in: Page, console: RunningConsoleStack, api: ApiClient, images_bucket: str
) -> None:
    store = console.services.store
    for i, label in enumerate(["red", "red", "blue", "blue"]):
        store.put_bytes(images_bucket, f"folder/{label}/{i}.jpg", image(seed=i))
    store.put_bytes(images_bucket, "folder/top.jpg", image(seed=9))
    line = {
        "source-ref": f"s3://{images_bucket}/folder/red/0.jpg",
        "bounding-box": {
            "image_size": [{"width": 96, "height": 72, "depth": 3}],
            "annotations": [{"class_id": 0, "left": 10, "top": 12, "width": 30, "height": 20}],
        },
        "bounding-box-metadata": {
            "objects": [{"confidence": 1}],
            "class-map": {"0": "red"},
            "type": "groundtruth/object-detection",
            "human-annotated": "yes",
            "creation-date": "2024-01-01T00:00:00",
        },
    }
    store.put_bytes(images_bucket, "job/manifests/output/output.manifest", json.dumps(line).encode())
    project, _ = create_project(api, "import")
    page = signed_in
    page.goto(f"{console.url}/projects/{project}/datasets/new")
    page.get_by_test_id("config-split").check()
    page.get_by_test_id("source-train-s3").check()
    page.get_by_test_id("s3-uri-train").fill(f"s3://{images_bucket}/folder/")
    page.get_by_test_id("source-test-manifest").check()
    expect(page.get_by_test_id("create-dataset-submit")).to_be_disabled()
    page.get_by_test_id("manifest-uri-test").fill(
        f"s3://{images_bucket}/job/manifests/output/output.manifest"
    )
    page.get_by_test_id("create-dataset-submit").click()
    expect(page.locator(f"[data-testid=creation-train] {DONE}")).to_be_visible(timeout=30_000)
    expect(page.locator(f"[data-testid=creation-test] {DONE}")).to_be_visible(timeout=30_000)
    datasets = {
        d["DatasetType"]: d["DatasetArn"]
        for d in api.ok("DescribeProjects", {"ProjectNames": [project]})["ProjectDescriptions"][0]["Datasets"]
    }
    train = entries(api, datasets["TRAIN"])
    assert sorted(sorted(image_labels(e)) for e in train) == [[], ["blue"], ["blue"], ["red"], ["red"]]
    (test_entry,) = entries(api, datasets["TEST"])
    assert test_entry["bounding-box"]["annotations"][0]["left"] == 10


def test_a_failed_import_shows_its_status_message_and_code(
    signed_in: Page, console: RunningConsoleStack, api: ApiClient, images_bucket: str
) -> None:
    console.services.store.put_bytes(images_bucket, "broken/bad.manifest", b"not json\n{also not json")
    project, _ = create_project(api, "broken")
    page = signed_in
    page.goto(f"{console.url}/projects/{project}/datasets/new?type=TRAIN")
    page.get_by_test_id("source-train-manifest").check()
    page.get_by_test_id("manifest-uri-train").fill(f"s3://{images_bucket}/broken/bad.manifest")
    page.get_by_test_id("create-dataset-submit").click()
    status = page.get_by_test_id("dataset-status")
    expect(status.locator("[data-status=CREATE_FAILED]")).to_be_visible(timeout=30_000)
    expect(status.get_by_test_id("status-code")).to_have_text("CLIENT_ERROR")
    expect(status.get_by_test_id("status-message")).to_contain_text("ERROR_")


def test_copying_a_dataset_creates_the_missing_test_dataset(
    signed_in: Page, console: RunningConsoleStack, api: ApiClient, gallery: dict[str, str]
) -> None:
    project, project_arn = create_project(api, "copy")
    upload(api, {"NewDataset": {"ProjectArn": project_arn, "DatasetType": "TRAIN"}}, [("one.jpg", image())])
    page = signed_in
    page.goto(f"{console.url}/projects/{project}/datasets/new")
    # One dataset exists: only the missing one is offered.
    expect(page.get_by_test_id("config-single")).to_have_count(0)
    expect(page.get_by_test_id("source-test")).to_be_visible()
    page.get_by_test_id("source-test-copy").check()
    page.get_by_test_id("copy-source-test").select_option(label=f"{gallery['project']} / training")
    page.get_by_test_id("create-dataset-submit").click()
    expect(page.locator(DONE)).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("stat-total")).to_have_text("30")


def test_gallery_filters_by_label_labeled_unlabeled_and_errors_and_pages(
    signed_in: Page, console: RunningConsoleStack, gallery: dict[str, str], shoot: Shoot
) -> None:
    page = signed_in
    page.goto(f"{console.url}/projects/{gallery['project']}/datasets/train")
    tiles = page.get_by_test_id("tile")
    expect(tiles).to_have_count(30)
    expect(page.get_by_test_id("label-filter")).to_have_count(2)
    counts = {
        row.get_attribute("data-label"): row.get_by_test_id("label-count").inner_text()
        for row in page.get_by_test_id("label-filter").all()
    }
    assert counts == {"circle": "12", "square": "8"}
    thumbnail = tiles.first.locator("img")
    assert thumbnail.get_attribute("loading") == "lazy"
    assert "size=256" in (thumbnail.get_attribute("src") or "")
    page.get_by_test_id("page-size").select_option("25")
    expect(tiles).to_have_count(25)
    expect(page.get_by_test_id("page-number")).to_have_text("Page 1")
    page.get_by_role("button", name="Next page").click()
    expect(tiles).to_have_count(5)
    expect(page.get_by_test_id("page-number")).to_have_text("Page 2")
    page.get_by_role("button", name="Previous page").click()
    expect(tiles).to_have_count(25)
    page.locator("[data-testid=label-filter][data-label=circle]").click()
    expect(tiles).to_have_count(12)
    expect(page.get_by_test_id("active-label-filter")).to_contain_text("circle")
    page.get_by_test_id("label-filter-all").click()
    page.get_by_test_id("show-unlabeled").click()
    expect(tiles).to_have_count(10)
    expect(tiles.first.get_by_test_id("tile-labels")).to_have_text("unlabeled")
    page.get_by_test_id("show-labeled").click()
    expect(tiles).to_have_count(20)
    page.get_by_test_id("show-errors").click()
    expect(tiles).to_have_count(1)
    expect(tiles.first.get_by_test_id("tile-errors")).to_contain_text("ERROR_INVALID_BOUNDING_BOX")
    expect(tiles.first.get_by_test_id("tile-labels")).to_contain_text("square")
    tiles.first.click()
    expect(page.get_by_test_id("preview-errors")).to_contain_text("The bounding box has off frame values.")
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("entry-preview")).to_have_count(0)
    page.get_by_test_id("show-all").click()
    expect(tiles).to_have_count(25)
    shoot(page, "dataset-gallery")


def test_add_images_uploads_into_the_existing_dataset(
    signed_in: Page, console: RunningConsoleStack, api: ApiClient, tmp_path: Path
) -> None:
    project, project_arn = create_project(api, "add")
    arn = upload(
        api, {"NewDataset": {"ProjectArn": project_arn, "DatasetType": "TRAIN"}}, [("first.jpg", image())]
    )
    files = [tmp_path / "second.jpg", tmp_path / "third.png", tmp_path / "broken.jpg"]
    files[0].write_bytes(image(seed=2))
    files[1].write_bytes(image(seed=3, kind="PNG"))
    files[2].write_bytes(b"\xff\xd8 not really a jpeg")
    page = signed_in
    page.goto(f"{console.url}/projects/{project}/datasets/train")
    expect(page.get_by_test_id("tile")).to_have_count(1)
    page.get_by_test_id("add-images").click()
    page.set_input_files("[data-testid=add-images] [data-testid=file-input]", [str(f) for f in files])
    page.get_by_test_id("add-images-submit").click()
    expect(page.get_by_test_id("upload-tally")).to_contain_text(
        "3 of 3 files done · 2 accepted · 1 refused", timeout=30_000
    )
    expect(page.locator("[data-testid=outcome-row]", has_text="broken.jpg")).to_contain_text(
        "InvalidImageFormatException"
    )
    page.get_by_test_id("add-images-close").click()
    expect(page.get_by_test_id("tile")).to_have_count(3, timeout=15_000)
    assert len(entries(api, arn)) == 3


def test_hostile_names_are_shown_as_text(
    signed_in: Page, console: RunningConsoleStack, api: ApiClient
) -> None:
    project, project_arn = create_project(api, "hostile")
    upload(
        api,
        {"NewDataset": {"ProjectArn": project_arn, "DatasetType": "TRAIN"}},
        [(f"{HOSTILE_NAME}.jpg", image())],
        [[HOSTILE_LABEL]],
    )
    page = signed_in
    dialogs = watch_dialogs(page)
    page.goto(f"{console.url}/projects/{project}/datasets/train")
    tile = page.get_by_test_id("tile")
    expect(tile.get_by_test_id("tile-label")).to_have_text(HOSTILE_LABEL)
    expect(tile.locator(".ds-tile-name")).to_have_text(f"{HOSTILE_NAME}.jpg")
    expect(page.locator("[data-testid=label-filter]", has_text=HOSTILE_LABEL)).to_be_visible()
    expect(page.locator("img[src='x'], script:text('alert(1)')")).to_have_count(0)
    assert dialogs == []
