"""Simulated HTTP traffic for rollup and API tests: latencies go through the OTel SDK's own exponential
histogram aggregation (delta temporality, as pgotel configures it), and the resulting points are stored
with the exporters' write API, each placed at a chosen time. Ground truth is kept alongside."""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import asyncpg
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ExponentialHistogramDataPoint,
    InMemoryMetricReader,
    MetricsData,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from pgotel import db

METRIC = "http.server.request.duration"
# The widest exponential view pgotel's config allows: scale 5 or finer for any 1 ms..10 min spread.
MAX_SIZE = 640


@dataclass(frozen=True)
class Request:
    """One simulated request as the app saw it."""

    service: str
    method: str
    route: str
    status: int
    seconds: float
    error_type: str | None = None

    @property
    def is_error(self) -> bool:
        return self.status >= 400 or self.error_type is not None


@dataclass
class Traffic:
    """Requests recorded so far, by export interval end time."""

    requests: list[tuple[dt.datetime, Request]] = field(default_factory=list)

    def within(self, start: dt.datetime, end: dt.datetime) -> list[Request]:
        return [request for at, request in self.requests if start <= at < end]


def recorded(requests: Sequence[Request], *, service: str) -> MetricsData:
    """`requests` as the OTel SDK aggregates them in production: the duration histogram with the
    exponential view and delta temporality, on a resource named `service`."""
    reader = InMemoryMetricReader(preferred_temporality={Histogram: AggregationTemporality.DELTA})
    provider = MeterProvider(
        metric_readers=[reader],
        resource=Resource.create({"service.name": service}),
        views=[View(instrument_name=METRIC, aggregation=ExponentialBucketHistogramAggregation(MAX_SIZE, 20))],
    )
    histogram = provider.get_meter("pgotel.instrumentation").create_histogram(METRIC, unit="s")
    for request in requests:
        attributes: dict[str, str | int] = {
            "http.request.method": request.method,
            "http.route": request.route,
            "http.response.status_code": request.status,
        }
        if request.error_type is not None:
            attributes["error.type"] = request.error_type
        histogram.record(request.seconds, attributes)
    data = reader.get_metrics_data()
    provider.shutdown()
    assert data is not None
    return data


def sdk_points(requests: Sequence[Request]) -> list[tuple[str, dict[str, object], ExponentialHistogramDataPoint]]:
    """(service, attributes, point) for each series, aggregated by the OTel SDK exactly as in production."""
    by_service: dict[str, list[Request]] = {}
    for request in requests:
        by_service.setdefault(request.service, []).append(request)
    found = []
    for service, service_requests in by_service.items():
        for resource_metrics in recorded(service_requests, service=service).resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    for point in metric.data.data_points:
                        assert isinstance(point, ExponentialHistogramDataPoint)
                        found.append((service, dict(point.attributes or {}), point))
    return found


async def store_interval(
    conn: asyncpg.Connection, traffic: Traffic, end: dt.datetime, requests: Sequence[Request]
) -> None:
    """Store the points of one 10-second export interval ending at `end` and remember its requests."""
    resource_rows, scope_rows, series_rows, point_rows = {}, {}, {}, []
    start_ns = int((end - dt.timedelta(seconds=10)).timestamp() * 1e9)
    end_ns = int(end.timestamp() * 1e9)
    scope_id = uuid.uuid5(uuid.NAMESPACE_URL, "scope:test")
    scope_rows[scope_id] = (scope_id, "test", None, "", "{}")
    for service, attributes, point in sdk_points(requests):
        resource_id = uuid.uuid5(uuid.NAMESPACE_URL, f"resource:{service}")
        resource_rows[resource_id] = (resource_id, service, json.dumps({"service.name": service}), "")
        series_id = uuid.uuid5(uuid.NAMESPACE_URL, f"series:{service}:{sorted(attributes.items())}")
        series_rows[series_id] = (
            series_id, METRIC, "", "s", 4, 1, False, service, resource_id, scope_id, json.dumps(attributes),
        )  # fmt: skip
        point_rows.append(
            (
                end, end_ns, start_ns, series_id, point.count, point.sum, point.min, point.max, point.scale,
                point.zero_count, 0.0, point.positive.offset, list(point.positive.bucket_counts),
                point.negative.offset, list(point.negative.bucket_counts), None,
            )
        )  # fmt: skip
    for table, rows in (("resources", resource_rows), ("scopes", scope_rows), ("metric_series", series_rows)):
        await db.insert_side_rows(conn, table, list(rows.values()))
    await db.copy_rows(conn, "exp_histogram_points", point_rows)
    traffic.requests.extend((end, request) for request in requests)


def random_requests(
    rng: random.Random, count: int, endpoints: Iterable[tuple[str, str, float]], *, service: str = "shop"
) -> list[Request]:
    """`count` requests spread over (method, route, median seconds) endpoints, lognormal latencies,
    about 3% 5xx (half of them with an exception type), 4% 4xx."""
    choices = list(endpoints)
    requests = []
    for _ in range(count):
        method, route, median = rng.choice(choices)
        roll = rng.random()
        status, error_type = 200, None
        if roll < 0.015:
            status, error_type = 500, "TimeoutError"
        elif roll < 0.03:
            status = 503
        elif roll < 0.07:
            status = rng.choice((404, 422))
        requests.append(Request(service, method, route, status, median * rng.lognormvariate(0, 0.6), error_type))
    return requests


def exact_percentile(values: Sequence[float], quantile: float) -> float:
    """PERCENTILE_CONT: linear interpolation between the two nearest ranks."""
    ordered = sorted(values)
    position = quantile * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])
