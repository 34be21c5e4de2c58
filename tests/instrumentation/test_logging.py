"""Stdlib logging and structlog into the OTel logs signal, correlated with the request's trace."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from pgotel.instrumentation import (
    add_trace_context,
    export_event,
    instrument_logging,
    redact_secrets,
    uninstrument_logging,
)
from tests.instrumentation.conftest import Telemetry, client_for, instrumented, make_app


@pytest.fixture
def exported_logs(telemetry: Telemetry) -> Iterator[Telemetry]:
    """The root handler on the in-memory pipeline (whose redacting processor comes first, as in setup())."""
    handler = instrument_logging(telemetry.logger_provider)
    yield telemetry
    uninstrument_logging(handler)


@pytest.fixture
def stdlib_structlog() -> Iterator[None]:
    """structlog as a user would configure it on top of stdlib logging, with pgotel's processors."""
    structlog.configure(
        processors=[add_trace_context, redact_secrets, structlog.stdlib.render_to_log_kwargs],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    yield
    structlog.reset_defaults()


async def test_logs_inside_a_request_carry_its_trace_id(exported_logs: Telemetry, stdlib_structlog: None) -> None:
    app = FastAPI()

    @app.get("/checkout")
    async def checkout() -> str:
        logging.getLogger("shop.checkout").warning("payment declined for %s", "order-7")
        structlog.get_logger("shop.audit").warning("checkout failed", order_id=7)
        return "ok"

    instrumented(app, exported_logs)
    async with client_for(app) as client:
        response = await client.get("/checkout")

    [server_span] = exported_logs.server_spans()
    trace_id = response.headers["X-Trace-ID"]
    records = [entry.log_record for entry in exported_logs.log_records()]
    assert [record.body for record in records] == ["payment declined for order-7", "checkout failed"]
    assert {format(record.trace_id or 0, "032x") for record in records} == {trace_id}
    assert {record.span_id for record in records} == {server_span.context.span_id}


def test_structlog_event_becomes_a_record_with_redacted_attributes(
    exported_logs: Telemetry, stdlib_structlog: None
) -> None:
    with exported_logs.tracer_provider.get_tracer("test").start_as_current_span("job") as span:
        structlog.get_logger("worker").warning(
            "login attempt", user="ada", password="PLANTED-PW", callback="https://x.example/cb?token=PLANTED-TOKEN"
        )

    [entry] = exported_logs.log_records()
    record = entry.log_record
    assert record.body == "login attempt"
    assert record.trace_id == span.get_span_context().trace_id
    attributes = dict(record.attributes or {})
    assert attributes == {
        "user": "ada",
        "password": "[REDACTED]",
        "callback": "https://x.example/cb?token=[REDACTED]",
        "trace_id": format(span.get_span_context().trace_id, "032x"),
        "span_id": format(span.get_span_context().span_id, "016x"),
    }


@pytest.fixture
def printing_structlog() -> Iterator[io.StringIO]:
    """structlog printing JSON lines itself (no stdlib logging), with pgotel's processors before the renderer."""
    output = io.StringIO()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            add_trace_context,
            redact_secrets,
            export_event,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(output),
        cache_logger_on_first_use=False,
    )
    yield output
    structlog.reset_defaults()


def test_structlog_printing_its_own_output_is_exported_too(
    exported_logs: Telemetry, printing_structlog: io.StringIO
) -> None:
    with exported_logs.tracer_provider.get_tracer("test").start_as_current_span("checkout") as span:
        structlog.get_logger().warning("payment declined", order_id=7, api_key="PLANTED-KEY")
        try:
            raise TimeoutError("gateway")
        except TimeoutError:
            structlog.get_logger().exception("gateway failed")

    declined, failed = [entry.log_record for entry in exported_logs.log_records()]
    context = span.get_span_context()
    assert (declined.body, declined.severity_text, declined.trace_id, declined.span_id) == (
        "payment declined", "WARN", context.trace_id, context.span_id,
    )  # fmt: skip
    assert dict(declined.attributes or {}) == {
        "order_id": 7,
        "api_key": "[REDACTED]",
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
    }
    assert (failed.body, failed.severity_text) == ("gateway failed", "ERROR")
    assert failed.attributes is not None
    assert failed.attributes["exception.type"] == "TimeoutError"
    # What structlog prints is unchanged by the export.
    printed = [json.loads(line) for line in printing_structlog.getvalue().splitlines()]
    assert [(line["event"], line["level"]) for line in printed] == [
        ("payment declined", "warning"),
        ("gateway failed", "error"),
    ]


def test_export_event_without_setup_only_passes_the_event_on(printing_structlog: io.StringIO) -> None:
    structlog.get_logger().info("no pipeline", step=1)

    assert json.loads(printing_structlog.getvalue()) == {"event": "no pipeline", "step": 1, "level": "info"}


@pytest.mark.parametrize("name", ["pgotel", "pgotel.exporter", "asyncpg.pool", "opentelemetry.sdk.trace"])
def test_pipeline_loggers_are_not_exported(exported_logs: Telemetry, name: str) -> None:
    logging.getLogger(name).error("internal trouble")
    logging.getLogger("shop").error("app trouble")

    assert [entry.log_record.body for entry in exported_logs.log_records()] == ["app trouble"]


