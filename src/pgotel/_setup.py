"""`pgotel.setup()`: builds the OTel providers from otel-config.yaml, instruments the app, returns the handle."""

from __future__ import annotations

import atexit
import gc
import logging
import multiprocessing.util
import os
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from time import monotonic
from typing import Any

from anyio import to_thread
from fastapi import FastAPI
from opentelemetry import _logs, metrics, trace
from opentelemetry.configuration.file import (
    ConfigurationError,
    configure_propagator,
    create_logger_provider,
    create_meter_provider,
    create_resource,
    create_tracer_provider,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource, ServiceInstanceIdResourceDetector
from opentelemetry.sdk.trace import TracerProvider
from starlette.applications import Starlette

from pgotel import dashboard
from pgotel.config import (
    DEFAULT_CONFIG_FILE,
    LoadedConfig,
    PgotelConfigError,
    PgotelSettings,
    Redactor,
    activate,
    load_config,
)
from pgotel.exporter import flush_shared_writer
from pgotel.instrumentation import (
    RequestDurations,
    attach_to_server_loggers,
    guard_otlp_exporters,
    instrument_app,
    instrument_clients,
    instrument_logging,
    pgotel_tracer_provider,
    redact_before_export,
    request_durations,
    uninstrument_logging,
    use_redactor,
)

_logger = logging.getLogger(__name__)
# Shutdown waits for the exporters' own deadline, plus this much for the SDK's bookkeeping around it.
_SHUTDOWN_MARGIN_S = 1.0
_UNSET_GLOBAL_PROVIDERS = frozenset(
    {
        ("opentelemetry.metrics._internal", "_ProxyMeterProvider"),
        ("opentelemetry._logs._internal", "ProxyLoggerProvider"),
    }
)


class PgOtel:
    """What `setup()` built: the three SDK providers, and the way to flush and stop them."""

    def __init__(
        self,
        *,
        config: LoadedConfig,
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider,
        logger_provider: LoggerProvider,
        request_durations: RequestDurations,
        logging_handler: logging.Handler,
    ) -> None:
        self.config = config
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.logger_provider = logger_provider
        self.request_durations = request_durations
        self._logging_handler = logging_handler
        self._lock = threading.Lock()
        self._shut_down = False

    @property
    def settings(self) -> PgotelSettings:
        return self.config.settings

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export everything recorded so far; False when a signal did not finish within `timeout_millis`."""
        deadline = monotonic() + timeout_millis / 1000
        flushed = True
        for provider in (self.tracer_provider, self.meter_provider, self.logger_provider):
            remaining_millis = max(0, int((deadline - monotonic()) * 1000))
            try:
                flushed = bool(provider.force_flush(remaining_millis)) and flushed
            except Exception:
                _logger.exception("pgotel: flushing %s failed", type(provider).__name__)
                flushed = False
        return flush_shared_writer(max(0.0, deadline - monotonic())) and flushed

    def shutdown(self) -> None:
        """Flush and stop the pipeline, within the exporter's shutdown deadline; later calls do nothing."""
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = True
        uninstrument_logging(self._logging_handler)
        pgotel_tracer_provider.unbind(self.tracer_provider)
        atexit.unregister(self.shutdown)
        timeout_s = self.settings.exporter.shutdown_timeout_ms / 1000 + _SHUTDOWN_MARGIN_S
        worker = threading.Thread(target=self._shutdown_providers, name="pgotel-shutdown", daemon=True)
        worker.start()
        worker.join(timeout_s)
        if worker.is_alive():
            _logger.warning("pgotel: telemetry shutdown did not finish within %.1f s; giving up", timeout_s)

    def _shutdown_providers(self) -> None:
        for provider in (self.tracer_provider, self.meter_provider, self.logger_provider):
            try:
                provider.shutdown()
            except Exception:
                _logger.exception("pgotel: shutting down %s failed", type(provider).__name__)


def setup(app: Starlette | None = None, *, config: str | os.PathLike[str] | None = None) -> PgOtel:
    """Wire OpenTelemetry as otel-config.yaml describes it, and instrument `app` if given.

    `config` names the configuration file; without it, `OTEL_CONFIG_FILE`, then `otel-config.yaml`.
    Raises PgotelConfigError, naming the file and the key, when the configuration cannot be used.
    """
    path = Path(config if config is not None else os.environ.get("OTEL_CONFIG_FILE") or DEFAULT_CONFIG_FILE)
    loaded = load_config(path)
    activate(loaded)
    redactor = Redactor.from_settings(loaded.settings.redaction)
    handle = _build_pipeline(loaded, redactor)
    _set_globals_once(handle)
    pgotel_tracer_provider.bind(handle.tracer_provider)
    use_redactor(redactor)
    instrument_clients()
    atexit.register(handle.shutdown)
    multiprocessing.util.register_after_fork(handle, _shut_down_when_the_process_ends)
    if multiprocessing.parent_process() is not None:  # setup() ran inside a multiprocessing child itself
        _shut_down_when_the_process_ends(handle)
    if app is not None:
        instrument_app(
            app,
            tracer_provider=handle.tracer_provider,
            durations=handle.request_durations,
            settings=loaded.settings,
        )
        _tie_to_lifespan(app, handle, freeze=loaded.settings.freeze_gc)
        _mount_dashboard(app, loaded.settings)
    _raise_gc_threshold(loaded.settings.gc_young_threshold)
    if loaded.settings.freeze_gc:
        _freeze_gc()  # last: the instrumented app and its dashboard are long-lived too
    return handle


def _shut_down_when_the_process_ends(handle: PgOtel) -> None:
    """In a `multiprocessing` child forked from this process: it ends through `os._exit` once its finalizers
    ran, never running the atexit shutdown, which would lose what its batch processors still hold, uncounted."""
    multiprocessing.util.Finalize(handle, handle.shutdown, exitpriority=0)


def _raise_gc_threshold(young: int) -> None:
    """Raise the collector's first threshold to `young` (0: leave it alone; a higher one is kept).

    A young collection starts once allocations outnumber deallocations by the threshold (700 by default),
    and the count restarts from zero at each collection, so objects freed after one never make up for
    their allocation. A batch span processor frees each span (a dozen tracked objects) after its batch is
    exported, up to `schedule_delay` later: under load every span's objects count in full, and young
    collections, each scanning the objects of every request in flight, came every ~20 requests and cost
    the benchmark app ~30 us per request (uvicorn, 16 connections). Uninstrumented, or with spans freed as
    they end, that app collects about once per 1,000 requests."""
    threshold, *older = gc.get_threshold()
    if young > threshold:
        gc.set_threshold(young, *older)


def _freeze_gc() -> None:
    """Collect, then freeze every object alive now (at setup, and again once an app has started).

    Telemetry keeps each span alive until its batch is exported, long enough to reach the collector's
    oldest generation, so full collections come every few seconds under load; frozen objects are left
    out of them (a full collection of a FastAPI app's ~120k startup objects takes ~90 ms here). The
    collection before a freeze skips what is frozen already, so a second one costs little. Reference
    counting still frees frozen objects; only cycles among them are never collected."""
    gc.collect()
    gc.freeze()


def _build_pipeline(loaded: LoadedConfig, redactor: Redactor) -> PgOtel:
    otel = loaded.otel
    built: list[TracerProvider | MeterProvider | LoggerProvider] = []
    try:
        resource = create_resource(otel.resource)
        if loaded.settings.service_name:
            resource = resource.merge(Resource({SERVICE_NAME: loaded.settings.service_name}))
        if SERVICE_INSTANCE_ID not in resource.attributes:
            # Each process its own (uvicorn --workers, replicas): their cumulative metrics are separate series.
            # The SDK's detector: the same id the SDK's providers give a forked child in place of the parent's.
            resource = resource.merge(ServiceInstanceIdResourceDetector().detect())
        built.append(create_tracer_provider(otel.tracer_provider, resource, otel.attribute_limits))
        built.append(create_meter_provider(otel.meter_provider, resource))
        built.append(create_logger_provider(otel.logger_provider, resource, otel.attribute_limits))
        if otel.propagator is not None:
            configure_propagator(otel.propagator)
    except (ConfigurationError, TypeError, ValueError) as exc:
        for provider in built:
            provider.shutdown()
        raise PgotelConfigError(f"{loaded.path}: cannot build the telemetry pipeline: {exc}") from exc
    tracer_provider, meter_provider, logger_provider = built
    # The handle's shutdown, registered once, replaces the providers' own unbounded exit hooks.
    for provider in built:
        atexit.unregister(provider.shutdown)
    assert isinstance(tracer_provider, TracerProvider)
    assert isinstance(meter_provider, MeterProvider)
    assert isinstance(logger_provider, LoggerProvider)
    redact_before_export(tracer_provider, logger_provider, redactor)
    guard_otlp_exporters(tracer_provider, logger_provider, meter_provider)
    return PgOtel(
        config=loaded,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        logger_provider=logger_provider,
        request_durations=request_durations(meter_provider, loaded.request_duration),
        logging_handler=instrument_logging(logger_provider),
    )


def _set_globals_once(handle: PgOtel) -> None:
    """Make the handle's providers the global ones, unless the application already chose its own."""
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        # The rebindable provider, so that a later setup() in this process (a test's) still gets API spans.
        trace.set_tracer_provider(pgotel_tracer_provider)
    if _is_proxy(metrics.get_meter_provider()):
        metrics.set_meter_provider(handle.meter_provider)
    if _is_proxy(_logs.get_logger_provider()):
        _logs.set_logger_provider(handle.logger_provider)


def _is_proxy(provider: object) -> bool:
    # The API exports no "is the global set" query; an unset global is its internal proxy class.
    cls = type(provider)
    return (cls.__module__, cls.__name__) in _UNSET_GLOBAL_PROVIDERS


def _tie_to_lifespan(app: Starlette, handle: PgOtel, *, freeze: bool) -> None:
    """Once the app's own startup has run, re-attach the server-logger handler and freeze what the app built
    (pools, clients, caches: long-lived too); flush and stop the pipeline when the app's lifespan ends
    (uvicorn exit, TestClient close)."""
    app_lifespan: Callable[[Any], AbstractAsyncContextManager[Any]] = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan_around_app(lifespan_app: Any) -> AsyncIterator[Any]:
        try:
            async with app_lifespan(lifespan_app) as state:
                # A server that configured its logging after setup() (`uvicorn.run(app)`) reset its loggers.
                attach_to_server_loggers(handle._logging_handler)
                if freeze:
                    _freeze_gc()
                yield state
        finally:
            await to_thread.run_sync(handle.shutdown)

    app.router.lifespan_context = lifespan_around_app


def _mount_dashboard(app: Starlette, settings: PgotelSettings) -> None:
    """The one place the dashboard joins the app (its routers need FastAPI; others use `pgotel serve`)."""
    if not settings.dashboard.enabled:
        return
    if isinstance(app, FastAPI):
        dashboard.mount(app, settings)
    else:
        _logger.warning("pgotel: the dashboard mounts on FastAPI apps only; serve it with `pgotel serve`")
