"""Request durations aggregated by pgotel: the same histogram the SDK's own aggregation would produce, in each
reader's temporality, every request counted, next to the SDK's other metrics."""

from __future__ import annotations

import os
import random
from typing import Any

import pytest
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ExponentialHistogramDataPoint,
    InMemoryMetricReader,
    MetricsData,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, TraceFlags

from pgotel.config import REQUEST_DURATION_METRIC, HistogramShape
from pgotel.instrumentation import RequestDurations
from pgotel.instrumentation._durations import bucket_index

_SCOPE = InstrumentationScope("pgotel.instrumentation.fastapi")
_GET_ITEM = ("GET", "/items/{item_id}", 200, "")
_ATTRIBUTES = {"http.request.method": "GET", "http.route": "/items/{item_id}", "http.response.status_code": 200}


def _reader(temporality: AggregationTemporality | None = None) -> InMemoryMetricReader:
    return InMemoryMetricReader(preferred_temporality={Histogram: temporality} if temporality else None)


def _bound(shape: HistogramShape | None, *readers: InMemoryMetricReader) -> RequestDurations:
    durations = RequestDurations(shape)
    durations.bind(MeterProvider(metric_readers=readers, resource=Resource({"service.name": "shop"})), scope=_SCOPE)
    return durations


def _points(reader: InMemoryMetricReader, name: str = REQUEST_DURATION_METRIC) -> list[ExponentialHistogramDataPoint]:
    data = reader.get_metrics_data()
    return [
        point
        for resource_metrics in (data.resource_metrics if data else ())
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def _sdk_points(
    values: list[float], shape: HistogramShape, temporality: AggregationTemporality
) -> list[ExponentialHistogramDataPoint]:
    """The SDK's own aggregation of `values` with the same view limits: what pgotel must reproduce."""
    reader = _reader(temporality)
    view = View(
        instrument_name="sdk", aggregation=ExponentialBucketHistogramAggregation(shape.max_size, shape.max_scale)
    )
    histogram = MeterProvider(metric_readers=[reader], views=[view]).get_meter("x").create_histogram("sdk")
    for value in values:
        histogram.record(value, _ATTRIBUTES)
    return _points(reader, "sdk")


def _shape_of(point: ExponentialHistogramDataPoint) -> tuple[Any, ...]:
    counts = list(point.positive.bucket_counts)
    while counts and counts[-1] == 0:  # the SDK may report empty buckets past its highest one
        counts.pop()
    return (point.count, point.scale, point.zero_count, point.positive.offset, counts)


@pytest.mark.parametrize("scale", [-3, 0, 1, 5, 20])
def test_bucket_index_puts_powers_of_two_in_the_bucket_below(scale: int) -> None:
    # Bucket i holds (2^(i/2^scale), 2^((i+1)/2^scale)]: 1.0 closes bucket -1 at every scale >= 0.
    for exponent in (-20, -1, 0, 1, 7):
        value = 2.0**exponent
        index = bucket_index(value, scale)
        upper = 2.0 ** ((index + 1) / 2**scale)
        lower = 2.0 ** (index / 2**scale)
        assert lower < value <= upper
    for value in (0.0017, 0.3, 1.5, 42.0):
        index = bucket_index(value, scale)
        assert 2.0 ** (index / 2**scale) < value <= 2.0 ** ((index + 1) / 2**scale)


@pytest.mark.parametrize("shape", [HistogramShape(), HistogramShape(max_size=640, max_scale=20), HistogramShape(20, 3)])
def test_one_interval_equals_the_sdks_aggregation(shape: HistogramShape) -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(-4, 1.5) for _ in range(5000)] + [0.0, 2.0**-7, 0.25]
    reader = _reader(AggregationTemporality.DELTA)
    durations = _bound(shape, reader)
    for value in values:
        durations.record(value, *_GET_ITEM, None)

    [point] = _points(reader)
    [expected] = _sdk_points(values, shape, AggregationTemporality.DELTA)
    assert _shape_of(point) == _shape_of(expected)
    assert (point.min, point.max) == (expected.min, expected.max)
    assert point.sum == pytest.approx(expected.sum)
    assert point.attributes == _ATTRIBUTES


