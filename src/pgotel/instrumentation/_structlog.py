"""structlog processors: stamp the active trace context on events, redact secret fields, export events.

All are plain `(logger, method_name, event_dict) -> event_dict` functions. An event reaches the OTel logs
signal as a record whose body is the event and whose attributes are the other keys, either through
stdlib logging (`structlog.stdlib.render_to_log_kwargs` last in the chain: the root handler exports it) or,
for chains that print events themselves (structlog's default `PrintLogger`, a JSON renderer to stdout),
through `export_event` placed before the renderer. One of the two: both would export each event twice.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from opentelemetry import trace
from structlog.processors import NAME_TO_LEVEL
from structlog.typing import EventDict, ExcInfo

from pgotel.config import RedactionSettings, Redactor
from pgotel.instrumentation._logging import exporting_handler

_redactor = Redactor.from_settings(RedactionSettings())


def use_redactor(redactor: Redactor) -> None:
    """Make `redact_secrets` apply `redactor` (setup() installs the configured one)."""
    global _redactor
    _redactor = redactor


def add_trace_context(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """Add `trace_id` (32 hex) and `span_id` (16 hex) of the active span, when there is one."""
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event_dict["trace_id"] = format(span_context.trace_id, "032x")
        event_dict["span_id"] = format(span_context.span_id, "016x")
    return event_dict


def redact_secrets(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """Replace the values of secret-looking keys, and secret query parameters and URL passwords in strings."""
    redactor = _redactor
    for key, value in event_dict.items():
        if key != "event" and redactor.is_secret_key(key):
            event_dict[key] = redactor.replacement
        elif isinstance(value, str):
            event_dict[key] = redactor.redact_url(value)
    return event_dict


# structlog's own table, plus the `fatal` alias a plain BoundLogger passes through by that name (`msg` and any
# other name: INFO).
_LEVELS = {**NAME_TO_LEVEL, "fatal": logging.CRITICAL}
# Keys structlog's own processors add that the record carries otherwise (its level, time and exception).
_NOT_ATTRIBUTES = frozenset({"event", "level", "timestamp", "exc_info", "logger"})


def export_event(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """Export the event through the handler `pgotel.setup()` attached to the root logger (nothing without
    one), with the active trace context; the event goes on to the next processor unchanged."""
    handler = exporting_handler()
    if handler is not None:
        handler.handle(_log_record(logger, method_name, event_dict))
    return event_dict


def _log_record(logger: Any, method_name: str, event_dict: EventDict) -> logging.LogRecord:
    name = event_dict.get("logger") or getattr(logger, "name", None) or "structlog"
    record = logging.LogRecord(
        str(name),
        _LEVELS.get(method_name, logging.INFO),
        pathname="",
        lineno=0,
        msg=event_dict.get("event", ""),  # made text by the handler, which reports a failure instead of raising
        args=None,
        exc_info=_exc_info(event_dict.get("exc_info")),
    )
    for key, value in event_dict.items():
        if key not in _NOT_ATTRIBUTES and not hasattr(record, key):  # as stdlib's `extra`, minus its KeyError
            setattr(record, key, value)
    return record


def _exc_info(value: object) -> ExcInfo | None:
    """structlog's `exc_info` (True, an exception, or a sys.exc_info() tuple) as a sys.exc_info() tuple."""
    if isinstance(value, BaseException):
        return type(value), value, value.__traceback__
    if isinstance(value, tuple) and len(value) == 3 and value[0] is not None:
        return value
    if value is True:
        info = sys.exc_info()
        return info if info[0] is not None else None
    return None
