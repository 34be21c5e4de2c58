"""The pinned OTel SDK's span internals, where its public interfaces cost more than pgotel can afford per span.

Ended spans are immutable, and through their public Mapping / Sequence interfaces every key or item costs a
lock and several Python-level calls; the exporter's conversion and the redacting processors read what is
inside instead. The server middleware writes its own plain attributes straight into a live span (the SDK
validates every value set through the API: ~1-2 us per attribute, the largest part of a span's cost)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Span
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, StaticSampler, TraceIdRatioBased

# Span processors whose on_start reads nothing, besides those a caller names.
_QUIET_AT_START = (BatchSpanProcessor, SimpleSpanProcessor)


def sdk_attributes(attributes: Any) -> tuple[Mapping[str, Any], int]:
    """The plain dict inside the SDK's BoundedAttributes (immutable once its span ended) and its dropped
    count. Through its public Mapping interface every key costs a lock and several calls."""
    inner = getattr(attributes, "_dict", None)
    if type(inner) is dict:  # checked first: BoundedAttributes' own truth test is a Python-level __len__
        return inner, attributes.dropped
    return attributes or {}, 0


def sdk_sequence(items: Any) -> tuple[Sequence[Any], int]:
    """The deque inside the SDK's BoundedList (events, links) and its dropped count, without its lock."""
    inner = getattr(items, "_dq", None)
    if inner is not None:
        return inner, items.dropped
    return items or (), 0


def keeping_dropped(attributes: Mapping[str, Any], dropped: int) -> Mapping[str, Any]:
    """`attributes` as a replacement for an SDK attribute map that had dropped `dropped` of its own: the SDK
    reports `dropped_attributes` from a BoundedAttributes only."""
    if not dropped:
        return attributes
    kept = BoundedAttributes(attributes=attributes, extended_attributes=True)
    kept.dropped = dropped
    return kept


def span_processors(tracer: object) -> tuple[object, ...] | None:
    """The span processors of an SDK tracer's provider (None for any other tracer). The provider replaces this
    tuple whenever a processor is added, so its identity tells whether they changed."""
    processors = getattr(getattr(tracer, "span_processor", None), "_span_processors", None)
    return processors if isinstance(processors, tuple) else None


def attributes_read_at_start(tracer: object, quiet_processors: tuple[type, ...] = ()) -> bool:
    """Whether anything may read a span's attributes while `tracer` starts it: its sampler, unless it is one
    of the SDK's that ignore attributes (always on/off, trace-id ratio, parent-based on those), or a span
    processor's on_start, unless it is the SDK's exporting ones or of `quiet_processors`. Any tracer but
    the SDK's may."""
    sampler = getattr(tracer, "sampler", None)
    processors = span_processors(tracer)
    if sampler is None or processors is None or _sampler_reads_attributes(sampler):
        return True
    quiet = (*_QUIET_AT_START, *quiet_processors)
    return not all(type(processor) in quiet for processor in processors)


def _sampler_reads_attributes(sampler: object) -> bool:
    should_sample = getattr(type(sampler), "should_sample", None)
    if should_sample in (StaticSampler.should_sample, TraceIdRatioBased.should_sample):
        return False
    if should_sample is ParentBased.should_sample and isinstance(sampler, ParentBased):
        delegates = (
            sampler._root, sampler._remote_parent_sampled, sampler._remote_parent_not_sampled,
            sampler._local_parent_sampled, sampler._local_parent_not_sampled,
        )  # fmt: skip
        return any(_sampler_reads_attributes(delegate) for delegate in delegates)
    return True


def add_plain_attributes(span: trace.Span, attributes: Mapping[str, str | int]) -> None:
    """Add attributes whose values are plain str and int to a live span: straight into the SDK span's map when
    its limits cannot apply to them (no value length limit, room under the count limit), else through
    `set_attributes`, which validates and applies the limits."""
    if isinstance(span, Span) and span.is_recording():
        bounded = span._attributes
        if (
            type(bounded) is BoundedAttributes
            and bounded.max_value_len is None
            and (bounded.maxlen is None or len(bounded._dict) + len(attributes) <= bounded.maxlen)
        ):
            bounded._dict.update(attributes)
            return
    span.set_attributes(attributes)
