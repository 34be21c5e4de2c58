"""The configured database for the length of one command: an embedded server started here is stopped after."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from pgotel import db
from pgotel.config import DatabaseSettings


@contextmanager
def database_dsn(database: DatabaseSettings) -> Iterator[str]:
    """Yield the DSN; an embedded server already running (an app's, `pgotel db start`'s) is left running."""
    data_dir = database.embedded.data_dir
    started_here = database.dsn == "embedded" and db.embedded_status(data_dir) is None
    try:
        yield db.resolve_dsn(database)
    finally:
        if started_here:
            db.stop_embedded(data_dir)


def check_connection(dsn: str) -> None:
    """Connect once, for a command that hands the DSN to an app: a database it cannot reach (or log in to)
    fails here, as one line, and not as the traceback of the app's failed startup."""
    asyncio.run(_connect_and_close(dsn))


async def _connect_and_close(dsn: str) -> None:
    conn = await db.connect(dsn)
    await conn.close()
