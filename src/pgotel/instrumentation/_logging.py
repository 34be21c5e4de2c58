"""Stdlib logging into the OTel logs signal: one root handler, minus pgotel's, asyncpg's and OTel's own loggers.

What the records carry is redacted in the logs pipeline (pgotel.instrumentation's redacting processor);
other handlers see the record unchanged.
"""

from __future__ import annotations

import logging

from opentelemetry._logs import LoggerProvider
from opentelemetry.instrumentation.logging.handler import LoggingHandler

# Logging by the exporter, its database driver or the SDK must not feed back into the pipeline.
# The demo app is an application, not pgotel's own work, so its logs are exported like any app's.
_UNEXPORTED_LOGGERS = ("pgotel", "asyncpg", "opentelemetry")
_EXPORTED_EXCEPTIONS = ("pgotel.demo",)


def _is_exported(record: logging.LogRecord) -> bool:
    name = record.name
    if not name.startswith(_UNEXPORTED_LOGGERS):
        return True
    return name.startswith(_EXPORTED_EXCEPTIONS)


def instrument_logging(logger_provider: LoggerProvider) -> logging.Handler:
    """Attach a handler exporting root-logger records (with the active trace context) to `logger_provider`."""
    handler = LoggingHandler(logger_provider=logger_provider)
    handler.addFilter(_is_exported)
    logging.getLogger().addHandler(handler)
    return handler


def uninstrument_logging(handler: logging.Handler) -> None:
    logging.getLogger().removeHandler(handler)
