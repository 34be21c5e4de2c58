"""Retention of the side rows: resources, scopes and metric series expire once no kept row can reference them."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import asyncpg

from pgotel import db


async def _side_rows(
    conn: asyncpg.Connection, name: str, last_seen: dt.date, resource: uuid.UUID | None = None
) -> dict[str, uuid.UUID]:
    """A resource, a scope and a series (of `resource` if given, else of the new resource), last seen `last_seen`."""
    ids = {"resource": uuid.uuid4(), "scope": uuid.uuid4(), "series": uuid.uuid4()}
    series_resource = resource or ids["resource"]
    await db.insert_side_rows(conn, "resources", [(ids["resource"], name, "{}", "")])
    await db.insert_side_rows(conn, "scopes", [(ids["scope"], name, None, "", "{}")])
    series = (ids["series"], name, "", "", 2, 2, True, name, series_resource, ids["scope"], "{}")
    await db.insert_side_rows(conn, "metric_series", [series])
    for table, key in (("resources", "resource"), ("scopes", "scope"), ("metric_series", "series")):
        await conn.execute(f"UPDATE pgotel.{table} SET last_seen = $1 WHERE id = $2", last_seen, ids[key])
    return ids


async def _remaining(conn: asyncpg.Connection) -> dict[str, set[str]]:
    return {
        table: {row[0] for row in await conn.fetch(f"SELECT {column} FROM pgotel.{table}")}
        for table, column in (("resources", "service_name"), ("scopes", "name"), ("metric_series", "name"))
    }


async def test_side_rows_expire_after_the_longest_retention_plus_the_days_points_may_be_dated_ahead(
    conn: asyncpg.Connection,
) -> None:
    today = db.utc_today()
    await _side_rows(conn, "fresh", today)
    await _side_rows(conn, "at-cutoff", today - dt.timedelta(days=33))  # day D + 2 partitions still kept
    await _side_rows(conn, "expired", today - dt.timedelta(days=34))
    # An expired resource still used by a fresh series (same resource, another scope) stays.
    shared = await _side_rows(conn, "expired-but-used", today - dt.timedelta(days=60))
    await _side_rows(conn, "user", today, resource=shared["resource"])
    await conn.execute("DELETE FROM pgotel.metric_series WHERE name = 'expired-but-used'")

    await db.prune(conn, retention_days=30)

    assert await _remaining(conn) == {
        "resources": {"fresh", "at-cutoff", "expired-but-used", "user"},
        "scopes": {"fresh", "at-cutoff", "user"},
        "metric_series": {"fresh", "at-cutoff", "user"},
    }


async def test_a_table_kept_longer_keeps_the_side_rows_longer(conn: asyncpg.Connection) -> None:
    today = db.utc_today()
    await _side_rows(conn, "old", today - dt.timedelta(days=60))
    await conn.execute("UPDATE pgotel.partitioned_tables SET retention_days = 90 WHERE name = 'metric_points'")
    await db.prune(conn, retention_days=30)
    assert await _remaining(conn) == {"resources": {"old"}, "scopes": {"old"}, "metric_series": {"old"}}


async def test_upserting_a_side_row_again_marks_it_seen_today(conn: asyncpg.Connection) -> None:
    today = db.utc_today()
    ids = await _side_rows(conn, "reused", today - dt.timedelta(days=50))
    await db.insert_side_rows(conn, "resources", [(ids["resource"], "reused", "{}", "")])
    assert await conn.fetchval("SELECT last_seen FROM pgotel.resources WHERE id = $1", ids["resource"]) == today
    assert await conn.fetchval("SELECT last_seen FROM pgotel.scopes WHERE id = $1", ids["scope"]) < today


async def test_a_series_a_kept_point_references_stays_whatever_its_last_seen(conn: asyncpg.Connection) -> None:
    """A writer that never marks its rows seen again (an older pgotel, a clock far off) keeps those it uses."""
    ids = await _side_rows(conn, "still-used", db.utc_today() - dt.timedelta(days=60))
    now = dt.datetime.now(dt.UTC)
    await db.copy_rows(conn, "metric_points", [(now, 0, 0, ids["series"], 1, None, None)])
    await db.prune(conn, retention_days=30)
    assert await _remaining(conn) == {
        "resources": {"still-used"},
        "scopes": {"still-used"},
        "metric_series": {"still-used"},
    }


async def test_pruning_skips_the_rows_a_writer_is_upserting_instead_of_waiting_for_it(
    conn: asyncpg.Connection, dsn: str
) -> None:
    ids = await _side_rows(conn, "being-upserted", db.utc_today() - dt.timedelta(days=60))
    await conn.execute("DELETE FROM pgotel.metric_series")
    writer = await asyncpg.connect(dsn)
    try:
        async with writer.transaction():
            await writer.execute("UPDATE pgotel.scopes SET name = name WHERE id = $1", ids["scope"])  # row locked
            await asyncio.wait_for(db.prune(conn, retention_days=30), timeout=30)
    finally:
        await writer.close()
    assert await _remaining(conn) == {"resources": set(), "scopes": {"being-upserted"}, "metric_series": set()}
