"""Resolving the configured database to a DSN (starting the embedded server when asked) and connecting."""

from __future__ import annotations

import os
from typing import Any

import asyncpg

from pgotel.config import DatabaseSettings, Redactor
from pgotel.db import _embedded
from pgotel.db._migrate import migrate

# Commits keep the server's durability (no `synchronous_commit = off`): a row counted as stored survives a
# server crash, and at one COPY per table per flush the commit's WAL flush costs nothing measurable.
WRITER_SERVER_SETTINGS = {"application_name": "pgotel"}
# A DSN in an error message keeps its user, host and database but not its password (nor a password= parameter).
_DSN_PASSWORD = Redactor(("password",), "***")


class DatabaseConnectError(RuntimeError):
    """PostgreSQL could not be reached, or refused the login or the database; the message names the DSN
    (password masked) and the reason."""


def resolve_dsn(database: DatabaseSettings) -> str:
    """The DSN to connect to; for `embedded`, start (or reuse) the embedded server first."""
    if database.dsn != "embedded":
        return database.dsn
    server = _embedded.start(database.embedded.data_dir, port=database.embedded.port)
    return server.dsn


async def connect(dsn: str, **kwargs: Any) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(dsn, server_settings=WRITER_SERVER_SETTINGS, **kwargs)
    except (OSError, asyncpg.PostgresError) as exc:  # the network, or the server's answer to the login
        masked = _DSN_PASSWORD.redact_url(dsn)
        raise DatabaseConnectError(f"cannot connect to PostgreSQL at {masked}: {_reason(exc)}") from exc


def _reason(exc: OSError | asyncpg.PostgresError) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.errno:
        # asyncio replaces a socket error's text with "Connect call failed (address)"; a DNS error's errno is < 0
        return os.strerror(exc.errno) if exc.errno > 0 else (exc.strerror or str(exc))
    return str(exc)  # the server's answer (`password authentication failed for user "app"`), or asyncpg's


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """pgotel's connections keep no session state (no SET, LISTEN or cursor; the migration lock is released
    explicitly, or the pool terminated), so a release skips asyncpg's default reset query, a round trip
    after every COPY; the pool still rolls back a transaction left open."""


async def open_pool(dsn: str, *, size: int, **kwargs: Any) -> asyncpg.Pool:
    """A pool of pgotel's connections on a database given pgotel's schema (pending migrations applied)."""
    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=size, server_settings=WRITER_SERVER_SETTINGS, reset=_keep_session, **kwargs
    )
    assert pool is not None
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
    except BaseException:
        pool.terminate()  # its connections may hold the migration lock
        raise
    return pool
