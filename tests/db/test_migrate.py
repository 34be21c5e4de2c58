from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg

from pgotel import db


async def test_migrate_is_idempotent(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        first = await db.migrate(conn)
        second = await db.migrate(conn)
        assert first == [m.name for m in db.shipped_migrations()]
        assert second == []
        tables = {r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='pgotel'")}
        assert {"resources", "scopes", "metric_series", "schema_migrations"} <= tables
    finally:
        await conn.close()


async def test_partitions_created_ahead_and_pruned_whole(conn: asyncpg.Connection) -> None:
    today = db.utc_today()
    created = await db.ensure_partitions(conn, today - dt.timedelta(days=40), today - dt.timedelta(days=38))
    assert created == 3 * 5  # three days for each of the five partitioned tables
    assert await db.ensure_partitions(conn, today - dt.timedelta(days=40), today) > 0
    old = (today - dt.timedelta(days=40)).strftime("%Y%m%d")
    dropped = await db.prune(conn, retention_days=30)
    assert f"spans_p{old}" in dropped
    assert f"spans_p{today.strftime('%Y%m%d')}" not in dropped
    remaining = {r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='pgotel'")}
    assert f"logs_p{old}" not in remaining
    assert f"logs_p{today.strftime('%Y%m%d')}" in remaining


async def test_partition_boundaries_are_utc_days(conn: asyncpg.Connection) -> None:
    await conn.execute("SET TimeZone = 'America/New_York'")
    day = db.utc_today() + dt.timedelta(days=5)
    await db.ensure_partitions(conn, day, day)
    await conn.execute("SET TimeZone = 'UTC'")
    bound_utc = await conn.fetchval(
        "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c WHERE relname = $1",
        f"spans_p{day.strftime('%Y%m%d')}",
    )
    assert f"'{day.isoformat()} 00:00:00+00'" in bound_utc


async def test_concurrent_partition_maintenance_never_collides(dsn: str) -> None:
    """Every worker of `uvicorn --workers N` creates and prunes partitions as it starts, at the same moment."""
    today = db.utc_today()
    first, last = today + dt.timedelta(days=10), today + dt.timedelta(days=40)
    workers = [await asyncpg.connect(dsn) for _ in range(4)]
    try:
        created = await asyncio.gather(*(db.ensure_partitions(conn, first, last) for conn in workers))
        assert sorted(created) == [0, 0, 0, 31 * 5]  # one caller created them all, the others found them
        await db.ensure_partitions(workers[0], today - dt.timedelta(days=45), today - dt.timedelta(days=35))
        dropped = await asyncio.gather(*(db.prune(conn, retention_days=30) for conn in workers))
        assert sorted(len(names) for names in dropped) == [0, 0, 0, 11 * 5]
    finally:
        for conn in workers:
            await conn.close()
