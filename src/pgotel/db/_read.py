"""Read API over the HTTP rollups: per-endpoint RED stats, slow endpoints, error hotspots, time series.

A window [start, end) is answered from each endpoint's first and last minute rows inside it
(`last.cum - first.cum + first.delta`), so its cost does not grow with the window or the traffic.
Windows end with the current minute (included, partial) and are whole minutes long.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import asyncpg

from pgotel.db._rollups import (
    RollupHistogram,
    excess_above,
    merge_histograms,
    percentiles_from_histogram,
)
from pgotel.db._timestamps import PG_EPOCH

# Anything that runs a query: a connection, a pooled connection or the pool itself.
Executor = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy | asyncpg.Pool

_EDGE_COLUMNS = """bucket, count, error_count, count_4xx, count_5xx, sum, zero_count, hist_offset, hist_counts,
                   error_counts, cum_count, cum_error_count, cum_4xx, cum_5xx, cum_sum, cum_zero_count, cum_offset,
                   cum_counts, cum_error_counts"""

# Per selected endpoint and interval: its first and last rollup rows inside [start, start + step).
_EDGES = """
SELECT t.start, e.service_name, e.method, e.route,
       l.cum_count - f.cum_count + f.count AS request_count,
       l.cum_error_count - f.cum_error_count + f.error_count AS error_count,
       l.cum_4xx - f.cum_4xx + f.count_4xx AS count_4xx,
       l.cum_5xx - f.cum_5xx + f.count_5xx AS count_5xx,
       l.cum_sum - f.cum_sum + f.sum AS sum,
       l.cum_zero_count - f.cum_zero_count + f.zero_count AS zero_count,
       f.hist_offset, f.hist_counts, f.error_counts,
       -- One row in the interval: its own histogram is the answer, the running totals are not needed.
       f.bucket = l.bucket AS single_row,
       CASE WHEN f.bucket <> l.bucket THEN f.cum_offset END AS first_cum_offset,
       CASE WHEN f.bucket <> l.bucket THEN f.cum_counts END AS first_cum_counts,
       CASE WHEN f.bucket <> l.bucket THEN l.cum_offset END AS last_cum_offset,
       CASE WHEN f.bucket <> l.bucket THEN l.cum_counts END AS last_cum_counts,
       CASE WHEN f.bucket <> l.bucket THEN f.cum_error_counts END AS first_cum_error_counts,
       CASE WHEN f.bucket <> l.bucket THEN l.cum_error_counts END AS last_cum_error_counts
FROM pgotel.http_endpoints e
CROSS JOIN generate_series($1::timestamptz, $2::timestamptz - $3::interval, $3::interval) AS t(start)
CROSS JOIN LATERAL (
    SELECT {columns} FROM pgotel.{table} r
    WHERE r.endpoint_id = e.id AND r.bucket >= t.start AND r.bucket < t.start + $3::interval
    ORDER BY r.bucket LIMIT 1
) AS f
CROSS JOIN LATERAL (
    SELECT {columns} FROM pgotel.{table} r
    WHERE r.endpoint_id = e.id AND r.bucket >= t.start AND r.bucket < t.start + $3::interval
    ORDER BY r.bucket DESC LIMIT 1
) AS l
WHERE CASE WHEN $4::boolean THEN e.is_total
           ELSE NOT e.is_total AND ($5::text IS NULL OR e.method = $5) AND ($6::text IS NULL OR e.route = $6)
                AND ($7::text IS NULL OR e.service_name = $7) END
"""
_EDGES_1M = _EDGES.format(columns=_EDGE_COLUMNS, table="http_rollup_1m")
_EDGES_1H = _EDGES.format(columns=_EDGE_COLUMNS, table="http_rollup_1h")

_MINUTE = dt.timedelta(minutes=1)
_HOUR = dt.timedelta(hours=1)
# Chart interval by window length: about 60..170 points per chart.
_CHART_INTERVALS: tuple[tuple[int, dt.timedelta], ...] = (
    (1, _MINUTE),
    (3, dt.timedelta(minutes=2)),
    (6, dt.timedelta(minutes=5)),
    (24, dt.timedelta(minutes=15)),
    (72, _HOUR),
)
_LONGEST_CHART_INTERVAL = dt.timedelta(hours=2)


@dataclass(frozen=True, kw_only=True)
class RequestStats:
    """RED figures of some requests over a window. error_rate is a percentage of request_count."""

    request_count: int
    error_count: int
    client_error_count: int
    server_error_count: int
    requests_per_second: float
    avg_latency_ms: float
    p50_latency_ms: float
    p95_latency_ms: float
    p99_latency_ms: float
    error_rate: float


@dataclass(frozen=True, kw_only=True)
class EndpointStats(RequestStats):
    """RED figures of one endpoint: a route template and method of one service."""

    service_name: str
    method: str
    route: str


@dataclass(frozen=True, kw_only=True)
class SlowEndpoint(EndpointStats):
    """An endpoint whose P95 exceeds the threshold; impact = seconds per hour spent above it, all requests."""

    threshold_ms: float
    slow_request_count: int
    impact_seconds_per_hour: float


@dataclass(frozen=True, kw_only=True)
class ErrorHotspot(EndpointStats):
    """An endpoint with failed requests, with their counts by status code and by error type."""

    status_codes: tuple[tuple[int, int], ...]
    error_types: tuple[tuple[str, int], ...]


@dataclass(frozen=True, kw_only=True)
class TimeSeriesPoint(RequestStats):
    """RED figures of the interval starting at `time`."""

    time: dt.datetime


@dataclass(frozen=True)
class TimeSeries:
    interval: dt.timedelta
    points: tuple[TimeSeriesPoint, ...]


@dataclass(frozen=True)
class _Aggregate:
    request_count: int
    error_count: int
    count_4xx: int
    count_5xx: int
    sum_seconds: float
    histogram: RollupHistogram


def window_bounds(period_hours: float, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of the last `period_hours`, ending with the current minute (included)."""
    current = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    end = current.replace(second=0, microsecond=0) + _MINUTE
    return end - dt.timedelta(hours=period_hours), end


