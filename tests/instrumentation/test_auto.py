"""`OTEL_CONFIG_FILE=otel-config.yaml opentelemetry-instrument uvicorn app:app` on an app without pgotel code.

The telemetry must be what `pgotel.setup(app)` gives, stored in PostgreSQL by the exporters of the same file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from tests.conftest import stored_rows

_PLAIN_APP = """
import logging
import os

import asyncpg
from fastapi import FastAPI

app = FastAPI()
logger = logging.getLogger("plainapp")


@app.get("/hello/{name}")
async def hello(name: str) -> dict[str, str]:
    logger.warning("greeting %s", name)
    return {"hello": name}


@app.get("/db")
async def database() -> dict[str, int]:
    conn = await asyncpg.connect(os.environ["PGOTEL_DSN"])
    try:
        return {"one": await conn.fetchval("SELECT 1")}
    finally:
        await conn.close()


@app.get("/boom")
async def boom() -> None:
    raise RuntimeError("kaboom")
"""
_REQUESTS = ("/hello/alice", "/hello/bob", "/db", "/boom")


def _serve_and_request(tmp_path: Path, dsn: str) -> dict[str, httpx.Response]:
    """Run the app under opentelemetry-instrument, send `_REQUESTS`, stop it with SIGTERM."""
    bin_dir = Path(sys.executable).parent
    socket_path = tmp_path / "app.sock"
    env = {
        **os.environ,
        "OTEL_CONFIG_FILE": "otel-config.yaml",
        "PGOTEL_DSN": dsn,
        "PGOTEL_DASHBOARD_TOKEN": "auto-test-token",
    }
    server = subprocess.Popen(
        [bin_dir / "opentelemetry-instrument", bin_dir / "uvicorn", "plainapp:app", "--uds", socket_path],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    responses: dict[str, httpx.Response] = {}
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(socket_path)), base_url="http://app") as client:
            for _ in range(600):  # until the server is up (bounded)
                try:
                    responses[_REQUESTS[0]] = client.get(_REQUESTS[0])
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            for path in _REQUESTS[1:]:
                responses[path] = client.get(path)
    finally:
        server.send_signal(signal.SIGTERM)  # uvicorn's graceful shutdown: the app's lifespan flushes the pipeline
        _, stderr = server.communicate(timeout=60)
    statuses = [responses[path].status_code if path in responses else None for path in _REQUESTS]
    assert statuses == [200, 200, 200, 500], stderr.decode()[-3000:]
    return responses


def test_opentelemetry_instrument_gives_pgotel_telemetry(dsn: str, tmp_path: Path, repo_root: Path) -> None:
    (tmp_path / "plainapp.py").write_text(_PLAIN_APP)
    (tmp_path / "otel-config.yaml").write_text((repo_root / "otel-config.yaml").read_text())

    responses = _serve_and_request(tmp_path, dsn)

    spans = stored_rows(
        dsn,
        "SELECT s.name, s.kind, s.trace_id, s.span_id, s.parent_span_id, s.attributes->>'url.path' AS path,"
        " sc.name AS scope FROM pgotel.spans s JOIN pgotel.scopes sc ON sc.id = s.scope_id",
    )
    server_spans = {span["path"]: span for span in spans if span["kind"] == 2}
    # One SERVER span per request, from pgotel's middleware only (no stock or FastAPI-native server span).
    assert sorted((span["name"], span["scope"]) for span in server_spans.values()) == [
        ("GET /boom", "pgotel.instrumentation.fastapi"),
        ("GET /db", "pgotel.instrumentation.fastapi"),
        ("GET /hello/{name}", "pgotel.instrumentation.fastapi"),
        ("GET /hello/{name}", "pgotel.instrumentation.fastapi"),
    ]
    for path in _REQUESTS:
        assert uuid.UUID(responses[path].headers["X-Trace-ID"]) == server_spans[path]["trace_id"]
    # The app's own query is a client span of its request; the exporter's queries are not traced at all.
    db_span = server_spans["/db"]
    assert [(span["name"], span["trace_id"], span["parent_span_id"]) for span in spans if span["kind"] != 2] == [
        ("SELECT", db_span["trace_id"], db_span["span_id"])
    ]

    logs = stored_rows(
        dsn,
        "SELECT l.body #>> '{}' AS body, l.trace_id, sc.name AS logger"
        " FROM pgotel.logs l JOIN pgotel.scopes sc ON sc.id = l.scope_id",
    )
    assert sorted((log["body"], log["trace_id"]) for log in logs if log["logger"] != "uvicorn.error") == [
        ("greeting alice", server_spans["/hello/alice"]["trace_id"]),
        ("greeting bob", server_spans["/hello/bob"]["trace_id"]),
    ]
    # uvicorn's own records, which its default logging keeps from the root logger, are exported too; its report
    # of the exception that escaped /boom (written after the request's span ended) carries that request's trace.
    server_records = {(log["body"], log["trace_id"]) for log in logs if log["logger"] == "uvicorn.error"}
    assert ("Application startup complete.", None) in server_records
    assert ("Exception in ASGI application\n", server_spans["/boom"]["trace_id"]) in server_records

    measured = stored_rows(
        dsn,
        "SELECT sum(p.count)::int AS requests FROM pgotel.exp_histogram_points p"
        " JOIN pgotel.metric_series s ON p.series_id = s.id WHERE s.name = 'http.server.request.duration'",
    )
    assert measured == [{"requests": len(_REQUESTS)}]


_SCRIPT_WITHOUT_CONFIG_FILE = """
import httpx
import anyio
from fastapi import FastAPI
from opentelemetry import metrics, trace

app = FastAPI()


@app.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    return {"id": item_id}


async def main() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
        for n in range(3):
            assert (await client.get(f"/items/{n}")).status_code == 200
    with trace.get_tracer("script").start_as_current_span("charge", attributes={"api_key": "PLANTED-KEY"}):
        pass
    metrics.get_meter_provider().force_flush()
    trace.get_tracer_provider().force_flush()

anyio.run(main)
"""


def test_an_sdk_configured_from_environment_variables_gets_durations_and_redaction(tmp_path: Path) -> None:
    # No OTEL_CONFIG_FILE: the SDK builds its providers from OTEL_* variables (console exporters here);
    # pgotel's instrumentor still measures every request through that provider's readers, and redacts.
    (tmp_path / "script.py").write_text(_SCRIPT_WITHOUT_CONFIG_FILE)
    (tmp_path / "otel-config.yaml").write_text('file_format: "1.0"\npgotel: {dashboard: {enabled: false}}\n')
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env.update(OTEL_METRICS_EXPORTER="console", OTEL_TRACES_EXPORTER="console", OTEL_LOGS_EXPORTER="none")
    bin_dir = Path(sys.executable).parent
    result = subprocess.run(
        [bin_dir / "opentelemetry-instrument", sys.executable, "script.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert '"name": "charge"' in result.stdout
    assert "PLANTED-KEY" not in result.stdout
    metrics_export = result.stdout[result.stdout.index('{\n    "resource_metrics"') :]
    exported, _ = json.JSONDecoder().raw_decode(metrics_export)
    [point] = [
        point
        for resource_metrics in exported["resource_metrics"]
        for scope_metrics in resource_metrics["scope_metrics"]
        for metric in scope_metrics["metrics"]
        if metric["name"] == "http.server.request.duration"
        for point in metric["data"]["data_points"]
    ]
    assert point["count"] == 3
    assert point["attributes"]["http.route"] == "/items/{item_id}"
