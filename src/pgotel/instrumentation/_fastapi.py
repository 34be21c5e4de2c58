"""Installs the server telemetry middleware as the outermost layer of a FastAPI (or Starlette) app."""

from __future__ import annotations

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider
from starlette.applications import Starlette
from starlette.types import ASGIApp

from pgotel.config import PgotelSettings, Redactor
from pgotel.instrumentation._asgi import ServerTelemetryMiddleware
from pgotel.instrumentation._routes import RouteNamer

INSTRUMENTATION_SCOPE = "pgotel.instrumentation.fastapi"
_INSTRUMENTED_FLAG = "_pgotel_instrumented"
# The semantic conventions' advisory buckets, for pipelines without pgotel's exponential-histogram view.
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


def instrument_app(
    app: Starlette,
    *,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    settings: PgotelSettings,
) -> None:
    """Trace and measure every request of `app` (once per app), except the dashboard's own paths."""
    if getattr(app, _INSTRUMENTED_FLAG, False):
        return
    native_telemetry = getattr(app, "_telemetry", None)
    if isinstance(native_telemetry, dict):
        # FastAPI's built-in telemetry would trace and measure every request a second time.
        native_telemetry.update(tracing=False, metrics=False, logs=False)
    duration = meter_provider.get_meter(INSTRUMENTATION_SCOPE).create_histogram(
        "http.server.request.duration",
        unit="s",
        description="Duration of HTTP server requests.",
        explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
    )
    dashboard = settings.dashboard
    excluded_prefixes = (dashboard.path, dashboard.api_path) if dashboard.enabled else ()
    routes = RouteNamer(settings.limits.max_routes)
    redactor = Redactor.from_settings(settings.redaction)
    tracer = tracer_provider.get_tracer(INSTRUMENTATION_SCOPE)
    build_inner_stack = app.build_middleware_stack

    def build_middleware_stack() -> ASGIApp:
        return ServerTelemetryMiddleware(
            build_inner_stack(),
            tracer=tracer,
            duration=duration,
            routes=routes,
            redactor=redactor,
            excluded_prefixes=excluded_prefixes,
        )

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]
    app.middleware_stack = None  # rebuilt with the middleware on the next request
    setattr(app, _INSTRUMENTED_FLAG, True)
