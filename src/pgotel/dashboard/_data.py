"""The page's figures read from PostgreSQL through pgotel.db, in the JSON API's answer shape."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from pgotel import db
from pgotel.dashboard._pages import EndpointSort, SortOrder

PoolProvider = Callable[[], Awaitable[Any]]


def _endpoint_answer(stats: db.EndpointStats) -> dict[str, Any]:
    # The replaced system's API calls the route template `endpoint`.
    answer = dataclasses.asdict(stats)
    answer["endpoint"] = answer.pop("route")
    return answer


class DatabaseDashboardData:
    """DashboardData over the rollup read API; `pool` yields the dashboard's lazily created pool."""

    def __init__(self, pool: PoolProvider) -> None:
        self._pool = pool

    async def summary(self, period_hours: int) -> Mapping[str, Any]:
        api = await db.api_summary(await self._pool(), period_hours=period_hours)
        return {"api": dataclasses.asdict(api), "redis": {}, "postgres": {}, "system": {}}

    async def endpoints(
        self, period_hours: int, limit: int, sort: EndpointSort, order: SortOrder
    ) -> Sequence[Mapping[str, Any]]:
        stats = await db.endpoint_stats(await self._pool(), period_hours=period_hours)
        found = [_endpoint_answer(endpoint) for endpoint in stats]
        found.sort(key=lambda answer: answer[sort], reverse=order == "desc")
        return found[:limit]

    async def slow_endpoints(self, period_hours: int, threshold_ms: float) -> Sequence[Mapping[str, Any]]:
        found = await db.slow_endpoints(await self._pool(), threshold_ms=threshold_ms, period_hours=period_hours)
        return [_endpoint_answer(slow) for slow in found]

    async def error_hotspots(self, period_hours: int) -> Sequence[Mapping[str, Any]]:
        answers = []
        for hotspot in await db.error_hotspots(await self._pool(), period_hours=period_hours):
            answer = _endpoint_answer(hotspot)
            answer["status_codes"] = {str(code): count for code, count in hotspot.status_codes}
            answer["error_types"] = dict(hotspot.error_types)
            answers.append(answer)
        return answers
