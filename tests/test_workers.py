"""`uvicorn --workers 2` and `gunicorn --preload`: every worker process gets its own writer and its telemetry lands
in PostgreSQL."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import stored_rows

_APP = """
import asyncio
import os
from fastapi import FastAPI
from opentelemetry import trace
import pgotel

app = FastAPI()
pgotel.setup(app, config="otel-config.yaml")

@app.get("/pid")
async def pid() -> dict[str, int]:
    trace.get_current_span().set_attribute("worker.pid", os.getpid())
    return {"pid": os.getpid()}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stored_pids_and_instances(dsn: str) -> tuple[set[int], set[str]]:
    """The worker pids the stored `/pid` spans name, and the service.instance.id of their resources."""
    rows = stored_rows(
        dsn,
        "SELECT DISTINCT (s.attributes->>'worker.pid')::int AS pid, r.attributes->>'service.instance.id' AS id"
        " FROM pgotel.spans s JOIN pgotel.resources r ON r.id = s.resource_id WHERE s.http_route = '/pid'",
    )
    return {row["pid"] for row in rows}, {row["id"] for row in rows}


# uvicorn spawns workers that import the app; gunicorn --preload imports it (and runs pgotel.setup()) in its
# master, then forks the workers.
_SERVERS = {
    "uvicorn": [sys.executable, "-m", "uvicorn", "app_under_test:app", "--workers", "2", "--port"],
    "gunicorn-preload": [
        sys.executable, "-m", "gunicorn", "app_under_test:app", "--preload", "--workers", "2",
        "--worker-class", "uvicorn.workers.UvicornWorker", "--bind",
    ],
}  # fmt: skip


@pytest.mark.parametrize("server_name", sorted(_SERVERS))
def test_each_worker_exports(server_name: str, dsn: str, tmp_path: Path, repo_root: Path) -> None:
    (tmp_path / "app_under_test.py").write_text(_APP)
    (tmp_path / "otel-config.yaml").write_text((repo_root / "otel-config.yaml").read_text())
    port = _free_port()
    address = f"127.0.0.1:{port}" if server_name == "gunicorn-preload" else str(port)
    env = {**os.environ, "PGOTEL_DSN": dsn, "PGOTEL_DASHBOARD_TOKEN": "workers-test-token"}
    server = subprocess.Popen(
        [*_SERVERS[server_name], address],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    pids: set[int] = set()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(600):  # until both workers have answered (bounded)
                try:
                    response = client.get("/pid", headers={"Connection": "close"})
                    pids.add(response.json()["pid"])
                except httpx.TransportError:
                    time.sleep(0.05)
                if len(pids) == 2:
                    break
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=60)
    assert len(pids) == 2, stderr.decode()[-2000:]
    stored_pids, instances = _stored_pids_and_instances(dsn)
    assert stored_pids == pids, stderr.decode()[-2000:]
    assert len(instances) == 2  # each worker a resource of its own
    assert None not in instances
