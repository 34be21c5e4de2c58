"""The dashboard in headless Chromium (Debian's `chromium`, driven by Playwright) under its real CSP, served
by uvicorn from a real app (`pgotel.dashboard.mount`) reading a real PostgreSQL that the metric exporter
filled with SDK-aggregated traffic of several ages, so 1h, 24h and 7d each show different figures."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import shutil
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Browser, Dialog, Page, Response, sync_playwright

from pgotel.config import PgotelSettings
from pgotel.dashboard._views import format_ms, format_pct
from tests.dashboard.conftest import API, PAGE, TOKEN, dashboard_app
from tests.dashboard.traffic import store_traffic
from tests.db.traffic import Request, random_requests

pytestmark = pytest.mark.browser

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
# (age, endpoints as (method, route, median seconds), request count): fast recent traffic, a slow spell
# five hours ago (24h P95 critical), and an endpoint that only ran three days ago (7d only).
TRAFFIC_BY_AGE: tuple[tuple[dt.timedelta, tuple[tuple[str, str, float], ...], int], ...] = (
    (dt.timedelta(minutes=3), (("GET", "/items/{item_id}", 0.012), ("POST", "/checkout", 0.060)), 400),
    (dt.timedelta(hours=5), (("GET", "/items/{item_id}", 0.300), ("GET", "/search", 1.100)), 600),
    (dt.timedelta(days=3), (("GET", "/reports/daily", 2.500),), 500),
)


@pytest.fixture
async def stored(settings: PgotelSettings) -> PgotelSettings:
    """`settings`, once their database holds traffic of three ages plus telemetry carrying markup payloads."""
    rng = random.Random(20260101)
    batches = [(age, random_requests(rng, count, endpoints)) for age, endpoints, count in TRAFFIC_BY_AGE]
    payloads = [Request("shop", "GET", route, 500, 0.030, XSS_ERROR_TYPE) for route in XSS_ROUTES]
    await store_traffic(settings, [*batches, (dt.timedelta(minutes=2), payloads)])
    return settings


@pytest.fixture
def base_url(stored: PgotelSettings) -> Iterator[str]:
    """A host app with the dashboard mounted, served by uvicorn on a free loopback port in a thread."""
    app = dashboard_app(stored)
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
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join()
    listener.close()


@pytest.fixture
def browser(base_url: str) -> Iterator[Browser]:
    """Chromium, launched after the database fixtures: Playwright's sync API keeps an event loop running on
    this thread until it stops, and pytest-asyncio cannot set up or tear down async fixtures meanwhile."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's chromium is required: apt-get install -y chromium (.ci/run does it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclasses.dataclass
class Watch:
    """What the page did: dialogs, console lines (CSP violations), script errors, requests, API responses."""

    dialogs: list[str] = dataclasses.field(default_factory=list)
    console: list[str] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    requests: list[str] = dataclasses.field(default_factory=list)
    responses: list[Response] = dataclasses.field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.on("dialog", self._dismiss)
        page.on("console", lambda message: self.console.append(message.text))
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("response", lambda response: self.responses.append(response))

    def _dismiss(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def csp_violations(self) -> list[str]:
        return [text for text in self.console if "Content Security Policy" in text]

    def last_api_answer(self, path: str) -> Any:
        """The body of the page's latest call to `path` of the JSON API: what its charts were drawn from."""
        (response, *_) = [r for r in reversed(self.responses) if r.url.split("?")[0].endswith(f"{API}{path}")]
        return response.json()


def open_dashboard(browser: Browser, base_url: str, watch: Watch) -> Page:
    page = browser.new_page(base_url=base_url, viewport={"width": 1440, "height": 900})
    watch.attach(page)
    page.goto(PAGE)
    assert page.url == f"{base_url}{PAGE}/login"
    page.fill("#token", "wrong-token")
    page.click("button[type=submit]")
    assert page.locator(".error").text_content() == "Wrong token."
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}{PAGE}")
    wait_for_charts(page)
    return page


def wait_for_charts(page: Page) -> None:
    page.wait_for_function("() => Number(document.getElementById('dashboard').dataset.chartsLoaded || 0) >= 1")
    assert page.evaluate("document.getElementById('dashboard').dataset.chartsError") is None


def api_json(page: Page, path: str) -> Any:
    response = page.request.get(f"{API}{path}")
    assert response.ok, (path, response.status)
    return json.loads(response.text())


def chart_series(page: Page, chart: str) -> list[list[Any]]:
    """The [time, value] pairs of each series the chart draws."""
    series: list[list[Any]] = page.evaluate(
        """(id) => echarts.getInstanceByDom(document.getElementById(id)).getOption().series.map((s) => s.data)""",
        f"chart-{chart}",
    )
    return series


def kpi_figure(page: Page, key: str) -> str | None:
    return page.locator(f'[data-kpi="{key}"] .figure').text_content()


def kpi_status(page: Page, key: str) -> str:
    classes = page.locator(f'[data-kpi="{key}"]').get_attribute("class") or ""
    return classes.split()[-1]