def chart_interval(period_hours: float) -> dt.timedelta:
    """Interval of the chart points for a window: 1 minute for 1 h, 15 minutes for 24 h, 2 hours for 7 d."""
    for longest_hours, interval in _CHART_INTERVALS:
        if period_hours <= longest_hours:
            return interval
    return _LONGEST_CHART_INTERVAL


def _aggregate(rows: Sequence[asyncpg.Record]) -> _Aggregate:
    """Merge the window rows of one or several endpoints."""
    added, subtracted = [], []
    for row in rows:
        added.append(RollupHistogram(0, row["hist_offset"], tuple(row["hist_counts"])))
        if not row["single_row"]:
            added.append(RollupHistogram(0, row["last_cum_offset"], tuple(row["last_cum_counts"])))
            subtracted.append(RollupHistogram(0, row["first_cum_offset"], tuple(row["first_cum_counts"])))
    merged = merge_histograms(added, subtracted)
    zero_count = sum(row["zero_count"] for row in rows)
    return _Aggregate(
        request_count=sum(row["request_count"] for row in rows),
        error_count=sum(row["error_count"] for row in rows),
        count_4xx=sum(row["count_4xx"] for row in rows),
        count_5xx=sum(row["count_5xx"] for row in rows),
        sum_seconds=sum(row["sum"] for row in rows),
        histogram=RollupHistogram(zero_count, merged.offset, merged.counts),
    )


def _error_breakdown(row: asyncpg.Record) -> tuple[dict[int, int], dict[str, int]]:
    """Failed requests of one endpoint's window row by status code and by error type, from its
    'status:<code>' / 'type:<error.type>' counts (see the rollup migration)."""
    counts: Counter[str] = Counter(json.loads(row["error_counts"]))
    if not row["single_row"]:
        counts.update(json.loads(row["last_cum_error_counts"]))
        counts.subtract(json.loads(row["first_cum_error_counts"]))
    by_status: dict[int, int] = {}
    by_type: dict[str, int] = {}
    for name, count in counts.items():
        kind, _, value = name.partition(":")
        if count > 0 and kind == "status":
            by_status[int(value)] = count
        elif count > 0 and kind == "type":
            by_type[value] = count
    return by_status, by_type


class _EndpointFields(TypedDict):
    service_name: str
    method: str
    route: str


def _endpoint_fields(row: asyncpg.Record) -> _EndpointFields:
    """What names the endpoint of a window row, as the result models spell it."""
    return {"service_name": row["service_name"], "method": row["method"], "route": row["route"]}


def _stats_fields(aggregate: _Aggregate, seconds: float) -> dict[str, Any]:
    count = aggregate.request_count
    p50, p95, p99 = percentiles_from_histogram(aggregate.histogram, (0.50, 0.95, 0.99))
    return {
        "request_count": count,
        "error_count": aggregate.error_count,
        "client_error_count": aggregate.count_4xx,
        "server_error_count": aggregate.count_5xx,
        "requests_per_second": count / seconds,
        "avg_latency_ms": 1000.0 * aggregate.sum_seconds / count if count else 0.0,
        "p50_latency_ms": 1000.0 * p50,
        "p95_latency_ms": 1000.0 * p95,
        "p99_latency_ms": 1000.0 * p99,
        "error_rate": 100.0 * aggregate.error_count / count if count else 0.0,
    }


async def _window_rows(
    executor: Executor,
    start: dt.datetime,
    end: dt.datetime,
    *,
    total: bool,
    service: str | None = None,
    method: str | None = None,
    route: str | None = None,
) -> list[asyncpg.Record]:
    return list(await executor.fetch(_EDGES_1M, start, end, end - start, total, method, route, service))


