"""Response models of the JSON API, shared with the pages (which receive them as plain dicts).

Field names follow the system pgotel replaces. Latencies are milliseconds; rates and ratios are percents.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict

from pgotel import db

EndpointSortField = Literal[
    "endpoint",
    "method",
    "request_count",
    "requests_per_second",
    "avg_latency_ms",
    "p50_latency_ms",
    "p95_latency_ms",
    "p99_latency_ms",
    "error_count",
    "error_rate",
]
ENDPOINT_SORT_FIELDS: tuple[str, ...] = get_args(EndpointSortField)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class ApiStats(_Model):
    """Every request of the period. error_count: responses with status >= 400 or an error type."""

    request_count: int
    requests_per_second: float
    avg_latency_ms: float
    p50_latency_ms: float
    p95_latency_ms: float
    p99_latency_ms: float
    error_count: int
    error_rate: float

    @classmethod
    def of(cls, stats: db.RequestStats) -> ApiStats:
        return cls(**{name: getattr(stats, name) for name in cls.model_fields})


class RedisStats(_Model):
    """The monitored Redis (monitoring.redis_url) as INFO reports it now; connected=false when unset or down."""

    connected: bool
    error: str | None = None
    memory_used_mb: float | None = None
    memory_max_mb: float | None = None
    hit_rate: float | None = None
    keys: int | None = None
    evicted_keys: int | None = None
    connected_clients: int | None = None


class PostgresStats(_Model):
    """The telemetry database's server now: client connections, buffer cache hit ratio, database size."""

    connections_total: int
    connections_active: int
    connections_idle: int
    connections_max: int
    cache_hit_ratio: float | None
    db_size_mb: float


class SystemStats(_Model):
    """The host the dashboard runs on, now."""

    cpu_percent: float
    cpu_count: int
    memory_percent: float
    disk_percent: float


class Summary(_Model):
    api: ApiStats
    redis: RedisStats
    postgres: PostgresStats
    system: SystemStats


class EndpointPerformance(_Model):
    """One endpoint (route template + method; `service` names the app when several share the database)."""

    endpoint: str
    method: str
    service: str
    request_count: int
    requests_per_second: float
    avg_latency_ms: float
    p50_latency_ms: float
    p95_latency_ms: float
    p99_latency_ms: float
    error_count: int
    error_rate: float

    @classmethod
    def of(cls, stats: db.EndpointStats) -> EndpointPerformance:
        return cls(**_endpoint_fields(stats))


class SlowEndpoint(EndpointPerformance):
    """impact_seconds_per_hour: time per hour that its requests spent beyond the threshold."""

    threshold_ms: float
    slow_request_count: int
    impact_seconds_per_hour: float

    @classmethod
    def of_slow(cls, slow: db.SlowEndpoint) -> SlowEndpoint:
        return cls(
            **_endpoint_fields(slow),
            threshold_ms=slow.threshold_ms,
            slow_request_count=slow.slow_request_count,
            impact_seconds_per_hour=slow.impact_seconds_per_hour,
        )


class ErrorHotspot(EndpointPerformance):
    """Failed requests of one endpoint, by status code ("0": none recorded) and by error type."""

    client_error_count: int
    server_error_count: int
    status_codes: dict[str, int]
    error_types: dict[str, int]

    @classmethod
    def of_hotspot(cls, hotspot: db.ErrorHotspot) -> ErrorHotspot:
        return cls(
            **_endpoint_fields(hotspot),
            client_error_count=hotspot.client_error_count,
            server_error_count=hotspot.server_error_count,
            status_codes={str(code): count for code, count in hotspot.status_codes},
            error_types=dict(hotspot.error_types),
        )


class LatencyPoint(_Model):
    time: dt.datetime
    avg_latency_ms: float
    p50_latency_ms: float
    p95_latency_ms: float
    p99_latency_ms: float


class RequestPoint(_Model):
    time: dt.datetime
    request_count: int
    error_count: int
    requests_per_second: float
    error_rate: float


class LatencySeries(_Model):
    """Latency percentiles per interval (intervals without requests report 0)."""

    interval_seconds: int
    endpoint: str | None
    method: str | None
    points: list[LatencyPoint]


class RequestSeries(_Model):
    """Requests and errors per interval."""

    interval_seconds: int
    endpoint: str | None
    method: str | None
    points: list[RequestPoint]


def _endpoint_fields(stats: db.EndpointStats) -> dict[str, Any]:
    return {
        "endpoint": stats.route,
        "method": stats.method,
        "service": stats.service_name,
        "request_count": stats.request_count,
        "requests_per_second": stats.requests_per_second,
        "avg_latency_ms": stats.avg_latency_ms,
        "p50_latency_ms": stats.p50_latency_ms,
        "p95_latency_ms": stats.p95_latency_ms,
        "p99_latency_ms": stats.p99_latency_ms,
        "error_count": stats.error_count,
        "error_rate": stats.error_rate,
    }
