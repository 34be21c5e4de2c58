"""The pages' data source over the real rollups: API-shaped answers, sorting, breakdowns."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

from pgotel import db
from pgotel.dashboard._data import DatabaseDashboardData
from tests.db.traffic import Request, Traffic, store_interval


async def test_answers_carry_the_api_shape_and_sort(conn: asyncpg.Connection) -> None:
    end = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=2)
    requests = [Request("shop", "GET", "/fast", 200, 0.010) for _ in range(30)]
    requests += [Request("shop", "GET", "/slow", 200, 0.900) for _ in range(10)]
    requests += [Request("shop", "POST", "/fail", 500, 0.050, "ValueError") for _ in range(4)]
    await store_interval(conn, Traffic(), end, requests)
    await db.refresh_rollups(conn)

    async def pool() -> Any:
        return conn

    data = DatabaseDashboardData(pool)
    summary = await data.summary(1)
    assert summary["api"]["request_count"] == 44
    assert summary["api"]["error_count"] == 4

    by_count = await data.endpoints(1, 100, "request_count", "desc")
    assert [row["endpoint"] for row in by_count] == ["/fast", "/slow", "/fail"]
    by_p95 = await data.endpoints(1, 2, "p95_latency_ms", "desc")
    assert [row["endpoint"] for row in by_p95] == ["/slow", "/fail"]

    slow = await data.slow_endpoints(1, 200.0)
    assert [(row["endpoint"], row["method"]) for row in slow] == [("/slow", "GET")]
    assert slow[0]["impact_seconds_per_hour"] > 0

    (hotspot,) = await data.error_hotspots(1)
    assert hotspot["endpoint"] == "/fail"
    assert hotspot["status_codes"] == {"500": 4}
    assert hotspot["error_types"] == {"ValueError": 4}
