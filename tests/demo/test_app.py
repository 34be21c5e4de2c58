from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from starlette.routing import Route

from pgotel.demo import TRAFFIC_MIX, EmbeddedRedis, create_demo_app


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis.start(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
async def client(dsn: str, redis_server: EmbeddedRedis) -> AsyncIterator[httpx.AsyncClient]:
    app = create_demo_app(dsn, redis_server.url)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://demo"
        ) as http,
    ):
        yield http


async def test_db_backed_routes_read_the_seeded_items(client: httpx.AsyncClient) -> None:
    items = (await client.get("/api/items?limit=5")).json()
    assert [item["id"] for item in items] == [1, 2, 3, 4, 5]
    assert (await client.get("/api/items/7")).json()["name"] == "item 7"
    missing = await client.get("/api/items/100000")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "item 100000 not found"}


async def test_orders_are_cached_in_redis(client: httpx.AsyncClient) -> None:
    order_id = uuid.uuid4()
    first = (await client.get(f"/api/orders/{order_id}")).json()
    second = (await client.get(f"/api/orders/{order_id}")).json()
    assert (first["cached"], second["cached"]) == (False, True)
    assert first["lines"] == second["lines"]
    assert len(first["lines"]) >= 1


async def test_failing_routes_answer_4xx_and_5xx(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/checkout", json={"item_id": 3, "quantity": 0})).status_code == 422
    assert (await client.post("/api/checkout", json={"item_id": "x"})).status_code == 422
    assert (await client.post("/api/checkout", json={"item_id": 3, "quantity": 2})).status_code == 200
    assert (await client.post("/api/payments/9/capture")).status_code == 500
    assert (await client.post("/api/payments/10/capture")).json() == {"payment_id": 10, "captured": True}


async def test_slow_route_takes_between_its_bounds(client: httpx.AsyncClient) -> None:
    generated_in_ms = (await client.get("/api/reports/slow")).json()["generated_in_ms"]
    assert 50 <= generated_in_ms <= 800


def test_traffic_mix_hits_declared_routes_and_some_unmatched_paths() -> None:
    app = create_demo_app("postgresql://unused", "redis://unused")
    routes = [route for route in app.routes if isinstance(route, Route) and route.path.startswith("/api/")]
    rng = random.Random(7)
    matched, unmatched = set(), 0
    for factory, _ in TRAFFIC_MIX:
        for _ in range(20):
            request = factory(rng)
            path = request.path.split("?")[0]
            hits = [r.path for r in routes if request.method in (r.methods or ()) and r.path_regex.match(path)]
            matched.update(hits)
            unmatched += not hits
    assert matched == {route.path for route in routes}
    assert unmatched > 0


def test_embedded_redis_stops_its_process(tmp_path: Path) -> None:
    server = EmbeddedRedis.start(tmp_path)
    pid = server.process.pid
    assert psutil.pid_exists(pid)
    server.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
