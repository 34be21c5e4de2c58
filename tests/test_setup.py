"""`pgotel.setup()`: config resolution, providers from the file, app wiring, flush and bounded shutdown."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from opentelemetry import _logs, metrics, trace
from opentelemetry._logs import _internal as logs_internal
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import pgotel
from pgotel.config import PgotelConfigError
from pgotel.instrumentation import pgotel_tracer_provider
from tests.instrumentation.conftest import client_for

CONSOLE_CONFIG = """\
file_format: "1.0"
resource:
  attributes:
    - name: service.name
      value: checkout
tracer_provider:
  processors:
    - simple: {exporter: {console: {}}}
meter_provider:
  readers:
    - periodic: {interval: 60000, exporter: {console: {}}}
logger_provider:
  processors:
    - simple: {exporter: {console: {}}}
pgotel:
  limits: {max_routes: 50}
  dashboard: {enabled: false}
"""


class ShutdownRecorder(SpanProcessor):
    def __init__(self) -> None:
        self.shutdowns = 0

    def shutdown(self) -> None:
        self.shutdowns += 1


class FailingProcessor(SpanProcessor):
    def on_end(self, span: ReadableSpan) -> None:
        raise RuntimeError("exporter defect")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the app's ASGI lifespan around the block, as uvicorn does around serving."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
    )
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    yield
    await inbox.put({"type": "lifespan.shutdown"})
    assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
    await task


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "otel-config.yaml"
    path.write_text(CONSOLE_CONFIG)
    return path


@pytest.fixture
def handles() -> Iterator[list[pgotel.PgOtel]]:
    created: list[pgotel.PgOtel] = []
    yield created
    for handle in created:
        handle.shutdown()


@pytest.fixture(autouse=True)
def unset_globals(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Globals can be set once per process: record what setup() would set, as if none was set yet."""
    chosen: dict[str, object] = {}
    monkeypatch.setattr(trace, "get_tracer_provider", trace.ProxyTracerProvider)
    monkeypatch.setattr(metrics, "get_meter_provider", metrics_internal._ProxyMeterProvider)
    monkeypatch.setattr(_logs, "get_logger_provider", logs_internal.ProxyLoggerProvider)
    monkeypatch.setattr(trace, "set_tracer_provider", lambda provider: chosen.setdefault("tracer", provider))
    monkeypatch.setattr(metrics, "set_meter_provider", lambda provider: chosen.setdefault("meter", provider))
    monkeypatch.setattr(_logs, "set_logger_provider", lambda provider: chosen.setdefault("logger", provider))
    return chosen


def test_providers_are_built_from_the_file(
    config_file: Path, handles: list[pgotel.PgOtel], unset_globals: dict[str, object]
) -> None:
    handle = pgotel.setup(config=config_file)
    handles.append(handle)

    assert handle.config.path == config_file
    assert handle.settings.limits.max_routes == 50
    assert handle.tracer_provider.resource.attributes["service.name"] == "checkout"
    assert pgotel_tracer_provider.target is handle.tracer_provider
    assert unset_globals["tracer"] is pgotel_tracer_provider
    assert unset_globals["meter"] is handle.meter_provider
    assert unset_globals["logger"] is handle.logger_provider


def test_the_process_gets_a_service_instance_id_unless_the_file_names_one(
    config_file: Path, tmp_path: Path, handles: list[pgotel.PgOtel]
) -> None:
    handle = pgotel.setup(config=config_file)
    handles.append(handle)
    instance_id = handle.tracer_provider.resource.attributes["service.instance.id"]
    assert uuid.UUID(str(instance_id))  # each worker process its own: tests/test_workers.py

    named = tmp_path / "named.yaml"
    named_instance = "      value: checkout\n    - name: service.instance.id\n      value: web-1\n"
    named.write_text(CONSOLE_CONFIG.replace("      value: checkout\n", named_instance))
    handle = pgotel.setup(config=named)
    handles.append(handle)
    assert handle.tracer_provider.resource.attributes["service.instance.id"] == "web-1"


def test_api_spans_follow_the_latest_setup_in_the_process(config_file: Path) -> None:
    tracer = pgotel_tracer_provider.get_tracer("app.code")  # what trace.get_tracer() returns after setup()
    pgotel.setup(config=config_file).shutdown()
    handle = pgotel.setup(config=config_file)
    exported = InMemorySpanExporter()
    pgotel_tracer_provider.add_span_processor(SimpleSpanProcessor(exported))

    tracer.start_span("after-second-setup").end()
    handle.shutdown()

    assert [span.name for span in exported.get_finished_spans()] == ["after-second-setup"]


