"""PostgreSQL storage: embedded server lifecycle, schema migrations, partitions, writes and reads."""

from __future__ import annotations

from pgotel.db._connect import WRITER_SERVER_SETTINGS, DatabaseConnectError, connect, open_pool, resolve_dsn
from pgotel.db._embedded import EmbeddedPostgresError, EmbeddedServer
from pgotel.db._embedded import start as start_embedded
from pgotel.db._embedded import status as embedded_status
from pgotel.db._embedded import stop as stop_embedded
from pgotel.db._migrate import migrate, shipped_migrations
from pgotel.db._read import (
    EndpointStats,
    ErrorHotspot,
    Executor,
    RequestStats,
    SlowEndpoint,
    TimeSeries,
    TimeSeriesPoint,
    api_summary,
    chart_interval,
    endpoint_stats,
    error_hotspots,
    request_timeseries,
    slow_endpoints,
    window_bounds,
)
from pgotel.db._read_server import DatabaseServerStats, database_server_stats
from pgotel.db._retention import ensure_partitions, ensure_partitions_around_today, prune, utc_today
from pgotel.db._rollups import (
    ROLLUP_SCALE,
    RollupHistogram,
    merge_histograms,
    percentile_from_histogram,
    refresh_rollups,
)
from pgotel.db._timestamps import US_PER_DAY, day_number, day_of, register_timestamp_codec, row_timestamp
from pgotel.db._write import (
    COLUMNS,
    PARTITIONED_TABLES,
    SIDE_TABLES,
    Row,
    TelemetryStore,
    copy_rows,
    insert_side_rows,
    is_data_error,
)

__all__ = [
    "COLUMNS",
    "PARTITIONED_TABLES",
    "ROLLUP_SCALE",
    "SIDE_TABLES",
    "US_PER_DAY",
    "WRITER_SERVER_SETTINGS",
    "DatabaseConnectError",
    "DatabaseServerStats",
    "EmbeddedPostgresError",
    "EmbeddedServer",
    "EndpointStats",
    "ErrorHotspot",
    "Executor",
    "RequestStats",
    "RollupHistogram",
    "Row",
    "SlowEndpoint",
    "TelemetryStore",
    "TimeSeries",
    "TimeSeriesPoint",
    "api_summary",
    "chart_interval",
    "connect",
    "copy_rows",
    "database_server_stats",
    "day_number",
    "day_of",
    "embedded_status",
    "endpoint_stats",
    "ensure_partitions",
    "ensure_partitions_around_today",
    "error_hotspots",
    "insert_side_rows",
    "is_data_error",
    "merge_histograms",
    "migrate",
    "open_pool",
    "percentile_from_histogram",
    "prune",
    "refresh_rollups",
    "register_timestamp_codec",
    "request_timeseries",
    "resolve_dsn",
    "row_timestamp",
    "shipped_migrations",
    "slow_endpoints",
    "start_embedded",
    "stop_embedded",
    "utc_today",
    "window_bounds",
]
