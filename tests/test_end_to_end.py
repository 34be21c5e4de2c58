"""The whole path, request to rows: pgotel.setup() on a FastAPI app writing to a real PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import structlog
from fastapi import FastAPI, Request
from opentelemetry import trace

import pgotel
from pgotel.instrumentation import add_trace_context, redact_secrets

_SECRETS = (
    "s3cr3t-header",
    "s3cr3t-cookie",
    "s3cr3t-query",
    "s3cr3t-pass",
    "s3cr3t-attr",
    "s3cr3t-log",
    "s3cr3t-extra",
)


def _app() -> FastAPI:
    app = FastAPI()
    log = structlog.get_logger("e2e.app")

    @pgotel.traced
    def compute(value: int) -> int:
        return value * 2

    @app.get("/items/{item_id}")
    async def get_item(item_id: int, request: Request) -> dict[str, int]:
        trace.get_current_span().set_attribute("api_key", "s3cr3t-attr")
        with trace.get_tracer("e2e").start_as_current_span("plain-otel-span"):
            doubled = compute(item_id)
        log.info("item served", item_id=item_id, password="s3cr3t-log")
        logging.getLogger("e2e.stdlib").warning("stdlib line", extra={"client_secret": "s3cr3t-extra"})
        return {"item_id": item_id, "doubled": doubled}

    return app


@pytest.fixture
def configured(dsn: str, monkeypatch: pytest.MonkeyPatch, repo_root: object) -> None:
    monkeypatch.setenv("PGOTEL_DSN", dsn)
    monkeypatch.setenv("PGOTEL_DASHBOARD_TOKEN", "e2e-dashboard-token")
    monkeypatch.chdir(str(repo_root))
    structlog.configure(
        processors=[add_trace_context, redact_secrets, structlog.stdlib.render_to_log_kwargs],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    logging.getLogger().setLevel(logging.INFO)


@pytest.fixture
async def served(configured: None) -> AsyncIterator[tuple[httpx.AsyncClient, pgotel.PgOtel]]:
    app = _app()
    handle = pgotel.setup(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield client, handle
    handle.shutdown()


async def test_trace_id_header_matches_stored_span_and_logs(
    served: tuple[httpx.AsyncClient, pgotel.PgOtel], conn: asyncpg.Connection
) -> None:
    client, handle = served
    response = await client.get("/items/41")
    assert response.status_code == 200
    trace_id = response.headers["X-Trace-ID"]
    assert len(trace_id) == 32
    assert int(trace_id, 16)
    assert handle.force_flush(10_000)
    server = await conn.fetchrow("SELECT * FROM pgotel.spans WHERE kind = 2")
    assert server["trace_id"].hex == trace_id
    assert server["name"] == "GET /items/{item_id}"
    assert server["http_route"] == "/items/{item_id}"
    assert server["http_status_code"] == 200
    names = {
        r["name"] for r in await conn.fetch("SELECT name FROM pgotel.spans WHERE trace_id = $1", server["trace_id"])
    }
    assert {"GET /items/{item_id}", "plain-otel-span"} <= names
    assert any("compute" in name for name in names)
    logs = await conn.fetch("SELECT trace_id, body FROM pgotel.logs WHERE service_name <> ''")
    served_logs = [r for r in logs if r["body"] and ("item served" in r["body"] or "stdlib line" in r["body"])]
    assert len(served_logs) == 2
    assert {r["trace_id"].hex for r in served_logs} == {trace_id}


async def test_planted_secrets_are_found_nowhere_in_the_database(
    served: tuple[httpx.AsyncClient, pgotel.PgOtel], conn: asyncpg.Connection
) -> None:
    client, handle = served
    response = await client.get(
        "/items/7?token=s3cr3t-query&password=s3cr3t-pass&page=2",
        headers={"Authorization": "Bearer s3cr3t-header", "Cookie": "session=s3cr3t-cookie"},
    )
    assert response.status_code == 200
    assert handle.force_flush(10_000)
    assert await conn.fetchval("SELECT count(*) FROM pgotel.spans") >= 3
    assert await conn.fetchval("SELECT count(*) FROM pgotel.logs") >= 2
    tables = [r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'pgotel'")]
    for table in tables:
        dump = await conn.fetchval(f"SELECT coalesce(string_agg(t::text, ' '), '') FROM pgotel.{table} t")
        for secret in _SECRETS:
            assert secret not in dump, f"{secret} leaked into pgotel.{table}"
