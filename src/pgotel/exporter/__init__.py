"""OTel exporters that write spans, metrics and logs to PostgreSQL without ever hurting the app."""

from __future__ import annotations

from pgotel.exporter._accounting import Accounting, RateLimitedLog
from pgotel.exporter._encode import int_text, key_text, repr_text, utf8_ok
from pgotel.exporter._exporters import (
    DELTA_PREFERENCE,
    PostgresLogExporter,
    PostgresMetricExporter,
    PostgresSpanExporter,
)
from pgotel.exporter._writer import TelemetryWriter, flush_shared_writer

__all__ = [
    "DELTA_PREFERENCE",
    "Accounting",
    "PostgresLogExporter",
    "PostgresMetricExporter",
    "PostgresSpanExporter",
    "RateLimitedLog",
    "TelemetryWriter",
    "flush_shared_writer",
    "int_text",
    "key_text",
    "repr_text",
    "utf8_ok",
]
