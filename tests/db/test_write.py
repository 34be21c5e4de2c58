"""Side-row upserts from several writers at once (every worker process inserts the scopes they all share)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from pgotel import db


async def _waits_on_a_lock(observer: asyncpg.Connection, pid: int) -> bool:
    for _ in range(500):  # until the backend waits (bounded)
        if await observer.fetchval("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid) == "Lock":
            return True
        await asyncio.sleep(0.01)
    return False


async def test_writers_upserting_shared_side_rows_in_different_orders_do_not_deadlock(dsn: str) -> None:
    low, high = sorted([uuid.uuid4(), uuid.uuid4()])
    rows = {scope_id: (scope_id, f"scope-{scope_id}", None, "", "{}") for scope_id in (low, high)}
    first, second = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        await db.insert_side_rows(first, "scopes", list(rows.values()))
        async with first.transaction():
            await first.execute("UPDATE pgotel.scopes SET last_seen = last_seen - 1 WHERE id = $1", low)
            # The other writer has the rows in the opposite order; it must not hold `high` while waiting on `low`.
            other = asyncio.create_task(db.insert_side_rows(second, "scopes", [rows[high], rows[low]]))
            assert await _waits_on_a_lock(first, second.get_server_pid())
            await first.execute("UPDATE pgotel.scopes SET last_seen = last_seen - 1 WHERE id = $1", high)
        await asyncio.wait_for(other, timeout=30)
        assert await first.fetchval("SELECT count(*) FROM pgotel.scopes WHERE last_seen = current_date") == 2
    finally:
        await first.close()
        await second.close()
