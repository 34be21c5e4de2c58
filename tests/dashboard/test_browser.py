"""The dashboard in headless Chromium (Debian's `chromium`, driven by Playwright) under its real CSP."""

from __future__ import annotations

import json
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, sync_playwright

from pgotel.dashboard._views import format_ms, format_pct
from tests.dashboard.conftest import TOKEN, FakeDashboardData, build_app, dashboard_settings, endpoint

pytestmark = pytest.mark.browser

PAGE = "/ui/monitoring/advanced"
API = "/api/monitoring/advanced"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
XSS_ROUTES = (
    "/<script>window.pwned=1</script>",
    '/x"><img src=x onerror="window.pwned=1;alert(1)">',
    '/q hx-get="/x" hx-trigger="load"',
)
XSS_ERROR_TYPE = '<img src=/x onerror="window.pwned=1">'


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's chromium is required: apt-get install -y chromium (.ci/run does it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class ServedApp:
    base_url: str
    server: uvicorn.Server
    thread: threading.Thread


def serve(app: FastAPI) -> ServedApp:
    """Run `app` with uvicorn on a free loopback port in a background thread; return once it listens."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    started = threading.Event()
    while not started.wait(0.05):
        if server.started:
            started.set()
        elif not thread.is_alive():
            raise RuntimeError("uvicorn failed to start; its error is logged above")
    return ServedApp(f"http://127.0.0.1:{port}", server, thread)


def stop(served: ServedApp) -> None:
    served.server.should_exit = True
    served.thread.join()


@dataclass
class Watch:
    """What the page did that it must not: dialogs, CSP violations, script errors, requests off-dashboard."""

    dialogs: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))
        page.on("console", lambda message: self.console.append(message.text))
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("request", lambda request: self.requests.append(request.url))

    def csp_violations(self) -> list[str]:
        return [text for text in self.console if "Content Security Policy" in text]


def open_dashboard(browser: Browser, base_url: str, token: str, watch: Watch) -> Page:
    page = browser.new_page(base_url=base_url, viewport={"width": 1440, "height": 900})
    watch.attach(page)
    page.goto(PAGE)
    assert page.url == f"{base_url}{PAGE}/login"
    page.fill("#token", "wrong-token")
    page.click("button[type=submit]")
    assert page.locator(".error").text_content() == "Wrong token."
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}{PAGE}")
    wait_for_charts(page, 1)
    return page


def wait_for_charts(page: Page, loads: int) -> None:
    page.wait_for_function(
        "(loads) => Number(document.getElementById('dashboard').dataset.chartsLoaded || 0) >= loads",
        arg=loads,
    )
    assert page.evaluate("document.getElementById('dashboard').dataset.chartsError") is None


def api_json(page: Page, path: str) -> Any:
    response = page.request.get(f"{API}{path}")
    assert response.ok, (path, response.status)
    return json.loads(response.text())


def series_lengths(page: Page, chart: str) -> list[int]:
    return page.evaluate(
        """(id) => echarts.getInstanceByDom(document.getElementById(id))
                     .getOption().series.map((s) => s.data.length)""",
        f"chart-{chart}",
    )


def minute_points(kind: str, minutes: int, scale: float) -> list[dict[str, Any]]:
    base = "2026-01-01T12:{:02d}:00+00:00"
    if kind == "latency":
        return [
            {"time": base.format(i), "p50_latency_ms": 10 * scale + i, "p95_latency_ms": 40 * scale + i,
             "p99_latency_ms": 90 * scale + i}
            for i in range(minutes)
        ]  # fmt: skip
    return [{"time": base.format(i), "request_count": 100 * scale, "error_count": i % 3} for i in range(minutes)]


@pytest.fixture
def populated() -> FakeDashboardData:
    data = FakeDashboardData()
    data.summaries[24] = {
        "api": {"request_count": 170_000, "requests_per_second": 1.97, "p95_latency_ms": 777.0,
                "p99_latency_ms": 1500.0, "error_count": 9000, "error_rate": 5.29},
        "postgres": {"connections_total": 9, "cache_hit_ratio": 98.0},
        "system": {"cpu_percent": 20.0, "memory_percent": 60.0},
    }  # fmt: skip
    for hours, minutes, scale in ((1, 60, 1.0), (24, 24, 3.0)):
        data.timeseries[("latency", hours)] = minute_points("latency", minutes, scale)
        data.timeseries[("requests", hours)] = minute_points("requests", minutes, scale)
    data.endpoint_rows.extend(endpoint(route, error_count=1, error_rate=1.0) for route in XSS_ROUTES)
    data.hotspot_rows.append(
        {"endpoint": XSS_ROUTES[2], "method": "GET", "error_count": 1, "error_rate": 1.0, "request_count": 100,
         "status_codes": {"500": 1}, "error_types": {XSS_ERROR_TYPE: 1}}
    )  # fmt: skip
    return data


@pytest.fixture
def served(populated: FakeDashboardData) -> Iterator[ServedApp]:
    app = build_app(dashboard_settings(), populated)
    running = serve(app)
    yield running
    stop(running)


def kpi_figure(page: Page, key: str) -> str | None:
    return page.locator(f'[data-kpi="{key}"] .figure').text_content()


def test_login_then_page_shows_the_api_figures_and_draws_charts(browser: Browser, served: ServedApp) -> None:
    watch = Watch()
    page = open_dashboard(browser, served.base_url, TOKEN, watch)

    summary = api_json(page, "/summary?period_hours=1")
    assert kpi_figure(page, "api_p95") == format_ms(summary["api"]["p95_latency_ms"])
    assert kpi_figure(page, "error_rate") == format_pct(summary["api"]["error_rate"])
    assert kpi_figure(page, "cpu") == format_pct(summary["system"]["cpu_percent"])
    rows = page.locator("#endpoints-table tbody tr")
    listed = api_json(page, "/performance/endpoints?period_hours=1")
    assert rows.count() == len(listed)
    assert rows.nth(1).locator("td").nth(6).text_content() == format_ms(listed[1]["p95_latency_ms"])

    assert page.locator("#chart-latency canvas").count() == 1
    assert series_lengths(page, "latency") == [60, 60, 60]
    assert series_lengths(page, "traffic") == [60, 60]
    assert series_lengths(page, "resources") == [1, 1]
    assert page.locator("#chart-latency-empty").is_hidden()
    assert watch.csp_violations() == []
    assert watch.errors == []
    page.screenshot(path="/tmp/pgotel-dashboard.png", full_page=True)
    page.close()


def test_period_selector_changes_figures_and_charts(browser: Browser, served: ServedApp) -> None:
    watch = Watch()
    page = open_dashboard(browser, served.base_url, TOKEN, watch)
    assert kpi_figure(page, "api_p95") == "240"
    page.click('.periods a[data-period="24"]')
    page.wait_for_url("**period_hours=24**")
    wait_for_charts(page, 1)
    assert kpi_figure(page, "api_p95") == "777"
    assert kpi_figure(page, "error_rate") == "5.29"
    assert page.locator(".banner .state").text_content() == "CRITICAL"
    assert series_lengths(page, "latency") == [24, 24, 24]
    assert page.locator('.periods a[aria-current="true"]').text_content() == "24h"
    assert any("/timeseries/latency?period_hours=24" in url for url in watch.requests)
    page.close()


def test_telemetry_payloads_show_as_text_and_never_run(browser: Browser, served: ServedApp) -> None:
    watch = Watch()
    page = open_dashboard(browser, served.base_url, TOKEN, watch)
    # A refresh cycle swaps every fragment through htmx: the payloads must survive that too.
    with page.expect_response(lambda response: "/fragments/error-hotspots" in response.url):
        page.evaluate("htmx.trigger(document.body, 'pgotel-refresh')")
    page.locator("#error-hotspots:not(.htmx-request)").wait_for()
    page.wait_for_timeout(200)  # htmx settles swapped content after 20 ms

    cells = page.locator("#endpoints-table td.route").all_text_contents()
    for route in XSS_ROUTES:
        assert route in cells
    assert XSS_ERROR_TYPE in page.locator("#error-hotspots .breakdown").all_text_contents()[-1]
    assert page.locator("img").count() == 0
    assert page.evaluate("window.pwned") is None
    assert watch.dialogs == []
    assert [url for url in watch.requests if url.rstrip("/").endswith("/x")] == []
    assert watch.csp_violations() == []
    assert watch.errors == []
    page.close()


def test_logout_returns_to_login(browser: Browser, served: ServedApp) -> None:
    page = open_dashboard(browser, served.base_url, TOKEN, Watch())
    page.click("text=Sign out")
    page.wait_for_url(f"{served.base_url}{PAGE}/login")
    page.goto(PAGE)
    assert page.url == f"{served.base_url}{PAGE}/login"
    page.close()
