"""Secrets are redacted inside the pipeline, before any exporter sees a span or a log record."""

from __future__ import annotations

from opentelemetry._logs import LogRecord
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext

from pgotel.config import RedactionSettings, Redactor
from pgotel.instrumentation import redact_before_export

_REDACTED = RedactionSettings().replacement


def _providers() -> tuple[TracerProvider, InMemorySpanExporter, LoggerProvider, InMemoryLogRecordExporter]:
    """Providers whose exporting processors exist before the redaction is installed, as setup() finds them."""
    spans, logs = InMemorySpanExporter(), InMemoryLogRecordExporter()
    tracer_provider, logger_provider = TracerProvider(), LoggerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    redact_before_export(tracer_provider, logger_provider, Redactor.from_settings(RedactionSettings()))
    return tracer_provider, spans, logger_provider, logs


def test_span_attributes_events_and_links_are_redacted_for_every_exporter() -> None:
    tracer_provider, spans, _, _ = _providers()
    linked = SpanContext(trace_id=7, span_id=8, is_remote=True)
    with tracer_provider.get_tracer("shop").start_as_current_span(
        "checkout",
        attributes={"api_key": "PLANTED-1", "url.full": "https://pay.example/v1?token=PLANTED-2&page=2", "n": 3},
        links=[Link(linked, {"session_id": "PLANTED-3"})],
    ) as span:
        span.add_event("retry", {"password": "PLANTED-4", "attempt": 2})
        span.set_attribute("db.connection_string", "postgresql://app:PLANTED-5@db/shop")

    [exported] = spans.get_finished_spans()
    assert dict(exported.attributes or {}) == {
        "api_key": _REDACTED,
        "url.full": f"https://pay.example/v1?token={_REDACTED}&page=2",
        "n": 3,
        "db.connection_string": f"postgresql://app:{_REDACTED}@db/shop",
    }
    assert [dict(event.attributes or {}) for event in exported.events] == [{"password": _REDACTED, "attempt": 2}]
    assert [dict(link.attributes or {}) for link in exported.links] == [{"session_id": _REDACTED}]
    assert exported.links[0].context == linked
    assert span.attributes is not None
    assert span.attributes["api_key"] == "PLANTED-1"  # the live span is untouched


def test_redacted_spans_keep_the_count_of_attributes_the_sdk_dropped() -> None:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=2, max_event_attributes=1))
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    redact_before_export(tracer_provider, None, Redactor.from_settings(RedactionSettings()))
    attributes = {"a": 1, "b": 2, "c": 3, "api_key": "PLANTED"}  # the limit keeps the last two
    with tracer_provider.get_tracer("shop").start_as_current_span("bulk", attributes=attributes) as span:
        span.add_event("retry", {"attempt": 2, "token": "PLANTED"})

    [exported] = spans.get_finished_spans()
    assert dict(exported.attributes or {}) == {"c": 3, "api_key": _REDACTED}
    assert exported.dropped_attributes == 2
    [event] = exported.events
    assert dict(event.attributes or {}) == {"token": _REDACTED}
    assert exported.dropped_events == 0
    assert event.dropped_attributes == 1


def test_a_span_without_secrets_is_exported_as_is() -> None:
    tracer_provider, spans, _, _ = _providers()
    with tracer_provider.get_tracer("shop").start_as_current_span("list", attributes={"http.route": "/items"}) as span:
        span.add_event("page", {"size": 20})

    [exported] = spans.get_finished_spans()
    assert dict(exported.attributes or {}) == {"http.route": "/items"}
    assert [dict(event.attributes or {}) for event in exported.events] == [{"size": 20}]


def test_log_attributes_and_bodies_are_redacted_for_every_exporter() -> None:
    _, _, logger_provider, logs = _providers()
    logger = logger_provider.get_logger("shop")
    logger.emit(LogRecord(body="GET https://api.example/v1?access_token=PLANTED-6", attributes={"secret": "PLANTED-7"}))
    logger.emit(LogRecord(body={"user": "ann", "password": "PLANTED-8"}, attributes={"order": 5}))

    first, second = (entry.log_record for entry in logs.get_finished_logs())
    assert first.body == f"GET https://api.example/v1?access_token={_REDACTED}"
    assert dict(first.attributes or {}) == {"secret": _REDACTED}
    assert second.body == {"user": "ann", "password": _REDACTED}
    assert dict(second.attributes or {}) == {"order": 5}
