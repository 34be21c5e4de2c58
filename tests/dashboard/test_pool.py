"""The dashboard's database pool: created on first use, migrated, and not leaked when migrating fails."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from pgotel.config import DatabaseSettings
from pgotel.dashboard._router import DashboardPool


async def test_a_pool_that_cannot_migrate_leaves_no_connection_behind(empty_dsn: str) -> None:
    role = f"viewer_{uuid.uuid4().hex[:8]}"  # may connect, may not create the pgotel schema
    admin = await asyncpg.connect(empty_dsn)
    try:
        await admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{role}'")
        server = urlsplit(empty_dsn)
        viewer_dsn = urlunsplit(server._replace(netloc=f"{role}:{role}@{server.hostname}:{server.port}"))
        pool = DashboardPool(DatabaseSettings(dsn=viewer_dsn))

        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await pool()

        for _ in range(50):  # a terminated connection's backend exits a moment later
            left = await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE usename = $1", role)
            if left == 0:
                break
            await asyncio.sleep(0.1)
        assert left == 0
    finally:
        await admin.execute(f"DROP ROLE IF EXISTS {role}")
        await admin.close()
