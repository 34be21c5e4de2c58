"""The three OTel exporter plugins (entry point name `pgotel`), sharing the process's writer.

`export()` runs on the SDK's batch worker thread: it converts the batch to rows there and queues them
for the writer thread, so it never waits on PostgreSQL. It never raises, not even BaseException (the
SDK's batch worker dies on one): anything unexpected is counted as a drop and reported as FAILURE."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from pgotel.config import PgotelSettings, Redactor, active_settings
from pgotel.exporter._encode import ValueEncoder
from pgotel.exporter._rows import RowBatch, RowConverter
from pgotel.exporter._writer import TelemetryWriter, acquire_writer, release_writer

# Deltas make every stored histogram point mergeable on its own (rollups sum them); up-down counters and
# gauges stay cumulative because their meaning is a current level, and so do observable counters, which observe
# a running total: a point dropped while PostgreSQL is unreachable loses nothing, the next one carries it
# (pgotel's own `pgotel.exporter.dropped` among them: its deltas were lost with the points they rode on).
DELTA_PREFERENCE: dict[type, AggregationTemporality] = {
    Counter: AggregationTemporality.DELTA,
    Histogram: AggregationTemporality.DELTA,
    ObservableCounter: AggregationTemporality.CUMULATIVE,
    UpDownCounter: AggregationTemporality.CUMULATIVE,
    ObservableUpDownCounter: AggregationTemporality.CUMULATIVE,
    ObservableGauge: AggregationTemporality.CUMULATIVE,
}


_P = TypeVar("_P")


def _point_count(data: MetricsData) -> int:
    return sum(
        len(metric.data.data_points)
        for resource_metrics in data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
    )


_I = TypeVar("_I")


def _each_item(items: Sequence[_I]) -> Iterator[Sequence[_I]]:
    return ([item] for item in items)


def _each_metric(data: MetricsData) -> Iterator[MetricsData]:
    """`data` as one MetricsData per metric (with its resource and scope)."""
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                scope = ScopeMetrics(scope_metrics.scope, [metric], scope_metrics.schema_url)
                yield MetricsData([ResourceMetrics(resource_metrics.resource, [scope], resource_metrics.schema_url)])


@dataclass(frozen=True)
class _Ops(Generic[_P]):
    """How a signal's export payload is counted (in items), converted to rows, and split into parts."""

    count: Callable[[_P], int]
    convert: Callable[[_P], RowBatch]
    split: Callable[[_P], Iterable[_P]]


class _Pipeline:
    """What each exporter owns: its converter, the shared writer, and its signal's accounting."""

    def __init__(self, signal: str, settings: PgotelSettings | None) -> None:
        resolved = settings or active_settings()
        self.signal = signal
        self.writer: TelemetryWriter = acquire_writer(resolved)
        encoder = ValueEncoder(
            signal, resolved.limits, Redactor.from_settings(resolved.redaction), self.writer.accounting
        )
        self.rows = RowConverter(encoder)
        self._shut_down = False

    def export(self, payload: _P, ops: _Ops[_P]) -> bool:
        """Convert and queue `payload`; False (never an exception) when anything was dropped."""
        accounting = self.writer.accounting
        try:
            items = ops.count(payload)
        except BaseException:
            accounting.dropped(self.signal, "malformed_batch")
            return False
        accounting.received(self.signal, items)
        if self._shut_down:
            accounting.dropped(self.signal, "exporter_shut_down", items)
            return False
        try:
            batch, failed = self._convert(payload, ops)
            converted = batch.row_count()
            if converted + failed < items:
                accounting.dropped(self.signal, "unconvertible", items - converted - failed)
            return self.writer.submit(batch) and not failed
        except BaseException as exc:
            accounting.dropped(self.signal, "conversion_error", items, error=exc)
            return False

    def _convert(self, payload: _P, ops: _Ops[_P]) -> tuple[RowBatch, int]:
        """The rows of `payload` and how many items failed: if converting the whole batch fails, each of its
        parts is converted alone, so an item that breaks the conversion loses only itself (counted)."""
        try:
            return ops.convert(payload), 0
        except Exception:
            pass
        batch, failed = RowBatch(), 0
        for part in ops.split(payload):
            try:
                batch.merge(ops.convert(part))
            except Exception as exc:
                items = ops.count(part)
                failed += items
                self.writer.accounting.dropped(self.signal, "conversion_error", items, error=exc)
        return batch, failed

    def force_flush(self, timeout_millis: float) -> bool:
        return self.writer.flush(timeout_millis / 1000)

    def shutdown(self) -> None:
        if not self._shut_down:
            self._shut_down = True
            release_writer(self.writer)


class PostgresSpanExporter(SpanExporter):
    """Writes spans to pgotel.spans."""

    def __init__(self, *, settings: PgotelSettings | None = None, **_plugin_options: Any) -> None:
        self._pipeline = _Pipeline("spans", settings)
        self._ops = _Ops(len, self._pipeline.rows.spans, _each_item)

    @property
    def writer(self) -> TelemetryWriter:
        return self._pipeline.writer

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        ok = self._pipeline.export(spans, self._ops)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._pipeline.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._pipeline.shutdown()


class PostgresLogExporter(LogRecordExporter):
    """Writes log records to pgotel.logs."""

    def __init__(self, *, settings: PgotelSettings | None = None, **_plugin_options: Any) -> None:
        self._pipeline = _Pipeline("logs", settings)
        self._ops = _Ops(len, self._pipeline.rows.logs, _each_item)

    @property
    def writer(self) -> TelemetryWriter:
        return self._pipeline.writer

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        ok = self._pipeline.export(batch, self._ops)
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._pipeline.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._pipeline.shutdown()


class PostgresMetricExporter(MetricExporter):
    """Writes metric points to pgotel.metric_points / histogram_points / exp_histogram_points."""

    def __init__(self, *, settings: PgotelSettings | None = None, **_plugin_options: Any) -> None:
        super().__init__(preferred_temporality=DELTA_PREFERENCE)
        self._pipeline = _Pipeline("metric_points", settings)
        self._ops = _Ops(_point_count, self._pipeline.rows.metrics, _each_metric)

    @property
    def writer(self) -> TelemetryWriter:
        return self._pipeline.writer

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **_kwargs: Any) -> MetricExportResult:
        ok = self._pipeline.export(metrics_data, self._ops)
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._pipeline.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **_kwargs: Any) -> None:
        self._pipeline.shutdown()
