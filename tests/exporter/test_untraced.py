"""The exporter's own database work never shows up as telemetry, even with asyncpg instrumented."""

from __future__ import annotations

import logging
from pathlib import Path

import asyncpg
import pytest
from opentelemetry import trace

import pgotel


async def test_writer_queries_are_not_traced_or_logged(
    dsn: str, conn: asyncpg.Connection, repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGOTEL_DSN", dsn)
    handle = pgotel.setup(config=repo_root / "otel-config.yaml")  # instruments asyncpg for the whole process
    try:
        tracer = trace.get_tracer("app")
        for round_ in range(3):  # several flushes: connect, migrate, partitions, COPYs, side-table inserts
            with tracer.start_as_current_span(f"app-work-{round_}"):
                logging.getLogger("app").warning("application log line %d", round_)
            assert handle.force_flush(10_000)
        # The application's own asyncpg queries are traced: the instrumentation is live.
        app_conn = await asyncpg.connect(dsn)
        await app_conn.fetchval("SELECT 42")
        await app_conn.close()
        assert handle.force_flush(10_000)
        client_spans = await conn.fetch("SELECT name, attributes FROM pgotel.spans WHERE kind = 3")
        statements = [row["attributes"] for row in client_spans]
        assert len(client_spans) == 1, statements
        assert "42" in statements[0]
        assert not any("pgotel" in text for text in statements)
        loggers = {r[0] for r in await conn.fetch("SELECT DISTINCT attributes->>'code.namespace' FROM pgotel.logs")}
        bodies = [r[0] for r in await conn.fetch("SELECT body FROM pgotel.logs")]
        assert len(bodies) == 3, (bodies, loggers)
        assert all("application log line" in body for body in bodies)
    finally:
        handle.shutdown()
