"""PostgreSQL stopped for 20 s while a FastAPI app is under load: no request fails, writes resume after
the restart, and every span the app emitted is stored or counted as dropped, exactly."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

import pgotel
from pgotel import db
from pgotel.exporter import flush_shared_writer

_OUTAGE_S = 20.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_outage_under_load(tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "pg"
    port = _free_port()
    server = db.start_embedded(data_dir, port=port)
    monkeypatch.setenv("PGOTEL_DSN", server.dsn)
    monkeypatch.setenv("PGOTEL_DASHBOARD_TOKEN", "outage-test-token")
    app = FastAPI()

    @app.get("/work/{n}")
    async def work(n: int) -> dict[str, int]:
        return {"n": n}

    handle = pgotel.setup(app, config=repo_root / "otel-config.yaml")
    statuses: list[int] = []
    stop = asyncio.Event()

    async def load(client: httpx.AsyncClient) -> None:
        n = 0
        while not stop.is_set():
            statuses.append((await client.get(f"/work/{n}")).status_code)
            n += 1
            await asyncio.sleep(0.02)

    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
            loader = asyncio.create_task(load(client))
            await asyncio.sleep(2)
            await asyncio.to_thread(db.stop_embedded, data_dir)
            await asyncio.sleep(_OUTAGE_S)
            await asyncio.to_thread(db.start_embedded, data_dir, port=port)
            await asyncio.sleep(2)
            stop.set()
            await loader
        assert handle.force_flush(30_000)
        assert flush_shared_writer(30)
        conn = await asyncpg.connect(server.dsn)
        try:
            stored = await conn.fetchval("SELECT count(*) FROM pgotel.spans WHERE http_route = '/work/{n}'")
        finally:
            await conn.close()
        assert len(statuses) > 200
        assert set(statuses) == {200}, "a request failed while PostgreSQL was down"
        assert stored == len(statuses), "every request's server span is stored once the database is back"
    finally:
        handle.shutdown()
        db.stop_embedded(data_dir)
