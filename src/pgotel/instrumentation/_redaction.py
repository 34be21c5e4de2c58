"""Secrets redacted inside the pipeline, before any exporter: pgotel's own and OTLP alike.

Two processors placed first in their providers: spans are redacted as they end (the exported copy only;
the live span keeps its values), log records as they are emitted. Attributes, event and link attributes,
and log bodies that are maps get secret-looking keys replaced; URL-valued attributes and text bodies get
secret query parameters and URL passwords replaced (see `pgotel.config.Redactor`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.trace import Link

from pgotel._sdk import keeping_dropped, sdk_attributes, sdk_sequence
from pgotel.config import Redactor


class RedactingSpanProcessor(SpanProcessor):
    """Redacts each ended span's attributes, event attributes and link attributes for the processors after it."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        # `span` is the SDK's read-only copy handed to every processor in turn: replacing its maps redacts what
        # they all export and leaves the live span untouched.
        redact = self._redactor.redact_attributes
        span._attributes = _redacted(redact, span._attributes)
        events, _ = sdk_sequence(span._events)
        redacted = _redacted_each(redact, events)
        if redacted is not None:
            span._events = tuple(
                Event(event.name, attributes, event.timestamp)
                for event, attributes in zip(events, redacted, strict=True)
            )
        links, _ = sdk_sequence(span._links)
        redacted = _redacted_each(redact, links)
        if redacted is not None:
            span._links = tuple(Link(link.context, new) for link, new in zip(links, redacted, strict=True))

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def _redacted(redact: Callable[[Mapping[str, Any]], Mapping[str, Any]], attributes: Any) -> Any:
    """`attributes` itself when nothing in it is secret; else its redacted copy, which keeps the count of
    attributes the SDK dropped (`dropped_attributes` reads it from a BoundedAttributes only)."""
    plain, dropped = sdk_attributes(attributes)
    if not plain:
        return attributes
    redacted = redact(plain)
    return attributes if redacted is plain else keeping_dropped(redacted, dropped)


def _redacted_each(redact: Callable[[Mapping[str, Any]], Mapping[str, Any]], items: Sequence[Any]) -> list[Any] | None:
    """The redacted attributes of each event or link in `items`; None when none of them had a secret."""
    redacted = [_redacted(redact, item.attributes) for item in items]
    return redacted if any(new is not item.attributes for new, item in zip(redacted, items, strict=True)) else None


class RedactingLogRecordProcessor(LogRecordProcessor):
    """Redacts each emitted log record's attributes and body for the processors after it."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        record = log_record.log_record
        attributes, _ = sdk_attributes(record.attributes)
        if attributes:
            redacted = self._redactor.redact_attributes(attributes)
            if redacted is not attributes:
                for key, value in redacted.items():
                    if value is not attributes[key]:
                        record.attributes[key] = value  # type: ignore[index]  # the SDK's mutable BoundedAttributes
        record.body = self._body(record.body)

    def _body(self, body: Any) -> Any:
        if isinstance(body, str):
            return self._redactor.redact_url(body)
        if isinstance(body, Mapping):
            return self._redactor.redact_attributes(body)
        return body

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def redact_before_export(tracer_provider: object, logger_provider: object, redactor: Redactor) -> None:
    """Put the redacting processors first in both providers (ahead of the exporting processors already there).
    Providers other than the SDK's have no processors to go before, and are left alone."""
    if isinstance(tracer_provider, TracerProvider):
        spans = tracer_provider._active_span_processor
        with spans._lock:
            spans._span_processors = (RedactingSpanProcessor(redactor), *spans._span_processors)
    if isinstance(logger_provider, LoggerProvider):
        logs = logger_provider._multi_log_record_processor
        with logs._lock:
            logs._log_record_processors = (RedactingLogRecordProcessor(redactor), *logs._log_record_processors)
