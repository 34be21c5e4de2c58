"""Spans and log records made encodable before an OTLP exporter sees them (the one-line swap of the config).

OTLP's protobuf encoding cannot carry a string with a lone surrogate (Python's `surrogateescape` text, e.g.
file names or headers decoded from invalid bytes), an integer beyond 64 bits, or a log body of a type OTLP
has no value for: the OTel exporter then drops the attribute, or, for a span name or a log body, fails to
encode and loses the whole batch. pgotel's own exporter sanitizes such values (`exporter/_encode.py`); an
OTLP exporter gets the same treatment from this wrapper, on the batch worker thread, before it encodes:
each such value is replaced (invalid characters by `?`, an integer by its decimal text, or hex past
Python's 4,300-digit limit, an object by its repr), counted by signal and reason, and logged at most every
30 s per signal and reason; the rest of the batch is exported as is."""

from __future__ import annotations

import copy
import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from opentelemetry import metrics
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Link, Status

from pgotel._sdk import keeping_dropped, sdk_attributes, sdk_sequence
from pgotel.exporter import Accounting, RateLimitedLog, int_text, key_text, repr_text, utf8_ok

_Item = TypeVar("_Item")
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_OTLP_MODULE = "opentelemetry.exporter.otlp."
_log = RateLimitedLog()
_EXPLANATIONS = {
    "invalid_unicode": "text with lone surrogates (invalid UTF-8)",
    "integer_out_of_range": "integers beyond 64 bits",
    "unsupported_type": "values of a type OTLP cannot carry",
}


class _Cleaner:
    """Replaces what OTLP cannot encode; returns the very object it was given when nothing needed it."""

    def __init__(self) -> None:
        self.reasons: Counter[str] = Counter()

    def changes(self) -> int:
        """How many values were replaced so far: a container is copied only if this grew while cleaning it."""
        return self.reasons.total()

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if value is None or isinstance(value, bool | float | bytes):
            return value
        if isinstance(value, int):
            if _INT64_MIN <= value <= _INT64_MAX:
                return value
            self.reasons["integer_out_of_range"] += 1
            return int_text(value)
        if isinstance(value, Mapping):
            return self.mapping(value)
        if isinstance(value, Sequence):
            before = self.changes()
            items = [self.value(item) for item in value]
            return items if self.changes() != before else value
        self.reasons["unsupported_type"] += 1
        return self.text(repr_text(value))

    def text(self, value: str) -> str:
        if utf8_ok(value):
            return value
        self.reasons["invalid_unicode"] += 1
        return value.encode("utf-8", "replace").decode("utf-8")

    def mapping(self, mapping: Mapping[Any, Any]) -> Mapping[Any, Any]:
        before = self.changes()
        cleaned = {self.text(key_text(key)): self.value(item) for key, item in mapping.items()}
        return cleaned if self.changes() != before else mapping

    def attributes(self, attributes: Any) -> Any:
        plain, dropped = sdk_attributes(attributes)
        cleaned = self.mapping(plain) if plain else plain
        return attributes if cleaned is plain else keeping_dropped(cleaned, dropped)


