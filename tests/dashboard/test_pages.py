"""The dashboard page and its fragments: figures, status colours, sorting, periods, escaping, 422s."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from pgotel.dashboard import _views
from tests.dashboard.conftest import FakeDashboardData, endpoint, login

PAGE = "/ui/monitoring/advanced"
XSS_ROUTES = (
    "/<script>window.pwned=1</script>",
    '/x"><img src=x onerror="window.pwned=1">',
    '/q hx-get="/x" hx-trigger="load"',
)


class _Elements(HTMLParser):
    """Every start tag with its attributes, and the text under elements carrying an id or data-kpi."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def parse(html: str) -> _Elements:
    parser = _Elements()
    parser.feed(html)
    return parser


@pytest.fixture
def logged_in(client: TestClient) -> TestClient:
    assert login(client).status_code == 303
    return client


def test_page_shows_the_summary_figures_with_status_colours(logged_in: TestClient) -> None:
    html = logged_in.get(PAGE).text
    assert 'class="kpi warn" data-kpi="api_p95"' in html  # 240 ms: between 200 and 500
    assert '<span class="figure">240</span>' in html
    assert 'class="kpi info" data-kpi="requests_per_second"' in html
    assert '<span class="figure">2.00</span>' in html
    assert 'class="kpi ok" data-kpi="error_rate"' in html
    assert 'class="kpi ok" data-kpi="redis_hit_rate"' in html
    assert 'class="kpi ok" data-kpi="pg_cache_hit"' in html
    assert 'class="kpi ok" data-kpi="cpu"' in html
    assert 'class="kpi ok" data-kpi="memory"' in html
    assert "DEGRADED" in html
    assert "above warning threshold: API P95" in html


def test_metrics_table_lists_every_kpi_with_threshold(logged_in: TestClient) -> None:
    html = logged_in.get(f"{PAGE}/fragments/metrics").text
    for kpi in _views.build_kpis(FakeDashboardData().summaries[1]):
        assert f'data-metric="{kpi.key}"' in html
    assert "ok &lt; 200 ms · crit ≥ 500 ms" in html
    assert "ok ≥ 99% · crit &lt; 90%" in html


def test_endpoints_table_colours_latency_and_errors(logged_in: TestClient) -> None:
    html = logged_in.get(f"{PAGE}/fragments/endpoints").text
    assert '<td class="num crit-text">900</td>' in html  # /slow P95
    assert '<td class="num ok-text">30.0</td>' in html  # /items P95
    assert '<td class="num warn-text">3.60%</td>' in html  # /fail error rate


def test_endpoint_sort_reaches_the_query_and_the_header_links(
    logged_in: TestClient, fake_data: FakeDashboardData
) -> None:
    html = logged_in.get(f"{PAGE}/fragments/endpoints?period_hours=24&sort=p95_latency_ms&order=desc").text
    assert fake_data.endpoint_calls[-1] == (24, 100, "p95_latency_ms", "desc")
    hx_gets = [attrs["hx-get"] for tag, attrs in parse(html).tags if tag == "a" and "hx-get" in attrs]
    assert f"{PAGE}/fragments/endpoints?period_hours=24&sort=p95_latency_ms&order=asc&threshold_ms=200" in hx_gets
    assert f"{PAGE}/fragments/endpoints?period_hours=24&sort=endpoint&order=asc&threshold_ms=200" in hx_gets
    assert 'aria-sort="descending"' in html


def test_slow_and_hotspot_panels(logged_in: TestClient) -> None:
    slow = logged_in.get(f"{PAGE}/fragments/slow-endpoints").text
    assert "14.0 min" in slow  # 840 s lost per hour
    assert "impact-bar w10" in slow
    hotspots = logged_in.get(f"{PAGE}/fragments/error-hotspots").text
    assert "500 <b>\u00d730</b>" in hotspots
    assert "ValueError <b>\u00d730</b>" in hotspots


def test_period_selector_changes_every_query(logged_in: TestClient, fake_data: FakeDashboardData) -> None:
    fake_data.summaries[24] = {"api": {"request_count": 99, "p95_latency_ms": 1234.0, "error_rate": 9.0}}
    html = logged_in.get(f"{PAGE}?period_hours=24").text
    active = [attrs for tag, attrs in parse(html).tags if tag == "a" and attrs.get("aria-current") == "true"]
    assert [attrs["data-period"] for attrs in active] == ["24"]
    assert '<span class="figure">1,234</span>' in html
    assert "CRITICAL" in html
    assert 'data-period-hours="24"' in html
    fragment_urls = [attrs["hx-get"] for _, attrs in parse(html).tags if "hx-trigger" in attrs]
    assert len(fragment_urls) == 6
    assert all("period_hours=24" in str(url) for url in fragment_urls)


def test_empty_state_tells_what_to_do(logged_in: TestClient, fake_data: FakeDashboardData) -> None:
    fake_data.summaries[1] = {"api": {"request_count": 0}}
    fake_data.endpoint_rows = []
    fake_data.slow_rows = []
    fake_data.hotspot_rows = []
    html = logged_in.get(PAGE).text
    assert "No traffic yet." in html
    assert "data appears within ~10 s" in html
    assert "NO TRAFFIC" in html
    assert "No slow endpoints." in html
    assert "No errors" in html


def test_telemetry_strings_are_escaped_and_never_become_attributes(
    logged_in: TestClient, fake_data: FakeDashboardData
) -> None:
    fake_data.endpoint_rows = [endpoint(route) for route in XSS_ROUTES]
    fake_data.slow_rows = [{"endpoint": route, "method": "GET", "p95_latency_ms": 900.0} for route in XSS_ROUTES]
    fake_data.hotspot_rows = [
        {
            "endpoint": XSS_ROUTES[0],
            "method": '<b>"',
            "error_count": 1,
            "error_rate": 100.0,
            "error_types": {XSS_ROUTES[1]: 1, XSS_ROUTES[2]: 1},
        }
    ]
    html = logged_in.get(PAGE).text
    for route in XSS_ROUTES:
        assert route not in html
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=&#34;window.pwned=1&#34;&gt;" in html
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
