"""`is_dashboard(method, path)`: the only requests besides OPEN_PATHS served without a token."""

import pytest

from hearth.api.app import is_dashboard


@pytest.mark.parametrize(
    "path", ["/", "/ui/app.js", "/ui/style.css", "/ui/vendor/uPlot.iife.min.js"]
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_page_and_its_files_are_open(method, path):
    assert is_dashboard(method, path)


@pytest.mark.parametrize(
    "path",
    [
        "",
        "//",
        "/ui",
        "/ui/",
        "/ui//app.js",
        "/ui/./app.js",
        "/ui/../v1/functions",
        "/ui/vendor/../../v1/tokens",
        "/uix/app.js",
        "/v1/functions",
        "/v1/ui/app.js",
        "/docs/",
        "/index.html",
    ],
)
def test_nothing_else_is(path):
    assert not is_dashboard("GET", path)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_only_reads_are_open(method):
    assert not is_dashboard(method, "/")
    assert not is_dashboard(method, "/ui/app.js")
