"""Small images, datasets and browser gestures shared by the console's dataset and labeling tests."""

from __future__ import annotations

import base64
import io
import json
import time
import uuid
from typing import Any

from PIL import Image, ImageDraw
from playwright.sync_api import Page

from tests.console.conftest import ApiClient

HOSTILE_LABEL = "<script>alert(1)</script>"
HOSTILE_NAME = '"><img src=x onerror=alert(1)>'


def image(width: int = 96, height: int = 72, seed: int = 0, kind: str = "JPEG") -> bytes:
    """A small picture (a coloured square on a grey ground) that passes the dataset service's checks."""
    picture = Image.new("RGB", (width, height), (90 + seed * 37 % 120, 110, 130))
    side = max(8, min(width, height) // 3)
    x, y = (seed * 13) % max(1, width - side), (seed * 7) % max(1, height - side)
    ImageDraw.Draw(picture).rectangle((x, y, x + side, y + side), fill=((seed * 53) % 255, 200, 60))
    out = io.BytesIO()
    picture.save(out, kind, quality=85) if kind == "JPEG" else picture.save(out, kind)
    return out.getvalue()


def name(prefix: str) -> str:
    """A unique project name."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_project(api: ApiClient, prefix: str) -> tuple[str, str]:
    """A new project: (name, ARN)."""
    project = name(prefix)
    return project, api.ok("CreateProject", {"ProjectName": project})["ProjectArn"]


def wait_dataset(api: ApiClient, arn: str, timeout: float = 60) -> dict[str, Any]:
    """The dataset's description once no import or update runs."""
    deadline = time.monotonic() + timeout
    while True:
        description = api.ok("DescribeDataset", {"DatasetArn": arn})["DatasetDescription"]
        if "IN_PROGRESS" not in description["Status"]:
            return description
        assert time.monotonic() < deadline, description
        time.sleep(0.2)


def upload(
    api: ApiClient,
    target: dict[str, Any],
    files: list[tuple[str, bytes]],
    labels: list[list[str]] | None = None,
) -> str:
    """Uploads files through /api/upload and waits for the import; returns the dataset's ARN."""
    response = api.http.post(
        "/api/upload",
        headers={"X-CSRF-Token": api.csrf},
        data={"target": json.dumps(target), "labels": json.dumps(labels or [[] for _ in files])},
        files=[("files", (file_name, data, "image/jpeg")) for file_name, data in files],
    )
    assert response.status_code == 200, response.text
    arn = response.json()["DatasetArn"]
    wait_dataset(api, arn)
    return arn


def entries(api: ApiClient, arn: str, **filters: Any) -> list[dict[str, Any]]:
    """Every entry of a dataset, parsed, in the service's order."""
    out: list[dict[str, Any]] = []
    token = None
    while True:
        page = api.ok(
            "ListDatasetEntries", {"DatasetArn": arn, **filters, **({"NextToken": token} if token else {})}
        )
        out += [json.loads(line) for line in page["DatasetEntries"]]
        token = page.get("NextToken")
        if not token:
            return out


def image_labels(entry: dict[str, Any]) -> set[str]:
    """The image-level labels of a parsed entry."""
    return {
        value["class-name"]
        for key, value in entry.items()
        if key.endswith("-metadata")
        and isinstance(value, dict)
        and value.get("type") == "groundtruth/image-classification"
    }


def boxes(entry: dict[str, Any]) -> list[tuple[str, int, int, int, int]]:
    """The boxes of a parsed entry: (label, left, top, width, height)."""
    out = []
    for key, value in entry.items():
        meta = entry.get(f"{key}-metadata")
        if isinstance(meta, dict) and meta.get("type") == "groundtruth/object-detection":
            for box in value["annotations"]:
                out.append(
                    (
                        meta["class-map"][str(box["class_id"])],
                        box["left"],
                        box["top"],
                        box["width"],
                        box["height"],
                    )
                )
    return out


def fake_drop(page: Page, files: list[tuple[str, bytes]], selector: str = "[data-testid=drop-zone]") -> None:
    """Drops files and folders on the drop zone as the browser does: DataTransfer items whose
    webkitGetAsEntry() yields directory and file entries (folders are read with readEntries)."""
    specs = [{"path": path, "data": base64.b64encode(data).decode()} for path, data in files]
    page.evaluate(
        """([selector, specs]) => {
          const root = { children: new Map() };
          for (const spec of specs) {
            const parts = spec.path.split("/");
            let node = root;
            parts.forEach((part, i) => {
              const path = parts.slice(0, i + 1).join("/");
              if (!node.children.has(part)) node.children.set(part, { path, name: part, children: new Map(), spec: null });
              node = node.children.get(part);
            });
            node.spec = spec;
          }
          const entry = (node) => {
            if (node.spec) {
              const bytes = Uint8Array.from(atob(node.spec.data), (c) => c.charCodeAt(0));
              const file = new File([bytes], node.name, { type: "image/jpeg" });
              return { isFile: true, isDirectory: false, name: node.name, fullPath: "/" + node.path, file: (ok) => ok(file) };
            }
            const children = [...node.children.values()].map(entry);
            return {
              isFile: false, isDirectory: true, name: node.name, fullPath: "/" + node.path,
              createReader: () => {
                let given = 0;
                // Two answers and then an empty one, as readEntries gives large folders in pieces.
                return { readEntries: (ok) => {
                  const piece = children.slice(given, given + Math.max(1, Math.ceil(children.length / 2)));
                  given += piece.length;
                  setTimeout(() => ok(piece), 0);
                } };
              },
            };
          };
          const transfer = new DataTransfer();
          const items = [...root.children.values()].map((node) => ({
            kind: "file", webkitGetAsEntry: () => entry(node), getAsFile: () => null,
          }));
          Object.defineProperty(transfer, "items", { value: items });
          const zone = document.querySelector(selector);
          zone.dispatchEvent(new DragEvent("dragover", { bubbles: true, cancelable: true, dataTransfer: transfer }));
          zone.dispatchEvent(new DragEvent("drop", { bubbles: true, cancelable: true, dataTransfer: transfer }));
        }""",
        [selector, specs],
    )


def watch_dialogs(page: Page) -> list[str]:
    """Records (and dismisses) every JavaScript dialog the page opens: an alert() means injected script ran."""
    seen: list[str] = []

    def on_dialog(dialog: Any) -> None:
        seen.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return seen
