"""Traffic for the dashboard tests, written the way an app writes it: latencies recorded by the OTel SDK
(exponential histogram view, delta temporality, as the FastAPI instrumentation does), exported through
pgotel's `PostgresMetricExporter` with a chosen age, then rolled up by `db.refresh_rollups`."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg
from opentelemetry.sdk.metrics.export import (
    Metric,
    MetricExportResult,
    MetricsData,
)

from pgotel import db
from pgotel.config import PgotelSettings
from pgotel.exporter import PostgresMetricExporter
from tests.db.traffic import Request, recorded


def export_requests(exporter: PostgresMetricExporter, requests: Sequence[Request], age: dt.timedelta) -> None:
    """Record `requests` as the FastAPI instrumentation does (the SDK's exponential histogram view, delta
    temporality) and export them through pgotel's exporter, as if collected `age` ago."""
    data = recorded(requests, service="shop")
    assert exporter.export(aged(data, age)) is MetricExportResult.SUCCESS


def aged(data: MetricsData, age: dt.timedelta) -> MetricsData:
    """`data` with every point's start and time moved `age` into the past."""
    shift = int(age.total_seconds() * 1e9)

    def moved(metric: Metric) -> Metric:
        points = [
            dataclasses.replace(
                point,
                start_time_unix_nano=point.start_time_unix_nano - shift,
                time_unix_nano=point.time_unix_nano - shift,
            )
            for point in metric.data.data_points
        ]
        aggregated: Any = metric.data  # replace() cannot type a field of a union of dataclasses
        return dataclasses.replace(metric, data=dataclasses.replace(aggregated, data_points=points))

    return dataclasses.replace(
        data,
        resource_metrics=[
            dataclasses.replace(
                resource_metrics,
                scope_metrics=[
                    dataclasses.replace(scope_metrics, metrics=[moved(metric) for metric in scope_metrics.metrics])
                    for scope_metrics in resource_metrics.scope_metrics
                ],
            )
            for resource_metrics in data.resource_metrics
        ],
    )


async def store_traffic(settings: PgotelSettings, batches: Iterable[tuple[dt.timedelta, Sequence[Request]]]) -> None:
    """Export each (age, requests) batch into settings' database, then refresh the rollups the dashboard reads."""
    exporter = PostgresMetricExporter(settings=settings)
    try:
        for age, requests in batches:
            export_requests(exporter, requests, age)
        assert exporter.force_flush(10_000)
    finally:
        exporter.shutdown()
    conn = await asyncpg.connect(settings.database.dsn)
    try:
        await db.refresh_rollups(conn)  # the writer refreshes every 10 s; this takes whatever it left
    finally:
        await conn.close()
