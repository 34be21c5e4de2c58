"""Log records read back from PostgreSQL equal what the SDK produced."""

from __future__ import annotations

import json
import time
from typing import Any

import asyncpg
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from pgotel.config import PgotelSettings
from pgotel.exporter import PostgresLogExporter
from tests.exporter.conftest import partition_time


def expected(readable: ReadableLogRecord) -> dict[str, Any]:
    record = readable.log_record
    observed = record.observed_timestamp or 0
    return {
        "time": record.timestamp,
        "partition_time": partition_time(record.timestamp or observed),
        "observed": record.observed_timestamp,
        "trace_id": record.trace_id or None,
        "span_id": record.span_id or None,
        "severity_number": record.severity_number.value if record.severity_number else 0,
        "severity_text": record.severity_text,
        "body": json.loads(json.dumps(record.body)),
        "event_name": record.event_name,
        "attributes": json.loads(json.dumps(dict(record.attributes or {}))),
        "service": readable.resource.attributes["service.name"],
    }


def stored(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "time": row["time_unix_nano"],
        "partition_time": row["time"],
        "observed": row["observed_unix_nano"],
        "trace_id": row["trace_id"].int if row["trace_id"] else None,
        "span_id": row["span_id"] % (1 << 64) if row["span_id"] is not None else None,
        "severity_number": row["severity_number"],
        "severity_text": row["severity_text"],
        "body": json.loads(row["body"]) if row["body"] is not None else None,
        "event_name": row["event_name"],
        "attributes": json.loads(row["attributes"]),
        "service": row["service_name"],
    }


async def test_every_log_field_round_trips(settings: PgotelSettings, conn: asyncpg.Connection) -> None:
    memory = InMemoryLogRecordExporter()
    exporter = PostgresLogExporter(settings=settings)
    provider = LoggerProvider(resource=Resource.create({"service.name": "log-fidelity"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    try:
        logger = provider.get_logger("fidelity.logs", "0.1")
        logger.emit(
            LogRecord(
                timestamp=time.time_ns() - 123_457,
                body="plain text body",
                severity_number=SeverityNumber.WARN,
                severity_text="WARNING",
                attributes={"user.id": 7, "ratio": 0.5, "tags": ("a", "b"), "ok": False},
                trace_id=0x0123456789ABCDEF0123456789ABCDEF,
                span_id=0xF000000000000001,
            )
        )
        logger.emit(LogRecord(body={"event": "structured", "count": 3, "nested": {"k": [1, 2]}}, event_name="ev"))
        logger.emit(LogRecord(body=None, severity_number=SeverityNumber.ERROR, attributes={"exception.type": "E"}))
        assert exporter.force_flush(10_000)
        produced = sorted((expected(r) for r in memory.get_finished_logs()), key=lambda r: r["observed"])
        rows = [stored(row) for row in await conn.fetch("SELECT * FROM pgotel.logs ORDER BY observed_unix_nano")]
        assert rows == produced
    finally:
        provider.shutdown()
