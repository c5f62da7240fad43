"""Sign-in, sessions and CSRF of the console: what has no session, a wrong key, an expired session or
no CSRF token is refused with AWS's exception name, and nothing changes or leaks."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page

from scripts.console_stack import RunningConsoleStack, console_on
from scripts.inprocess import LocalServices
from tests.console.conftest import ApiClient, sign_in


def _signin(http: httpx.Client, key_id: str, secret: str, **extra: str) -> httpx.Response:
    http.get("/signin")
    return http.post(
        "/signin",
        data={
            "access_key_id": key_id,
            "secret_access_key": secret,
            "csrf": http.cookies.get("cl_signin") or "",
            "next": "/projects",
            **extra,
        },
    )


@pytest.fixture
def anonymous(console: RunningConsoleStack) -> Iterator[httpx.Client]:
    """An HTTP client without a session."""
    with httpx.Client(base_url=console.url, follow_redirects=False, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def short_sessions(stack: LocalServices, database_url: str) -> Iterator[RunningConsoleStack]:
    """A second console whose sessions end after 1 s idle."""
    with console_on(stack, database_url, CUSTOMLABELS_CONSOLE_SESSION_IDLE_S="1") as running:
        yield running


@pytest.fixture
def strict_sign_in(stack: LocalServices, database_url: str) -> Iterator[RunningConsoleStack]:
    """A console that refuses sign-ins from an address after 3 failures (its own failure counts)."""
    with console_on(stack, database_url, CUSTOMLABELS_CONSOLE_SIGNIN_MAX_FAILURES="3") as running:
        yield running


@pytest.mark.parametrize("path", ["/", "/projects", "/projects/x/models/y", "/assets/index.js"])
def test_pages_without_a_session_go_to_the_sign_in_page(anonymous: httpx.Client, path: str) -> None:
    response = anonymous.get(path)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/signin?next=")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/session"),
        ("POST", "/api/op/DescribeProjects"),
        ("POST", "/api/upload"),
        ("GET", "/api/image?key=sha256/00/" + "0" * 64 + "&size=256"),
        ("GET", "/api/files?version=x&file=summary"),
    ],
)
def test_the_api_without_a_session_is_refused(anonymous: httpx.Client, method: str, path: str) -> None:
    response = anonymous.request(method, path, json={} if method == "POST" else None)
    assert response.status_code == 401
    assert response.json()["__type"] == "MissingAuthenticationTokenException"


def test_a_wrong_secret_is_refused_with_the_aws_name(
    anonymous: httpx.Client, console: RunningConsoleStack
) -> None:
    response = _signin(anonymous, console.access_key_id, "not-the-secret")
    assert response.status_code == 401
    assert "UnrecognizedClientException" in response.text
    assert "cl_session" not in response.headers.get("set-cookie", "")


def test_an_unknown_key_gets_the_same_answer_as_a_wrong_secret(
    anonymous: httpx.Client, console: RunningConsoleStack
) -> None:
    wrong_secret = _signin(anonymous, console.access_key_id, "not-the-secret")
    unknown_key = _signin(anonymous, "AKCLNOSUCHKEY0000000", console.secret_access_key)
    assert unknown_key.status_code == wrong_secret.status_code == 401
    message = re.compile(r"<span>(.*?)</span>", re.S)
    assert message.findall(unknown_key.text) == message.findall(wrong_secret.text)


def test_a_sign_in_form_not_sent_by_the_page_is_refused(
    anonymous: httpx.Client, console: RunningConsoleStack
) -> None:
    response = anonymous.post(
        "/signin",
        data={
            "access_key_id": console.access_key_id,
            "secret_access_key": console.secret_access_key,
            "csrf": "x",
        },
    )
    assert response.status_code == 403 and "AccessDeniedException" in response.text
    assert "cl_session" not in response.headers.get("set-cookie", "")


def test_the_session_cookie_is_http_only_and_same_site(
    anonymous: httpx.Client, console: RunningConsoleStack
) -> None:
    response = _signin(anonymous, console.access_key_id, console.secret_access_key)
    assert response.status_code == 303 and response.headers["location"] == "/projects"
    cookie = response.headers["set-cookie"].lower()
    assert (
        "cl_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    )
    assert "secure" not in cookie  # plain HTTP here


def test_behind_an_https_proxy_the_cookie_is_secure(
    anonymous: httpx.Client, console: RunningConsoleStack
) -> None:
    anonymous.headers["X-Forwarded-Proto"] = "https"
    response = _signin(anonymous, console.access_key_id, console.secret_access_key)
    assert "secure" in response.headers["set-cookie"].lower()


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "/signin"]
)
def test_sign_in_never_redirects_off_site(
    anonymous: httpx.Client, console: RunningConsoleStack, target: str
) -> None:
    response = _signin(anonymous, console.access_key_id, console.secret_access_key, next=target)
    assert response.status_code == 303 and response.headers["location"] == "/"


def test_a_change_without_the_csrf_token_is_refused_and_nothing_is_created(
    api: ApiClient, unique: str
) -> None:
    for headers in ({}, {"X-CSRF-Token": "forged"}):
        response = api.http.post(
            "/api/op/CreateProject", json={"ProjectName": f"csrf-{unique}"}, headers=headers
        )
        assert response.status_code == 403
        assert response.json()["__type"] == "AccessDeniedException"
    found = api.ok("DescribeProjects", {"ProjectNames": [f"csrf-{unique}"]})
    assert found["ProjectDescriptions"] == []


def test_an_upload_without_the_csrf_token_is_refused(api: ApiClient) -> None:
    response = api.http.post("/api/upload", files={"files": ("a.png", b"x")}, data={"target": "{}"})
    assert response.status_code == 403 and response.json()["__type"] == "AccessDeniedException"


def test_signing_out_ends_the_session(console: RunningConsoleStack) -> None:
    client = ApiClient(console)
    try:
        assert client.http.get("/api/session").status_code == 200
        cookie = client.http.cookies.get("cl_session")
        response = client.http.post("/signout", headers={"X-CSRF-Token": client.csrf})
        assert response.status_code == 303
        replay = httpx.get(f"{console.url}/api/session", cookies={"cl_session": cookie or ""})
        assert replay.status_code == 401 and replay.json()["__type"] == "MissingAuthenticationTokenException"
    finally:
        client.close()


def test_an_idle_session_expires(short_sessions: RunningConsoleStack) -> None:
    client = ApiClient(short_sessions)
    try:
        time.sleep(1.3)
        response = client.http.get("/api/session")
        assert response.status_code == 401 and response.json()["__type"] == "ExpiredTokenException"
        # Gone for good: the next request has no session at all.
        assert client.http.get("/api/session").json()["__type"] == "MissingAuthenticationTokenException"
    finally:
        client.close()


def test_repeated_failed_sign_ins_are_throttled(strict_sign_in: RunningConsoleStack) -> None:
    with httpx.Client(base_url=strict_sign_in.url, timeout=30) as http:
        for _ in range(3):
            assert _signin(http, strict_sign_in.access_key_id, "guess").status_code == 401
        # Even the right secret waits now: guessing at speed is not possible.
        response = _signin(http, strict_sign_in.access_key_id, strict_sign_in.secret_access_key)
        assert response.status_code == 429 and "ThrottlingException" in response.text


def test_the_api_token_never_reaches_the_browser(api: ApiClient, api_token: str) -> None:
    token = api_token
    index = api.http.get("/projects")
    bodies = [index.text, api.http.get("/api/session").text, api.op("DescribeProjects", {}).text]
    for asset in re.findall(r'(?:src|href)="(/assets/[^"]+)"', index.text):
        bodies.append(api.http.get(asset).text)
    assert len(bodies) >= 4
    assert all(token not in body for body in bodies)
    assert token not in str(index.headers)


def test_responses_carry_the_security_headers(api: ApiClient) -> None:
    response = api.http.get("/projects")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


def test_internal_and_unknown_operations_are_not_served(api: ApiClient) -> None:
    for name in ("GetProject", "ExportDatasetEntries", "UpdateVersionStatus", "NoSuchThing"):
        response = api.op(name, {})
        assert response.status_code == 400 and response.json()["__type"] == "UnknownOperationException", name


def test_bad_bodies_get_aws_errors(api: ApiClient, console: RunningConsoleStack) -> None:
    headers = {"X-CSRF-Token": api.csrf, "Content-Type": "application/json"}
    broken = api.http.post("/api/op/DescribeProjects", content=b"{not json", headers=headers)
    assert broken.status_code == 400 and broken.json()["__type"] == "SerializationException"
    listed = api.http.post("/api/op/DescribeProjects", content=b"[1, 2]", headers=headers)
    assert listed.json()["__type"] == "SerializationException"
    wrong_type = api.op("DescribeProjects", {"MaxResults": "ten"})
    assert wrong_type.status_code == 400 and wrong_type.json()["__type"] == "InvalidParameterException"
    huge = api.http.post("/api/op/DescribeProjects", content=b" " * (9 * 1024 * 1024), headers=headers)
    assert huge.status_code == 413 and huge.json()["__type"] == "RequestEntityTooLargeException"


@pytest.mark.parametrize(
    "path", ["/assets/..%2f..%2fconfig.py", "/assets/%2e%2e/%2e%2e/app.py", "/static/../app.py"]
)
def test_paths_out_of_the_asset_folders_are_not_served(api: ApiClient, path: str) -> None:
    response = api.http.get(path)
    # 404, or the application's own page for a path that normalises to one of its routes.
    assert response.status_code == 404 or '<div id="root">' in response.text
    assert "ConsoleConfig" not in response.text and "import " not in response.text


def test_an_expired_session_in_the_browser_leads_back_to_sign_in(
    page: Page, short_sessions: RunningConsoleStack, shoot: object
) -> None:
    sign_in(page, short_sessions)
    page.wait_for_selector("h1:has-text('Projects')")
    time.sleep(1.3)
    page.click("[data-testid=create-project]")
    page.fill("[data-testid=project-name]", "after-expiry")
    page.click("[data-testid=create-project-submit]")
    page.wait_for_selector("[data-testid=signed-out]")
    assert "ExpiredTokenException" in page.inner_text("[data-testid=signed-out]")
    page.goto(short_sessions.url + "/projects")
    page.wait_for_url("**/signin?next=*")
    assert page.locator("input[name=access_key_id]").is_visible()


def test_sign_in_in_the_browser(page: Page, console: RunningConsoleStack, shoot: object) -> None:
    page.goto(console.url + "/projects/none")
    page.wait_for_url("**/signin?next=*")
    page.fill("input[name=access_key_id]", console.access_key_id)
    page.fill("input[name=secret_access_key]", "wrong")
    page.click("button[type=submit]")
    assert "UnrecognizedClientException" in page.inner_text("[data-testid=signin-error]")
    shoot(page, "signin-refused")  # type: ignore[operator]
    page.fill("input[name=secret_access_key]", console.secret_access_key)
    page.click("button[type=submit]")
    page.wait_for_url("**/projects/none")
    page.wait_for_selector("[data-testid=error]")
    page.click("[data-testid=sign-out]")
    page.wait_for_url("**/signin")


def test_a_30_mb_file_sent_around_the_page_is_refused_by_the_server(api: ApiClient, unique: str) -> None:
    project = api.ok("CreateProject", {"ProjectName": f"big-{unique}"})["ProjectArn"]
    huge = b"\xff\xd8\xff\xe0" + bytes(30 * 1024 * 1024)
    response = api.http.post(
        "/api/upload",
        headers={"X-CSRF-Token": api.csrf},
        data={"target": json.dumps({"NewDataset": {"ProjectArn": project, "DatasetType": "TRAIN"}})},
        files={"files": ("huge.jpg", huge, "image/jpeg")},
    )
    assert response.status_code == 200, response.text
    (outcome,) = response.json()["Images"]
    assert outcome["ErrorCode"] == "ImageTooLargeException" and "SourceRef" not in outcome
    # Nothing was sent on: no dataset was made for it.
    assert (
        api.ok("DescribeProjects", {"ProjectNames": [f"big-{unique}"]})["ProjectDescriptions"][0]["Datasets"]
        == []
    )
