"""One malformed value is sanitized or dropped-and-counted; it never loses the rest of its batch."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pgotel.config import PgotelSettings
from pgotel.exporter import PostgresMetricExporter, PostgresSpanExporter

from .conftest import finished_spans, settings_for


def _spans_with_bad_values() -> InMemorySpanExporter:
    memory = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_attributes=10_000, max_attribute_length=None))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bad-input")
    for index in range(5):
        with tracer.start_as_current_span(f"good-{index}", attributes={"index": index}):
            pass
    with tracer.start_as_current_span("nul\x00in-name", attributes={"nul": "a\x00b"}):
        pass
    with tracer.start_as_current_span("huge", attributes={"blob": "x" * 2_000_000}):
        pass
    with tracer.start_as_current_span("many", attributes={f"k{i}": i for i in range(5_000)}):
        pass
    with tracer.start_as_current_span("nan", attributes={"nan": float("nan"), "inf": float("-inf")}):
        pass
    with tracer.start_as_current_span("big-int", attributes={"big": 2**70}):
        pass
    with tracer.start_as_current_span("huge-int", attributes={"huge": 10**5000}) as span:  # beyond Python's str()
        span.add_event("measured", {"huge": -(10**5000)})
    with tracer.start_as_current_span("surrogate", attributes={"text": "bad \udc80 surrogate"}):
        pass
    with tracer.start_as_current_span("epoch", start_time=1, attributes={"too_old": True}) as span:
        span.end(end_time=2)
    with tracer.start_as_current_span("beyond", start_time=2**80, attributes={"year": "> 9999"}) as span:
        span.end(end_time=2**80 + 1)
    return memory


async def test_bad_values_are_sanitized_and_the_batch_survives(
    settings: PgotelSettings, conn: asyncpg.Connection
) -> None:
    spans = _spans_with_bad_values().get_finished_spans()
    exporter = PostgresSpanExporter(settings=settings)
    try:
        exporter.export(spans)  # one batch holding every bad value
        assert exporter.force_flush(10_000)
        names = {row["name"] for row in await conn.fetch("SELECT name FROM pgotel.spans")}
        assert names == {f"good-{i}" for i in range(5)} | {
            "nul\ufffdin-name",
            "huge",
            "many",
            "nan",
            "big-int",
            "huge-int",
            "surrogate",
        }
        attributes = {r["name"]: json.loads(r["attributes"]) for r in await conn.fetch("SELECT * FROM pgotel.spans")}
        assert attributes["nul\ufffdin-name"] == {"nul": "a\ufffdb"}
        assert len(attributes["huge"]["blob"]) == settings.limits.max_value_length
        assert len(attributes["many"]) == settings.limits.max_attributes
        assert attributes["nan"] == {"nan": "nan", "inf": "-inf"}
        assert attributes["big-int"] == {"big": 2**70}
        assert attributes["huge-int"] == {"huge": hex(10**5000)}  # as text: hex has no length limit
        event = await conn.fetchval("SELECT events->0->'attributes' FROM pgotel.spans WHERE name = 'huge-int'")
        assert json.loads(event) == {"huge": hex(-(10**5000))}
        assert attributes["surrogate"] == {"text": "bad ? surrogate"}
        counts = exporter.writer.accounting.snapshot()
        assert counts["received"]["spans"] == len(spans)
        assert counts["stored"]["spans"] == len(spans) - 2
        assert counts["dropped"] == {"spans/timestamp_outside_retention": 2}
        assert counts["sanitized"]["spans/nul_byte"] == 2
        assert counts["sanitized"]["spans/value_too_long"] == 1
        assert counts["sanitized"]["spans/too_many_attributes"] == 5_000 - settings.limits.max_attributes
        assert counts["sanitized"]["spans/non_finite_number"] == 2
        assert counts["sanitized"]["spans/invalid_unicode"] == 1
        assert counts["sanitized"]["spans/integer_too_long"] == 2
    finally:
        exporter.shutdown()


def _export_counter(dsn: str, name: str, adds: list[tuple[int, dict[str, Any]]]) -> None:
    """Record `adds` on a counter and export its points through pgotel's metric exporter, stored on return."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    counter = provider.get_meter("bad-input").create_counter(name)
    for amount, attributes in adds:
        counter.add(amount, attributes)
    exporter = PostgresMetricExporter(settings=settings_for(dsn))
    try:
        data = reader.get_metrics_data()
        assert data is not None
        assert exporter.export(data).name == "SUCCESS"
        assert exporter.force_flush(10_000)
    finally:
        exporter.shutdown()
        provider.shutdown()