def test_exported_message_has_url_secrets_redacted_and_other_handlers_see_it_unchanged(
    exported_logs: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    url = "https://api.example/v1?access_token=PLANTED&page=2"
    with caplog.at_level(logging.INFO, logger="http.client.log"):
        logging.getLogger("http.client.log").info("GET %s", url)

    [entry] = exported_logs.log_records()
    assert entry.log_record.body == "GET https://api.example/v1?access_token=[REDACTED]&page=2"
    assert caplog.messages == [f"GET {url}"]


def test_exceptions_travel_as_attributes_not_in_the_body(exported_logs: Telemetry) -> None:
    try:
        raise KeyError("sku-1")
    except KeyError:
        logging.getLogger("shop").exception("lookup failed")

    [entry] = exported_logs.log_records()
    assert entry.log_record.body == "lookup failed"
    assert entry.log_record.attributes is not None
    assert entry.log_record.attributes["exception.type"] == "KeyError"


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


@pytest.mark.parametrize("message", [_Unprintable(), {"big": 10**5000}], ids=["str-raises", "int-beyond-str-limit"])
def test_a_record_that_cannot_be_exported_never_raises_into_the_app(
    telemetry: Telemetry, message: object, capsys: pytest.CaptureFixture[str]
) -> None:
    # Handed to pgotel's handler directly: pytest's own log capture would raise on such a record.
    handler = instrument_logging(telemetry.logger_provider)
    try:
        for msg in (message, "the next record"):
            handler.handle(logging.makeLogRecord({"name": "shop", "msg": msg, "levelno": logging.WARNING}))
    finally:
        uninstrument_logging(handler)

    assert [entry.log_record.body for entry in telemetry.log_records()] == ["the next record"]
    assert "--- Logging error ---" in capsys.readouterr().err  # reported as by any stdlib handler


_PGOTEL_WARNINGS = """
import logging
from opentelemetry.sdk._logs import LoggerProvider
from pgotel.instrumentation import instrument_logging

instrument_logging(LoggerProvider())  # the root logger's only handler, as under uvicorn's default logging
logging.getLogger("pgotel.exporter").warning("pgotel: 5 spans dropped")
logging.getLogger("pgotel.exporter").info("below the last resort's level")
logging.getLogger("pgotel.demo.app").warning("the demo app's own record: exported, not printed")
app_handler = logging.StreamHandler()  # now the app's own handler shows them, once
app_handler.setFormatter(logging.Formatter("app handler: %(message)s"))
logging.getLogger().addHandler(app_handler)
logging.getLogger("pgotel.exporter").warning("pgotel: 2 logs dropped")
"""


def test_pgotels_own_warnings_reach_stderr_when_no_other_handler_would_show_them() -> None:
    result = subprocess.run([sys.executable, "-c", _PGOTEL_WARNINGS], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["pgotel: 5 spans dropped", "app handler: pgotel: 2 logs dropped"]


def test_the_demo_app_logs_like_any_app(exported_logs: Telemetry) -> None:
    logging.getLogger("pgotel.demo.app").error("demo trouble")

    assert [entry.log_record.body for entry in exported_logs.log_records()] == ["demo trouble"]


def test_uninstrumenting_stops_the_export(telemetry: Telemetry, uvicorn_logging: None) -> None:
    handler = instrument_logging(telemetry.logger_provider)
    uninstrument_logging(handler)

    logging.getLogger("shop").error("after")
    logging.getLogger("uvicorn.error").error("after")

    assert telemetry.log_records() == []


@pytest.fixture
def uvicorn_logging() -> Iterator[None]:
    """The `uvicorn` logger as uvicorn's default logging config leaves it: its records stop before the root."""
    server_logger = logging.getLogger("uvicorn")
    propagate = server_logger.propagate
    server_logger.propagate = False
    yield
    server_logger.propagate = propagate


def served_like_uvicorn(app: ASGIApp) -> ASGIApp:
    """What uvicorn does with an exception that escapes the app (after its 500 was sent): log it, outside the
    request's span, on `uvicorn.error`."""

    async def server(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await app(scope, receive, send)
        except Exception as exc:
            logging.getLogger("uvicorn.error").error("Exception in ASGI application\n", exc_info=exc)

    return server


def _uvicorn_records(pipeline: Telemetry) -> list[Any]:
    return [entry.log_record for entry in pipeline.log_records() if entry.instrumentation_scope.name == "uvicorn.error"]


@pytest.mark.parametrize("reaches_root", [False, True], ids=["uvicorn-default-logging", "propagating-to-root"])
async def test_the_servers_report_of_an_unhandled_exception_joins_the_requests_trace(
    exported_logs: Telemetry, uvicorn_logging: None, reaches_root: bool
) -> None:
    logging.getLogger("uvicorn").propagate = reaches_root
    app = instrumented(make_app(), exported_logs)
    async with client_for(served_like_uvicorn(app)) as client:
        response = await client.get("/boom")

    assert response.status_code == 500
    [server_span] = exported_logs.server_spans()
    [record] = _uvicorn_records(exported_logs)  # once, whichever way the record travels
    assert record.body == "Exception in ASGI application\n"
    assert format(record.trace_id or 0, "032x") == response.headers["X-Trace-ID"]
    assert record.span_id == server_span.context.span_id
    assert record.attributes is not None
    assert record.attributes["exception.type"] == "RuntimeError"


def test_the_servers_other_records_are_exported_without_a_trace(
    exported_logs: Telemetry, uvicorn_logging: None
) -> None:
    logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
    try:
        raise RuntimeError("outside any request")
    except RuntimeError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application\n")

    records = _uvicorn_records(exported_logs)
    assert [record.body for record in records] == ["Invalid HTTP request received.", "Exception in ASGI application\n"]
    assert [record.trace_id for record in records] == [0, 0]
