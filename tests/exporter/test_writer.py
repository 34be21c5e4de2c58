"""The writer marks the side rows it uses as seen on every UTC day it uses them, so that only unused ones expire."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from opentelemetry._logs import LogRecord
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from pgotel import db
from pgotel.exporter import PostgresLogExporter, PostgresSpanExporter
from tests.conftest import stored_rows
from tests.exporter.conftest import finished_spans, settings_for

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
    spans = finished_spans("work")
    writer = exporter.writer
    write_table = writer._write_table

    async def write_while_another_batch_arrives(store: Any, table: str, rows: list[Any]) -> Any:
        exporter.export(spans)
        return await write_table(store, table, rows)

    monkeypatch.setattr(writer, "_write_table", write_while_another_batch_arrives)
    exporter.export(spans)
    assert exporter.force_flush(10_000)


def test_a_flush_writes_every_row_queued_before_it_while_another_table_keeps_receiving(
    dsn: str, shutdowns: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(dsn, exporter={"batch_rows": 100, "flush_interval_ms": 60_000})
    span_exporter, log_exporter = PostgresSpanExporter(settings=settings), PostgresLogExporter(settings=settings)
    shutdowns += [span_exporter, log_exporter]
    writer = span_exporter.writer
    logs = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    for _ in range(100):
        logger_provider.get_logger("writer-test").emit(LogRecord(body="arriving during the flush"))
    _connected_and_idle(span_exporter)  # the flush's drain below is then the only one

    def queued_without_waking_the_writer(export: Callable[[], object]) -> None:
        with monkeypatch.context() as patch:
            patch.setattr(writer._loop, "call_soon_threadsafe", lambda *_args: None)
            export()

    spans = finished_spans(*["queued-before-the-flush"] * 300)
    queued_without_waking_the_writer(lambda: span_exporter.export(spans))  # 3 batches
    write_table = writer._write_table

    async def write_while_logs_arrive(store: Any, table: str, rows: list[Any]) -> Any:
        if table == "spans" and writer.queued == 200:  # during the first spans COPY
            queued_without_waking_the_writer(lambda: log_exporter.export(logs.get_finished_logs()))
        return await write_table(store, table, rows)

    monkeypatch.setattr(writer, "_write_table", write_while_logs_arrive)
    assert writer.flush(10)
    assert _count(dsn, "spans") == 300


def _count(dsn: str, table: str) -> int:
    return int(stored_rows(dsn, f"SELECT count(*) FROM pgotel.{table}")[0]["count"])


def _connected_and_idle(exporter: PostgresSpanExporter) -> None:
    assert exporter.force_flush(10_000)
    time.sleep(0.5)  # the writer's own loop past its first round, asleep for its flush interval (60 s here)


def test_rows_arriving_during_a_drain_do_not_wait_for_the_next_flush_interval(
    dsn: str, shutdowns: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = PostgresSpanExporter(
        settings=settings_for(dsn, exporter={"batch_rows": 100, "flush_interval_ms": 60_000})
    )
    shutdowns.append(exporter)
    spans = finished_spans(*["work"] * 100)
    _connected_and_idle(exporter)
    write_table = exporter.writer._write_table
    arrived: list[bool] = []

    async def write_while_a_batch_arrives(store: Any, table: str, rows: list[Any]) -> Any:
        if not arrived:
            arrived.append(True)
            exporter.export(spans)  # a full batch (batch_rows) arrives during the writer's own drain
        return await write_table(store, table, rows)

    monkeypatch.setattr(exporter.writer, "_write_table", write_while_a_batch_arrives)
    exporter.export(spans)  # a full batch wakes the writer
    for _ in range(200):  # written long before the 60 s flush interval (bounded)
        if _count(dsn, "spans") == 200:
            break
        time.sleep(0.05)
    assert _count(dsn, "spans") == 200