async def _endpoint_aggregates(
    executor: Executor, period_hours: float, now: dt.datetime | None, service: str | None
) -> tuple[list[tuple[asyncpg.Record, _Aggregate]], float]:
    """Each endpoint's window row (service_name, method, route, ...) with its aggregate; the window's seconds."""
    start, end = window_bounds(period_hours, now)
    rows = await _window_rows(executor, start, end, total=False, service=service)
    return [(row, _aggregate([row])) for row in rows], period_hours * 3600


async def api_summary(
    executor: Executor, *, period_hours: float, service: str | None = None, now: dt.datetime | None = None
) -> RequestStats:
    """RED figures of every request over the last `period_hours`, of one service or (None) of all."""
    start, end = window_bounds(period_hours, now)
    rows = await _window_rows(executor, start, end, total=service is None, service=service)
    return RequestStats(**_stats_fields(_aggregate(rows), period_hours * 3600))


async def endpoint_stats(
    executor: Executor, *, period_hours: float, service: str | None = None, now: dt.datetime | None = None
) -> list[EndpointStats]:
    """Every endpoint (of `service`, or of all) that served requests in the last `period_hours`, busiest first."""
    aggregates, seconds = await _endpoint_aggregates(executor, period_hours, now, service)
    found = [
        EndpointStats(**_endpoint_fields(row), **_stats_fields(aggregate, seconds)) for row, aggregate in aggregates
    ]
    return sorted(found, key=lambda stats: (-stats.request_count, stats.route, stats.method, stats.service_name))


async def slow_endpoints(
    executor: Executor,
    *,
    threshold_ms: float,
    period_hours: float,
    service: str | None = None,
    now: dt.datetime | None = None,
) -> list[SlowEndpoint]:
    """Endpoints whose P95 exceeds `threshold_ms`, by time spent above the threshold per hour, worst first."""
    aggregates, seconds = await _endpoint_aggregates(executor, period_hours, now, service)
    found = []
    for row, aggregate in aggregates:
        fields = _stats_fields(aggregate, seconds)
        if fields["p95_latency_ms"] <= threshold_ms:
            continue
        slow_count, excess_seconds = excess_above(aggregate.histogram, threshold_ms / 1000.0)
        found.append(
            SlowEndpoint(
                **_endpoint_fields(row),
                threshold_ms=threshold_ms,
                slow_request_count=slow_count,
                impact_seconds_per_hour=excess_seconds * 3600.0 / seconds,
                **fields,
            )
        )
    return sorted(found, key=lambda slow: (-slow.impact_seconds_per_hour, slow.route, slow.method))


async def error_hotspots(
    executor: Executor, *, period_hours: float, service: str | None = None, now: dt.datetime | None = None
) -> list[ErrorHotspot]:
    """Endpoints with failed requests, most errors first (then highest rate), with their breakdown."""
    aggregates, seconds = await _endpoint_aggregates(executor, period_hours, now, service)
    found = []
    for row, aggregate in aggregates:
        if not aggregate.error_count:
            continue
        by_status, by_type = _error_breakdown(row)
        found.append(
            ErrorHotspot(
                **_endpoint_fields(row),
                status_codes=tuple(sorted(by_status.items(), key=lambda item: (-item[1], item[0]))),
                error_types=tuple(sorted(by_type.items(), key=lambda item: (-item[1], item[0]))),
                **_stats_fields(aggregate, seconds),
            )
        )
    return sorted(found, key=lambda hotspot: (-hotspot.error_count, -hotspot.error_rate, hotspot.route))


async def request_timeseries(
    executor: Executor,
    *,
    period_hours: float,
    service: str | None = None,
    method: str | None = None,
    route: str | None = None,
    now: dt.datetime | None = None,
) -> TimeSeries:
    """RED figures per chart interval over the last `period_hours`, for all traffic or for the endpoints
    matching `service`, `route` and `method` (each when given). Intervals without traffic are present with
    zeros."""
    interval = chart_interval(period_hours)
    start, end = window_bounds(period_hours, now)
    first = start - (start - PG_EPOCH) % interval
    past_edge = (end - PG_EPOCH) % interval
    last = end - past_edge + interval if past_edge else end
    query = _EDGES_1H if interval >= _HOUR else _EDGES_1M
    total = service is None and method is None and route is None
    rows = await executor.fetch(query, first, last, interval, total, method, route, service)
    by_start: dict[dt.datetime, list[asyncpg.Record]] = {}
    for row in rows:
        by_start.setdefault(row["start"], []).append(row)
    seconds = interval.total_seconds()
    points = []
    moment = first
    while moment < last:
        aggregate = _aggregate(by_start.get(moment, []))
        points.append(TimeSeriesPoint(time=moment, **_stats_fields(aggregate, seconds)))
        moment += interval
    return TimeSeries(interval, tuple(points))
