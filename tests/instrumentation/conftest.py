"""In-memory OTel pipelines and a small instrumented FastAPI app, for asserting on exported telemetry."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ExponentialHistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Sampler
from starlette.applications import Starlette

from pgotel.config import HistogramShape, PgotelSettings, RedactionSettings, Redactor
from pgotel.instrumentation import (
    RequestDurations,
    instrument_app,
    pgotel_tracer_provider,
    redact_before_export,
    request_durations,
)


@dataclass
class Telemetry:
    """Providers that keep everything they export in memory."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    logger_provider: LoggerProvider
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    logs: InMemoryLogRecordExporter
    durations: RequestDurations

    def finished_spans(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def server_spans(self) -> list[ReadableSpan]:
        return [span for span in self.finished_spans() if span.kind.name == "SERVER"]

    def log_records(self) -> list[ReadableLogRecord]:
        return list(self.logs.get_finished_logs())

    def duration_points(self) -> list[ExponentialHistogramDataPoint]:
        data = self.metrics.get_metrics_data()
        if data is None:  # nothing was measured at all
            return []
        return [
            point
            for resource_metrics in data.resource_metrics
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
            if metric.name == "http.server.request.duration"
            for point in metric.data.data_points
        ]


def make_telemetry(sampler: Sampler | None = None) -> Telemetry:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(sampler=sampler) if sampler is not None else TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    metrics = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[metrics])
    logs = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    durations = request_durations(meter_provider, HistogramShape())
    # As setup() builds the pipeline: secrets are redacted by processors ahead of the exporting ones.
    redact_before_export(tracer_provider, logger_provider, Redactor.from_settings(RedactionSettings()))
    return Telemetry(tracer_provider, meter_provider, logger_provider, spans, metrics, logs, durations)


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    """In-memory providers; `@traced` and the client instrumentations emit to them during the test."""
    pipeline = make_telemetry()
    pgotel_tracer_provider.bind(pipeline.tracer_provider)
    yield pipeline
    pgotel_tracer_provider.unbind(pipeline.tracer_provider)
    pipeline.tracer_provider.shutdown()
    pipeline.meter_provider.shutdown()
    pipeline.logger_provider.shutdown()


def make_app() -> FastAPI:
    """Routes a typical service has: templated, failing, raising, and the dashboard's own."""
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def read_item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/missing")
    async def missing() -> None:
        raise HTTPException(status_code=404, detail="nope")

    @app.get("/fail")
    async def fail() -> None:
        raise HTTPException(status_code=503, detail="down")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaboom")

    @app.get("/ui/monitoring/advanced/page")
    async def dashboard_page() -> dict[str, str]:
        return {"page": "dashboard"}

    @app.get("/api/monitoring/advanced/summary")
    async def dashboard_api() -> dict[str, str]:
        return {"api": "ok"}

    return app


AppT = TypeVar("AppT", bound=Starlette)


def instrumented(app: AppT, pipeline: Telemetry, settings: PgotelSettings | None = None) -> AppT:
    instrument_app(
        app,
        tracer_provider=pipeline.tracer_provider,
        durations=pipeline.durations,
        settings=settings or PgotelSettings(),
    )
    return app


def client_for(app: Any) -> httpx.AsyncClient:
    # raise_app_exceptions=False: the client sees the 500 that ServerErrorMiddleware sends, like a real one.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
def app(telemetry: Telemetry) -> FastAPI:
    return instrumented(make_app(), telemetry)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as http:
        yield http
