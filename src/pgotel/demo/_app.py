"""The demo FastAPI app: fast, DB-backed, Redis-cached, slow and failing routes, as a real service has."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import redis.asyncio as aioredis
import structlog
from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel

from pgotel.instrumentation import add_trace_context, redact_secrets

ITEM_COUNT = 200
CACHE_TTL_S = 8
SLOW_MEDIAN_S = 0.15
SLOW_BOUNDS_S = (0.05, 0.8)

_SEED = f"""
CREATE SCHEMA IF NOT EXISTS demo;
CREATE TABLE IF NOT EXISTS demo.items (
    id          integer PRIMARY KEY,
    name        text NOT NULL,
    price_cents integer NOT NULL,
    stock       integer NOT NULL
);
INSERT INTO demo.items (id, name, price_cents, stock)
SELECT n, 'item ' || n, 100 + (n * 37) % 9900, (n * 13) % 50
FROM generate_series(1, {ITEM_COUNT}) AS n
ON CONFLICT (id) DO NOTHING;
"""
_LIST_ITEMS = "SELECT id, name, price_cents, stock FROM demo.items ORDER BY id LIMIT $1"
_GET_ITEM = "SELECT id, name, price_cents, stock FROM demo.items WHERE id = $1"
_ORDER_LINES = "SELECT id, name, price_cents FROM demo.items WHERE id = ANY($1::int[])"

log = structlog.get_logger("pgotel.demo")
stdlib_log = logging.getLogger("pgotel.demo")


def configure_logging() -> None:
    """Route structlog through stdlib logging (which pgotel exports), with pgotel's trace-context processors."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_trace_context,
            redact_secrets,
            structlog.stdlib.render_to_log_kwargs,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    stdlib_log.setLevel(logging.INFO)


class CheckoutRequest(BaseModel):
    item_id: int
    quantity: int


def create_demo_app(dsn: str, redis_url: str) -> FastAPI:
    """The demo service; its lifespan opens an asyncpg pool on `dsn` and a Redis client on `redis_url`."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=4, server_settings={"application_name": "pgotel-demo"}
        )
        cache = aioredis.Redis.from_url(redis_url)
        try:
            await pool.execute(_SEED)
            app.state.pool = pool
            app.state.cache = cache
            yield
        finally:
            await cache.aclose()
            await pool.close()

    app = FastAPI(title="pgotel demo shop", lifespan=lifespan)

    @app.get("/api/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/items")
    async def list_items(request: Request, limit: int = 20) -> list[dict[str, Any]]:
        rows = await request.app.state.pool.fetch(_LIST_ITEMS, min(limit, 100))
        return [dict(row) for row in rows]

    @app.get("/api/items/{item_id:int}")
    async def get_item(request: Request, item_id: int) -> dict[str, Any]:
        row = await request.app.state.pool.fetchrow(_GET_ITEM, item_id)
        if row is None:
            log.info("item not found", item_id=item_id)
            raise HTTPException(status_code=404, detail=f"item {item_id} not found")
        return dict(row)

    @app.get("/api/orders/{order_id:uuid}")
    async def get_order(request: Request, order_id: uuid.UUID) -> dict[str, Any]:
        key = f"demo:order:{order_id}"
        cache: aioredis.Redis = request.app.state.cache
        cached = await cache.get(key)
        if cached is not None:
            return {**json.loads(cached), "cached": True}
        item_ids = [1 + (order_id.int >> shift) % ITEM_COUNT for shift in (0, 8, 16)]
        rows = await request.app.state.pool.fetch(_ORDER_LINES, item_ids)
        order = {"order_id": str(order_id), "lines": [dict(row) for row in rows]}
        await cache.set(key, json.dumps(order), ex=CACHE_TTL_S)
        log.info("order cache miss", order_id=str(order_id))
        return {**order, "cached": False}

    @app.post("/api/checkout")
    async def checkout(request: Request, body: CheckoutRequest) -> dict[str, Any]:
        if body.quantity <= 0:
            raise HTTPException(status_code=422, detail="quantity must be a positive integer")
        row = await request.app.state.pool.fetchrow(_GET_ITEM, body.item_id)
        if row is None:
            raise HTTPException(status_code=404, detail=f"item {body.item_id} not found")
        stdlib_log.info("checkout accepted for item %s x%s", body.item_id, body.quantity)
        return {"item_id": body.item_id, "total_cents": row["price_cents"] * body.quantity}

    @app.get("/api/reports/slow")
    async def slow_report() -> dict[str, float]:
        low, high = SLOW_BOUNDS_S
        seconds = min(high, max(low, random.lognormvariate(math.log(SLOW_MEDIAN_S), 0.7)))
        await asyncio.sleep(seconds)
        return {"generated_in_ms": round(seconds * 1000, 1)}

    @app.post("/api/payments/{payment_id:int}/capture")
    async def capture_payment(payment_id: int) -> dict[str, Any]:
        if payment_id % 3 == 0:
            stdlib_log.warning("payment gateway timed out for payment %s", payment_id)
            raise RuntimeError(f"payment gateway timeout while capturing payment {payment_id}")
        return {"payment_id": payment_id, "captured": True}

    return app
