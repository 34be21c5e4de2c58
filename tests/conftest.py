"""Shared fixtures: one real embedded PostgreSQL per test session, a fresh migrated database per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from pgotel import db


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[db.EmbeddedServer]:
    """A real embedded PostgreSQL 18 server, private to this test session."""
    data_dir = tmp_path_factory.mktemp("pgotel-embedded")
    server = db.start_embedded(data_dir)
    yield server
    db.stop_embedded(data_dir)


@pytest.fixture
async def empty_dsn(pg_server: db.EmbeddedServer) -> AsyncIterator[str]:
    """DSN of a brand-new, empty database (dropped after the test)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_server.dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield pg_server.dsn.rsplit("/", 1)[0] + f"/{name}"
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
