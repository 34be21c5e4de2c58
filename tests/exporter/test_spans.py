"""Spans read back from PostgreSQL equal what the SDK produced, field by field."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from pgotel.config import PgotelSettings
from pgotel.exporter import PostgresSpanExporter
from tests.exporter.conftest import partition_time

_READ = """
SELECT s.*, r.attributes AS resource_attributes, r.schema_url AS resource_schema_url,
       sc.name AS scope_name, sc.version AS scope_version
FROM pgotel.spans s
JOIN pgotel.resources r ON r.id = s.resource_id
JOIN pgotel.scopes sc ON sc.id = s.scope_id
ORDER BY s.start_unix_nano
"""


def _unsigned(value: int | None) -> int | None:
    return None if value is None else value % (1 << 64)


def _plain(value: Any) -> Any:
    """Attribute values as JSON gives them back: sequences become lists."""
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def expected(span: ReadableSpan) -> dict[str, Any]:
    assert span.context is not None
    assert span.start_time is not None
    assert span.end_time is not None
    return {
        "trace_id": span.context.trace_id,
        "span_id": span.context.span_id,
        "parent_span_id": span.parent.span_id if span.parent else None,
        "trace_state": span.context.trace_state.to_header() or None,
        "trace_flags": int(span.context.trace_flags),
        "name": span.name,
        "kind": span.kind.value + 1,  # stored with OTLP numbering
        "status_code": span.status.status_code.value,
        "status_message": span.status.description,
        "start": span.start_time,
        "start_time": partition_time(span.start_time),
        "end": span.end_time,
        "attributes": _plain(dict(span.attributes or {})),
        "events": [(e.name, e.timestamp, _plain(dict(e.attributes or {}))) for e in span.events],
        "links": [
            (
                f"{link.context.trace_id:032x}",
                f"{link.context.span_id:016x}",
                _plain(dict(link.attributes or {})),
            )
            for link in span.links
        ],
        "resource": _plain(dict(span.resource.attributes)),
        "scope": (span.instrumentation_scope.name, span.instrumentation_scope.version)
        if span.instrumentation_scope
        else None,
        "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
    }


def stored(row: asyncpg.Record) -> dict[str, Any]:
    events = json.loads(row["events"]) if row["events"] else []
    links = json.loads(row["links"]) if row["links"] else []
    return {
        "trace_id": row["trace_id"].int,
        "span_id": _unsigned(row["span_id"]),
        "parent_span_id": _unsigned(row["parent_span_id"]),
        "trace_state": row["trace_state"],
        "trace_flags": row["trace_flags"],
        "name": row["name"],
        "kind": row["kind"],
        "status_code": row["status_code"],
        "status_message": row["status_message"],
        "start": row["start_unix_nano"],
        "start_time": row["start_time"],
        "end": row["start_unix_nano"] + row["duration_ns"],
        "attributes": json.loads(row["attributes"]),
        "events": [(e["name"], e["time_unix_nano"], e["attributes"]) for e in events],
        "links": [(link["trace_id"], link["span_id"], link["attributes"]) for link in links],
        "resource": json.loads(row["resource_attributes"]),
        "scope": (row["scope_name"], row["scope_version"]),
        "dropped": (row["dropped_attributes"], row["dropped_events"], row["dropped_links"]),
    }


_MAX_SPAN_ATTRIBUTES = 12
_MAX_EVENTS = 3


def _produce(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("fidelity.scope", "1.2.3")
    linked = SpanContext(
        trace_id=0xABCDEF0123456789ABCDEF0123456789,
        span_id=0xFEDCBA9876543210,  # above 2**63: must survive the signed bigint column
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "value")]),
    )
    attributes = {
        "str": "text é ✓",
        "int": -42,
        "big_int": 2**62,
        "float": 3.25,
        "whole_float": 2.0,
        "bool": True,
        "str_list": ("a", "b"),
        "int_list": (1, 2, 3),
        "float_list": (0.5, 1.5),
        "bool_list": (True, False),
    }
    with tracer.start_as_current_span("parent", kind=SpanKind.SERVER, attributes=attributes) as parent:
        parent.add_event("checkpoint", {"step": 1, "ok": True})
        with tracer.start_as_current_span(
            "child", kind=SpanKind.CLIENT, links=[Link(linked, {"link.attr": "x"})]
        ) as child:
            child.set_status(Status(StatusCode.ERROR, "boom"))
            child.record_exception(ValueError("bad value"))
        with tracer.start_as_current_span("producer", kind=SpanKind.PRODUCER):
            pass
    with tracer.start_as_current_span("consumer-root", kind=SpanKind.CONSUMER) as root:
        root.set_status(Status(StatusCode.OK))
    with tracer.start_as_current_span("internal", kind=SpanKind.INTERNAL):
        pass
    # Beyond the provider's limits: the SDK drops the excess and the stored counts say how much.
    crowded_attributes = {f"key.{index}": index for index in range(_MAX_SPAN_ATTRIBUTES + 3)}
    links = [Link(linked), Link(linked, {"second": True})]
    with tracer.start_as_current_span("crowded", attributes=crowded_attributes, links=links) as crowded:
        for step in range(_MAX_EVENTS + 2):
            crowded.add_event("step", {"step": step})


async def test_every_span_field_round_trips(settings: PgotelSettings, conn: asyncpg.Connection) -> None:
    memory = InMemorySpanExporter()
    exporter = PostgresSpanExporter(settings=settings)
    resource = Resource.create({"service.name": "fidelity", "deployment.environment": "test", "host.cpus": 2})
    limits = SpanLimits(max_span_attributes=_MAX_SPAN_ATTRIBUTES, max_events=_MAX_EVENTS, max_links=1)
    provider = TracerProvider(resource=resource, span_limits=limits)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        _produce(provider)
        assert exporter.force_flush(10_000)
        produced = sorted((expected(span) for span in memory.get_finished_spans()), key=lambda s: s["start"])
        rows = [stored(row) for row in await conn.fetch(_READ)]
        assert len(rows) == 6
        assert rows == produced
        assert rows[-1]["dropped"] == (3, 2, 1)
        service = await conn.fetchval("SELECT DISTINCT service_name FROM pgotel.spans")
        assert service == "fidelity"
    finally:
        provider.shutdown()


async def test_http_server_span_fills_typed_columns(settings: PgotelSettings, conn: asyncpg.Connection) -> None:
    exporter = PostgresSpanExporter(settings=settings)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        tracer = provider.get_tracer("http")
        with tracer.start_as_current_span(
            "GET /items/{item_id}",
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": "GET",
                "http.route": "/items/{item_id}",
                "http.response.status_code": 404,
            },
        ):
            pass
        assert exporter.force_flush(10_000)
        row = await conn.fetchrow("SELECT http_method, http_route, http_status_code, kind FROM pgotel.spans")
        assert dict(row) == {
            "http_method": "GET",
            "http_route": "/items/{item_id}",
            "http_status_code": 404,
            "kind": 2,  # OTLP SPAN_KIND_SERVER
        }
    finally:
        provider.shutdown()