def encodable_span(span: ReadableSpan, cleaner: _Cleaner) -> ReadableSpan:
    """`span`, or a copy of it whose name, status, attributes, events and links OTLP can encode."""
    before = cleaner.changes()
    name = cleaner.text(span.name)
    status = span.status
    description = cleaner.text(status.description) if status.description else status.description
    attributes = cleaner.attributes(span._attributes)
    events, _ = sdk_sequence(span._events)
    clean_events = [
        Event(cleaner.text(event.name), cleaner.attributes(event.attributes), event.timestamp) for event in events
    ]
    links, _ = sdk_sequence(span._links)
    clean_links = [Link(link.context, cleaner.attributes(link.attributes)) for link in links]
    if cleaner.changes() == before:
        return span
    return ReadableSpan(
        name=name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=clean_events,
        links=clean_links,
        kind=span.kind,
        status=Status(status.status_code, description),
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def encodable_log(readable: ReadableLogRecord, cleaner: _Cleaner) -> ReadableLogRecord:
    """`readable`, or a copy of it whose body, attributes, severity text and event name OTLP can encode."""
    before = cleaner.changes()
    record = readable.log_record
    body = cleaner.value(record.body)
    attributes = cleaner.attributes(record.attributes)
    severity_text = cleaner.text(record.severity_text) if record.severity_text else record.severity_text
    event_name = cleaner.text(record.event_name) if record.event_name else record.event_name
    if cleaner.changes() == before:
        return readable
    clean = copy.copy(record)
    clean.body = body
    clean.attributes = attributes
    clean.severity_text = severity_text
    clean.event_name = event_name
    return dataclasses.replace(readable, log_record=clean)


def _encodable_batch(
    items: Sequence[_Item], encodable: Callable[[_Item, _Cleaner], _Item], signal: str, accounting: Accounting
) -> list[_Item]:
    cleaner = _Cleaner()
    batch = [encodable(item, cleaner) for item in items]
    for reason, count in cleaner.reasons.items():
        accounting.sanitized(signal, reason, count)
        _log.warning(
            "pgotel: replaced %d %s value(s) before OTLP export: %s",
            count, signal, _EXPLANATIONS.get(reason, reason), key=f"otlp/{signal}/{reason}",
        )  # fmt: skip
    return batch


class EncodableSpanExporter(SpanExporter):
    """Hands `inner` spans it can encode; everything else is the inner exporter's."""

    def __init__(self, inner: SpanExporter, accounting: Accounting) -> None:
        self.inner = inner
        self._accounting = accounting

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export(_encodable_batch(spans, encodable_span, "spans", self._accounting))

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


class EncodableLogExporter(LogRecordExporter):
    """Hands `inner` log records it can encode; everything else is the inner exporter's."""

    def __init__(self, inner: LogRecordExporter, accounting: Accounting) -> None:
        self.inner = inner
        self._accounting = accounting

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        return self.inner.export(_encodable_batch(batch, encodable_log, "logs", self._accounting))

    def shutdown(self) -> None:
        self.inner.shutdown()  # type: ignore[no-untyped-call]  # the SDK leaves it unannotated

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


def _is_otlp(exporter: object) -> bool:
    return type(exporter).__module__.startswith(_OTLP_MODULE)


def _guard(processors: Iterable[Any], accounting: Accounting) -> bool:
    """Wrap the OTLP exporter of each SDK simple or batch processor in `processors`; True if one was."""
    guarded = False
    for processor in processors:
        owner: object
        if isinstance(processor, BatchSpanProcessor | BatchLogRecordProcessor):
            owner, attribute = processor._batch_processor, "_exporter"
        elif isinstance(processor, SimpleSpanProcessor):
            owner, attribute = processor, "span_exporter"
        elif isinstance(processor, SimpleLogRecordProcessor):
            owner, attribute = processor, "_exporter"
        else:
            continue
        exporter = getattr(owner, attribute)
        if _is_otlp(exporter):
            wrapper = EncodableSpanExporter if isinstance(exporter, SpanExporter) else EncodableLogExporter
            setattr(owner, attribute, wrapper(exporter, accounting))
            guarded = True
    return guarded


def guard_otlp_exporters(
    tracer_provider: object, logger_provider: object, meter_provider: metrics.MeterProvider
) -> None:
    """Wrap every OTLP exporter of the SDK providers' simple and batch processors; what they replace is
    counted (an `Accounting`'s sanitized counts) and observed through `meter_provider` as `pgotel.otlp.sanitized`."""
    accounting = Accounting()
    span_processors = (
        tracer_provider._active_span_processor._span_processors if isinstance(tracer_provider, TracerProvider) else ()
    )
    log_processors = (
        logger_provider._multi_log_record_processor._log_record_processors
        if isinstance(logger_provider, LoggerProvider)
        else ()
    )
    if _guard(span_processors, accounting) | _guard(log_processors, accounting):
        meter_provider.get_meter("pgotel.otlp").create_observable_counter(
            "pgotel.otlp.sanitized",
            [accounting.observe_sanitized],
            unit="{value}",
            description="Values replaced before OTLP export",
        )
