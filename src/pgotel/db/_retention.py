"""Daily partitions: created ahead of time, and dropped whole once older than the retention."""

from __future__ import annotations

import datetime as dt

from pgotel.db._migrate import Connection

_ENSURE = "SELECT pgotel.ensure_partitions($1::date, $2::date)"
_DROP_EXPIRED = "SELECT pgotel.drop_expired_partitions($1)"
_DROP_EXPIRED_SIDE_ROWS = "SELECT pgotel.drop_expired_side_rows($1)"


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


async def ensure_partitions(conn: Connection, first_day: dt.date, last_day: dt.date) -> int:
    """Create the missing daily partitions of every telemetry table between the two days (inclusive)."""
    return int(await conn.fetchval(_ENSURE, first_day, last_day))


async def ensure_partitions_around_today(conn: Connection, *, days_ahead: int) -> int:
    today = utc_today()
    return await ensure_partitions(conn, today - dt.timedelta(days=1), today + dt.timedelta(days=days_ahead))


async def prune(conn: Connection, *, retention_days: int) -> list[str]:
    """Drop the partitions entirely older than the retention, then the resources, scopes and metric series no
    remaining row can reference (migration 0004); return the partitions' names."""
    dropped = [row[0] for row in await conn.fetch(_DROP_EXPIRED, retention_days)]
    await conn.fetchval(_DROP_EXPIRED_SIDE_ROWS, retention_days)
    return dropped
