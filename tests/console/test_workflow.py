"""The whole Custom Labels workflow in the browser, as a newcomer does it after `make demo`: sign in,
create a project, upload a folder of photos (sub-folders as labels), label two images and draw a box,
train, read the evaluation and the test results, start the model, try an image, stop, delete.

Its screenshots are the README's (build/screenshots/workflow-*.png; `make screenshots`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from scripts import samples
from scripts.console_stack import RunningConsoleStack
from tests.console.conftest import ApiClient

Shoot = Callable[[Page, str], Path]
TRAINED_MS = 240_000


def _folder(root: Path) -> samples.Sample:
    """circle/ and square/ photos to upload, two loose unlabeled ones; returns an unseen circle."""
    for sample in samples.classification(per_label=8, seed=31, shapes=("circle", "square")):
        folder = root / sample.labels[0]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / sample.file_name).write_bytes(sample.data)
    for index, sample in enumerate(samples.classification(per_label=2, seed=32, shapes=("circle",))):
        (root / f"unsorted_{index}.jpg").write_bytes(sample.data)
    return samples.classification(per_label=1, seed=34, shapes=("circle",))[0]


def _readme_shot(shoot: Shoot, page: Page, name: str) -> None:
    """A screenshot for the README: without the flash messages that come and go over the page."""
    page.add_style_tag(content=".flashes { display: none !important; }")
    shoot(page, name)


def _drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, steps=4)
    page.mouse.move(*end, steps=4)
    page.mouse.up()


def test_the_whole_workflow_in_the_browser(
    page: Page, console: RunningConsoleStack, api: ApiClient, shoot: Shoot, tmp_path: Path, unique: str
) -> None:
    unseen = _folder(tmp_path / "photos")
    name = f"workflow-{unique}"

    # Sign in.
    page.goto(console.url)
    page.wait_for_url("**/signin?next=*")
    page.fill("input[name=access_key_id]", console.access_key_id)
    page.fill("input[name=secret_access_key]", console.secret_access_key)
    _readme_shot(shoot, page, "workflow-1-sign-in")
    page.click("button[type=submit]")
    expect(page.get_by_role("heading", name="Projects")).to_be_visible()

    # Create a project.
    page.get_by_test_id("create-project").click()
    page.get_by_test_id("project-name").fill(name)
    page.get_by_test_id("create-project-submit").click()
    page.wait_for_url(f"**/projects/{name}")

    # One dataset from a folder of photos; training splits it.
    page.get_by_test_id("create-dataset").click()
    page.get_by_test_id("config-single").check()
    page.set_input_files("[data-testid=upload-train] [data-testid=folder-input]", str(tmp_path / "photos"))
    expect(page.get_by_test_id("upload-count")).to_contain_text("18 images to upload")
    _readme_shot(shoot, page, "workflow-2-create-dataset")
    page.get_by_test_id("create-dataset-submit").click()
    expect(page.get_by_test_id("upload-tally")).to_contain_text("18 accepted", timeout=60_000)
    expect(page.locator("[data-testid=dataset-status] [data-status$=_COMPLETE]")).to_be_visible(
        timeout=30_000
    )
    (dataset,) = api.ok("DescribeProjects", {"ProjectNames": [name]})["ProjectDescriptions"][0]["Datasets"]
    arn = dataset["DatasetArn"]

    # Label the two unlabeled images, then draw a box on one of them.
    page.goto(f"{console.url}/projects/{name}/datasets/train")
    page.get_by_test_id("show-unlabeled").click()
    tiles = page.get_by_test_id("tile")
    expect(tiles).to_have_count(2)
    page.get_by_test_id("start-labeling").click()
    tiles.nth(0).click()
    tiles.nth(1).click(modifiers=["Shift"])
    expect(page.get_by_test_id("selected-count")).to_contain_text("2 of 2 selected")
    page.locator("[data-testid=label-choice]", has_text="circle").click()
    page.get_by_test_id("assign-labels").click()
    tiles.nth(1).click()
    page.get_by_test_id("draw-boxes").click()
    image = page.locator("[data-testid=box-canvas] img")
    expect(image).to_be_visible()
    page.wait_for_function("() => document.querySelector('[data-testid=box-canvas] svg')")
    frame = image.bounding_box()
    assert frame
    _drag(
        page,
        (frame["x"] + frame["width"] * 0.2, frame["y"] + frame["height"] * 0.2),
        (frame["x"] + frame["width"] * 0.7, frame["y"] + frame["height"] * 0.8),
    )
    expect(page.get_by_test_id("box-row")).to_have_count(1)
    _readme_shot(shoot, page, "workflow-3-draw-box")
    page.get_by_test_id("box-done").click()
    expect(page.get_by_test_id("unsaved-count")).to_have_text("2 unsaved changes")
    page.get_by_test_id("save-changes").click()
    expect(page.get_by_test_id("unsaved-count")).to_have_text("0 unsaved changes")
    page.get_by_test_id("exit-labeling").click()
    page.get_by_test_id("show-all").click()
    expect(tiles).to_have_count(18)
    _readme_shot(shoot, page, "workflow-4-gallery")
    lines = [json.loads(line) for line in api.ok("ListDatasetEntries", {"DatasetArn": arn})["DatasetEntries"]]
    unsorted = [line for line in lines if "unsorted_" in line["source-ref"]]
    assert len(unsorted) == 2
    assert all(
        any(m.get("class-name") == "circle" for k, m in line.items() if k.endswith("-metadata"))
        for line in unsorted
    )
    boxed = [m for line in unsorted for k, m in line.items() if k.endswith("-metadata") and "class-map" in m]
    assert [list(m["class-map"].values()) for m in boxed] == [["circle"]]

    # Train (the name is made from the project and the time).
    page.goto(f"{console.url}/projects/{name}")
    page.get_by_test_id("train-model").click()
    version = page.get_by_test_id("version-name").input_value()
    assert version.startswith(name + ".")
    _readme_shot(shoot, page, "workflow-5-train")
    page.get_by_test_id("train-submit").click()
    page.get_by_test_id("train-confirm").click()
    page.wait_for_url(f"**/projects/{name}/models/{version}", timeout=90_000)
    summary = page.get_by_test_id("model-summary")
    expect(summary.locator("[data-status=TRAINING_COMPLETED]")).to_be_visible(timeout=TRAINED_MS)

    # The evaluation and the test results.
    expect(page.get_by_test_id("metric-f1")).to_be_visible()
    expect(page.get_by_test_id("confusion-matrix")).to_be_visible()
    _readme_shot(shoot, page, "workflow-6-evaluation")
    page.get_by_role("tab", name="Test results").click()
    expect(page.get_by_test_id("test-result").first).to_be_visible()
    _readme_shot(shoot, page, "workflow-7-test-results")

    # Start it, try an unseen image, stop it.
    page.get_by_role("tab", name="Use model").click()
    page.get_by_test_id("start-model").click()
    page.get_by_test_id("start-confirm").click()
    expect(page.get_by_test_id("hosting").locator("[data-status=RUNNING]")).to_be_visible(timeout=120_000)
    page.get_by_test_id("try-file").set_input_files(
        files=[{"name": unseen.file_name, "mimeType": "image/jpeg", "buffer": unseen.data}]
    )
    page.get_by_test_id("confidence-slider").fill("0")
    labels = page.get_by_test_id("detected-label")
    expect(labels.first).to_contain_text("circle")
    _readme_shot(shoot, page, "workflow-8-try-image")
    page.get_by_test_id("stop-model").click()
    page.get_by_test_id("confirm-input").fill("stop")
    page.get_by_test_id("confirm").click()
    expect(page.get_by_test_id("hosting").locator("[data-status=STOPPED]")).to_be_visible(timeout=60_000)

    # Delete the project with its datasets and model.
    page.goto(f"{console.url}/projects")
    page.get_by_role("button", name=f"Delete {name}").click()
    expect(page.get_by_test_id("project-contents")).to_contain_text("model")
    page.get_by_test_id("confirm-input").fill("delete")
    page.get_by_test_id("confirm").click()
    expect(page.get_by_test_id("flash").first).to_contain_text("is being deleted", timeout=90_000)
    _readme_shot(shoot, page, "workflow-9-projects")
    left = api.ok("DescribeProjects", {"ProjectNames": [name]})["ProjectDescriptions"]
    assert all(project["Status"] == "DELETING" for project in left)