def assert_page_matches_api(page: Page, watch: Watch, period_hours: int) -> dict[str, Any]:
    """KPI cards, endpoints table and charts show what the JSON API answers for the period; returns the summary."""
    summary: dict[str, Any] = api_json(page, f"/summary?period_hours={period_hours}")
    api = summary["api"]
    assert kpi_figure(page, "api_p95") == format_ms(api["p95_latency_ms"])
    assert kpi_figure(page, "error_rate") == format_pct(api["error_rate"])
    # Host figures are live samples (they move between two calls): the card shows one as a percentage.
    assert float(kpi_figure(page, "cpu") or "x") >= 0

    listed = api_json(page, f"/performance/endpoints?period_hours={period_hours}&limit=100")
    rows = page.locator("#endpoints-table tbody tr")
    assert rows.count() == len(listed)
    for index, endpoint in enumerate(listed):
        cells = rows.nth(index).locator("td").all_text_contents()
        assert cells[0] == endpoint["endpoint"]
        assert cells[2] == f"{endpoint['request_count']:,}"
        assert cells[5:8] == [format_ms(endpoint[f"p{q}_latency_ms"]) for q in (50, 95, 99)]

    latency = watch.last_api_answer("/timeseries/latency")["points"]
    traffic = watch.last_api_answer("/timeseries/requests")["points"]
    assert latency
    # Intervals without requests are gaps, not 0 ms.
    assert chart_series(page, "latency") == [
        [[point["time"], point[f"p{q}_latency_ms"] if point["avg_latency_ms"] else None] for point in latency]
        for q in (50, 95, 99)
    ]
    assert {value is None for _, value in chart_series(page, "latency")[0]} == {True, False}
    assert chart_series(page, "traffic") == [
        [[point["time"], point[key]] for point in traffic] for key in ("request_count", "error_count")
    ]
    assert sum(point["request_count"] for point in traffic) == api["request_count"]
    assert page.locator("#chart-latency canvas").count() == 1
    assert page.locator("#chart-latency-empty").is_hidden()
    assert [len(series) for series in chart_series(page, "resources")] == [1, 1]
    assert page.locator(f'.periods a[data-period="{period_hours}"]').get_attribute("aria-current") == "true"
    return summary


def test_login_then_page_shows_the_api_figures_and_draws_charts(browser: Browser, base_url: str) -> None:
    watch = Watch()
    page = open_dashboard(browser, base_url, watch)

    summary = assert_page_matches_api(page, watch, 1)
    assert summary["api"]["request_count"] == 400 + len(XSS_ROUTES)
    assert kpi_status(page, "api_p95") == "ok"
    assert watch.csp_violations() == []
    assert watch.errors == []
    page.close()


def test_period_selector_changes_figures_and_charts(browser: Browser, base_url: str) -> None:
    watch = Watch()
    page = open_dashboard(browser, base_url, watch)
    figures = {1: kpi_figure(page, "api_p95")}
    counts = {1: page.locator("#endpoints-table tbody tr").count()}

    for hours, label in ((24, "24h"), (168, "7d")):
        page.click(f'.periods a[data-period="{hours}"]')
        page.wait_for_url(f"**period_hours={hours}**")
        wait_for_charts(page)
        assert page.locator('.periods a[aria-current="true"]').text_content() == label
        summary = assert_page_matches_api(page, watch, hours)
        in_window = sum(count for age, _, count in TRAFFIC_BY_AGE if age < dt.timedelta(hours=hours))
        assert summary["api"]["request_count"] == in_window + len(XSS_ROUTES)
        figures[hours] = kpi_figure(page, "api_p95")
        counts[hours] = page.locator("#endpoints-table tbody tr").count()
        assert any(f"/timeseries/latency?period_hours={hours}" in url for url in watch.requests)

    assert kpi_status(page, "api_p95") == "crit"
    assert page.locator(".banner .state").text_content() == "CRITICAL"
    assert len(set(figures.values())) == 3, figures
    assert counts[1] < counts[24] < counts[168], counts
    assert watch.errors == []
    page.close()


def test_telemetry_payloads_show_as_text_and_never_run(browser: Browser, base_url: str) -> None:
    watch = Watch()
    page = open_dashboard(browser, base_url, watch)
    # A refresh cycle swaps every fragment through htmx: the payloads must survive that too.
    with page.expect_response(lambda response: "/fragments/error-hotspots" in response.url):
        page.evaluate("htmx.trigger(document.body, 'pgotel-refresh')")
    page.locator("#error-hotspots:not(.htmx-request)").wait_for()
    page.wait_for_timeout(200)  # htmx settles swapped content after 20 ms

    cells = page.locator("#endpoints-table td.route").all_text_contents()
    hotspots = page.locator("#error-hotspots td.route").all_text_contents()
    for route in XSS_ROUTES:
        assert route in cells
        assert any(route in text for text in hotspots)
    assert any(XSS_ERROR_TYPE in text for text in page.locator("#error-hotspots .breakdown").all_text_contents())
    assert page.locator("img").count() == 0
    assert page.evaluate("window.pwned") is None
    assert watch.dialogs == []
    assert [url for url in watch.requests if url.rstrip("/").endswith("/x")] == []
    assert watch.csp_violations() == []
    assert watch.errors == []
    page.close()


def test_logout_returns_to_login(browser: Browser, base_url: str) -> None:
    page = open_dashboard(browser, base_url, Watch())
    page.click("text=Sign out")
    page.wait_for_url(f"{base_url}{PAGE}/login")
    page.goto(PAGE)
    assert page.url == f"{base_url}{PAGE}/login"
    page.close()
