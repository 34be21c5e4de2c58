"""Fixtures for the dashboard's auth, security-header and page tests."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI, Query
from fastapi.testclient import TestClient

from pgotel.config import PgotelSettings
from pgotel.dashboard._pages import EndpointSort, SortOrder
from pgotel.dashboard._router import DashboardPool, install_dashboard

TOKEN = "s3cret-dashboard-token"

SUMMARY: dict[str, Any] = {
    "api": {
        "request_count": 7200,
        "requests_per_second": 2.0,
        "avg_latency_ms": 48.5,
        "p50_latency_ms": 31.25,
        "p95_latency_ms": 240.0,
        "p99_latency_ms": 612.0,
        "error_count": 36,
        "error_rate": 0.5,
    },
    "redis": {"connected": True, "hit_rate": 91.5, "memory_used_mb": 1.2},
    "postgres": {"connections_total": 7, "cache_hit_ratio": 99.6, "db_size_mb": 42.0},
    "system": {"cpu_percent": 12.5, "cpu_count": 4, "memory_percent": 55.0, "disk_percent": 61.0},
}


def endpoint(route: str, method: str = "GET", **figures: float) -> dict[str, Any]:
    row: dict[str, Any] = {
        "endpoint": route,
        "method": method,
        "request_count": 100,
        "avg_latency_ms": 20.0,
        "p50_latency_ms": 15.0,
        "p95_latency_ms": 50.0,
        "p99_latency_ms": 90.0,
        "error_count": 0,
        "error_rate": 0.0,
        "requests_per_second": 0.028,
    }
    row.update(figures)
    return row


class FakeDashboardData:
    """Answers in the JSON API's shape; records what the pages asked for."""

    def __init__(self) -> None:
        self.summaries: dict[int, dict[str, Any]] = {1: copy.deepcopy(SUMMARY)}
        self.endpoint_rows: list[dict[str, Any]] = [
            endpoint("/items/{item_id}", request_count=5000, p95_latency_ms=30.0),
            endpoint("/slow", request_count=1200, p95_latency_ms=900.0),
            endpoint("/fail", "POST", request_count=1000, error_count=36, error_rate=3.6),
        ]
        self.slow_rows: list[dict[str, Any]] = [
            {
                "endpoint": "/slow",
                "method": "GET",
                "p95_latency_ms": 900.0,
                "request_count": 1200,
                "impact_seconds_per_hour": 840.0,
            },
        ]
        self.hotspot_rows: list[dict[str, Any]] = [
            {
                "endpoint": "/fail",
                "method": "POST",
                "error_count": 36,
                "error_rate": 3.6,
                "request_count": 1000,
                "status_codes": {"500": 30, "404": 6},
                "error_types": {"ValueError": 30},
            },
        ]
        self.endpoint_calls: list[tuple[int, int, str, str]] = []
        self.timeseries: dict[tuple[str, int], list[dict[str, Any]]] = {}

    async def summary(self, period_hours: int) -> Mapping[str, Any]:
        return self.summaries.get(period_hours, {"api": {"request_count": 0}})

    async def endpoints(
        self, period_hours: int, limit: int, sort: EndpointSort, order: SortOrder
    ) -> Sequence[Mapping[str, Any]]:
        self.endpoint_calls.append((period_hours, limit, sort, order))
        return self.endpoint_rows

    async def slow_endpoints(self, period_hours: int, threshold_ms: float) -> Sequence[Mapping[str, Any]]:
        return self.slow_rows

    async def error_hotspots(self, period_hours: int) -> Sequence[Mapping[str, Any]]:
        return self.hotspot_rows


def fake_api_router(data: FakeDashboardData) -> APIRouter:
    """Stands in for the JSON API, answering from `data`: GET routes with validated parameters, one POST."""
    router = APIRouter()

    @router.get("/summary")
    async def summary(period_hours: int = Query(1, ge=1, le=168)) -> Mapping[str, Any]:
        return await data.summary(period_hours)

    @router.get("/performance/endpoints")
    async def endpoints(period_hours: int = Query(1, ge=1, le=168)) -> Sequence[Mapping[str, Any]]:
        return await data.endpoints(period_hours, 100, "request_count", "desc")

    @router.get("/timeseries/{kind}")
    async def timeseries(kind: str, period_hours: int = Query(1, ge=1, le=168)) -> dict[str, Any]:
        return {"points": data.timeseries.get((kind, period_hours), [])}

    @router.post("/alerts/{alert_id}/acknowledge")
    async def acknowledge(alert_id: int) -> dict[str, Any]:
        return {"acknowledged": alert_id}

    return router


def dashboard_settings(**dashboard: Any) -> PgotelSettings:
    return PgotelSettings.model_validate({"dashboard": {"auth": TOKEN, **dashboard}})


def build_app(settings: PgotelSettings, data: FakeDashboardData | None = None) -> FastAPI:
    app = FastAPI()

    @app.get("/host/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    data = data or FakeDashboardData()
    install_dashboard(app, settings, api_router=fake_api_router(data), data=data, pool=DashboardPool(settings.database))
    return app


@pytest.fixture
def fake_data() -> FakeDashboardData:
    return FakeDashboardData()


@pytest.fixture
def client(fake_data: FakeDashboardData) -> Iterator[TestClient]:
    with TestClient(build_app(dashboard_settings(), fake_data), follow_redirects=False) as test_client:
        yield test_client


def login(client: TestClient, token: str = TOKEN) -> Any:
    """Log in through the form, as a browser would: fetch the form (CSRF cookie), then post it."""
    client.get("/ui/monitoring/advanced/login")
    csrf = client.cookies["pgotel_csrf"]
    return client.post(
        "/ui/monitoring/advanced/login",
        data={"token": token, "csrf_token": csrf},
        headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
    )
