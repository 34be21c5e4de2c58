"""Shared fixtures: one real embedded PostgreSQL per test session, a fresh migrated database per test."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from pgotel import db


def stored_rows(dsn: str, query: str) -> list[dict[str, Any]]:
    """What `query` reads from the database at `dsn`, on a connection of its own (for tests that are not async)."""

    async def fetch() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(dsn)
        try:
            return [dict(row) for row in await conn.fetch(query)]
        finally:
            await conn.close()

    return asyncio.run(fetch())


@pytest.fixture(scope="session")
def server_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Superuser DSN of the server the database tests create their databases in: a real embedded PostgreSQL 18
    private to this test session, or the server that PGOTEL_TEST_SERVER_DSN names (another PostgreSQL version)."""
    external = os.environ.get("PGOTEL_TEST_SERVER_DSN")
    if external:
        yield external
        return
    data_dir = tmp_path_factory.mktemp("pgotel-embedded")
    server = db.start_embedded(data_dir)
    yield server.dsn
    db.stop_embedded(data_dir)


@pytest.fixture
async def empty_dsn(server_dsn: str) -> AsyncIterator[str]:
    """DSN of a brand-new, empty database (dropped after the test)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield server_dsn.rsplit("/", 1)[0] + f"/{name}"
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def dsn(empty_dsn: str) -> str:
    """DSN of a fresh database with pgotel's schema migrated and today's partitions created."""
    conn = await asyncpg.connect(empty_dsn)
    try:
        await db.migrate(conn)
        await db.ensure_partitions_around_today(conn, days_ahead=2)
    finally:
        await conn.close()
    return empty_dsn


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(dsn)
    yield connection
    await connection.close()


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