def test_config_path_comes_from_otel_config_file_without_an_argument(
    config_file: Path, handles: list[pgotel.PgOtel], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_CONFIG_FILE", str(config_file))

    handle = pgotel.setup()
    handles.append(handle)

    assert handle.config.path == config_file


def test_missing_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(PgotelConfigError, match=r"absent\.yaml"):
        pgotel.setup(config=tmp_path / "absent.yaml")


def test_unknown_exporter_plugin_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(CONSOLE_CONFIG.replace("simple: {exporter: {console: {}}}", "simple: {exporter: {nosuch: {}}}", 1))

    with pytest.raises(PgotelConfigError, match=r"broken\.yaml: .*nosuch"):
        pgotel.setup(config=path)


async def test_app_is_instrumented_and_the_app_shutdown_stops_the_pipeline(config_file: Path) -> None:
    app = FastAPI()

    @app.get("/orders/{order_id}")
    async def order(order_id: int) -> int:
        return order_id

    handle = pgotel.setup(app, config=config_file)
    exported = InMemorySpanExporter()
    recorder = ShutdownRecorder()
    handle.tracer_provider.add_span_processor(SimpleSpanProcessor(exported))
    handle.tracer_provider.add_span_processor(recorder)

    async with lifespan(app), client_for(app) as client:
        response = await client.get("/orders/12")
        assert recorder.shutdowns == 0

    [span] = exported.get_finished_spans()
    assert span.name == "GET /orders/{order_id}"
    assert response.headers["X-Trace-ID"] == format(span.context.trace_id, "032x")
    assert recorder.shutdowns == 1
    handle.shutdown()
    assert recorder.shutdowns == 1


def test_force_flush_reports_success(config_file: Path, handles: list[pgotel.PgOtel]) -> None:
    handle = pgotel.setup(config=config_file)
    handles.append(handle)

    assert handle.force_flush(timeout_millis=5000) is True


async def test_a_failing_telemetry_pipeline_never_fails_the_request(
    config_file: Path, handles: list[pgotel.PgOtel], caplog: pytest.LogCaptureFixture
) -> None:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> str:
        return "pong"

    handle = pgotel.setup(app, config=config_file)
    handles.append(handle)
    handle.tracer_provider.add_span_processor(FailingProcessor())

    async with client_for(app) as client:
        response = await client.get("/ping")

    assert (response.status_code, response.json()) == (200, "pong")
    assert "recording the request telemetry failed" in caplog.text


def test_the_dashboard_is_mounted_through_its_single_entry_point(
    config_file: Path, handles: list[pgotel.PgOtel], monkeypatch: pytest.MonkeyPatch
) -> None:
    import pgotel.dashboard

    mounted: list[tuple[object, object]] = []
    monkeypatch.setattr(pgotel.dashboard, "mount", lambda app, settings: mounted.append((app, settings)), raising=False)
    config_file.write_text(CONSOLE_CONFIG.replace("dashboard: {enabled: false}", "dashboard: {auth: t0ken}"))
    app = FastAPI()

    handle = pgotel.setup(app, config=config_file)
    handles.append(handle)

    assert mounted == [(app, handle.settings)]


def test_spans_ending_outside_requests_do_not_need_an_app(config_file: Path, handles: list[pgotel.PgOtel]) -> None:
    handle = pgotel.setup(config=config_file)
    handles.append(handle)
    exported = InMemorySpanExporter()
    handle.tracer_provider.add_span_processor(SimpleSpanProcessor(exported))

    @pgotel.traced
    def nightly_job() -> str:
        return "done"

    assert nightly_job() == "done"
    assert [span.name for span in exported.get_finished_spans()] == [
        "test_spans_ending_outside_requests_do_not_need_an_app.<locals>.nightly_job"
    ]


@pytest.mark.parametrize("freeze_gc", [True, False])
def test_setup_and_app_startup_freeze_the_objects_alive_then_unless_disabled(tmp_path: Path, freeze_gc: bool) -> None:
    config = tmp_path / "otel-config.yaml"
    config.write_text(CONSOLE_CONFIG + f"  freeze_gc: {str(freeze_gc).lower()}\n")
    script = (
        "import contextlib, gc, sys, pgotel\n"
        "from fastapi import FastAPI\n"
        "from fastapi.testclient import TestClient\n"
        "@contextlib.asynccontextmanager\n"
        "async def lifespan(app):\n"
        "    app.state.cache = [[] for _ in range(50_000)]  # long-lived objects built at startup\n"
        "    yield\n"
        "app = FastAPI(lifespan=lifespan)\n"
        "before = gc.get_freeze_count()\n"
        f"pgotel.setup(app, config={str(config)!r})\n"
        "at_setup = gc.get_freeze_count()\n"
        "with TestClient(app):\n"
        "    print('FREEZE', before, at_setup, gc.get_freeze_count(), file=sys.stderr)\n"
    )
    # A fresh interpreter: this test process has frozen objects already.
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    before, at_setup, at_startup = (int(n) for n in result.stderr.split("FREEZE", 1)[1].split()[:3])
    assert before == 0
    if freeze_gc:
        assert at_setup > 10_000  # the interpreter, FastAPI, OTel and pgotel's modules at least
        assert at_startup - at_setup >= 40_000  # and, once the app has started, what its lifespan built
    else:
        assert at_setup == at_startup == 0


@pytest.mark.parametrize(
    ("setting", "set_by_app", "expected"),
    [
        ("", None, (10_000, 10, 10)),  # the default
        ("  gc_young_threshold: 0\n", None, (700, 10, 10)),  # left alone
        ("  gc_young_threshold: 2000\n", (50_000, 20, 5), (50_000, 20, 5)),  # the app's higher one is kept
    ],
)
def test_setup_raises_the_young_gc_threshold_unless_told_not_to(
    tmp_path: Path, setting: str, set_by_app: tuple[int, int, int] | None, expected: tuple[int, int, int]
) -> None:
    config = tmp_path / "otel-config.yaml"
    config.write_text(CONSOLE_CONFIG + setting)
    script = (
        "import gc, pgotel\n"
        + (f"gc.set_threshold{set_by_app}\n" if set_by_app else "")
        + f"pgotel.setup(config={str(config)!r})\n"
        + "print('THRESHOLD', *gc.get_threshold())\n"
    )
    # A fresh interpreter: the thresholds are process-wide.
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert tuple(int(n) for n in result.stdout.split("THRESHOLD", 1)[1].split()) == expected
