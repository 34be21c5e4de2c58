"""structlog processors: stamp the active trace context on events, and redact secret fields.

Both are plain `(logger, method_name, event_dict) -> event_dict` functions. With
`structlog.stdlib.render_to_log_kwargs` last in the chain, an event reaches the OTel logs signal through
the root handler as a record whose body is the event and whose attributes are the other keys.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from structlog.typing import EventDict

from pgotel.config import RedactionSettings, Redactor

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
