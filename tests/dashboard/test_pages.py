"""The dashboard page and its fragments on the real mounted app and database: figures, status colours,
sorting, periods, escaping, 422s."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pgotel.config import PgotelSettings
from pgotel.dashboard import _views
from tests.dashboard.conftest import API, PAGE, RECENT, TOKEN, login
from tests.dashboard.traffic import store_traffic
from tests.db.traffic import Request

BEARER = {"Authorization": f"Bearer {TOKEN}"}
XSS_ROUTES = (
    "/<script>window.pwned=1</script>",
    '/x"><img src=x onerror="window.pwned=1">',
    '/q hx-get="/x" hx-trigger="load"',
)
KPI_CARD = re.compile(
    r'<div class="kpi (?P<status>\w+)" data-kpi="(?P<key>\w+)">\s*<div class="kpi-label">[^<]*</div>\s*'
    r'<div class="kpi-value"><span class="figure">(?P<figure>[^<]*)</span>'
)
BANNER = re.compile(r'<span class="state">(?P<state>[^<]*)</span>\s*<span class="detail">(?P<detail>[^<]*)</span>')


class _Elements(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def parse(html: str) -> _Elements:
    parser = _Elements()
    parser.feed(html)
    return parser


def kpi_cards(html: str) -> dict[str, tuple[str, str]]:
    """KPI key -> (status, figure) of each card on the page."""
    return {match["key"]: (match["status"], match["figure"]) for match in KPI_CARD.finditer(html)}


def table_row(html: str, route: str) -> str:
    """The markup of the one table row whose route cell shows `route`."""
    (row,) = [block for block in html.split("<tr>") if f'<td class="route">{route}</td>' in block]
    return row


def routes_in_order(html: str) -> list[str]:
    """Routes of the endpoints table, top to bottom."""
    return re.findall(r'<td class="route">([^<]*)</td>', html)


def panel_routes(html: str) -> list[str]:
    """Routes of the slow-endpoint or error-hotspot panel (shown after their method), top to bottom."""
    return [route.strip() for route in re.findall(r'<td class="route"><span class="method">[^<]*</span>([^<]*)', html)]


def api(client: TestClient, path: str) -> Any:
    response = client.get(f"{API}/{path}", headers=BEARER)
    assert response.status_code == 200, (path, response.text)
    return response.json()


def api_row(rows: list[dict[str, Any]], route: str) -> dict[str, Any]:
    (row,) = [row for row in rows if row["endpoint"] == route]
    return row


@pytest.fixture
def logged_in(dashboard: TestClient) -> TestClient:
    assert login(dashboard).status_code == 303
    return dashboard


@pytest.fixture
def shop_page(shop: PgotelSettings, logged_in: TestClient) -> TestClient:
    """A logged-in client of the dashboard whose database holds `shop_traffic()`."""
    return logged_in


def test_page_shows_the_summary_figures_with_status_colours(shop_page: TestClient) -> None:
    summary = api(shop_page, "summary?period_hours=1")["api"]
    assert summary["request_count"] == 4360
    assert summary["error_count"] == 36
    assert summary["p95_latency_ms"] == pytest.approx(250, rel=0.02)

    cards = kpi_cards(shop_page.get(PAGE).text)
    assert cards["api_p95"] == ("warn", _views.format_ms(summary["p95_latency_ms"]))  # 250 ms: 200..500
    assert cards["requests_per_second"] == ("info", "1.21")  # 4,360 requests in an hour
    assert cards["error_rate"] == ("ok", "0.83")  # 36 errors in 4,360 requests
    assert cards["redis_hit_rate"] == ("idle", "—")  # no Redis configured
    # PostgreSQL and host figures are live: each card's colour is its threshold applied to its figure.
    for key, threshold in (("pg_cache_hit", _views.PG_CACHE_HIT), ("cpu", _views.CPU), ("memory", _views.MEMORY)):
        status, figure = cards[key]
        shown = float(figure)
        assert status in {threshold.status(shown - 0.05), threshold.status(shown + 0.05)}, (key, figure)


def test_banner_names_the_worst_cards(shop_page: TestClient) -> None:
    html = shop_page.get(PAGE).text
    cards = kpi_cards(html)
    labels = {kpi.key: kpi.label for kpi in _views.build_kpis({})}
    worst = "crit" if any(status == "crit" for status, _ in cards.values()) else "warn"  # API P95 is warn
    (banner,) = BANNER.finditer(html)
    assert banner["state"] == {"warn": "DEGRADED", "crit": "CRITICAL"}[worst]
    threshold = {"warn": "warning", "crit": "critical"}[worst]
    culprits = ", ".join(labels[key] for key, (status, _) in cards.items() if status == worst)
    assert banner["detail"] == f"above {threshold} threshold: {culprits}"
    if worst == "warn":  # live host figures (CPU, memory) may join API P95 on a busy machine
        assert "API P95" in culprits.split(", ")


def test_metrics_table_lists_every_kpi_with_threshold(shop_page: TestClient) -> None:
    html = shop_page.get(f"{PAGE}/fragments/metrics").text
    summary = api(shop_page, "summary?period_hours=1")
    for kpi in _views.build_kpis(summary):
        assert f'data-metric="{kpi.key}"' in html
    assert "ok &lt; 200 ms · crit ≥ 500 ms" in html
    assert "ok ≥ 99% · crit &lt; 90%" in html
    p50 = _views.format_ms(summary["api"]["p50_latency_ms"])
    p99 = _views.format_ms(summary["api"]["p99_latency_ms"])
    assert f'<td class="num ok-text">{p50} ms</td>' in html  # API P50: 30 ms
    assert f'<td class="num warn-text">{p99} ms</td>' in html  # API P99: 250 ms


def test_endpoints_table_colours_latency_and_errors(shop_page: TestClient) -> None:
    rows = api(shop_page, "performance/endpoints?period_hours=1&limit=100")
    html = shop_page.get(f"{PAGE}/fragments/endpoints").text
    slow_p95 = _views.format_ms(api_row(rows, "/slow")["p95_latency_ms"])
    items_p95 = _views.format_ms(api_row(rows, "/items/{item_id}")["p95_latency_ms"])
    search_p95 = _views.format_ms(api_row(rows, "/search")["p95_latency_ms"])
    assert f'<td class="num crit-text">{slow_p95}</td>' in table_row(html, "/slow")  # ~1.2 s, median 100 ms
    assert f'<td class="num warn-text">{search_p95}</td>' in table_row(html, "/search")  # ~250 ms
    assert f'<td class="num ok-text">{items_p95}</td>' in table_row(html, "/items/{item_id}")  # ~30 ms
    assert '<td class="num warn-text">3.60%</td>' in table_row(html, "/fail")  # 36 of 1,000 failed
    assert '<td class="num ok-text">0.00%</td>' in table_row(html, "/items/{item_id}")
    assert routes_in_order(html) == ["/items/{item_id}", "/fail", "/search", "/slow"]  # busiest first


def test_endpoint_sort_reaches_the_query_and_the_header_links(shop_page: TestClient) -> None:
    html = shop_page.get(f"{PAGE}/fragments/endpoints?period_hours=24&sort=p95_latency_ms&order=desc").text
    assert routes_in_order(html) == ["/reports/daily", "/slow", "/search", "/items/{item_id}", "/fail"]
    ascending = shop_page.get(f"{PAGE}/fragments/endpoints?period_hours=24&sort=p95_latency_ms&order=asc").text
    assert routes_in_order(ascending) == ["/fail", "/items/{item_id}", "/search", "/slow", "/reports/daily"]
    hx_gets = [attrs["hx-get"] for tag, attrs in parse(html).tags if tag == "a" and "hx-get" in attrs]
    assert f"{PAGE}/fragments/endpoints?period_hours=24&sort=p95_latency_ms&order=asc&threshold_ms=200" in hx_gets
    assert f"{PAGE}/fragments/endpoints?period_hours=24&sort=endpoint&order=asc&threshold_ms=200" in hx_gets
    assert 'aria-sort="descending"' in html


def test_slow_and_hotspot_panels(shop_page: TestClient) -> None:
    slow_rows = api(shop_page, "performance/slow-endpoints?period_hours=1&threshold_ms=200")
    assert [row["endpoint"] for row in slow_rows] == ["/slow", "/search"]
    slow, search = slow_rows
    # Time lost above 200 ms per hour: 20 requests x 1 s, 300 requests x 50 ms, each request's
    # latency known to the histogram within 2%.
    assert slow["impact_seconds_per_hour"] == pytest.approx(20 * 1.000, abs=20 * 1.200 * 0.02)
    assert search["impact_seconds_per_hour"] == pytest.approx(300 * 0.050, abs=300 * 0.250 * 0.02)

    html = shop_page.get(f"{PAGE}/fragments/slow-endpoints").text
    assert panel_routes(html) == ["/slow", "/search"]
    assert f'{_views.format_seconds(slow["impact_seconds_per_hour"])}<div class="impact-bar w10">' in html
    search_bar = round(10 * search["impact_seconds_per_hour"] / slow["impact_seconds_per_hour"])
    assert f'{_views.format_seconds(search["impact_seconds_per_hour"])}<div class="impact-bar w{search_bar}">' in html

    hotspots = shop_page.get(f"{PAGE}/fragments/error-hotspots").text
    assert panel_routes(hotspots) == ["/fail"]
    assert "500 <b>\u00d730</b>" in hotspots
    assert "404 <b>\u00d76</b>" in hotspots
    assert "ValueError <b>\u00d730</b>" in hotspots
    assert '<td class="num warn-text">3.60%</td>' in hotspots


def test_period_selector_changes_every_query(shop_page: TestClient) -> None:
    day = api(shop_page, "summary?period_hours=24")["api"]
    assert day["request_count"] == 4360 + 400
    assert day["p95_latency_ms"] == pytest.approx(1500, rel=0.02)

    html = shop_page.get(f"{PAGE}?period_hours=24").text
    active = [attrs for tag, attrs in parse(html).tags if tag == "a" and attrs.get("aria-current") == "true"]
    assert [attrs["data-period"] for attrs in active] == ["24"]
    assert kpi_cards(html)["api_p95"] == ("crit", _views.format_ms(day["p95_latency_ms"]))
    assert kpi_cards(shop_page.get(f"{PAGE}?period_hours=1").text)["api_p95"][0] == "warn"
    assert "CRITICAL" in html
    assert 'data-period-hours="24"' in html
    assert "/reports/daily" in routes_in_order(html)
    fragment_urls = [attrs["hx-get"] for _, attrs in parse(html).tags if "hx-trigger" in attrs]
    assert len(fragment_urls) == 6
    assert all("period_hours=24" in str(url) for url in fragment_urls)


def test_empty_state_tells_what_to_do(logged_in: TestClient) -> None:
    html = logged_in.get(PAGE).text  # a freshly migrated database: no traffic at all
    assert "No traffic yet." in html
    assert "data appears within ~10 s" in html
    assert "NO TRAFFIC" in html
    assert "No slow endpoints." in html
    assert "No errors" in html


@pytest.fixture
async def payloads(settings: PgotelSettings) -> PgotelSettings:
    """`settings`, once their database holds requests whose route, method and error type carry markup."""
    requests = [
        Request("shop", "GET", XSS_ROUTES[0], 500, 0.900, XSS_ROUTES[1]),
        Request("shop", "GET", XSS_ROUTES[1], 500, 0.900, XSS_ROUTES[2]),
        Request("shop", '<b>"', XSS_ROUTES[2], 500, 0.900),
    ]
    await store_traffic(settings, [(RECENT, requests)])
    return settings


def test_telemetry_strings_are_escaped_and_never_become_attributes(
    payloads: PgotelSettings, logged_in: TestClient
) -> None:
    html = logged_in.get(PAGE).text
    assert len(api(logged_in, "performance/slow-endpoints?period_hours=1&threshold_ms=200")) == 3
    assert len(api(logged_in, "performance/error-hotspots?period_hours=1")) == 3
    for route in XSS_ROUTES:
        assert route not in html
    # Each route shows in the endpoints table, the slow panel and the hotspots; the second one also as an error type.
    assert html.count("/&lt;script&gt;window.pwned=1&lt;/script&gt;") == 3
    assert html.count("/x&#34;&gt;&lt;img src=x onerror=&#34;window.pwned=1&#34;&gt;") == 4
    assert "&lt;b&gt;&#34;" in html
    tags = parse(html).tags
    assert not [tag for tag, _ in tags if tag == "img"]
    assert [attrs["src"] for tag, attrs in tags if tag == "script" and attrs.get("src")] == [
        attrs["src"] for tag, attrs in tags if tag == "script"
    ]
    for _, attrs in tags:
        for name, value in attrs.items():
            assert not name.startswith("on")
            if name.startswith("hx-") and name not in ("hx-trigger", "hx-swap", "hx-target"):
                assert str(value).startswith(f"{PAGE}/fragments/"), (name, value)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("period_hours=0", "period_hours"),
        ("period_hours=169", "period_hours"),
        ("period_hours=abc", "period_hours"),
        ("sort=nope", "sort"),
        ("order=sideways", "order"),
        ("threshold_ms=-1", "threshold_ms"),
    ],
)
def test_invalid_parameters_get_422_naming_the_parameter(logged_in: TestClient, query: str, parameter: str) -> None:
    for path in (PAGE, f"{PAGE}/fragments/endpoints"):
        response = logged_in.get(f"{path}?{query}")
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", parameter]


@pytest.mark.parametrize(
    ("path", "parameter", "range_text"),
    [
        ("summary?period_hours=0", "period_hours", "1..168"),
        ("performance/endpoints?limit=1000", "limit", "1..100"),
        ("performance/endpoints?sort_by=bogus", "sort_by", "p95_latency_ms"),
        ("performance/slow-endpoints?threshold_ms=-1", "threshold_ms", "> 0 and <= 600000"),
        ("timeseries/requests?period_hours=169", "period_hours", "1..168"),
    ],
)
def test_mounted_api_answers_422_naming_the_parameter(
    dashboard: TestClient, path: str, parameter: str, range_text: str
) -> None:
    response = dashboard.get(f"{API}/{path}", headers=BEARER)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", parameter]
    assert range_text in error["msg"]


def test_threshold_status_directions() -> None:
    assert _views.LATENCY.status(199.9) == "ok"
    assert _views.LATENCY.status(200) == "warn"
    assert _views.LATENCY.status(500) == "crit"
    assert _views.PG_CACHE_HIT.status(99.0) == "ok"
    assert _views.PG_CACHE_HIT.status(95.0) == "warn"
    assert _views.PG_CACHE_HIT.status(89.9) == "crit"
    assert _views.CPU.status(None) == "idle"


def test_redis_not_connected_is_idle_not_critical() -> None:
    summary = {"api": {"request_count": 10, "p95_latency_ms": 10.0, "error_rate": 0.0}, "redis": {"connected": False}}
    kpis = {kpi.key: kpi for kpi in _views.build_kpis(summary)}
    assert kpis["redis_hit_rate"].status == "idle"
    assert kpis["redis_hit_rate"].value == "—"
    assert _views.build_banner(list(kpis.values()), summary).state == "OPERATIONAL"