def test_delta_readers_get_each_interval_once() -> None:
    reader = _reader(AggregationTemporality.DELTA)
    durations = _bound(HistogramShape(), reader)
    for _ in range(3):
        durations.record(0.010, *_GET_ITEM, None)
    [first] = _points(reader)
    durations.record(0.020, *_GET_ITEM, None)
    [second] = _points(reader)

    assert (first.count, second.count) == (3, 1)
    assert (second.min, second.max) == (0.020, 0.020)
    assert second.start_time_unix_nano == first.time_unix_nano
    assert _points(reader) == []  # nothing new: no point, as the SDK's delta aggregation


def test_cumulative_readers_get_running_totals_even_across_scales() -> None:
    # The first interval is narrow (fine scale), the second spans 10^6 (coarse): totals downscale to merge.
    rng = random.Random(3)
    narrow = [0.010 + rng.random() * 1e-4 for _ in range(500)]
    wide = [10 ** rng.uniform(-6, 0) for _ in range(500)]
    reader = _reader()  # cumulative, the SDK's default
    durations = _bound(HistogramShape(), reader)
    for value in narrow:
        durations.record(value, *_GET_ITEM, None)
    [first] = _points(reader)
    for value in wide:
        durations.record(value, *_GET_ITEM, None)
    [total] = _points(reader)

    [expected] = _sdk_points(narrow + wide, HistogramShape(), AggregationTemporality.CUMULATIVE)
    assert first.count == 500
    assert _shape_of(total) == _shape_of(expected)
    assert total.start_time_unix_nano == first.start_time_unix_nano
    assert (total.min, total.max) == (min(narrow + wide), max(narrow + wide))


def test_every_reader_gets_every_request_in_its_own_temporality() -> None:
    delta, cumulative = _reader(AggregationTemporality.DELTA), _reader()
    durations = _bound(HistogramShape(), delta, cumulative)
    durations.record(0.5, *_GET_ITEM, None)
    assert [point.count for point in _points(delta)] == [1]
    durations.record(0.5, *_GET_ITEM, None)
    assert [point.count for point in _points(delta)] == [1]
    assert [point.count for point in _points(cumulative)] == [2]


def test_series_are_keyed_by_method_route_status_and_error_type() -> None:
    reader = _reader(AggregationTemporality.DELTA)
    durations = _bound(HistogramShape(), reader)
    durations.record(0.1, "GET", "/pay", 200, "", None)
    durations.record(0.1, "GET", "/pay", 503, "503", None)
    durations.record(0.1, "POST", "/pay", 500, "builtins.TimeoutError", None)
    durations.record(0.1, "POST", "/pay", 500, "builtins.TimeoutError", None)

    by_attributes = {tuple(sorted(point.attributes.items())): point.count for point in _points(reader)}
    assert by_attributes == {
        (("http.request.method", "GET"), ("http.response.status_code", 200), ("http.route", "/pay")): 1,
        (
            ("error.type", "503"),
            ("http.request.method", "GET"),
            ("http.response.status_code", 503),
            ("http.route", "/pay"),
        ): 1,
        (
            ("error.type", "builtins.TimeoutError"),
            ("http.request.method", "POST"),
            ("http.response.status_code", 500),
            ("http.route", "/pay"),
        ): 2,
    }


def test_the_slowest_sampled_request_is_the_exemplar() -> None:
    reader = _reader(AggregationTemporality.DELTA)
    durations = _bound(HistogramShape(), reader)
    sampled = [SpanContext(trace_id=n, span_id=n, is_remote=False, trace_flags=TraceFlags(1)) for n in (1, 2, 3)]
    durations.record(0.2, *_GET_ITEM, sampled[0])
    durations.record(0.9, *_GET_ITEM, sampled[1])
    durations.record(0.4, *_GET_ITEM, sampled[2])
    durations.record(5.0, *_GET_ITEM, None)  # slower, but its trace was not sampled: nothing to link to

    [point] = _points(reader)
    [exemplar] = point.exemplars
    assert (exemplar.trace_id, exemplar.span_id, exemplar.value) == (2, 2, 0.9)
    assert point.max == 5.0


