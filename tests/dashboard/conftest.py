"""Fixtures for the dashboard tests: the real dashboard (`pgotel.dashboard.mount`) on a fresh migrated
PostgreSQL, optionally filled with a known shop's traffic through the SDK and pgotel's metric exporter."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response

from pgotel.config import PgotelSettings, parse_settings
from pgotel.dashboard import mount
from tests.dashboard.traffic import store_traffic
from tests.db.traffic import Request

TOKEN = "s3cret-dashboard-token"
PAGE = "/ui/monitoring/advanced"
API = "/api/monitoring/advanced"

RECENT = dt.timedelta(minutes=3)
EARLIER_TODAY = dt.timedelta(hours=5)


def shop_traffic() -> list[tuple[dt.timedelta, list[Request]]]:
    """(age, requests) of a shop with fixed latencies, so every figure and colour is known in advance.

    Last hour, 4,360 requests: overall P95 and P99 250 ms (warn), 36 errors (0.83%, ok); /slow has a
    fast median (100 ms) but a critical P95 (1.2 s), /search a warning P95 (250 ms), /fail fails 3.6% of
    the time (warn). Five hours ago 400 report runs at 1.5 s make the 24h P95 critical.
    """
    recent = [
        *[Request("shop", "GET", "/items/{item_id}", 200, 0.030)] * 3000,
        *[Request("shop", "GET", "/search", 200, 0.250)] * 300,
        *[Request("shop", "GET", "/slow", 200, 0.100)] * 40,
        *[Request("shop", "GET", "/slow", 200, 1.200)] * 20,
        *[Request("shop", "POST", "/fail", 200, 0.020)] * 964,
        *[Request("shop", "POST", "/fail", 500, 0.020, "ValueError")] * 30,
        *[Request("shop", "POST", "/fail", 404, 0.020)] * 6,
    ]
    earlier = [Request("shop", "GET", "/reports/daily", 200, 1.500)] * 400
    return [(RECENT, recent), (EARLIER_TODAY, earlier)]


def dashboard_app(settings: PgotelSettings) -> FastAPI:
    """A host app with the dashboard mounted exactly as `pgotel.setup` does."""
    app = FastAPI()
    mount(app, settings)
    return app


@pytest.fixture
def settings(dsn: str) -> PgotelSettings:
    """Settings as a user writes them: the test database and the dashboard token."""
    return parse_settings({"database": {"dsn": dsn}, "dashboard": {"auth": TOKEN}}, source="test")


@pytest.fixture
async def shop(settings: PgotelSettings) -> PgotelSettings:
    """`settings`, once their database holds `shop_traffic()`."""
    await store_traffic(settings, shop_traffic())
    return settings


@pytest.fixture
def app(settings: PgotelSettings) -> FastAPI:
    return dashboard_app(settings)


@pytest.fixture
def dashboard(app: FastAPI) -> Iterator[TestClient]:
    """A client of the real app, without credentials; entered so the lifespan (pool shutdown) runs."""
    with TestClient(app, follow_redirects=False) as client:
        yield client


def login(client: TestClient, token: str = TOKEN) -> Response:
    """Log in through the form, as a browser would: fetch the form (CSRF cookie), then post it."""
    client.get(f"{PAGE}/login")
    csrf = client.cookies["pgotel_csrf"]
    response: Response = client.post(
        f"{PAGE}/login",
        data={"token": token, "csrf_token": csrf},
        headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
    )
    return response