async def test_out_of_range_metric_value_is_stored_as_double(dsn: str, conn: asyncpg.Connection) -> None:
    _export_counter(dsn, "bytes.total", [(2**70, {}), (5, {"other": "series"})])
    values = {(r["value_int"], r["value_double"]) for r in await conn.fetch("SELECT * FROM pgotel.metric_points")}
    assert values == {(None, float(2**70)), (5, None)}


async def test_a_row_postgresql_rejects_is_dropped_alone(settings: PgotelSettings, conn: asyncpg.Connection) -> None:
    """A constraint the converter cannot know about: only the offending row is lost, and it is counted."""
    await conn.execute("ALTER TABLE pgotel.spans ADD CONSTRAINT no_forbidden CHECK (name <> 'forbidden')")
    exporter = PostgresSpanExporter(settings=settings)
    try:
        exporter.export(finished_spans("a", "b", "forbidden", "c", "d", "e", "f"))
        assert exporter.force_flush(10_000)
        names = sorted(r[0] for r in await conn.fetch("SELECT name FROM pgotel.spans"))
        assert names == ["a", "b", "c", "d", "e", "f"]
        assert exporter.writer.accounting.snapshot()["dropped"] == {"spans/rejected_by_database": 1}
    finally:
        exporter.shutdown()


async def test_an_item_that_breaks_the_conversion_loses_only_itself(
    settings: PgotelSettings, conn: asyncpg.Connection
) -> None:
    good_1, good_2 = finished_spans("good-1", "good-2")
    # What a broken processor upstream could hand over: a span whose start time is not a number.
    broken = ReadableSpan("broken", context=good_1.context, start_time="yesterday", end_time=1)  # type: ignore[arg-type]
    exporter = PostgresSpanExporter(settings=settings)
    try:
        assert exporter.export([good_1, broken, good_2]).name == "FAILURE"  # something was dropped
        assert exporter.force_flush(10_000)
        assert sorted(r[0] for r in await conn.fetch("SELECT name FROM pgotel.spans")) == ["good-1", "good-2"]
        counts = exporter.writer.accounting.snapshot()
        assert (counts["received"]["spans"], counts["stored"]["spans"]) == (3, 2)
        assert counts["dropped"] == {"spans/conversion_error": 1}
    finally:
        exporter.shutdown()


async def test_a_metric_point_with_a_huge_int_attribute_is_stored(dsn: str, conn: asyncpg.Connection) -> None:
    _export_counter(dsn, "orders", [(1, {"batch": 10**5000}), (2, {"batch": 7})])
    rows = await conn.fetch(
        "SELECT s.attributes->>'batch' AS batch, p.value_int FROM pgotel.metric_points p"
        " JOIN pgotel.metric_series s ON s.id = p.series_id"
    )
    assert {(r["batch"], r["value_int"]) for r in rows} == {("7", 2), (hex(10**5000), 1)}


class _Exploding:
    """Stands for a broken SDK object: touching it raises a BaseException (the SDK's batch worker dies on one)."""

    def __getattr__(self, name: str) -> object:
        raise KeyboardInterrupt(name)


def test_export_never_raises_even_on_base_exceptions(settings: PgotelSettings) -> None:
    spans = PostgresSpanExporter(settings=settings)
    metrics = PostgresMetricExporter(settings=settings)
    try:
        assert spans.export([_Exploding()]).name == "FAILURE"  # type: ignore[list-item]
        assert metrics.export(_Exploding()).name == "FAILURE"  # type: ignore[arg-type]
        dropped = spans.writer.accounting.snapshot()["dropped"]
        assert dropped == {"spans/conversion_error": 1, "metric_points/malformed_batch": 1}
    finally:
        spans.shutdown()
        metrics.shutdown()
