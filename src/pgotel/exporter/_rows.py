"""Conversion of OTel SDK objects (ReadableSpan, ReadableLogRecord, MetricsData) into table rows.

Resources, scopes and metric series get a content fingerprint as id, so conversion needs no database
round trip; the batch carries the side rows and the writer inserts the ones it has not seen yet."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from asyncpg.pgproto.pgproto import UUID as PgUUID
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.metrics.export import (
    ExponentialHistogram,
    Gauge,
    Histogram,
    Metric,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.metrics.export import (
    ExponentialHistogramDataPoint as ExpPoint,
)
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint as HistPoint,
)
from opentelemetry.sdk.metrics.export import (
    NumberDataPoint as NumberPoint,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link

from pgotel._sdk import sdk_attributes, sdk_sequence
from pgotel.db import Row, row_timestamp
from pgotel.exporter._encode import ValueEncoder, int_text, repr_text, signed64

METRIC_KIND = {Gauge: 1, Sum: 2, Histogram: 3, ExponentialHistogram: 4}
_UNKNOWN_SERVICE = "unknown_service"
_INT64_MAX = (1 << 63) - 1
_FINGERPRINT_CACHE_MAX = 4096


@dataclass
class RowBatch:
    """Rows for the partitioned tables plus the side rows (by id) they reference."""

    rows: dict[str, list[Row]] = field(default_factory=dict)
    side: dict[str, dict[uuid.UUID, Row]] = field(default_factory=dict)

    def add(self, table: str, row: Row) -> None:
        self.rows.setdefault(table, []).append(row)

    def add_side(self, table: str, row_id: uuid.UUID, row: Row) -> None:
        self.side.setdefault(table, {})[row_id] = row

    def merge(self, other: RowBatch) -> None:
        for table, rows in other.rows.items():
            self.rows.setdefault(table, []).extend(rows)
        for table, side_rows in other.side.items():
            self.side.setdefault(table, {}).update(side_rows)

    def row_count(self) -> int:
        return sum(len(rows) for rows in self.rows.values())


def fingerprint(*parts: Any) -> uuid.UUID:
    """A content id. asyncpg's own UUID type (a uuid.UUID for every other purpose) is the one its COPY
    encoder writes without a Python call per row."""
    try:
        canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=repr_text)
    except ValueError:  # an int too long for Python to print
        canonical = json.dumps(_printable_ints(parts), sort_keys=True, separators=(",", ":"), default=repr_text)
    digest = hashlib.blake2b(canonical.encode("utf-8", "replace"), digest_size=16).digest()
    return cast(uuid.UUID, PgUUID(digest))


def _printable_ints(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return int_text(value)
    if isinstance(value, dict):
        return {key: _printable_ints(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_printable_ints(item) for item in value]
    return value


def _http_status(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 999 else None


class RowConverter:
    """Converts one signal's SDK objects; caches resource and scope fingerprints by object identity."""

    def __init__(self, encoder: ValueEncoder) -> None:
        self._encode = encoder
        self._resources: dict[int, tuple[Resource, uuid.UUID, Row]] = {}
        self._scopes: dict[int, tuple[InstrumentationScope | None, uuid.UUID, Row]] = {}

    def _resource(self, resource: Resource, batch: RowBatch) -> tuple[uuid.UUID, str]:
        cached = self._resources.get(id(resource))
        if cached is None or cached[0] is not resource:
            if len(self._resources) > _FINGERPRINT_CACHE_MAX:
                self._resources.clear()
            attributes = dict(resource.attributes)
            service = str(attributes.get("service.name") or _UNKNOWN_SERVICE)
            row_id = fingerprint("resource", attributes, resource.schema_url)
            row = (
                row_id,
                self._encode.text(service),
                self._encode.attributes(attributes),
                resource.schema_url or "",
            )
            cached = (resource, row_id, row)
            self._resources[id(resource)] = cached
        batch.add_side("resources", cached[1], cached[2])
        return cached[1], cached[2][1]

    def _scope(self, scope: InstrumentationScope | None, batch: RowBatch) -> uuid.UUID:
        cached = self._scopes.get(id(scope))
        if cached is None or cached[0] is not scope:
            if len(self._scopes) > _FINGERPRINT_CACHE_MAX:
                self._scopes.clear()
            name = scope.name if scope else ""
            version = scope.version if scope else None
            schema_url = (scope.schema_url if scope else "") or ""
            attributes = dict(scope.attributes or {}) if scope else {}
            row_id = fingerprint("scope", name, version, schema_url, attributes)
            row = (row_id, self._encode.text(name), version, schema_url, self._encode.attributes(attributes))
            cached = (scope, row_id, row)
            self._scopes[id(scope)] = cached
        batch.add_side("scopes", cached[1], cached[2])
        return cached[1]

    # -- spans ---------------------------------------------------------------------------------

    def spans(self, spans: Sequence[ReadableSpan]) -> RowBatch:
        batch = RowBatch()
        rows = batch.rows.setdefault("spans", [])
        text = self._encode.text
        encode_attributes = self._encode.attributes
        # A batch holds one resource and a few scopes: resolve each once per batch, by identity.
        resources: dict[int, tuple[uuid.UUID, str]] = {}
        scopes: dict[int, uuid.UUID] = {}
        for span in spans:
            # Ended spans are immutable: read the pinned SDK's fields directly (each public property is a
            # call, and the attribute, event and link ones copy under a lock).
            context = span._context
            if context is None:
                continue
            trace_id, span_id, _remote, trace_flags, trace_state, _valid = context
            resource = span._resource
            resolved = resources.get(id(resource))
            if resolved is None:
                resolved = resources[id(resource)] = self._resource(resource, batch)
            resource_id, service = resolved
            scope = span._instrumentation_scope
            scope_id = scopes.get(id(scope))
            if scope_id is None:
                scope_id = scopes[id(scope)] = self._scope(scope, batch)
            attributes, dropped_attributes = sdk_attributes(span._attributes)
            events, dropped_events = sdk_sequence(span._events)
            links, dropped_links = sdk_sequence(span._links)
            start = span._start_time or 0
            end = span._end_time or start
            parent = span._parent
            status = span._status
            description = status._description
            method = attributes.get("http.request.method") or attributes.get("http.method")
            route = attributes.get("http.route")
            code = attributes.get("http.response.status_code") or attributes.get("http.status_code")
            rows.append(
                (
                    row_timestamp(start),
                    start,
                    end - start,
                    format(trace_id, "032x"),  # asyncpg parses hex text; no UUID object per span
                    signed64(span_id),
                    signed64(parent[1]) if parent is not None else None,
                    (trace_state.to_header() or None) if trace_state else None,
                    trace_flags,
                    text(span._name) or "",
                    # OTLP's numbering, which SQL users and other OTel tools know (1 internal, 2 server, 3 client,
                    # 4 producer, 5 consumer): SpanKind's value + 1; status codes are StatusCode's values. Read
                    # as `_value_`: `.value` is a property, and an Enum member's hash a Python-level call.
                    span._kind._value_ + 1,
                    status._status_code._value_,
                    text(description) if description else None,
                    service,
                    resource_id,
                    scope_id,
                    text(method) if isinstance(method, str) else None,
                    text(route) if isinstance(route, str) else None,
                    _http_status(code),
                    encode_attributes(attributes),
                    self._events(events) if events else None,
                    self._links(links) if links else None,
                    dropped_attributes,
                    dropped_events,
                    dropped_links,
                )
            )
        return batch

    def _events(self, events: Sequence[Event]) -> str:
        return (
            self._encode.any_value(
                [
                    {
                        "name": event.name,
                        "time_unix_nano": event.timestamp,
                        "attributes": json.loads(self._encode.attributes(event.attributes)),
                        "dropped_attributes": event.dropped_attributes,
                    }
                    for event in events
                ]
            )
            or "[]"
        )

    def _links(self, links: Sequence[Link]) -> str:
        return (
            self._encode.any_value(
                [
                    {
                        "trace_id": f"{link.context.trace_id:032x}",
                        "span_id": f"{link.context.span_id:016x}",
                        "trace_state": link.context.trace_state.to_header() if link.context.trace_state else "",
                        "trace_flags": int(link.context.trace_flags),
                        "attributes": json.loads(self._encode.attributes(link.attributes)),
                        "dropped_attributes": link.dropped_attributes,
                    }
                    for link in links
                ]
            )
            or "[]"
        )

    # -- logs ----------------------------------------------------------------------------------

    def logs(self, records: Sequence[ReadableLogRecord]) -> RowBatch:
        batch = RowBatch()
        for readable in records:
            record = readable.log_record
            resource_id, service = self._resource(readable.resource, batch)
            scope_id = self._scope(readable.instrumentation_scope, batch)
            observed = record.observed_timestamp or record.timestamp or 0
            trace_id = record.trace_id or 0
            span_id = record.span_id or 0
            batch.add(
                "logs",
                (
                    row_timestamp(record.timestamp or observed),
                    record.timestamp,
                    observed,
                    format(trace_id, "032x") if trace_id else None,
                    signed64(span_id) if span_id else None,
                    int(record.trace_flags or 0),
                    record.severity_number.value if record.severity_number is not None else 0,
                    self._encode.text(record.severity_text),
                    self._encode.any_value(record.body),
                    self._encode.text(record.event_name),
                    service,
                    resource_id,
                    scope_id,
                    self._encode.attributes(record.attributes),
                    readable.dropped_attributes,
                ),
            )
        return batch

    # -- metrics -------------------------------------------------------------------------------

    def metrics(self, data: MetricsData) -> RowBatch:
        batch = RowBatch()
        for resource_metrics in data.resource_metrics:
            resource_id, service = self._resource(resource_metrics.resource, batch)
            for scope_metrics in resource_metrics.scope_metrics:
                scope_id = self._scope(scope_metrics.scope, batch)
                for metric in scope_metrics.metrics:
                    self._metric(metric, service, resource_id, scope_id, batch)
        return batch

    def _metric(
        self, metric: Metric, service: str, resource_id: uuid.UUID, scope_id: uuid.UUID, batch: RowBatch
    ) -> None:
        data = metric.data
        kind = METRIC_KIND.get(type(data))
        if kind is None:
            return
        temporality = getattr(data, "aggregation_temporality", None)
        temporality_value = temporality.value if temporality is not None else 0
        monotonic = bool(getattr(data, "is_monotonic", False))
        for point in data.data_points:
            attributes = dict(point.attributes or {})
            series_id = fingerprint(
                "series", resource_id.hex, scope_id.hex, metric.name, metric.unit, kind, temporality_value,
                monotonic, attributes,
            )  # fmt: skip
            batch.add_side(
                "metric_series",
                series_id,
                (
                    series_id,
                    self._encode.text(metric.name),
                    self._encode.text(metric.description) or "",
                    self._encode.text(metric.unit) or "",
                    kind,
                    temporality_value,
                    monotonic,
                    service,
                    resource_id,
                    scope_id,
                    self._encode.attributes(attributes),
                ),
            )
            head = (
                row_timestamp(point.time_unix_nano),
                point.time_unix_nano,
                point.start_time_unix_nano,
                series_id,
            )
            exemplars = self._exemplars(point.exemplars)
            if isinstance(point, NumberPoint):
                value = point.value
                is_int = isinstance(value, int) and -_INT64_MAX - 1 <= value <= _INT64_MAX
                batch.add(
                    "metric_points",
                    (*head, value if is_int else None, None if is_int else float(value), exemplars),
                )
            elif isinstance(point, HistPoint):
                batch.add(
                    "histogram_points",
                    (
                        *head, point.count, point.sum, _finite(point.min), _finite(point.max),
                        list(point.explicit_bounds), list(point.bucket_counts), exemplars,
                    ),
                )  # fmt: skip
            elif isinstance(point, ExpPoint):
                batch.add(
                    "exp_histogram_points",
                    (
                        *head, point.count, point.sum, _finite(point.min), _finite(point.max), point.scale,
                        point.zero_count, 0.0, point.positive.offset, list(point.positive.bucket_counts),
                        point.negative.offset, list(point.negative.bucket_counts), exemplars,
                    ),
                )  # fmt: skip

    def _exemplars(self, exemplars: Sequence[Any]) -> str | None:
        if not exemplars:
            return None
        return self._encode.any_value(
            [
                {
                    "value": exemplar.value,
                    "time_unix_nano": exemplar.time_unix_nano,
                    "trace_id": f"{exemplar.trace_id:032x}" if exemplar.trace_id else None,
                    "span_id": f"{exemplar.span_id:016x}" if exemplar.span_id else None,
                    "filtered_attributes": dict(exemplar.filtered_attributes or {}),
                }
                for exemplar in exemplars
            ]
        )


def _finite(value: float | None) -> float | None:
    """Empty histograms report min=+inf / max=-inf; store them as NULL."""
    return value if value is not None and value not in (float("inf"), float("-inf")) else None
