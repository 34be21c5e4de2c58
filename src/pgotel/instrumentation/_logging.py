"""Stdlib logging into the OTel logs signal: one root handler, minus pgotel's, asyncpg's and OTel's own loggers.

Message bodies are exported with secret query parameters and URL passwords redacted (an HTTP client's
"GET https://api/...?token=..." line, say); other handlers see the record unchanged.
"""

from __future__ import annotations

import logging

from opentelemetry._logs import LoggerProvider
from opentelemetry.instrumentation.logging.handler import LoggingHandler

from pgotel.config import Redactor

# Logging by the exporter, its database driver or the SDK must not feed back into the pipeline.
# The demo app is an application, not pgotel's own work, so its logs are exported like any app's.
_UNEXPORTED_LOGGERS = ("pgotel", "asyncpg", "opentelemetry")
_EXPORTED_EXCEPTIONS = ("pgotel.demo",)


def _is_exported(record: logging.LogRecord) -> bool:
    name = record.name
    if not name.startswith(_UNEXPORTED_LOGGERS):
        return True
    return name.startswith(_EXPORTED_EXCEPTIONS)


class _RedactedMessage(logging.Formatter):
    """Formats the exported body: the message alone (exceptions travel as attributes), redacted."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self._redactor.redact_url(record.getMessage())


def instrument_logging(logger_provider: LoggerProvider, redactor: Redactor) -> logging.Handler:
    """Attach a handler exporting root-logger records (with the active trace context) to `logger_provider`."""
    handler = LoggingHandler(logger_provider=logger_provider)
    handler.addFilter(_is_exported)
    handler.setFormatter(_RedactedMessage(redactor))
    logging.getLogger().addHandler(handler)
    return handler


def uninstrument_logging(handler: logging.Handler) -> None:
    logging.getLogger().removeHandler(handler)
