"""Installs the server telemetry middleware as the outermost layer of a FastAPI (or Starlette) app."""

from __future__ import annotations

from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import TracerProvider
from starlette.applications import Starlette
from starlette.types import ASGIApp

from pgotel.config import HistogramShape, PgotelSettings
from pgotel.instrumentation._asgi import ServerTelemetryMiddleware
from pgotel.instrumentation._durations import RequestDurations
from pgotel.instrumentation._routes import RouteNamer

INSTRUMENTATION_SCOPE = "pgotel.instrumentation.fastapi"
_INSTRUMENTED_FLAG = "_pgotel_instrumented"


def request_durations(meter_provider: object, shape: HistogramShape | None) -> RequestDurations:
    """The recorder of `http.server.request.duration`, delivered under this instrumentation's scope by every
    reader of `meter_provider`; one per provider (each one adds the metric to every collection)."""
    durations = RequestDurations(shape)
    durations.bind(meter_provider, scope=InstrumentationScope(INSTRUMENTATION_SCOPE))
    return durations


def instrument_app(
    app: Starlette,
    *,
    tracer_provider: TracerProvider,
    durations: RequestDurations,
    settings: PgotelSettings,
) -> None:
    """Trace and measure every request of `app` (once per app), except the dashboard's own paths."""
    if getattr(app, _INSTRUMENTED_FLAG, False):
        return
    native_telemetry = getattr(app, "_telemetry", None)
    if isinstance(native_telemetry, dict):
        # FastAPI's built-in telemetry would trace and measure every request a second time.
        native_telemetry.update(tracing=False, metrics=False, logs=False)
    dashboard = settings.dashboard
    excluded_prefixes = (dashboard.path, dashboard.api_path) if dashboard.enabled else ()
    routes = RouteNamer(settings.limits.max_routes)
    tracer = tracer_provider.get_tracer(INSTRUMENTATION_SCOPE)
    build_inner_stack = app.build_middleware_stack

    def build_middleware_stack() -> ASGIApp:
        return ServerTelemetryMiddleware(
            build_inner_stack(),
            tracer=tracer,
            durations=durations,
            routes=routes,
            excluded_prefixes=excluded_prefixes,
        )

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]
    app.middleware_stack = None  # rebuilt with the middleware on the next request
    setattr(app, _INSTRUMENTED_FLAG, True)
