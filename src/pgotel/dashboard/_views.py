"""View models for the dashboard templates: API answers turned into formatted figures and status colours.

Inputs are the JSON-shaped answers of the dashboard API (what `/api/monitoring/advanced/...` returns), so
the page always shows exactly the figures the API serves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["ok", "warn", "crit", "info", "idle"]
_SEVERITY: dict[Status, int] = {"idle": 0, "info": 0, "ok": 1, "warn": 2, "crit": 3}

LATENCY_WARN_MS = 200.0
LATENCY_CRIT_MS = 500.0
ERROR_RATE_WARN_PCT = 1.0
ERROR_RATE_CRIT_PCT = 5.0


@dataclass(frozen=True)
class Threshold:
    """Warn/critical limits of one figure; `higher_is_worse` false for hit rates."""

    warn: float
    crit: float
    unit: str
    higher_is_worse: bool = True

    def status(self, value: float | None) -> Status:
        if value is None:
            return "idle"
        if self.higher_is_worse:
            return "crit" if value >= self.crit else "warn" if value >= self.warn else "ok"
        return "crit" if value < self.crit else "warn" if value < self.warn else "ok"

    def describe(self) -> str:
        ok_sign, crit_sign = ("<", "≥") if self.higher_is_worse else ("≥", "<")
        warn, crit = f"{_trim(self.warn)}{self.unit}", f"{_trim(self.crit)}{self.unit}"
        return f"ok {ok_sign} {warn} · crit {crit_sign} {crit}"


LATENCY = Threshold(LATENCY_WARN_MS, LATENCY_CRIT_MS, " ms")
ERROR_RATE = Threshold(ERROR_RATE_WARN_PCT, ERROR_RATE_CRIT_PCT, "%")
REDIS_HIT_RATE = Threshold(80.0, 50.0, "%", higher_is_worse=False)
PG_CACHE_HIT = Threshold(99.0, 90.0, "%", higher_is_worse=False)
CPU = Threshold(70.0, 90.0, "%")
MEMORY = Threshold(80.0, 90.0, "%")
DISK = Threshold(80.0, 90.0, "%")


@dataclass(frozen=True)
class Kpi:
    """One figure with its status: a KPI card and a row of the metrics table."""

    key: str
    label: str
    value: str
    unit: str
    threshold: str
    status: Status
    note: str
    card: bool


@dataclass(frozen=True)
class Banner:
    status: Status
    state: str
    detail: str


@dataclass(frozen=True)
class EndpointRow:
    endpoint: str
    method: str
    request_count: str
    requests_per_second: str
    avg_latency_ms: str
    p50_latency_ms: str
    p95_latency_ms: str
    p99_latency_ms: str
    error_count: str
    error_rate: str
    latency_status: Status
    error_status: Status


@dataclass(frozen=True)
class SlowEndpointRow:
    endpoint: str
    method: str
    p95_latency_ms: str
    request_count: str
    impact: str
    impact_bar: int  # 0..10, the share of the worst endpoint's impact, for the bar width class
    status: Status


@dataclass(frozen=True)
class BreakdownTag:
    label: str
    count: str


@dataclass(frozen=True)
class HotspotRow:
    endpoint: str
    method: str
    error_count: str
    error_rate: str
    request_count: str
    status: Status
    breakdown: tuple[BreakdownTag, ...]


def _trim(value: float) -> str:
    return f"{value:g}"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def format_ms(value: Any) -> str:
    number = _number(value)
    if number is None:
        return "—"
    return f"{number:,.0f}" if number >= 100 else f"{number:.1f}"


def format_pct(value: Any) -> str:
    number = _number(value)
    return "—" if number is None else f"{number:.2f}" if number < 10 else f"{number:.1f}"


def format_count(value: Any) -> str:
    number = _number(value)
    return "—" if number is None else f"{number:,.0f}"


def format_rate(value: Any) -> str:
    number = _number(value)
    if number is None:
        return "—"
    return f"{number:.3f}" if number < 1 else f"{number:,.2f}" if number < 100 else f"{number:,.0f}"


def format_seconds(value: Any) -> str:
    number = _number(value)
    if number is None:
        return "—"
    if number >= 3600:
        return f"{number / 3600:.1f} h"
    if number >= 60:
        return f"{number / 60:.1f} min"
    return f"{number:.1f} s"


def _kpi(
    key: str,
    label: str,
    value: Any,
    unit: str,
    formatter: Any,
    threshold: Threshold | None,
    note: str,
    *,
    card: bool = True,
) -> Kpi:
    number = _number(value)
    if threshold is None:
        status: Status = "idle" if number is None else "info"
        described = "informational"
    else:
        status = threshold.status(number)
        described = threshold.describe()
    return Kpi(key, label, formatter(number), unit, described, status, note, card)


def build_kpis(summary: Mapping[str, Any]) -> list[Kpi]:
    """Every figure of the summary answer, in display order; `card` marks the seven KPI cards."""
    api = summary.get("api") or {}
    redis = summary.get("redis") or {}
    postgres = summary.get("postgres") or {}
    system = summary.get("system") or {}
    has_traffic = (_number(api.get("request_count")) or 0) > 0
    redis_up = bool(redis.get("connected"))
    api_p95 = api.get("p95_latency_ms") if has_traffic else None
    return [
        _kpi(
            "api_p95",
            "API P95",
            api_p95,
            "ms",
            format_ms,
            LATENCY,
            f"P99 {format_ms(api.get('p99_latency_ms'))} ms" if has_traffic else "no traffic yet",
        ),
        _kpi(
            "requests_per_second",
            "Requests/s",
            api.get("requests_per_second"),
            "req/s",
            format_rate,
            None,
            f"{format_count(api.get('request_count'))} requests",
        ),
        _kpi(
            "error_rate",
            "Error rate",
            api.get("error_rate") if has_traffic else None,
            "%",
            format_pct,
            ERROR_RATE,
            f"{format_count(api.get('error_count'))} errors",
        ),
        _kpi(
            "redis_hit_rate",
            "Redis hit rate",
            redis.get("hit_rate") if redis_up else None,
            "%",
            format_pct,
            REDIS_HIT_RATE,
            "connected" if redis_up else "not connected",
        ),
        _kpi(
            "pg_cache_hit",
            "PG cache hit",
            postgres.get("cache_hit_ratio"),
            "%",
            format_pct,
            PG_CACHE_HIT,
            f"{format_count(postgres.get('connections_total'))} connections",
        ),
        _kpi(
            "cpu",
            "CPU",
            system.get("cpu_percent"),
            "%",
            format_pct,
            CPU,
            f"{format_count(system.get('cpu_count'))} cores",
        ),
        _kpi("memory", "Memory", system.get("memory_percent"), "%", format_pct, MEMORY, "host memory used"),
        _kpi(
            "api_p50",
            "API P50",
            api.get("p50_latency_ms") if has_traffic else None,
            "ms",
            format_ms,
            LATENCY,
            "median latency",
            card=False,
        ),
        _kpi(
            "api_p99",
            "API P99",
            api.get("p99_latency_ms") if has_traffic else None,
            "ms",
            format_ms,
            LATENCY,
            "tail latency",
            card=False,
        ),
        _kpi(
            "pg_connections",
            "PG connections",
            postgres.get("connections_total"),
            "",
            format_count,
            None,
            "server connections",
            card=False,
        ),
        _kpi(
            "pg_db_size",
            "PG database size",
            postgres.get("db_size_mb"),
            "MB",
            format_rate,
            None,
            "telemetry database",
            card=False,
        ),
        _kpi("disk", "Disk", system.get("disk_percent"), "%", format_pct, DISK, "disk used", card=False),
    ]


def build_banner(kpis: Sequence[Kpi], summary: Mapping[str, Any]) -> Banner:
    """The worst status among the KPI cards, with the figures that caused it."""
    api = summary.get("api") or {}
    if not (_number(api.get("request_count")) or 0):
        return Banner("idle", "NO TRAFFIC", "no requests in this period: send requests to your app")
    cards = [kpi for kpi in kpis if kpi.card]
    worst = max(cards, key=lambda kpi: _SEVERITY[kpi.status]).status
    culprits = [kpi.label for kpi in cards if kpi.status == worst and worst in ("warn", "crit")]
    if worst == "crit":
        return Banner("crit", "CRITICAL", "above critical threshold: " + ", ".join(culprits))
    if worst == "warn":
        return Banner("warn", "DEGRADED", "above warning threshold: " + ", ".join(culprits))
    return Banner("ok", "OPERATIONAL", "all figures within thresholds")


def build_endpoint_rows(endpoints: Sequence[Mapping[str, Any]]) -> list[EndpointRow]:
    return [
        EndpointRow(
            endpoint=str(row.get("endpoint", "")),
            method=str(row.get("method", "")),
            request_count=format_count(row.get("request_count")),
            requests_per_second=format_rate(row.get("requests_per_second")),
            avg_latency_ms=format_ms(row.get("avg_latency_ms")),
            p50_latency_ms=format_ms(row.get("p50_latency_ms")),
            p95_latency_ms=format_ms(row.get("p95_latency_ms")),
            p99_latency_ms=format_ms(row.get("p99_latency_ms")),
            error_count=format_count(row.get("error_count")),
            error_rate=format_pct(row.get("error_rate")),
            latency_status=LATENCY.status(_number(row.get("p95_latency_ms"))),
            error_status=ERROR_RATE.status(_number(row.get("error_rate"))),
        )
        for row in endpoints
    ]


def build_slow_rows(slow: Sequence[Mapping[str, Any]]) -> list[SlowEndpointRow]:
    worst = max((_number(row.get("impact_seconds_per_hour")) or 0.0 for row in slow), default=0.0)
    return [
        SlowEndpointRow(
            endpoint=str(row.get("endpoint", "")),
            method=str(row.get("method", "")),
            p95_latency_ms=format_ms(row.get("p95_latency_ms")),
            request_count=format_count(row.get("request_count")),
            impact=format_seconds(row.get("impact_seconds_per_hour")),
            impact_bar=round(10 * (_number(row.get("impact_seconds_per_hour")) or 0.0) / worst) if worst else 0,
            status=LATENCY.status(_number(row.get("p95_latency_ms"))),
        )
        for row in slow
    ]


def _breakdown(row: Mapping[str, Any]) -> tuple[BreakdownTag, ...]:
    tags: list[BreakdownTag] = []
    for field in ("status_codes", "error_types"):
        counts = row.get(field) or {}
        items = counts.items() if isinstance(counts, Mapping) else ()
        tags.extend(BreakdownTag(str(label), format_count(count)) for label, count in items)
    return tuple(tags)


def build_hotspot_rows(hotspots: Sequence[Mapping[str, Any]]) -> list[HotspotRow]:
    return [
        HotspotRow(
            endpoint=str(row.get("endpoint", "")),
            method=str(row.get("method", "")),
            error_count=format_count(row.get("error_count")),
            error_rate=format_pct(row.get("error_rate")),
            request_count=format_count(row.get("request_count")),
            status=ERROR_RATE.status(_number(row.get("error_rate"))),
            breakdown=_breakdown(row),
        )
        for row in hotspots
    ]
