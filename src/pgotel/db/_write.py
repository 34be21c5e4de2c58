"""Write API for the exporters: side-table upserts and binary COPY of telemetry rows."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from typing import Any

import asyncpg

from pgotel.config import DatabaseSettings
from pgotel.db._connect import open_pool, resolve_dsn
from pgotel.db._migrate import Connection
from pgotel.db._retention import ensure_partitions, ensure_partitions_around_today, prune
from pgotel.db._rollups import refresh_rollups
from pgotel.db._timestamps import register_timestamp_codec

# Column order of every table the exporters write; row tuples follow it exactly.
# Partitioned tables put their partition key first: a timestamptz, given as a row timestamp (`row_timestamp`).
COLUMNS: dict[str, tuple[str, ...]] = {
    "resources": ("id", "service_name", "attributes", "schema_url"),
    "scopes": ("id", "name", "version", "schema_url", "attributes"),
    "metric_series": (
        "id", "name", "description", "unit", "kind", "temporality", "is_monotonic",
        "service_name", "resource_id", "scope_id", "attributes",
    ),
    "spans": (
        "start_time", "start_unix_nano", "duration_ns", "trace_id", "span_id", "parent_span_id",
        "trace_state", "trace_flags", "name", "kind", "status_code", "status_message", "service_name",
        "resource_id", "scope_id", "http_method", "http_route", "http_status_code", "attributes",
        "events", "links", "dropped_attributes", "dropped_events", "dropped_links",
    ),
    "logs": (
        "time", "time_unix_nano", "observed_unix_nano", "trace_id", "span_id", "trace_flags",
        "severity_number", "severity_text", "body", "event_name", "service_name", "resource_id",
        "scope_id", "attributes", "dropped_attributes",
    ),
    "metric_points": (
        "time", "time_unix_nano", "start_unix_nano", "series_id", "value_int", "value_double", "exemplars",
    ),
    "histogram_points": (
        "time", "time_unix_nano", "start_unix_nano", "series_id", "count", "sum", "min", "max",
        "explicit_bounds", "bucket_counts", "exemplars",
    ),
    "exp_histogram_points": (
        "time", "time_unix_nano", "start_unix_nano", "series_id", "count", "sum", "min", "max", "scale",
        "zero_count", "zero_threshold", "positive_offset", "positive_counts", "negative_offset",
        "negative_counts", "exemplars",
    ),
}  # fmt: skip
SIDE_TABLES = ("resources", "scopes", "metric_series")  # in foreign-key order
PARTITIONED_TABLES = ("spans", "logs", "metric_points", "histogram_points", "exp_histogram_points")

Row = tuple[Any, ...]


# SQLSTATE classes meaning "this data cannot be stored", as opposed to "the database is unavailable".
_DATA_ERROR_CLASSES = ("22", "23", "54")


async def insert_side_rows(conn: Connection, table: str, rows: Sequence[Row]) -> None:
    """Insert resources / scopes / series that may already exist (ids are content fingerprints), marking them
    seen today (what keeps them from expiring, see migration 0004)."""
    columns = COLUMNS[table]
    async with conn.transaction():
        await conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS pending_{table} (LIKE pgotel.{table} INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        await conn.copy_records_to_table(f"pending_{table}", records=rows, columns=columns)
        names = ", ".join(columns)
        await conn.execute(
            # In id order: the upsert locks each existing row, and writers locking shared rows (the scopes every
            # worker uses) in different orders could deadlock.
            f"INSERT INTO pgotel.{table} AS existing ({names}) SELECT {names} FROM pending_{table} ORDER BY id "
            "ON CONFLICT (id) DO UPDATE SET last_seen = EXCLUDED.last_seen "
            "WHERE existing.last_seen < EXCLUDED.last_seen"
        )


async def copy_rows(conn: Connection, table: str, rows: Sequence[Row]) -> None:
    """Binary COPY of `rows` into the partitioned table `table` (all or nothing)."""
    await conn.copy_records_to_table(table, records=rows, columns=COLUMNS[table], schema_name="pgotel")


def is_data_error(exc: BaseException) -> bool:
    """True when PostgreSQL rejected the rows themselves (retrying them unchanged cannot succeed)."""
    state = getattr(exc, "sqlstate", None)
    return isinstance(exc, asyncpg.PostgresError) and isinstance(state, str) and state[:2] in _DATA_ERROR_CLASSES


class TelemetryStore:
    """The exporters' handle on PostgreSQL: a small pool, migrated, and the operations a writer needs."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, database: DatabaseSettings, *, timeout_s: float) -> TelemetryStore:
        """Connect (starting the embedded server if configured) and apply pending migrations."""
        dsn = await asyncio.to_thread(resolve_dsn, database)
        return cls(await open_pool(dsn, size=database.pool_size, timeout=timeout_s, init=register_timestamp_codec))

    async def ensure_partitions(self, first_day: dt.date, last_day: dt.date) -> None:
        async with self._pool.acquire() as conn:
            await ensure_partitions(conn, first_day, last_day)

    async def ensure_partitions_around_today(self, *, days_ahead: int) -> None:
        async with self._pool.acquire() as conn:
            await ensure_partitions_around_today(conn, days_ahead=days_ahead)

    async def prune(self, *, retention_days: int) -> list[str]:
        async with self._pool.acquire() as conn:
            return await prune(conn, retention_days=retention_days)

    async def insert_side_rows(self, table: str, rows: Sequence[Row]) -> None:
        async with self._pool.acquire() as conn:
            await insert_side_rows(conn, table, rows)

    async def copy_rows(self, table: str, rows: Sequence[Row]) -> None:
        async with self._pool.acquire() as conn:
            await copy_rows(conn, table, rows)

    async def refresh_rollups(self) -> int:
        async with self._pool.acquire() as conn:
            return await refresh_rollups(conn)

    def terminate(self) -> None:
        """Drop every connection at once (used on failure and at shutdown, where waiting is not an option)."""
        self._pool.terminate()