def test_series_beyond_the_cardinality_limit_are_counted_in_the_overflow_series() -> None:
    reader = _reader(AggregationTemporality.DELTA)
    durations = _bound(HistogramShape(), reader)
    for n in range(2100):
        durations.record(0.01, "GET", f"/r{n}", 200, "", None)

    points = _points(reader)
    assert len(points) == 2001
    assert sum(point.count for point in points) == 2100
    [overflow] = [point for point in points if point.attributes == {"otel.metric.overflow": True}]
    assert overflow.count == 100


def test_the_metric_joins_the_sdks_own_metrics_under_the_providers_resource() -> None:
    reader = _reader(AggregationTemporality.DELTA)
    provider = MeterProvider(metric_readers=[reader], resource=Resource({"service.name": "shop"}))
    durations = RequestDurations(HistogramShape())
    durations.bind(provider, scope=_SCOPE)
    provider.get_meter("app").create_counter("orders").add(3)
    durations.record(0.05, *_GET_ITEM, None)

    data = reader.get_metrics_data()
    assert isinstance(data, MetricsData)
    [resource_metrics] = data.resource_metrics
    assert resource_metrics.resource.attributes["service.name"] == "shop"
    scopes = {
        scope_metrics.scope.name: [m.name for m in scope_metrics.metrics]
        for scope_metrics in resource_metrics.scope_metrics
    }
    assert scopes == {"app": ["orders"], "pgotel.instrumentation.fastapi": [REQUEST_DURATION_METRIC]}


def test_a_dropped_metric_or_a_non_sdk_provider_records_nothing() -> None:
    reader = _reader(AggregationTemporality.DELTA)
    dropped = _bound(None, reader)
    dropped.record(0.05, *_GET_ITEM, None)
    assert _points(reader) == []

    durations = RequestDurations(HistogramShape())
    durations.bind(NoOpMeterProvider(), scope=_SCOPE)
    durations.record(0.05, *_GET_ITEM, None)  # no reader to deliver to, and no error


def test_cumulative_totals_stay_within_the_cardinality_limit_across_intervals() -> None:
    reader = _reader()
    durations = _bound(HistogramShape(), reader)
    for interval in range(3):  # 1,500 new routes per interval: 4,500 in all
        for n in range(1500):
            durations.record(0.01, "GET", f"/r{interval}-{n}", 200, "", None)
        points = _points(reader)

    assert len(points) == 2001
    assert sum(point.count for point in points) == 4500


def test_a_forked_child_starts_empty_and_records_its_own_requests() -> None:
    reader = _reader(AggregationTemporality.DELTA)
    durations = _bound(HistogramShape(), reader)
    durations.record(0.5, *_GET_ITEM, None)  # the parent's request, collected by the parent only
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its counts through the pipe, then leave without running pytest's cleanup
        try:
            durations.record(0.1, *_GET_ITEM, None)
            os.write(write_end, repr([point.count for point in _points(reader)]).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    child_counts = os.read(read_end, 100).decode()
    os.waitpid(pid, 0)
    assert child_counts == "[1]"
    assert [point.count for point in _points(reader)] == [1]


def test_a_reader_added_later_gets_the_metric_and_a_removed_one_stops_counting() -> None:
    first = _reader(AggregationTemporality.DELTA)
    provider = MeterProvider(metric_readers=[first])
    durations = RequestDurations(HistogramShape())
    durations.bind(provider, scope=_SCOPE)
    durations.record(0.010, *_GET_ITEM, None)
    later = _reader(AggregationTemporality.CUMULATIVE)
    provider.add_metric_reader(later)
    provider.add_metric_reader(later)  # registered already: the SDK warns, nothing is attached twice
    durations.record(0.020, *_GET_ITEM, None)

    assert [point.count for point in _points(first)] == [2]
    assert [point.count for point in _points(later)] == [1]  # from when it was added
    provider.remove_metric_reader(later)
    durations.record(0.030, *_GET_ITEM, None)
    assert [point.count for point in _points(first)] == [1]
    assert [reader for reader, _ in durations._readers] == [first]  # the removed reader's stream is released
