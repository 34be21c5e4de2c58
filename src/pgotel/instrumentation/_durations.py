"""Exact request-duration histograms, aggregated in-process and delivered to every reader of an SDK
MeterProvider as the standard `http.server.request.duration` metric (a base-2 exponential histogram).

Recording through the SDK's Histogram instrument costs ~15-19 us per request here (attribute validation and
hashing, a Measurement object, three layers of dispatch); this aggregation, keyed by a plain tuple, costs
~2 us. Each reader's collection gets one more metric, in the temporality that reader asks for, shaped like
the SDK's own exponential histogram (same bucket boundaries, same downscaling to `max_size` buckets), with
the slowest sampled request of each series and interval as its exemplar. Every request is counted, sampled
or not."""

from __future__ import annotations

import logging
import math
import os
import threading
import weakref
from collections.abc import Callable
from time import time_ns
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.metrics import Exemplar, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Metric,
    MetricReader,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.metrics.export import Buckets as SdkBuckets
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext

from pgotel.config import REQUEST_DURATION_METRIC, HistogramShape

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics._internal.sdk_configuration import SdkConfiguration

# (http.request.method, http.route, http.response.status_code, error.type or "")
SeriesKey = tuple[str, str, int, str]

_logger = logging.getLogger(__name__)
# The SDK's default cardinality limit: series beyond it are folded into one overflow series, as the SDK does.
_MAX_SERIES = 2000
_OVERFLOW: SeriesKey = ("", "", 0, "")
_NO_BUCKETS = SdkBuckets(offset=0, bucket_counts=[])


def bucket_index(value: float, scale: int) -> int:
    """The exponential-histogram bucket of a positive `value`: bucket i holds (2^(i/2^scale), 2^((i+1)/2^scale)]."""
    mantissa, exponent = math.frexp(value)  # value = mantissa * 2**exponent, mantissa in [0.5, 1)
    if mantissa == 0.5:  # an exact power of two is the upper bound of the bucket below it
        return ((exponent - 1) << scale) - 1 if scale >= 0 else (exponent - 2) >> -scale
    if scale <= 0:
        return (exponent - 1) >> -scale
    return math.floor(math.log2(value) * (1 << scale))


class _Series:
    """One series' histogram over one interval (or since the start, for cumulative readers)."""

    __slots__ = ("buckets", "count", "exemplar", "high", "low", "max", "max_size", "min", "scale", "sum", "zero_count")

    def __init__(self, shape: HistogramShape) -> None:
        self.max_size = shape.max_size
        self.scale = shape.max_scale
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.zero_count = 0
        self.buckets: dict[int, int] = {}
        self.low = self.high = 0  # bucket index range, meaningful while `buckets` is not empty
        self.exemplar: Exemplar | None = None

    def add(self, value: float) -> None:
        self.count += 1
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        if value <= 0.0:
            self.zero_count += 1
            return
        index = bucket_index(value, self.scale)
        buckets = self.buckets
        if index in buckets:
            buckets[index] += 1
        else:
            self._add_bucket(index, 1)

    def _add_bucket(self, index: int, count: int) -> None:
        """Add `count` to a bucket not yet present, first downscaling if the range would exceed max_size."""
        if not self.buckets:
            self.low = self.high = index
            self.buckets[index] = count
            return
        low, high = min(self.low, index), max(self.high, index)
        shift = 0
        while (high >> shift) - (low >> shift) + 1 > self.max_size:
            shift += 1
        if shift:
            self._downscale(shift)
            index >>= shift
        self.low, self.high = min(self.low, index), max(self.high, index)
        self.buckets[index] = self.buckets.get(index, 0) + count

    def _downscale(self, shift: int) -> None:
        merged: dict[int, int] = {}
        for index, count in self.buckets.items():
            merged[index >> shift] = merged.get(index >> shift, 0) + count
        self.buckets = merged
        self.low >>= shift
        self.high >>= shift
        self.scale -= shift

    def merge(self, other: _Series) -> None:
        """Fold another interval of the same series into this one (cumulative readers)."""
        if other.scale < self.scale:
            self._downscale(self.scale - other.scale)
        shift = other.scale - self.scale
        for index, count in other.buckets.items():
            index >>= shift
            if index in self.buckets:
                self.buckets[index] += count
            else:
                self._add_bucket(index, count)
        self.count += other.count
        self.sum += other.sum
        self.zero_count += other.zero_count
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        if other.exemplar is not None:
            self.exemplar = other.exemplar

    def point(self, key: SeriesKey, start_ns: int, now_ns: int) -> ExponentialHistogramDataPoint:
        if self.buckets:
            offset = self.low
            counts = [self.buckets.get(index, 0) for index in range(self.low, self.high + 1)]
        else:
            offset, counts = 0, []
        return ExponentialHistogramDataPoint(
            attributes=_attributes(key),
            start_time_unix_nano=start_ns,
            time_unix_nano=now_ns,
            count=self.count,
            sum=self.sum,
            scale=self.scale,
            zero_count=self.zero_count,
            positive=SdkBuckets(offset=offset, bucket_counts=counts),
            negative=_NO_BUCKETS,
            flags=0,
            min=self.min,
            max=self.max,
            exemplars=[self.exemplar] if self.exemplar is not None else [],
        )


