"""Instrumentation: FastAPI server telemetry, asyncpg/redis client spans, logging, structlog, `@traced`."""

from __future__ import annotations

from pgotel.instrumentation._asgi import TRACE_ID_HEADER, ServerTelemetryMiddleware
from pgotel.instrumentation._clients import instrument_clients
from pgotel.instrumentation._durations import RequestDurations
from pgotel.instrumentation._fastapi import INSTRUMENTATION_SCOPE, instrument_app, request_durations
from pgotel.instrumentation._logging import attach_to_server_loggers, instrument_logging, uninstrument_logging
from pgotel.instrumentation._otlp_guard import guard_otlp_exporters
from pgotel.instrumentation._redaction import redact_before_export
from pgotel.instrumentation._routes import OVERFLOW_ROUTE, RouteNamer, normalise_path
from pgotel.instrumentation._structlog import add_trace_context, export_event, redact_secrets, use_redactor
from pgotel.instrumentation._traced import traced
from pgotel.instrumentation._tracer import BoundTracerProvider, pgotel_tracer_provider

__all__ = [
    "INSTRUMENTATION_SCOPE",
    "OVERFLOW_ROUTE",
    "TRACE_ID_HEADER",
    "BoundTracerProvider",
    "RequestDurations",
    "RouteNamer",
    "ServerTelemetryMiddleware",
    "add_trace_context",
    "attach_to_server_loggers",
    "export_event",
    "guard_otlp_exporters",
    "instrument_app",
    "instrument_clients",
    "instrument_logging",
    "normalise_path",
    "pgotel_tracer_provider",
    "redact_before_export",
    "redact_secrets",
    "request_durations",
    "traced",
    "uninstrument_logging",
    "use_redactor",
]
