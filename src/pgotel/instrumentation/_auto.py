"""Zero-code instrumentation: pgotel's distro, configurator and FastAPI instrumentor for `opentelemetry-instrument`.

`OTEL_CONFIG_FILE=otel-config.yaml opentelemetry-instrument uvicorn app:app` then gives what
`pgotel.setup(app)` gives. The configurator runs `pgotel.setup()` (no app) from the file; the instrumentor
puts pgotel's server middleware into every FastAPI app; the distro keeps the stock instrumentors that
pgotel replaces from also running (the stock FastAPI one clashes with FastAPI's native telemetry).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Collection
from typing import Any

import fastapi.applications
from fastapi import FastAPI
from opentelemetry import _logs, metrics, trace
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]  # an untyped module
from opentelemetry.instrumentation.environment_variables import OTEL_PYTHON_CONFIGURATOR
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.sdk._configuration import _OTelSDKConfigurator
from opentelemetry.sdk.environment_variables import OTEL_CONFIG_FILE
from opentelemetry.util._importlib_metadata import EntryPoint

from pgotel._setup import PgOtel, _tie_to_lifespan, setup
from pgotel.config import HistogramShape, PgotelConfigError, PgotelSettings, Redactor, active_settings
from pgotel.instrumentation._clients import instrument_clients
from pgotel.instrumentation._durations import RequestDurations
from pgotel.instrumentation._fastapi import instrument_app, request_durations
from pgotel.instrumentation._otlp_guard import guard_otlp_exporters
from pgotel.instrumentation._redaction import redact_before_export

ENTRY_POINT_NAME = "pgotel"
# Stock instrumentors whose work pgotel does itself: server telemetry (the FastAPI one would wrap every app
# a second time), the logging handler, and the client spans that `setup()` already instrumented.
REPLACED_INSTRUMENTORS = frozenset({"fastapi", "starlette", "asgi", "logging", "asyncpg", "redis"})

_logger = logging.getLogger(__name__)
# What PgotelConfigurator built; None when the SDK was configured some other way.
_pipeline: PgOtel | None = None
# Without that pipeline: the request durations every app records through the global MeterProvider.
_global_durations: RequestDurations | None = None


class PgotelDistro(BaseDistro):  # type: ignore[misc]
    """Selects pgotel's configurator and skips the stock instrumentors that pgotel replaces."""

    def _configure(self, **kwargs: Any) -> None:
        os.environ.setdefault(OTEL_PYTHON_CONFIGURATOR, ENTRY_POINT_NAME)

    def load_instrumentor(self, entry_point: EntryPoint, **kwargs: Any) -> None:
        if entry_point.name in REPLACED_INSTRUMENTORS:
            _logger.debug("pgotel: stock %s instrumentation skipped; pgotel instruments it", entry_point.name)
            return
        super().load_instrumentor(entry_point, **kwargs)


class PgotelConfigurator(_OTelSDKConfigurator):
    """With `OTEL_CONFIG_FILE`: `pgotel.setup()` from that file; without it, the SDK's environment variables."""

    def _configure(self, **kwargs: Any) -> None:
        global _pipeline
        if os.environ.get(OTEL_CONFIG_FILE):
            # Validates the `pgotel:` section and installs the client and logging instrumentation; the apps
            # are instrumented by PgotelInstrumentor as they are created.
            _pipeline = setup()
        else:
            super()._configure(**kwargs)  # type: ignore[no-untyped-call]


class PgotelInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments every FastAPI app created afterwards as `pgotel.setup(app)` would, with the global providers."""

    _original_init: Callable[..., None] | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("fastapi >= 0.115",)

    def _instrument(self, **kwargs: Any) -> None:
        # Already done by `setup()` under PgotelConfigurator; needed when the SDK was configured otherwise,
        # since PgotelDistro skips the stock asyncpg and redis instrumentors.
        instrument_clients()
        try:
            settings = active_settings()
        except PgotelConfigError as exc:
            _logger.error("pgotel: FastAPI apps are not instrumented: %s", exc)
            return
        if _pipeline is None:
            # The SDK built its providers from OTEL_* variables: its exporters get redacted telemetry too, and
            # its OTLP exporters telemetry they can encode.
            redactor = Redactor.from_settings(settings.redaction)
            redact_before_export(trace.get_tracer_provider(), _logs.get_logger_provider(), redactor)
            guard_otlp_exporters(trace.get_tracer_provider(), _logs.get_logger_provider(), metrics.get_meter_provider())
        original_init = fastapi.applications.FastAPI.__init__
        PgotelInstrumentor._original_init = original_init

        @functools.wraps(original_init)
        def init_then_instrument(app: FastAPI, *args: Any, **init_kwargs: Any) -> None:
            original_init(app, *args, **init_kwargs)
            _instrument_new_app(app, settings)

        fastapi.applications.FastAPI.__init__ = init_then_instrument  # type: ignore[method-assign,assignment]

    def _uninstrument(self, **kwargs: Any) -> None:
        if PgotelInstrumentor._original_init is not None:
            fastapi.applications.FastAPI.__init__ = PgotelInstrumentor._original_init  # type: ignore[method-assign]
            PgotelInstrumentor._original_init = None


def _instrument_new_app(app: FastAPI, settings: PgotelSettings) -> None:
    try:
        instrument_app(app, tracer_provider=trace.get_tracer_provider(), durations=_durations(), settings=settings)
    except Exception:
        # Creating the application must not fail because of its telemetry.
        _logger.exception("pgotel: instrumenting %r failed", app)
        return
    # Should the stock FastAPI instrumentor run anyway (another distro selected), it then leaves this app alone.
    app._is_instrumented_by_opentelemetry = True  # type: ignore[attr-defined]
    if _pipeline is not None:
        # uvicorn re-raises the SIGTERM it handled once it has stopped, so exit hooks never run: the
        # pipeline flushes when the app's lifespan ends, as with `pgotel.setup(app)`. The startup freeze
        # is what covers the app's own module objects here: setup() ran before the app was imported.
        _tie_to_lifespan(app, _pipeline, freeze=settings.freeze_gc)


def _durations() -> RequestDurations:
    global _global_durations
    if _pipeline is not None:
        return _pipeline.request_durations
    if _global_durations is None:
        _global_durations = request_durations(metrics.get_meter_provider(), HistogramShape())
    return _global_durations
