"""Labeling in the console, in a real browser: managing labels, image-level labels on a shift-click
range, drawing, moving and deleting boxes (stored in natural pixels, also on a 4096 px image),
conflicts between two tabs, and never losing unsaved changes silently."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from scripts.console_stack import RunningConsoleStack
from tests.console.conftest import TIMEOUT_MS, ApiClient, sign_in
from tests.console.dataset_data import (
    HOSTILE_LABEL,
    HOSTILE_NAME,
    boxes,
    create_project,
    entries,
    image,
    image_labels,
    upload,
    watch_dialogs,
)

Shoot = Callable[[Page, str], Path]


def new_dataset(
    api: ApiClient, count: int, labels: list[str], size: tuple[int, int] = (320, 240)
) -> dict[str, str]:
    """A project whose training dataset holds `count` unlabeled images and declares `labels`."""
    project, project_arn = create_project(api, "label")
    arn = upload(
        api,
        {"NewDataset": {"ProjectArn": project_arn, "DatasetType": "TRAIN"}},
        [(f"img_{i:02d}.jpg", image(*size, seed=i)) for i in range(count)],
    )
    if labels:
        api.ok("AddLabels", {"DatasetArn": arn, "Labels": labels})
    return {"project": project, "arn": arn}


def open_dataset(page: Page, console: RunningConsoleStack, dataset: dict[str, str], count: int) -> None:
    page.goto(f"{console.url}/projects/{dataset['project']}/datasets/train")
    expect(page.get_by_test_id("tile")).to_have_count(count)
    page.get_by_test_id("start-labeling").click()


def save(page: Page) -> None:
    page.get_by_test_id("save-changes").click()
    expect(page.get_by_test_id("unsaved-count")).to_have_text("0 unsaved changes")


def drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, steps=4)
    page.mouse.move(*end, steps=4)
    page.mouse.up()


def natural(page: Page, point: tuple[float, float]) -> tuple[float, float]:
    """A screen point of the editor's image in the image's natural pixels."""
    img = page.locator("[data-testid=box-canvas] img")
    box = img.bounding_box()
    assert box
    width, height = img.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    return (point[0] - box["x"]) * width / box["width"], (point[1] - box["y"]) * height / box["height"]


def image_box(page: Page) -> dict[str, float]:
    img = page.locator("[data-testid=box-canvas] img")
    expect(img).to_be_visible()
    page.wait_for_function("() => document.querySelector('[data-testid=box-canvas] svg')")
    box = img.bounding_box()
    assert box
    return box


def expected_box(
    page: Page, start: tuple[float, float], end: tuple[float, float]
) -> tuple[int, int, int, int]:
    (x1, y1), (x2, y2) = natural(page, start), natural(page, end)
    left, top = round(min(x1, x2)), round(min(y1, y2))
    return left, top, round(max(x1, x2)) - left, round(max(y1, y2)) - top


def close_to(actual: tuple, expected: tuple, slack: int) -> bool:
    return all(abs(a - e) <= slack for a, e in zip(actual, expected, strict=True))


def test_manage_labels_adds_renames_deletes_refuses_long_and_used_ones_and_imports(
    signed_in: Page, console: RunningConsoleStack, api: ApiClient, shoot: Shoot
) -> None:
    dataset = new_dataset(api, 2, [])
    other = new_dataset(api, 1, ["from-other", "shared"])
    line = api.ok("ListDatasetEntries", {"DatasetArn": dataset["arn"]})["DatasetEntries"][0]
    entry = {"SourceRef": json.loads(line)["source-ref"], "Base": line, "Labels": ["used"], "Boxes": []}
    api.ok("SaveDatasetEntries", {"DatasetArn": dataset["arn"], "Entries": [entry]})
    page = signed_in
    dialogs = watch_dialogs(page)
    page.goto(f"{console.url}/projects/{dataset['project']}/datasets/train")
    page.get_by_test_id("manage-labels").click()
    new_label = page.get_by_test_id("new-label")
    for label in ("scratch", "dent", HOSTILE_LABEL):
        new_label.fill(label)
        page.get_by_test_id("add-label").click()
        expect(page.locator("[data-testid=label-row]", has_text=label)).to_be_visible()
    new_label.fill("x" * 300)
    expect(page.locator(".field-error")).to_have_text(
        "A label must be 1 to 255 characters long; this one has 300."
    )
    expect(page.get_by_test_id("add-label")).to_be_disabled()
    new_label.fill("")
    row = page.locator("[data-testid=label-row]", has_text="dent")
    row.get_by_test_id("rename-label").click()
    page.get_by_test_id("rename-input").fill("dent-deep")
    page.get_by_test_id("rename-save").click()
    expect(page.locator("[data-testid=label-row]", has_text="dent-deep")).to_be_visible()
    page.locator("[data-testid=label-row]", has_text="dent-deep").get_by_test_id("delete-label").click()
    expect(page.locator("[data-testid=label-row]", has_text="dent-deep")).to_have_count(0)
    page.locator("[data-testid=label-row]", has_text="used").get_by_test_id("delete-label").click()
    expect(page.get_by_test_id("error")).to_contain_text("ResourceInUseException")
    page.locator("select[data-testid=copy-source-labels]").select_option(
        label=f"{other['project']} / training"
    )
    page.get_by_test_id("import-labels").click()
    expect(page.locator("[data-testid=label-row]", has_text="from-other")).to_be_visible()
    shoot(page, "manage-labels")
    page.get_by_test_id("labels-done").click()
    names = [label["Name"] for label in api.ok("ListLabels", {"DatasetArn": dataset["arn"]})["Labels"]]
    assert sorted(names) == sorted([HOSTILE_LABEL, "from-other", "scratch", "shared", "used"])
    expect(page.locator("[data-testid=label-filter]", has_text=HOSTILE_LABEL)).to_be_visible()
    assert dialogs == []


def test_labels_assigned_to_a_shift_click_range_are_saved(
    signed_in: Page, console: RunningConsoleStack, api: ApiClient, shoot: Shoot
) -> None:
    dataset = new_dataset(api, 8, ["circle", "square", HOSTILE_NAME])
    page = signed_in
    dialogs = watch_dialogs(page)
    open_dataset(page, console, dataset, 8)
    tiles = page.get_by_test_id("tile")
    tiles.nth(1).click()
    tiles.nth(4).click(modifiers=["Shift"])
    expect(page.get_by_test_id("selected-count")).to_have_text("4 of 8 selected")
    tiles.nth(6).click(modifiers=["ControlOrMeta"])
    expect(page.get_by_test_id("selected-count")).to_have_text("5 of 8 selected")
    page.locator("[data-testid=label-choice]", has_text="circle").click()
    page.locator("[data-testid=label-choice]", has_text=HOSTILE_NAME).click()
    page.get_by_test_id("assign-labels").click()
    expect(page.get_by_test_id("unsaved-count")).to_have_text("5 unsaved changes")
    expect(tiles.nth(4).get_by_test_id("tile-labels")).to_contain_text(HOSTILE_NAME)
    shoot(page, "labeling-image-level")
    save(page)
    refs = [tiles.nth(i).get_attribute("data-ref") for i in range(8)]
    stored = {e["source-ref"]: image_labels(e) for e in entries(api, dataset["arn"])}
    assert [sorted(stored[ref]) for ref in refs] == [
        [],
        *[sorted(["circle", HOSTILE_NAME])] * 4,
        [],
        sorted(["circle", HOSTILE_NAME]),
        [],
    ]
    # Removing a label from one image keeps the other.
    tiles.nth(2).click()
    # The labels chosen for Assign stay chosen: leave only circle chosen, and remove it.
    page.locator("[data-testid=label-choice]", has_text=HOSTILE_NAME).click()
    page.get_by_test_id("remove-labels").click()
    save(page)
    stored_after = next(e for e in entries(api, dataset["arn"]) if e["source-ref"] == refs[2])
    assert image_labels(stored_after) == {HOSTILE_NAME}
    assert dialogs == []


def test_a_drawn_box_is_saved_in_pixels_and_the_delete_key_removes_it(
    signed_in: Page, console: RunningConsoleStack, api: ApiClient, shoot: Shoot
) -> None:
    dataset = new_dataset(api, 2, ["circle", "square"])
    page = signed_in
    open_dataset(page, console, dataset, 2)
    page.get_by_test_id("tile").first.click()
    ref = page.get_by_test_id("tile").first.get_attribute("data-ref")
    page.get_by_test_id("draw-boxes").click()
    box = image_box(page)
    start = (box["x"] + box["width"] * 0.1, box["y"] + box["height"] * 0.2)
    end = (box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.6)
    page.keyboard.press("2")
    drag(page, start, end)
    expect(page.get_by_test_id("box-row")).to_have_count(1)
    expected = expected_box(page, start, end)
    shoot(page, "labeling-boxes")
    page.get_by_test_id("box-done").click()
    expect(page.get_by_test_id("unsaved-count")).to_have_text("1 unsaved change")
    save(page)
    (entry,) = [e for e in entries(api, dataset["arn"]) if e["source-ref"] == ref]
    ((label, *pixels),) = boxes(entry)
    assert label == "square"
    assert close_to(tuple(pixels), expected, 1), (pixels, expected)
    # Select it again and delete it with the Delete key.
    page.get_by_test_id("draw-boxes").click()
    image_box(page)
    expect(page.get_by_test_id("box-row")).to_have_count(1)
    page.mouse.click((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
    expect(page.locator(".ds-box-row-selected")).to_have_count(1)
    page.keyboard.press("Delete")
    expect(page.get_by_test_id("box-row")).to_have_count(0)
    page.keyboard.press("d")
    save(page)
    (entry,) = [e for e in entries(api, dataset["arn"]) if e["source-ref"] == ref]
    assert boxes(entry) == []


def test_boxes_on_a_4096_pixel_image_are_stored_in_natural_pixels(
    signed_in: Page, console: RunningConsoleStack, api: ApiClient
) -> None:
    dataset = new_dataset(api, 1, ["part"], size=(4096, 3072))
    page = signed_in
    open_dataset(page, console, dataset, 1)
    page.get_by_test_id("tile").first.click()
    page.get_by_test_id("draw-boxes").click()
    box = image_box(page)
    assert box["width"] < 4096 / 3, "the image must be shown scaled down"
    canvas = page.get_by_test_id("box-canvas")
    assert canvas.get_attribute("data-natural-width") == "4096"
    start = (box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.25)
    end = (box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.5)
    drag(page, start, end)
    expect(page.get_by_test_id("box-row")).to_have_count(1)
    expected = expected_box(page, start, end)
    assert expected[0] > 900 and expected[2] > 1800, expected
    page.keyboard.press("d")
    save(page)
    ((label, *pixels),) = boxes(entries(api, dataset["arn"])[0])
    # One screen pixel is about 4096 / width image pixels.
    assert close_to(tuple(pixels), expected, round(4096 / box["width"]) + 1), (pixels, expected)
    assert label == "part"


def test_a_box_dragged_outside_the_image_is_clamped_to_it(
    signed_in: Page, console: RunningConsoleStack, api: ApiClient
) -> None:
    dataset = new_dataset(api, 1, ["part"])
    page = signed_in
    open_dataset(page, console, dataset, 1)
    page.get_by_test_id("tile").first.click()
    page.get_by_test_id("draw-boxes").click()
    box = image_box(page)
    start = (box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.3)
    end = (box["x"] + box["width"] * 0.8, box["y"] + box["height"] * 0.6)
    drag(page, start, end)
    expect(page.get_by_test_id("box-row")).to_have_count(1)
    # The new box is selected: drag it by its middle far past the image's right and bottom edges.
    middle = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
    drag(page, middle, (box["x"] + box["width"] * 1.4, box["y"] + box["height"] * 1.3))
    drawn = expected_box(page, start, end)
    page.keyboard.press("d")
    save(page)
    # Moved back inside, its size unchanged.
    ((_, left, top, width, height),) = boxes(entries(api, dataset["arn"])[0])
    assert (left + width, top + height) == (320, 240), (left, top, width, height)
    assert close_to((width, height), drawn[2:], 1), (width, height, drawn)


def test_an_image_needs_a_label_before_boxes_can_be_drawn(
    signed_in: Page, console: RunningConsoleStack, api: ApiClient
) -> None:
    dataset = new_dataset(api, 1, [])
    page = signed_in
    open_dataset(page, console, dataset, 1)
    page.get_by_test_id("tile").first.click()
    page.get_by_test_id("draw-boxes").click()
    box = image_box(page)
    expect(page.get_by_text("Add a label first")).to_be_visible()
    drag(page, (box["x"] + 20, box["y"] + 20), (box["x"] + 120, box["y"] + 90))
    expect(page.get_by_test_id("box-row")).to_have_count(0)
    page.get_by_test_id("box-manage-labels").click()
    page.get_by_test_id("new-label").fill("first")
    page.get_by_test_id("add-label").click()
    page.get_by_test_id("labels-done").click()
    drag(page, (box["x"] + 20, box["y"] + 20), (box["x"] + 120, box["y"] + 90))
    expect(page.get_by_test_id("box-row")).to_have_count(1)
    expect(page.get_by_test_id("box-row")).to_contain_text("first")


def test_two_tabs_saving_the_same_image_the_second_gets_a_conflict(
    browser: Browser, console: RunningConsoleStack, api: ApiClient
) -> None:
    dataset = new_dataset(api, 2, ["first-tab", "second-tab"])
    pages = []
    for _ in range(2):
        context = browser.new_context(viewport={"width": 1360, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        sign_in(page, console)
        open_dataset(page, console, dataset, 2)
        pages.append(page)
    try:
        for page, label in zip(pages, ["first-tab", "second-tab"], strict=True):
            page.get_by_test_id("tile").first.click()
            page.locator("[data-testid=label-choice]", has_text=label).click()
            page.get_by_test_id("assign-labels").click()
        first, second = pages
        save(first)
        second.get_by_test_id("save-changes").click()
        error = second.get_by_test_id("save-error")
        expect(error).to_contain_text("ConflictException")
        expect(error).to_contain_text("changed since this page loaded it")
        expect(second.get_by_test_id("unsaved-count")).to_have_text("1 unsaved change")
        ref = first.get_by_test_id("tile").first.get_attribute("data-ref")
        (entry,) = [e for e in entries(api, dataset["arn"]) if e["source-ref"] == ref]
        assert image_labels(entry) == {"first-tab"}
        second.get_by_test_id("reload-conflicts").click()
        expect(second.get_by_test_id("unsaved-count")).to_have_text("0 unsaved changes")
        expect(second.get_by_test_id("tile").first.get_by_test_id("tile-labels")).to_have_text("first-tab")
    finally:
        for page in pages:
            page.context.close()


def test_unsaved_changes_are_never_dropped_without_asking(
    signed_in: Page, console: RunningConsoleStack, api: ApiClient
) -> None:
    dataset = new_dataset(api, 3, ["keep"])
    page = signed_in
    open_dataset(page, console, dataset, 3)
    page.get_by_test_id("tile").first.click()
    page.locator("[data-testid=label-choice]", has_text="keep").click()
    page.get_by_test_id("assign-labels").click()
    expect(page.get_by_test_id("unsaved-count")).to_have_text("1 unsaved change")
    leave = page.get_by_test_id("leave-message")
    # A link elsewhere in the console: asked, and Stay keeps everything.
    page.locator(".crumbs a", has_text=dataset["project"]).click()
    expect(leave).to_have_text("Leave and discard 1 unsaved change?")
    page.get_by_test_id("leave-stay").click()
    expect(page.get_by_test_id("unsaved-count")).to_have_text("1 unsaved change")
    # Filters, Exit and the Test tab ask too.
    page.get_by_test_id("show-unlabeled").click()
    expect(leave).to_be_visible()
    page.get_by_test_id("leave-stay").click()
    page.get_by_test_id("exit-labeling").click()
    expect(leave).to_be_visible()
    page.get_by_test_id("leave-stay").click()
    page.get_by_role("tab", name="Test").click()
    expect(leave).to_be_visible()
    page.get_by_test_id("leave-discard").click()
    page.wait_for_url("**/datasets/test")
    expect(page.get_by_test_id("create-missing")).to_be_visible()
    assert all(not image_labels(e) for e in entries(api, dataset["arn"]))


def test_next_image_keys_walk_through_the_selected_images(
    signed_in: Page, console: RunningConsoleStack, api: ApiClient
) -> None:
    dataset = new_dataset(api, 3, ["a", "b"])
    page = signed_in
    open_dataset(page, console, dataset, 3)
    page.get_by_test_id("select-all").click()
    page.get_by_test_id("draw-boxes").click()
    position = page.get_by_test_id("box-editor-position")
    expect(position).to_have_text("Image 1 of 3")
    image_box(page)
    page.keyboard.press("n")
    expect(position).to_have_text("Image 2 of 3")
    page.keyboard.press("ArrowLeft")
    expect(position).to_have_text("Image 1 of 3")
    page.keyboard.press("ArrowRight")
    page.get_by_test_id("box-next").click()
    expect(position).to_have_text("Image 3 of 3")
    page.keyboard.press("n")
    expect(page.get_by_test_id("box-editor")).to_have_count(0)


def test_a_refused_save_shows_the_reason_and_keeps_the_changes(
    signed_in: Page, console: RunningConsoleStack, api: ApiClient
) -> None:
    dataset = new_dataset(api, 1, ["kept"])
    page = signed_in
    open_dataset(page, console, dataset, 1)
    page.get_by_test_id("tile").first.click()
    page.locator("[data-testid=label-choice]", has_text="kept").click()
    page.get_by_test_id("assign-labels").click()
    refusal = {
        "__type": "InvalidParameterException",
        "message": "s3://b/k.jpg: box 1 (kept) lies outside the 320×240 image",
    }
    page.route("**/api/op/SaveDatasetEntries", lambda route: route.fulfill(status=400, json=refusal))
    page.get_by_test_id("save-changes").click()
    error = page.get_by_test_id("save-error")
    expect(error).to_contain_text("InvalidParameterException")
    expect(error).to_contain_text("lies outside the 320×240 image")
    expect(page.get_by_test_id("reload-conflicts")).to_have_count(0)
    expect(page.get_by_test_id("unsaved-count")).to_have_text("1 unsaved change")
    page.unroute("**/api/op/SaveDatasetEntries")
    save(page)
    assert image_labels(entries(api, dataset["arn"])[0]) == {"kept"}


def test_the_server_refuses_a_box_outside_the_image_and_a_long_label_and_stores_nothing(
    api: ApiClient,
) -> None:
    dataset = new_dataset(api, 1, [])
    line = api.ok("ListDatasetEntries", {"DatasetArn": dataset["arn"]})["DatasetEntries"][0]
    ref = json.loads(line)["source-ref"]

    def save_entry(labels: list[str], box: dict) -> dict:
        entry = {"SourceRef": ref, "Base": line, "Labels": labels, "Boxes": [box]}
        response = api.op("SaveDatasetEntries", {"DatasetArn": dataset["arn"], "Entries": [entry]})
        assert response.status_code == 400, response.text
        return response.json()

    outside = save_entry([], {"Label": "part", "Left": 300, "Top": 10, "Width": 50, "Height": 20})
    assert outside["__type"] == "InvalidParameterException"
    assert "lies outside the 320×240 image" in outside["message"]
    long = save_entry(["x" * 300], {"Label": "part", "Left": 1, "Top": 1, "Width": 50, "Height": 20})
    assert long["__type"] == "InvalidParameterException"
    assert "1 to 255 characters long" in long["message"] and "has 300" in long["message"]
    assert api.ok("ListDatasetEntries", {"DatasetArn": dataset["arn"]})["DatasetEntries"] == [line]
