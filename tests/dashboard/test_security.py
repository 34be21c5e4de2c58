"""Security headers on the real mounted dashboard's responses: a strict CSP, no inline script anywhere in
the markup (checked on a page full of real telemetry)."""

from __future__ import annotations

from html.parser import HTMLParser
from importlib.resources import files

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from pgotel.config import PgotelSettings
from pgotel.dashboard import mount
from tests.dashboard.conftest import API, PAGE, TOKEN, login

BEARER = {"Authorization": f"Bearer {TOKEN}"}


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        (PAGE, BEARER, 200),
        (f"{PAGE}/login", {}, 200),
        (f"{PAGE}/fragments/kpis", BEARER, 200),
        (f"{API}/summary", BEARER, 200),
        (f"{API}/summary", {}, 401),
        (PAGE, {}, 303),
        (f"{API}/summary?period_hours=0", BEARER, 422),
        (f"{PAGE}/static/dashboard.js", {}, 200),
    ],
)
def test_every_dashboard_response_carries_a_strict_csp(
    dashboard: TestClient, path: str, headers: dict[str, str], status: int
) -> None:
    response = dashboard.get(path, headers=headers)
    assert response.status_code == status
    csp = csp_directives(response.headers["content-security-policy"])
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]
    assert "unsafe" not in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["x-frame-options"] == "DENY"


def test_telemetry_responses_are_not_cached_and_assets_are(dashboard: TestClient) -> None:
    assert dashboard.get(f"{API}/summary", headers=BEARER).headers["cache-control"] == "no-store"
    assert dashboard.get(PAGE, headers=BEARER).headers["cache-control"] == "no-store"
    assert "max-age" in dashboard.get(f"{PAGE}/static/vendor/htmx.min.js").headers["cache-control"]


def test_host_app_routes_are_left_alone(settings: PgotelSettings) -> None:
    app = FastAPI()

    @app.get("/host/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    mount(app, settings)
    with TestClient(app) as client:
        response = client.get("/host/hello")
        assert response.status_code == 200
        assert "content-security-policy" not in response.headers
        assert "x-frame-options" not in response.headers
        assert "content-security-policy" in client.get(f"{API}/summary", headers=BEARER).headers


class _InlineCodeFinder(HTMLParser):
    """Collects what a strict CSP would block: inline scripts, event-handler and style attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.script_srcs: list[str] = []
        self.violations: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        for name in names:
            if name.startswith("on") or name == "style" or name.startswith("hx-on"):
                self.violations.append(f"<{tag} {name}>")
        if tag == "script":
            self._in_script = True
            if names.get("src"):
                self.script_srcs.append(str(names["src"]))
            else:
                self.violations.append("<script> without src")
        if tag == "style":
            self.violations.append("<style>")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False if tag == "script" else self._in_script

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.violations.append("inline script body")


@pytest.mark.parametrize("path", [PAGE, f"{PAGE}/login"])
def test_markup_has_no_inline_code(shop: PgotelSettings, dashboard: TestClient, path: str) -> None:
    if path == PAGE:
        login(dashboard)  # and only then: a logged-in browser asking for the login form is redirected
    response = dashboard.get(path)
    assert response.status_code == 200
    finder = _InlineCodeFinder()
    finder.feed(response.text)
    assert finder.violations == []
    if path == PAGE:
        assert 'id="endpoints-table"' in response.text  # the shop's rows, its hotspots too
        assert "ValueError <b>" in response.text
        assert [src.split("?")[0] for src in finder.script_srcs] == [
            f"{PAGE}/static/vendor/htmx.min.js",
            f"{PAGE}/static/vendor/echarts.min.js",
            f"{PAGE}/static/dashboard.js",
        ]


def test_htmx_is_configured_for_a_strict_csp(dashboard: TestClient) -> None:
    login(dashboard)
    page = dashboard.get(PAGE).text
    assert '"allowEval": false' in page
    assert '"includeIndicatorStyles": false' in page
    assert '"allowScriptTags": false' in page


def test_vendored_assets_are_served_and_keep_their_license_headers(dashboard: TestClient) -> None:
    htmx = dashboard.get(f"{PAGE}/static/vendor/htmx.min.js")
    echarts = dashboard.get(f"{PAGE}/static/vendor/echarts.min.js")
    assert htmx.status_code == echarts.status_code == 200
    assert "0BSD" in htmx.text[:200]
    assert "Apache License, Version 2.0" in echarts.text[:1000]
    assert "javascript" in htmx.headers["content-type"]


def test_dashboard_script_never_writes_markup() -> None:
    script = (files("pgotel.dashboard") / "static" / "dashboard.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script