def outcome_attributes(method: str, route: str, status_code: int, error_type: str) -> dict[str, str | int]:
    """The attributes that name a request's endpoint and outcome: its series here, and its server span's too."""
    attributes: dict[str, str | int] = {
        "http.request.method": method,
        "http.route": route,
        "http.response.status_code": status_code,
    }
    if error_type:
        attributes["error.type"] = error_type
    return attributes


def _attributes(key: SeriesKey) -> dict[str, Any]:
    return {"otel.metric.overflow": True} if key == _OVERFLOW else outcome_attributes(*key)


class _ReaderStream:
    """What one reader has not collected yet, and (for a cumulative reader) everything before."""

    def __init__(self, shape: HistogramShape, temporality: AggregationTemporality) -> None:
        self._shape = shape
        self._temporality = temporality
        self._start()
        _live_streams.add(self)

    def _start(self) -> None:
        """Begin empty (at creation, and in a forked child: the parent's requests are the parent's to report,
        and a lock the parent's collector thread held at the fork would never be released)."""
        self._lock = threading.Lock()  # recording vs taking the interval
        self._collect_lock = threading.Lock()  # a periodic collection vs a force_flush's
        self._interval: dict[SeriesKey, _Series] = {}
        self._totals: dict[SeriesKey, _Series] = {}
        self._started_ns = self._collected_ns = time_ns()

    def record(self, key: SeriesKey, seconds: float, span_context: SpanContext | None) -> None:
        with self._lock:
            series = self._interval.get(key)
            if series is None:
                if len(self._interval) >= _MAX_SERIES:
                    key = _OVERFLOW
                series = self._interval.get(key)
                if series is None:
                    series = self._interval[key] = _Series(self._shape)
            series.add(seconds)
            if span_context is not None and (series.exemplar is None or seconds > series.exemplar.value):
                series.exemplar = Exemplar(
                    filtered_attributes=None,
                    value=seconds,
                    time_unix_nano=time_ns(),
                    span_id=span_context.span_id,
                    trace_id=span_context.trace_id,
                )

    def collect(self) -> Metric | None:
        """The metric for this reader's collection: the interval's series (delta) or the running totals."""
        with self._collect_lock:
            with self._lock:
                interval, self._interval = self._interval, {}
                start_ns, now_ns = self._collected_ns, time_ns()
                self._collected_ns = now_ns
            if self._temporality is AggregationTemporality.DELTA:
                points = [series.point(key, start_ns, now_ns) for key, series in interval.items()]
            else:
                for key, series in interval.items():
                    if key not in self._totals and len(self._totals) >= _MAX_SERIES:
                        key = _OVERFLOW  # the running totals are bounded too
                    total = self._totals.get(key)
                    if total is None:
                        self._totals[key] = series
                    else:
                        total.merge(series)
                points = [series.point(key, self._started_ns, now_ns) for key, series in self._totals.items()]
        if not points:
            return None
        return Metric(
            name=REQUEST_DURATION_METRIC,
            description="Duration of HTTP server requests.",
            unit="s",
            data=ExponentialHistogram(data_points=points, aggregation_temporality=self._temporality),
        )


_live_streams: weakref.WeakSet[_ReaderStream] = weakref.WeakSet()


