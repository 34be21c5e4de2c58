"""The writer marks the side rows it uses as seen on every UTC day it uses them, so that only unused ones expire."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import asyncpg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pgotel import db
from pgotel.exporter import PostgresSpanExporter
from tests.exporter.conftest import settings_for

_OLDEST_SEEN = """
SELECT min(last_seen)
FROM (SELECT last_seen FROM pgotel.resources UNION ALL SELECT last_seen FROM pgotel.scopes) AS side
"""


async def test_side_rows_in_use_are_marked_seen_again_on_a_new_utc_day(
    dsn: str, conn: asyncpg.Connection, shutdowns: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = PostgresSpanExporter(settings=settings_for(dsn, exporter={"flush_interval_ms": 20}))
    shutdowns.append(exporter)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("writer-test")

    def export_one_span() -> None:
        with tracer.start_as_current_span("work"):
            pass
        assert exporter.force_flush(10_000)

    today = db.utc_today()
    export_one_span()
    await conn.execute("UPDATE pgotel.resources SET last_seen = last_seen - 40")
    await conn.execute("UPDATE pgotel.scopes SET last_seen = last_seen - 40")
    export_one_span()  # the same day: the writer knows the rows are there and seen today
    assert await conn.fetchval(_OLDEST_SEEN) == today - dt.timedelta(days=40)

    monkeypatch.setattr(db, "utc_today", lambda: today + dt.timedelta(days=1))
    for _ in range(500):  # until the writer's loop has turned the day (bounded)
        export_one_span()
        if await conn.fetchval(_OLDEST_SEEN) == today:
            break
        await asyncio.sleep(0.02)
    assert await conn.fetchval(_OLDEST_SEEN) == today  # PostgreSQL's own day: upserted again


def test_a_flush_ends_while_rows_keep_arriving(dsn: str, shutdowns: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """A drain writes what was queued when it began: under a steady stream the writer still gets to its rollups."""
    exporter = PostgresSpanExporter(settings=settings_for(dsn))
    shutdowns.append(exporter)
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("writer-test").start_as_current_span("work"):
        pass
    spans = memory.get_finished_spans()
    writer = exporter.writer
    write_table = writer._write_table

    async def write_while_another_batch_arrives(store: Any, table: str, rows: list[Any]) -> None:
        exporter.export(spans)
        await write_table(store, table, rows)

    monkeypatch.setattr(writer, "_write_table", write_while_another_batch_arrives)
    exporter.export(spans)
    assert exporter.force_flush(10_000)
