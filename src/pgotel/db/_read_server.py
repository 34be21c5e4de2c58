"""Read API for the PostgreSQL server itself: connections, buffer cache hit ratio, database size."""

from __future__ import annotations

from dataclasses import dataclass

from pgotel.db._read import Executor

_SERVER_STATS = """
SELECT count(*) AS connections_total,
       count(*) FILTER (WHERE state = 'active') AS connections_active,
       count(*) FILTER (WHERE state = 'idle') AS connections_idle,
       current_setting('max_connections')::integer AS connections_max,
       (SELECT 100.0 * sum(blks_hit) / NULLIF(sum(blks_hit) + sum(blks_read), 0)
        FROM pg_stat_database WHERE datname = current_database())::float8 AS cache_hit_ratio,
       pg_database_size(current_database()) AS database_size_bytes
FROM pg_stat_activity
WHERE backend_type = 'client backend'
"""


@dataclass(frozen=True, kw_only=True)
class DatabaseServerStats:
    """Client connections by state, buffer cache hit ratio (percent, None before any read), database size."""

    connections_total: int
    connections_active: int
    connections_idle: int
    connections_max: int
    cache_hit_ratio: float | None
    database_size_bytes: int


async def database_server_stats(executor: Executor) -> DatabaseServerStats:
    row = await executor.fetchrow(_SERVER_STATS)
    assert row is not None  # an aggregate always returns one row
    return DatabaseServerStats(**dict(row))
