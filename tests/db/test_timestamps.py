"""Row timestamps (microseconds since 2000-01-01 UTC) and datetimes both reach PostgreSQL as the same instant."""

from __future__ import annotations

import datetime as dt

import asyncpg

from pgotel import db


async def test_row_timestamps_and_datetimes_are_the_same_instant(conn: asyncpg.Connection) -> None:
    await db.register_timestamp_codec(conn)
    unix_nano = 1_764_367_205_123_456_789  # 2025-11-28 22:00:05.123456789 UTC
    as_datetime = dt.datetime(2025, 11, 28, 22, 0, 5, 123456, tzinfo=dt.UTC)
    paris = as_datetime.astimezone(dt.timezone(dt.timedelta(hours=1)))

    row = await conn.fetchrow(
        "SELECT $1::timestamptz AS from_row, $2::timestamptz AS from_datetime, $3::timestamptz AS from_paris,"
        " to_char($1::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') AS text",
        db.row_timestamp(unix_nano),
        as_datetime,
        paris,
    )

    assert row["text"] == "2025-11-28 22:00:05.123456"
    assert row["from_row"] == row["from_datetime"] == row["from_paris"] == as_datetime


def test_day_numbers_follow_utc_days() -> None:
    midnight = db.row_timestamp(int(dt.datetime(2026, 3, 1, tzinfo=dt.UTC).timestamp()) * 10**9)
    assert db.day_of(midnight // db.US_PER_DAY) == dt.date(2026, 3, 1)
    assert db.day_of((midnight - 1) // db.US_PER_DAY) == dt.date(2026, 2, 28)
    assert db.day_number(dt.date(2026, 3, 1)) == midnight // db.US_PER_DAY
    assert db.day_of(db.row_timestamp(0) // db.US_PER_DAY) == dt.date(1970, 1, 1)
