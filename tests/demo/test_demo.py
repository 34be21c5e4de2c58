from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import asyncpg
import psutil

from pgotel import db

_COUNTS = """
SELECT (SELECT count(*) FROM pgotel.spans WHERE http_route IS NOT NULL) AS server_spans,
       (SELECT count(*) FROM pgotel.spans WHERE http_route = '/api/items/{item_id}') AS item_spans,
       (SELECT count(*) FROM pgotel.logs) AS logs,
       (SELECT count(*) FROM pgotel.metric_points)
     + (SELECT count(*) FROM pgotel.histogram_points)
     + (SELECT count(*) FROM pgotel.exp_histogram_points) AS metric_points,
       (SELECT count(*) FROM pgotel.spans WHERE http_status_code >= 500) AS failed
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _processes_under(folder: Path) -> list[psutil.Process]:
    """Processes working inside `folder`: the embedded PostgreSQL (cwd = its data dir) and Redis (--dir)."""
    found = []
    for process in psutil.process_iter(["cwd"]):
        cwd = process.info["cwd"]
        if cwd and Path(cwd).is_relative_to(folder):
            found.append(process)
    return found


async def _counts(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(_COUNTS)
        assert row is not None
        return dict(row)
    finally:
        await conn.close()


def test_demo_serves_stores_telemetry_and_leaves_nothing_behind(tmp_path: Path, repo_root: Path) -> None:
    shutil.copy(repo_root / "otel-config.yaml", tmp_path / "otel-config.yaml")
    port = _free_port()
    pgotel = Path(sys.executable).parent / "pgotel"
    result = subprocess.run(
        [str(pgotel), "demo", "--duration", "8", "--port", str(port)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert result.returncode == 0, result.stderr
    assert f"http://127.0.0.1:{port}/ui/monitoring/advanced" in result.stdout
    assert "psql postgresql://" in result.stdout
    assert "pgotel demo stopped after" in result.stdout

    data_dir = tmp_path / ".pgotel"
    assert db.embedded_status(data_dir) is None, "the demo stops the server it started"
    assert _processes_under(tmp_path) == []

    server = db.start_embedded(data_dir)
    try:
        counts = asyncio.run(_counts(server.dsn))
    finally:
        db.stop_embedded(data_dir)
    assert counts["server_spans"] > 20
    assert counts["item_spans"] > 0
    assert counts["logs"] > 0
    assert counts["metric_points"] > 0
    assert counts["failed"] > 0


_BROKEN_STARTUP = """
import sys
from contextlib import asynccontextmanager

import pgotel.demo._run
from pgotel.cli import main

create_demo_app = pgotel.demo._run.create_demo_app


def broken_demo_app(dsn, redis_url):
    app = create_demo_app(dsn, redis_url)

    @asynccontextmanager
    async def lifespan(running):
        raise RuntimeError("the app's startup broke")
        yield

    app.router.lifespan_context = lifespan
    return app


pgotel.demo._run.create_demo_app = broken_demo_app
sys.exit(main(sys.argv[1:]))
"""


def test_an_app_whose_startup_fails_ends_the_demo_with_its_error(tmp_path: Path, repo_root: Path, dsn: str) -> None:
    # uvicorn exits the process (SystemExit) when the app's startup fails: the demo must still report it and stop
    # what it started, not hang on threads left running.
    shutil.copy(repo_root / "otel-config.yaml", tmp_path / "otel-config.yaml")
    (tmp_path / "broken_demo.py").write_text(_BROKEN_STARTUP)
    result = subprocess.run(
        [sys.executable, "broken_demo.py", "demo", "--duration", "8", "--port", str(_free_port())],
        cwd=tmp_path,
        env={**os.environ, "PGOTEL_DSN": dsn},
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 1, result.stderr
    assert "RuntimeError: the app's startup broke" in result.stderr
    assert result.stderr.rstrip().endswith("pgotel demo: the demo app failed to start; its error is logged above")
    assert _processes_under(tmp_path) == []
