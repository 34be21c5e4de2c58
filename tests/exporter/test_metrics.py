"""Metric points (gauge, sum, histogram, exponential histogram) read back equal the SDK's."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
    InMemoryMetricReader,
    MetricsData,
    NumberDataPoint,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from pgotel.config import PgotelSettings
from pgotel.exporter import DELTA_PREFERENCE, PostgresMetricExporter
from tests.exporter.conftest import partition_time


def _points(data: MetricsData) -> list[dict[str, Any]]:
    found = []
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    item: dict[str, Any] = {
                        "name": metric.name,
                        "unit": metric.unit,
                        "attributes": dict(point.attributes or {}),
                        "time": point.time_unix_nano,
                        "partition_time": partition_time(point.time_unix_nano),
                        "start": point.start_time_unix_nano,
                    }
                    if isinstance(point, NumberDataPoint):
                        item["value"] = point.value
                    elif isinstance(point, HistogramDataPoint):
                        item.update(
                            count=point.count, sum=point.sum, min=point.min, max=point.max,
                            bounds=list(point.explicit_bounds), counts=list(point.bucket_counts),
                        )  # fmt: skip
                    elif isinstance(point, ExponentialHistogramDataPoint):
                        item.update(
                            count=point.count, sum=point.sum, min=point.min, max=point.max, scale=point.scale,
                            zero_count=point.zero_count,
                            positive=(point.positive.offset, list(point.positive.bucket_counts)),
                            negative=(point.negative.offset, list(point.negative.bucket_counts)),
                        )  # fmt: skip
                    found.append(item)
    return sorted(found, key=lambda p: (p["name"], json.dumps(p["attributes"], sort_keys=True)))


_READ = """
SELECT s.name, s.unit, s.attributes, p.time, p.time_unix_nano, p.start_unix_nano,
       n.value_int, n.value_double,
       h.count AS h_count, h.sum AS h_sum, h.min AS h_min, h.max AS h_max, h.explicit_bounds, h.bucket_counts,
       e.count AS e_count, e.sum AS e_sum, e.min AS e_min, e.max AS e_max, e.scale, e.zero_count,
       e.positive_offset, e.positive_counts, e.negative_offset, e.negative_counts
FROM pgotel.metric_series s
JOIN (SELECT series_id, time, time_unix_nano, start_unix_nano FROM pgotel.metric_points
      UNION ALL SELECT series_id, time, time_unix_nano, start_unix_nano FROM pgotel.histogram_points
      UNION ALL SELECT series_id, time, time_unix_nano, start_unix_nano FROM pgotel.exp_histogram_points) p
  ON p.series_id = s.id
LEFT JOIN pgotel.metric_points n ON n.series_id = s.id
LEFT JOIN pgotel.histogram_points h ON h.series_id = s.id
LEFT JOIN pgotel.exp_histogram_points e ON e.series_id = s.id
"""


def _stored(row: asyncpg.Record) -> dict[str, Any]:
    item: dict[str, Any] = {
        "name": row["name"],
        "unit": row["unit"],
        "attributes": json.loads(row["attributes"]),
        "time": row["time_unix_nano"],
        "partition_time": row["time"],
        "start": row["start_unix_nano"],
    }
    if row["value_int"] is not None or row["value_double"] is not None:
        item["value"] = row["value_int"] if row["value_int"] is not None else row["value_double"]
    elif row["h_count"] is not None:
        item.update(
            count=row["h_count"], sum=row["h_sum"], min=row["h_min"], max=row["h_max"],
            bounds=list(row["explicit_bounds"]), counts=list(row["bucket_counts"]),
        )  # fmt: skip
    else:
        item.update(
            count=row["e_count"], sum=row["e_sum"], min=row["e_min"], max=row["e_max"], scale=row["scale"],
            zero_count=row["zero_count"], positive=(row["positive_offset"], list(row["positive_counts"])),
            negative=(row["negative_offset"], list(row["negative_counts"])),
        )  # fmt: skip
    return item


def _record(provider: MeterProvider) -> None:
    meter = provider.get_meter("fidelity.metrics", "9.9")
    counter = meter.create_counter("jobs.done", unit="{job}")
    counter.add(3, {"queue": "a"})
    counter.add(4, {"queue": "b"})
    meter.create_up_down_counter("jobs.active").add(-2)
    meter.create_histogram("payload.size", unit="By").record(1500.0, {"route": "/x"})
    latency = meter.create_histogram("http.server.request.duration", unit="s")
    for value in (0.001, 0.002, 0.004, 0.25, 1.5):
        latency.record(value, {"http.route": "/items/{id}", "http.request.method": "GET"})

    def observe(_options: CallbackOptions) -> list[Observation]:
        return [Observation(0.75, {"cpu": "0"})]

    meter.create_observable_gauge("system.cpu.utilization", [observe], unit="1")


async def test_every_point_kind_round_trips(settings: PgotelSettings, conn: asyncpg.Connection) -> None:
    exporter = PostgresMetricExporter(settings=settings)
    memory = InMemoryMetricReader(preferred_temporality=DELTA_PREFERENCE)
    view = View(instrument_name="http.server.request.duration", aggregation=ExponentialBucketHistogramAggregation())
    provider = MeterProvider(
        metric_readers=[memory], resource=Resource.create({"service.name": "metric-fidelity"}), views=[view]
    )
    try:
        _record(provider)
        data = memory.get_metrics_data()
        assert data is not None
        exporter.export(data)
        assert exporter.force_flush(10_000)
        rows = [_stored(row) for row in await conn.fetch(_READ)]
        rows.sort(key=lambda p: (p["name"], json.dumps(p["attributes"], sort_keys=True)))
        produced = _points(data)
        assert {p["name"] for p in produced} >= {"jobs.done", "payload.size", "http.server.request.duration"}
        assert rows == produced
        kinds = dict(await conn.fetch("SELECT name, kind FROM pgotel.metric_series"))  # type: ignore[arg-type]
        assert kinds["http.server.request.duration"] == 4
        assert kinds["payload.size"] == 3
        assert kinds["system.cpu.utilization"] == 1
    finally:
        provider.shutdown()
        exporter.shutdown()


def test_observed_totals_stay_totals_so_a_lost_point_loses_no_count() -> None:
    """An observable counter (pgotel's own `pgotel.exporter.dropped` is one) is exported cumulative: should a
    point be dropped while PostgreSQL is unreachable, the next one still carries the whole count."""
    memory = InMemoryMetricReader(preferred_temporality=DELTA_PREFERENCE)
    provider = MeterProvider(metric_readers=[memory])
    totals = iter([5, 12])

    def observe(_options: CallbackOptions) -> list[Observation]:
        return [Observation(next(totals), {"reason": "queue_full"})]

    provider.get_meter("self").create_observable_counter("items.dropped", [observe])
    try:
        values = []
        for _ in range(2):
            data = memory.get_metrics_data()
            assert data is not None
            [point] = _points(data)
            values.append(point["value"])
        assert values == [5, 12]  # deltas would have been 5, then 7
    finally:
        provider.shutdown()
