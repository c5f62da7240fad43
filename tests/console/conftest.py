"""The console in front of real services, and a real browser (Debian's chromium driven by Playwright).

- `console` (module): the module's services (tests/conftest.py `stack`: own database and buckets,
  serving on the session's Triton), a training worker and the console in-process on a free port.
- `browser` (session): headless chromium from CUSTOMLABELS_CHROMIUM (default /usr/bin/chromium),
  started with the flags this closed network needs; Playwright never downloads a browser.
- `page` (function): a fresh browser context (no cookies), failing loudly on page errors.
- `signed_in` (function): a page signed in through the sign-in form.
- `shoot(page, name)`: a screenshot under build/screenshots/ (emptied at the start of the session);
  the README's screenshots are copied from there (`make screenshots`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from scripts.console_stack import CHROMIUM_FLAGS, ConsoleClient, RunningConsoleStack, console_on
from scripts.inprocess import LocalServices, training_worker
from services.console.config import DEFAULT_STATIC_DIR

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "build" / "screenshots"
TIMEOUT_MS = 30_000


@pytest.fixture(scope="session", autouse=True)
def _screenshots() -> None:
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="module")
def console(stack: LocalServices, database_url: str) -> Iterator[RunningConsoleStack]:
    """The console (and a training worker) in front of the module's services."""
    static = Path(os.environ.get("CUSTOMLABELS_CONSOLE_STATIC_DIR") or DEFAULT_STATIC_DIR)
    if not (static / "index.html").is_file():
        pytest.fail(f"the console's web application is not built in {static}: run `make install`")
    with training_worker(stack, database_url), console_on(stack, database_url) as running:
        yield running


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless chromium for the session."""
    executable = os.environ.get("CUSTOMLABELS_CHROMIUM", "/usr/bin/chromium")
    if not Path(executable).exists():
        pytest.fail(f"no chromium at {executable}: install Debian's chromium package (.ci/run does)")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh context (its own cookies); uncaught page errors fail the test."""
    context = browser.new_context(viewport={"width": 1360, "height": 900}, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def sign_in(page: Page, console: RunningConsoleStack, path: str = "/projects") -> None:
    """Signs in through the form and lands on `path`."""
    page.goto(console.url + path)
    page.fill("input[name=access_key_id]", console.access_key_id)
    page.fill("input[name=secret_access_key]", console.secret_access_key)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{path}")


@pytest.fixture
def signed_in(page: Page, console: RunningConsoleStack) -> Page:
    """A page signed in to the console, on the projects list."""
    sign_in(page, console)
    page.wait_for_selector("h1:has-text('Projects')")
    return page


@pytest.fixture
def shoot() -> Callable[[Page, str], Path]:
    """`shoot(page, name)` saves a full-page screenshot as build/screenshots/<name>.png."""

    def take(page: Page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


ApiClient = ConsoleClient


@pytest.fixture(scope="module")
def api(console: RunningConsoleStack) -> Iterator[ConsoleClient]:
    """A signed-in HTTP client of the console."""
    client = ConsoleClient(console)
    yield client
    client.close()
