"""Row timestamps as PostgreSQL stores a `timestamptz`: microseconds since 2000-01-01 UTC.

The exporters' rows carry their partition key as this integer and the writer's connections encode it
as is (`register_timestamp_codec`): building a datetime per row, which asyncpg's own codec then takes
apart again, cost ~2 us per row, a sixth of the exporter's CPU per span."""

from __future__ import annotations

import datetime as dt

import asyncpg

PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_PG_EPOCH_DATE = PG_EPOCH.date()
_ONE_US = dt.timedelta(microseconds=1)
_PG_EPOCH_UNIX_US = (PG_EPOCH - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // _ONE_US
US_PER_DAY = dt.timedelta(days=1) // _ONE_US


def row_timestamp(unix_nano: int) -> int:
    """The row timestamp of an OTel time (nanoseconds since 1970), truncated to the microsecond."""
    return unix_nano // 1000 - _PG_EPOCH_UNIX_US


def day_number(day: dt.date) -> int:
    """`row_timestamp // US_PER_DAY` for the times of `day` (UTC)."""
    return (day - _PG_EPOCH_DATE).days


def day_of(number: int) -> dt.date:
    return _PG_EPOCH_DATE + dt.timedelta(days=number)


def _encode(value: int | dt.datetime) -> tuple[int]:
    if type(value) is int:
        return (value,)
    assert isinstance(value, dt.datetime)
    return ((value.astimezone(dt.UTC) - PG_EPOCH) // _ONE_US,)  # a datetime, read as asyncpg's own codec reads it


def _decode(value: tuple[int]) -> dt.datetime:
    return PG_EPOCH + dt.timedelta(microseconds=value[0])


async def register_timestamp_codec(conn: asyncpg.Connection) -> None:
    """Let `conn` take row timestamps (and still datetimes) for `timestamptz` values."""
    await conn.set_type_codec("timestamptz", schema="pg_catalog", encoder=_encode, decoder=_decode, format="tuple")
