"""The JSON API (paths of the system pgotel replaces, mounted under /api/monitoring/advanced) and
MonitoringData, the same answers as plain dicts for the pages."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, params
from pydantic import AfterValidator

from pgotel import db
from pgotel.dashboard._models import (
    ENDPOINT_SORT_FIELDS,
    ApiStats,
    EndpointPerformance,
    ErrorHotspot,
    LatencyPoint,
    LatencySeries,
    RequestPoint,
    RequestSeries,
    SlowEndpoint,
    Summary,
)
from pgotel.dashboard._system import host_snapshot, postgres_snapshot, redis_snapshot

if TYPE_CHECKING:
    import asyncpg

PoolProvider = Callable[[], Awaitable["asyncpg.Pool"]]

MAX_PERIOD_HOURS = 168
MAX_LIMIT = 100
MAX_THRESHOLD_MS = 600_000.0


def _within(name: str, low: float, high: float, *, low_exclusive: bool = False) -> AfterValidator:
    """A validator whose 422 message names the parameter, its range and the value received."""
    shown = f"{'> ' if low_exclusive else ''}{low:g}{' and <= ' if low_exclusive else '..'}{high:g}"

    def check(value: float) -> float:
        if value < low or (low_exclusive and value == low) or value > high:
            raise ValueError(f"{name} must be {shown}, got {value:g}")
        return value

    return AfterValidator(check)


def _sort_field(value: str) -> str:
    if value not in ENDPOINT_SORT_FIELDS:
        raise ValueError(f"sort_by must be one of {', '.join(ENDPOINT_SORT_FIELDS)}; got {value!r}")
    return value


def _sort_order(value: str) -> str:
    if value not in ("asc", "desc"):
        raise ValueError(f"order must be asc or desc; got {value!r}")
    return value


PeriodHours = Annotated[
    int, Query(description=f"window in hours, 1..{MAX_PERIOD_HOURS}"), _within("period_hours", 1, MAX_PERIOD_HOURS)
]
Limit = Annotated[int, Query(description=f"rows, 1..{MAX_LIMIT}"), _within("limit", 1, MAX_LIMIT)]
ThresholdMs = Annotated[
    float,
    Query(description=f"P95 threshold in ms, > 0 and <= {MAX_THRESHOLD_MS:g}"),
    _within("threshold_ms", 0, MAX_THRESHOLD_MS, low_exclusive=True),
]
SortBy = Annotated[str, Query(description=f"one of {', '.join(ENDPOINT_SORT_FIELDS)}"), AfterValidator(_sort_field)]
Order = Annotated[str, Query(description="asc or desc"), AfterValidator(_sort_order)]
ServiceFilter = Annotated[str | None, Query(description="service.name of the app; all services when absent")]
EndpointFilter = Annotated[str | None, Query(description="route template, e.g. /items/{item_id}")]
MethodFilter = Annotated[str | None, Query(description="HTTP method, e.g. GET")]


class MonitoringData:
    """Reads every figure of the dashboard: typed for the API, as dicts for the pages (DashboardData)."""

    def __init__(self, pool_provider: PoolProvider, *, redis_url: str | None = None) -> None:
        self._pool = pool_provider
        self._redis_url = redis_url
        host_snapshot()  # psutil measures CPU between calls: start the first interval now

    async def summary_model(self, period_hours: int, service: str | None = None) -> Summary:
        pool = await self._pool()
        api, postgres, redis = await asyncio.gather(
            db.api_summary(pool, period_hours=period_hours, service=service),
            postgres_snapshot(pool),
            redis_snapshot(self._redis_url),
        )
        return Summary(api=ApiStats.of(api), redis=redis, postgres=postgres, system=host_snapshot())

    async def endpoint_models(
        self, period_hours: int, limit: int, sort: str, order: str, service: str | None = None
    ) -> list[EndpointPerformance]:
        stats = await db.endpoint_stats(await self._pool(), period_hours=period_hours, service=service)
        rows = [EndpointPerformance.of(item) for item in stats]
        rows.sort(key=lambda row: getattr(row, sort), reverse=order == "desc")
        return rows[:limit]

    async def slow_endpoint_models(
        self, period_hours: int, threshold_ms: float, service: str | None = None
    ) -> list[SlowEndpoint]:
        found = await db.slow_endpoints(
            await self._pool(), threshold_ms=threshold_ms, period_hours=period_hours, service=service
        )
        return [SlowEndpoint.of_slow(slow) for slow in found]

    async def error_hotspot_models(
        self, period_hours: int, limit: int = MAX_LIMIT, service: str | None = None
    ) -> list[ErrorHotspot]:
        found = await db.error_hotspots(await self._pool(), period_hours=period_hours, service=service)
        return [ErrorHotspot.of_hotspot(hotspot) for hotspot in found[:limit]]

    async def _series(
        self, period_hours: int, endpoint: str | None, method: str | None, service: str | None
    ) -> db.TimeSeries:
        return await db.request_timeseries(
            await self._pool(), period_hours=period_hours, service=service, route=endpoint, method=method
        )

    async def latency_series(
        self, period_hours: int, endpoint: str | None, method: str | None, service: str | None = None
    ) -> LatencySeries:
        series = await self._series(period_hours, endpoint, method, service)
        points = [LatencyPoint(**{name: getattr(p, name) for name in LatencyPoint.model_fields}) for p in series.points]
        return LatencySeries(
            interval_seconds=int(series.interval.total_seconds()), endpoint=endpoint, method=method, points=points
        )

    async def request_series(
        self, period_hours: int, endpoint: str | None, method: str | None, service: str | None = None
    ) -> RequestSeries:
        series = await self._series(period_hours, endpoint, method, service)
        points = [RequestPoint(**{name: getattr(p, name) for name in RequestPoint.model_fields}) for p in series.points]
        return RequestSeries(
            interval_seconds=int(series.interval.total_seconds()), endpoint=endpoint, method=method, points=points
        )

    # DashboardData (pgotel.dashboard._pages): the same answers in the JSON API's shape.
    async def summary(self, period_hours: int) -> Mapping[str, Any]:
        return (await self.summary_model(period_hours)).model_dump(mode="json")

    async def endpoints(self, period_hours: int, limit: int, sort: str, order: str) -> Sequence[Mapping[str, Any]]:
        return [row.model_dump(mode="json") for row in await self.endpoint_models(period_hours, limit, sort, order)]

    async def slow_endpoints(self, period_hours: int, threshold_ms: float) -> Sequence[Mapping[str, Any]]:
        return [row.model_dump(mode="json") for row in await self.slow_endpoint_models(period_hours, threshold_ms)]

    async def error_hotspots(self, period_hours: int) -> Sequence[Mapping[str, Any]]:
        return [row.model_dump(mode="json") for row in await self.error_hotspot_models(period_hours)]


def create_api_router(
    pool_provider: PoolProvider,
    *,
    redis_url: str | None = None,
    prefix: str = "",
    dependencies: Sequence[params.Depends] | None = None,
) -> APIRouter:
    """The JSON API. Mount it under /api/monitoring/advanced (via `prefix` or include_router); auth
    belongs to the caller, as `dependencies` here or on include_router."""
    data = MonitoringData(pool_provider, redis_url=redis_url)
    router = APIRouter(prefix=prefix, dependencies=dependencies, tags=["pgotel monitoring"])

    @router.get("/summary", response_model=Summary)
    async def summary(period_hours: PeriodHours = 1, service: ServiceFilter = None) -> Summary:
        """API RED figures of the period, plus Redis, PostgreSQL and host figures now."""
        return await data.summary_model(period_hours, service)

    @router.get("/performance/endpoints", response_model=list[EndpointPerformance])
    async def endpoints(
        period_hours: PeriodHours = 1,
        limit: Limit = 20,
        sort_by: SortBy = "request_count",
        order: Order = "desc",
        service: ServiceFilter = None,
    ) -> list[EndpointPerformance]:
        """Per-endpoint requests, latency percentiles and errors over the period."""
        return await data.endpoint_models(period_hours, limit, sort_by, order, service)

    @router.get("/performance/slow-endpoints", response_model=list[SlowEndpoint])
    async def slow_endpoints(
        threshold_ms: ThresholdMs = 100.0, period_hours: PeriodHours = 1, service: ServiceFilter = None
    ) -> list[SlowEndpoint]:
        """Endpoints whose P95 exceeds threshold_ms, by time lost per hour above it, worst first."""
        return await data.slow_endpoint_models(period_hours, threshold_ms, service)

    @router.get("/performance/error-hotspots", response_model=list[ErrorHotspot])
    async def error_hotspots(
        period_hours: PeriodHours = 1, limit: Limit = 20, service: ServiceFilter = None
    ) -> list[ErrorHotspot]:
        """Endpoints with the most failed requests, with status code and error type breakdowns."""
        return await data.error_hotspot_models(period_hours, limit, service)

    @router.get("/timeseries/latency", response_model=LatencySeries)
    async def latency(
        period_hours: PeriodHours = 1,
        endpoint: EndpointFilter = None,
        method: MethodFilter = None,
        service: ServiceFilter = None,
    ) -> LatencySeries:
        """P50/P95/P99 and average latency per interval (1 min for 1 h ... 2 h for 7 d), all or one endpoint."""
        return await data.latency_series(period_hours, endpoint, method, service)

    @router.get("/timeseries/requests", response_model=RequestSeries)
    async def requests(
        period_hours: PeriodHours = 1,
        endpoint: EndpointFilter = None,
        method: MethodFilter = None,
        service: ServiceFilter = None,
    ) -> RequestSeries:
        """Requests and errors per interval, all or one endpoint."""
        return await data.request_series(period_hours, endpoint, method, service)

    return router
