"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright, against
the real daemon. Login, the overview, a function's charts, instances and events, a rollback
that the API confirms, API errors shown, a revoked token back at the login."""

from __future__ import annotations

import shutil
import socket
from urllib.parse import urlsplit

import httpx
import pytest

V1 = 'def handle(request):\n    return "one"\n'
V2 = 'def handle(request):\n    return "two"\n'
# What the page shows of its charts: window.hearth.charts (uPlot), `.data[1]` the first line.
HAS_DATA = "name => (window.hearth.charts[name]?.data[1] ?? []).some(v => v > 0)"


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless; the tests that need it are skipped without it."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright for Python is missing: pip install -e '.[dev]'"
    )
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install -y chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh tab (its own sessionStorage); a script error on it fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    crashes: list[str] = []
    page.on("pageerror", lambda error: crashes.append(str(error)))
    yield page
    context.close()
    assert not crashes, crashes


@pytest.fixture(scope="module")
def two_versions(daemon, tmp_path_factory):
    """Function `dash` deployed twice (v2 serving), with 50 requests answered."""
    folder = tmp_path_factory.mktemp("dash") / "dash"
    folder.mkdir()
    (folder / "main.py").write_text(V1)
    daemon.deploy(folder)
    (folder / "main.py").write_text(V2)
    assert daemon.deploy(folder)["version"] == 2
    for _ in range(50):
        assert daemon.get("/fn/dash/").text == "two"
    return "dash"


def login(page, daemon, token: str) -> None:
    page.goto(daemon.api + "/")
    page.fill("input[name=token]", token)
    page.click("form.login button[type=submit]")


def raw_get(url: str, path: str) -> int:
    """The status of GET `path` sent as written (clients tidy `..` away before sending)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return int(sock.makefile("rb").readline().split()[1])


def test_only_the_dashboard_files_are_open(daemon):
    page = httpx.get(daemon.api + "/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    for asset in ("/ui/app.js", "/ui/style.css", "/ui/vendor/uPlot.iife.min.js"):
        assert httpx.get(daemon.api + asset).status_code == 200, asset
    for closed in ("/v1/functions", "/ui", "/ui/", "/ui/../v1/functions", "/ui/%2e%2e/v1/info"):
        assert raw_get(daemon.api, closed) == 401, closed
    assert httpx.post(daemon.api + "/").status_code == 401
    with daemon.api_client() as api:
        paths = api.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p == "/" or p.startswith("/ui")]


def test_a_bad_token_is_refused_at_the_login(page, daemon):
    login(page, daemon, "not-a-token")
    error = page.locator("form.login .error")
    error.wait_for()
    assert "Token refused" in error.inner_text()
    assert page.evaluate("sessionStorage.length") == 0
    assert page.locator("#main table").count() == 0


def test_a_function_seen_and_rolled_back(page, daemon, two_versions, tmp_path):
    name = two_versions
    login(page, daemon, daemon.token)
    page.locator("table.functions tbody tr", has_text=name).wait_for()
    page.wait_for_function(HAS_DATA, arg=f"spark:{name}")  # the overview's sparkline

    page.click(f"table.functions a:text-is('{name}')")
    page.wait_for_function(HAS_DATA, arg="rps")
    assert page.evaluate("Object.keys(window.hearth.charts).sort()") == [
        "errors",
        "instances",
        "latency",
        "rps",
    ]
    page.locator("table.instances tbody tr", has_text="ready").first.wait_for()
    page.locator("table.versions tbody tr.serving", has_text="v2").wait_for()
    page.locator("ol.events li.deploy", has_text="v2").wait_for()
    page.screenshot(path=tmp_path / "function.png", full_page=True)

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button.rollback")
    page.locator("#notice.info", has_text="now serves version 1").wait_for()
    with daemon.api_client() as api:
        described = api.get(f"/v1/functions/{name}").json()
    assert described["version"] == 1
    assert described["traffic"] == {"1": 100}
    assert daemon.get(f"/fn/{name}/").text == "one"
    page.locator("ol.events li.rollback").first.wait_for()
    page.screenshot(path=tmp_path / "rolled-back.png", full_page=True)

    page.click("#logout")
    page.locator("form.login").wait_for()
    assert page.evaluate("sessionStorage.length") == 0


def test_api_errors_are_shown_and_a_revoked_token_signs_out(page, daemon, two_versions):
    with daemon.api_client() as api:
        made = api.post("/v1/tokens", json={"scope": "read", "name": "dashboard test"}).json()
    login(page, daemon, made["token"])
    page.locator("table.functions").wait_for()
    page.goto(f"{daemon.api}/#/fn/{two_versions}")
    page.locator("table.instances tbody tr").first.wait_for()  # read once: forms filled in
    page.locator("form.scale input[name=min]").fill("2")
    page.click("form.scale button[type=submit]")
    notice = page.locator("#notice.error")
    notice.wait_for()
    assert "'read'" in notice.inner_text()  # the API's 403, word for word

    with daemon.api_client() as api:
        assert api.delete(f"/v1/tokens/{made['id']}").status_code == 200
    page.locator("form.login .error", has_text="Signed out").wait_for()
    assert page.evaluate("sessionStorage.length") == 0


def test_on_a_phone_the_tables_scroll_not_the_page(page, daemon, two_versions):
    page.set_viewport_size({"width": 390, "height": 844})
    login(page, daemon, daemon.token)
    page.locator("table.functions").wait_for()
    page.goto(f"{daemon.api}/#/fn/{two_versions}")
    page.locator("table.instances tbody tr").first.wait_for()
    page.wait_for_function(HAS_DATA, arg="rps")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