def _restart_streams_in_child() -> None:
    for stream in list(_live_streams):
        stream._start()


os.register_at_fork(after_in_child=_restart_streams_in_child)


class RequestDurations:
    """Records each request's duration once, for every reader of the MeterProviders it is bound to."""

    def __init__(self, shape: HistogramShape | None) -> None:
        """`shape` None: the metric is dropped (a view says so), and recording costs nothing."""
        self._shape = shape
        self._readers: tuple[tuple[MetricReader, _ReaderStream], ...] = ()

    def bind(self, meter_provider: object, *, scope: InstrumentationScope) -> None:
        """Deliver the metric, under `scope`, through every reader of `meter_provider` (an SDK MeterProvider;
        any other provider records nothing, like the API's no-op default), readers added later included."""
        if self._shape is None or not isinstance(meter_provider, MeterProvider):
            return
        # The pinned SDK's private fields: the provider's readers, and its configuration (whose resource
        # is read at each collection: the SDK may merge more into it later).
        if meter_provider._disabled:
            return
        for reader in meter_provider._metric_readers:
            self._attach(reader, meter_provider, scope)
        self._follow_readers(meter_provider, scope)

    def _attach(self, reader: MetricReader, meter_provider: MeterProvider, scope: InstrumentationScope) -> None:
        assert self._shape is not None
        temporality = (reader._preferred_temporality or {}).get(Histogram, AggregationTemporality.CUMULATIVE)
        stream = _ReaderStream(self._shape, temporality)
        # Set by the provider when it takes the reader; the SDK annotates it loosely: it is called as
        # (reader, timeout_millis=) -> MetricsData | None.
        sdk_collect: Any = reader._collect
        reader._collect = _collect_with(sdk_collect, stream, meter_provider._sdk_config, scope)  # type: ignore[assignment]
        self._readers = (*self._readers, (reader, stream))

    def _follow_readers(self, meter_provider: MeterProvider, scope: InstrumentationScope) -> None:
        """A reader added with `add_metric_reader` gets the metric too; a removed one stops costing a stream."""
        add, remove = meter_provider.add_metric_reader, meter_provider.remove_metric_reader

        def add_metric_reader(reader: MetricReader) -> None:
            known = reader in meter_provider._all_metric_readers
            add(reader)
            if not known and reader in meter_provider._all_metric_readers:
                self._attach(reader, meter_provider, scope)

        def remove_metric_reader(reader: MetricReader) -> None:
            remove(reader)
            self._readers = tuple(pair for pair in self._readers if pair[0] is not reader)

        meter_provider.add_metric_reader = add_metric_reader  # type: ignore[method-assign,assignment]
        meter_provider.remove_metric_reader = remove_metric_reader  # type: ignore[method-assign,assignment]

    def record(
        self, seconds: float, method: str, route: str, status_code: int, error_type: str, span: SpanContext | None
    ) -> None:
        """One request; `span` (its context when sampled) may become the series' exemplar."""
        key = (method, route, status_code, error_type)
        for _, stream in self._readers:
            stream.record(key, seconds, span)


_SdkCollect = Callable[..., MetricsData | None]


def _collect_with(
    sdk_collect: _SdkCollect, stream: _ReaderStream, sdk_config: SdkConfiguration, scope: InstrumentationScope
) -> _SdkCollect:
    """A reader's collection callback that adds the request-duration metric to what the SDK collected."""

    def collect(reader: MetricReader, timeout_millis: float = 10_000) -> MetricsData | None:
        data = sdk_collect(reader, timeout_millis=timeout_millis)
        try:
            metric = stream.collect()
        except Exception:
            _logger.exception("pgotel: collecting %s failed", REQUEST_DURATION_METRIC)
            return data
        if metric is None:
            return data
        durations = ScopeMetrics(scope=scope, metrics=[metric], schema_url=scope.schema_url or "")
        if data is None or not data.resource_metrics:
            resource = sdk_config.resource
            return MetricsData(resource_metrics=[ResourceMetrics(resource, [durations], resource.schema_url)])
        first, *others = data.resource_metrics
        merged = ResourceMetrics(first.resource, [*first.scope_metrics, durations], first.schema_url)
        return MetricsData(resource_metrics=[merged, *others])

    return collect
