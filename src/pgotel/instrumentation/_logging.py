"""Stdlib logging into the OTel logs signal: one root handler, minus pgotel's, asyncpg's and OTel's own loggers.

Two records need more than the root handler, both about the request that failed worst:
- the ASGI server's own report of an unhandled exception ("Exception in ASGI application", logged by
  uvicorn once the request's span has ended) gets the trace context of the span the exception escaped;
- uvicorn's default logging stops its records before the root logger, so the handler is also attached
  to the `uvicorn.error` logger, where it exports only the records that would not reach the root.

What the records carry is redacted in the logs pipeline (pgotel.instrumentation's redacting processor);
other handlers see the record unchanged.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from opentelemetry import context, trace
from opentelemetry._logs import LoggerProvider
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.trace import NonRecordingSpan, SpanContext

# Logging by the exporter, its database driver or the SDK must not feed back into the pipeline.
# The demo app is an application, not pgotel's own work, so its logs are exported like any app's.
_UNEXPORTED_LOGGERS = ("pgotel", "asyncpg", "opentelemetry")
_EXPORTED_EXCEPTIONS = ("pgotel.demo",)
# Where ASGI servers report what escaped the app, and which their default logging keeps from the root.
_SERVER_LOGGERS = ("uvicorn.error",)
_ESCAPED_FROM = "__pgotel_span_context__"


def mark_escaped(error: BaseException, span_context: SpanContext) -> None:
    """Record that `error` escaped the span of `span_context` (the innermost span keeps it)."""
    if span_context.is_valid and not hasattr(error, _ESCAPED_FROM):
        with contextlib.suppress(AttributeError, TypeError):  # an exception type without a __dict__
            setattr(error, _ESCAPED_FROM, span_context)


def _escaped_span_context(record: logging.LogRecord) -> SpanContext | None:
    error = record.exc_info[1] if record.exc_info else None
    span_context = getattr(error, _ESCAPED_FROM, None)
    return span_context if isinstance(span_context, SpanContext) else None


def _is_exported(record: logging.LogRecord) -> bool:
    name = record.name
    if not name.startswith(_UNEXPORTED_LOGGERS):
        return True
    return name.startswith(_EXPORTED_EXCEPTIONS)


class _CorrelatingHandler(LoggingHandler):
    """OTel's handler, plus: a record reporting an exception that escaped a span, logged outside any span,
    carries that span's trace context."""

    def emit(self, record: logging.LogRecord) -> None:
        # As every stdlib handler: a record that cannot be formatted or exported (a message whose __str__
        # raises, an integer too long to print) is reported by handleError, never raised into the app's code.
        try:
            span_context = _escaped_span_context(record)
            if span_context is None or trace.get_current_span().get_span_context().is_valid:
                super().emit(record)
                return
            token = context.attach(trace.set_span_in_context(NonRecordingSpan(span_context)))
            try:
                super().emit(record)
            finally:
                context.detach(token)
        except Exception:
            self.handleError(record)


class _UnpropagatedRecords(logging.Handler):
    """On a server logger: hands `target` the records that propagation would not bring to the root logger."""

    def __init__(self, target: logging.Handler) -> None:
        super().__init__()
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        if not _reaches_root(logging.getLogger(record.name)):
            self.target.handle(record)


def _propagation(logger: logging.Logger) -> Iterator[logging.Logger]:
    """`logger` and the ancestors its records propagate to, in the order logging hands them their records."""
    current: logging.Logger | None = logger
    while current is not None:
        yield current
        current = current.parent if current.propagate else None


def _reaches_root(logger: logging.Logger) -> bool:
    return any(current is logging.root for current in _propagation(logger))


class _LastResortForPgotel(logging.Handler):
    """On the `pgotel` logger: its warnings (telemetry dropped, PostgreSQL unreachable) reach stderr when no
    handler but pgotel's own would take them. Without pgotel, logging's last resort would print them; with it,
    the root logger has pgotel's exporting handler, which keeps them out of the pipeline and so shows them
    nowhere (uvicorn's default logging configures no root handler)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        if _is_exported(record):  # the demo app's records (`pgotel.demo`): exported like any app's
            return
        last_resort = logging.lastResort
        if last_resort is not None and not _other_handler_takes(logging.getLogger(record.name), record):
            last_resort.handle(record)


_PGOTEL_HANDLERS = (_CorrelatingHandler, _UnpropagatedRecords, _LastResortForPgotel)


def _other_handler_takes(logger: logging.Logger, record: logging.LogRecord) -> bool:
    return any(
        not isinstance(handler, _PGOTEL_HANDLERS) and record.levelno >= handler.level
        for current in _propagation(logger)
        for handler in current.handlers
    )


def instrument_logging(logger_provider: LoggerProvider) -> logging.Handler:
    """Attach a handler exporting root-logger records (with the active trace context) to `logger_provider`."""
    handler = _CorrelatingHandler(logger_provider=logger_provider)
    handler.addFilter(_is_exported)
    logging.getLogger().addHandler(handler)
    attach_to_server_loggers(handler)
    own = logging.getLogger("pgotel")
    if not any(isinstance(h, _LastResortForPgotel) for h in own.handlers):
        own.addHandler(_LastResortForPgotel())
    return handler


def attach_to_server_loggers(handler: logging.Handler) -> None:
    """Attach `handler` to the ASGI servers' loggers (idempotent). Called at setup and again when the app
    starts: a server configuring its logging after setup() (`uvicorn.run(app)`) replaces their handlers."""
    for name in _SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        if not any(isinstance(h, _UnpropagatedRecords) and h.target is handler for h in server_logger.handlers):
            server_logger.addHandler(_UnpropagatedRecords(handler))


def exporting_handler() -> logging.Handler | None:
    """The handler `instrument_logging` attached to the root logger, if any (the last one attached)."""
    return next((h for h in reversed(logging.getLogger().handlers) if isinstance(h, _CorrelatingHandler)), None)


def uninstrument_logging(handler: logging.Handler) -> None:
    logging.getLogger().removeHandler(handler)  # the last-resort handler stays: harmless without this one
    for name in _SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        for attached in list(server_logger.handlers):
            if isinstance(attached, _UnpropagatedRecords) and attached.target is handler:
                server_logger.removeHandler(attached)
