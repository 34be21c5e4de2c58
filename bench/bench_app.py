"""The application every benchmark measures, in one of six instrumentation modes.

`uvicorn --factory bench_app:app_from_environment --app-dir bench` builds it from `BENCH_MODE` and
`BENCH_DSN`; `request_cost.py` calls `build_app()` directly. Two endpoints: `/trivial` (JSON, no I/O)
and `/db` (one asyncpg query of ~3 ms through a pool created in the lifespan)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from _support import (
    OTEL_CONFIG,
    DiscardMetricExporter,
    DiscardSpanExporter,
    discard_pgotel_rows_before_the_writer,
    swap_pgotel_exporters_for_discard,
)
from fastapi import FastAPI, Request, Response

MODES: dict[str, str] = {
    "none": "(a) uninstrumented",
    "otel": "(b) stock OTel, discard exporter",
    "pgotel-discard": "(c) pgotel, discard exporters",
    "pgotel": "(d) pgotel -> PostgreSQL",
    "insert": "(e) INSERT per request (middleware)",
    "logfire": "(f) Logfire, discard exporter",
}
# Not one of the modes: run by name (`overhead.py --modes none,pgotel-discard,pgotel-convert,pgotel`).
DIAGNOSTIC_MODES: dict[str, str] = {
    "pgotel-convert": "(d') pgotel converting, rows not written",
}
ALL_MODES = {**MODES, **DIAGNOSTIC_MODES}
DB_QUERY = "SELECT pg_sleep(0.003)"
APP_CONNECTIONS = "bench-app"  # the application_name of the endpoints' own pool
# The application_name of the connections that store each mode's telemetry: pgotel's writer, and (e)'s own
# pool for its INSERTs, so that overhead.py can tell PostgreSQL's CPU for telemetry from the endpoint's query's.
TELEMETRY_CONNECTIONS: dict[str, str] = {"pgotel": "pgotel", "insert": "bench-insert"}
# The metrics table of the system pgotel replaces: one row per request, indexed for its dashboard queries.
REQUEST_METRICS_DDL = """
CREATE TABLE IF NOT EXISTS bench_request_metrics (
    id          bigserial PRIMARY KEY,
    timestamp   timestamptz NOT NULL,
    endpoint    text NOT NULL,
    method      text NOT NULL,
    status      integer NOT NULL,
    duration_ms double precision NOT NULL,
    trace_id    text
);
CREATE INDEX IF NOT EXISTS bench_request_metrics_timestamp ON bench_request_metrics (timestamp);
CREATE INDEX IF NOT EXISTS bench_request_metrics_endpoint ON bench_request_metrics (endpoint);
"""
INSERT_REQUEST_METRIC = (
    "INSERT INTO bench_request_metrics (timestamp, endpoint, method, status, duration_ms, trace_id)"
    " VALUES (now(), $1, $2, $3, $4, $5)"
)


class Telemetry:
    """What a mode set up, so a caller can flush it (request_cost.py counts the export work)."""

    def __init__(self, flush: Callable[[], object] = lambda: None) -> None:
        self.flush = flush


def build_app(mode: str, dsn: str) -> tuple[FastAPI, Telemetry]:
    if mode not in ALL_MODES:
        raise SystemExit(f"unknown BENCH_MODE {mode!r}; expected one of {', '.join(ALL_MODES)}")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pools = [await _pool(dsn, APP_CONNECTIONS)]
        app.state.pool = pools[0]
        if mode == "insert":
            app.state.metrics_pool = await _pool(dsn, TELEMETRY_CONNECTIONS[mode])
            pools.append(app.state.metrics_pool)
            await app.state.metrics_pool.execute(REQUEST_METRICS_DDL)
        try:
            yield
        finally:
            for pool in pools:
                await pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/trivial")
    async def trivial() -> dict[str, Any]:
        return {"status": "ok", "items": [1, 2, 3]}

    @app.get("/db")
    async def database(request: Request) -> dict[str, Any]:
        await request.app.state.pool.fetchval(DB_QUERY)
        return {"status": "ok"}

    return app, _instrument(app, mode)


async def _pool(dsn: str, application_name: str) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=4, max_size=24, server_settings={"application_name": application_name}
    )
    assert pool is not None
    return pool


def _instrument(app: FastAPI, mode: str) -> Telemetry:
    if mode == "otel":
        return _stock_otel(app)
    if mode in ("pgotel", "pgotel-discard", "pgotel-convert"):
        import pgotel

        if mode == "pgotel-discard":
            swap_pgotel_exporters_for_discard()
        if mode == "pgotel-convert":
            discard_pgotel_rows_before_the_writer()
        handle = pgotel.setup(app, config=OTEL_CONFIG)
        return Telemetry(handle.force_flush)
    if mode == "insert":
        _insert_per_request(app)
    if mode == "logfire":
        return _logfire(app)
    return Telemetry()


def _stock_otel(app: FastAPI) -> Telemetry:
    """The setup of the OTel Python docs: SDK providers, BatchSpanProcessor, periodic metric reader."""
    from opentelemetry import metrics, trace
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({SERVICE_NAME: "bench"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(DiscardSpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    meter_provider = MeterProvider(
        resource=resource, metric_readers=[PeriodicExportingMetricReader(DiscardMetricExporter())]
    )
    metrics.set_meter_provider(meter_provider)
    FastAPIInstrumentor.instrument_app(app, tracer_provider=tracer_provider, meter_provider=meter_provider)
    AsyncPGInstrumentor().instrument(tracer_provider=tracer_provider)  # type: ignore[no-untyped-call]

    def flush() -> None:
        tracer_provider.force_flush()
        meter_provider.force_flush()

    return Telemetry(flush)


def _insert_per_request(app: FastAPI) -> None:
    """The approach pgotel replaces: an HTTP middleware awaiting one INSERT per request (through its own pool)."""

    @app.middleware("http")
    async def record_request(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        duration_ms = (time.perf_counter() - started) * 1000
        await request.app.state.metrics_pool.execute(
            INSERT_REQUEST_METRIC,
            request.url.path,
            request.method,
            response.status_code,
            duration_ms,
            uuid.uuid4().hex,
        )
        return response


def _logfire(app: FastAPI) -> Telemetry:
    """Pydantic Logfire as its docs configure it, sending nowhere; spans and metrics go to discard exporters."""
    import logfire
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    logfire.configure(
        send_to_logfire=False,
        console=False,
        service_name="bench",
        additional_span_processors=[BatchSpanProcessor(DiscardSpanExporter())],
        metrics=logfire.MetricsOptions(additional_readers=[PeriodicExportingMetricReader(DiscardMetricExporter())]),
    )
    logfire.instrument_fastapi(app)
    logfire.instrument_asyncpg()
    return Telemetry(logfire.force_flush)


def app_from_environment() -> FastAPI:
    """The factory `uvicorn --factory bench_app:app_from_environment` serves."""
    built, _ = build_app(os.environ.get("BENCH_MODE", "none"), os.environ.get("BENCH_DSN", ""))
    return built
