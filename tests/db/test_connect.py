"""pgotel's own pools: a release skips asyncpg's reset query but never hands out a connection mid-transaction."""

from __future__ import annotations

from pgotel import db


async def test_a_released_connection_comes_back_outside_any_transaction(dsn: str) -> None:
    pool = await db.open_pool(dsn, size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute("CREATE TEMP TABLE left_open (x integer)")
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT to_regclass('pg_temp.left_open')") is None
            assert await conn.fetchval("SELECT current_setting('application_name')") == "pgotel"
    finally:
        await pool.close()
