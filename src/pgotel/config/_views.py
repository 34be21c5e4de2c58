"""The `http.server.request.duration` view of otel-config.yaml: the histogram shape pgotel records it with."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from opentelemetry.configuration import OpenTelemetryConfiguration

from pgotel.config._errors import PgotelConfigError

REQUEST_DURATION_METRIC = "http.server.request.duration"


@dataclass(frozen=True)
class HistogramShape:
    """A base-2 exponential histogram's limits, as the OTel SDK defines them (defaults are the SDK's)."""

    max_size: int = 160
    max_scale: int = 20


def request_duration_shape(otel: OpenTelemetryConfiguration, *, source: str) -> HistogramShape | None:
    """The shape the config's views give `http.server.request.duration`; None when a view drops it.

    pgotel aggregates this metric itself (see pgotel.instrumentation's request durations), so its view may
    only choose the exponential histogram's limits or drop it; anything else is refused here, at startup."""
    views = otel.meter_provider.views if otel.meter_provider is not None else None
    for index, view in enumerate(views or ()):
        selector = view.selector
        if selector.instrument_name is None or not fnmatch.fnmatchcase(
            REQUEST_DURATION_METRIC, selector.instrument_name
        ):
            continue
        key = f"{source}: meter_provider.views[{index}].stream"
        stream = view.stream
        if stream.name or stream.description or stream.attribute_keys or stream.aggregation_cardinality_limit:
            raise PgotelConfigError(
                f"{key}: pgotel records {REQUEST_DURATION_METRIC} itself; its view may only set `aggregation` "
                "(base2_exponential_bucket_histogram or drop), not rename, describe, filter or limit it"
            )
        aggregation = stream.aggregation
        if aggregation is None or aggregation.default is not None:
            return HistogramShape()
        if aggregation.drop is not None:
            return None
        exponential = aggregation.base2_exponential_bucket_histogram
        if exponential is None:
            raise PgotelConfigError(
                f"{key}.aggregation: pgotel records {REQUEST_DURATION_METRIC} as a base-2 exponential histogram "
                "(the dashboard's percentiles need it); use base2_exponential_bucket_histogram or drop"
            )
        # The file's schema has already checked the ranges (max_size >= 2, max_scale -10..20).
        return HistogramShape(
            max_size=HistogramShape.max_size if exponential.max_size is None else exponential.max_size,
            max_scale=HistogramShape.max_scale if exponential.max_scale is None else exponential.max_scale,
        )
    return HistogramShape()
