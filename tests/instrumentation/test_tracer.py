"""The rebindable tracer provider: tracers handed out earlier follow the provider bound last."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pgotel.instrumentation import BoundTracerProvider


def _recording_provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    return provider, exported


def test_tracers_follow_the_provider_bound_last() -> None:
    bound = BoundTracerProvider()
    tracer = bound.get_tracer("lib")
    first, first_spans = _recording_provider()
    second, second_spans = _recording_provider()

    bound.bind(first)
    tracer.start_span("one").end()
    bound.bind(second)
    with tracer.start_as_current_span("two"):
        pass

    assert [span.name for span in first_spans.get_finished_spans()] == ["one"]
    assert [span.name for span in second_spans.get_finished_spans()] == ["two"]
    assert second_spans.get_finished_spans()[0].instrumentation_scope.name == "lib"


def test_unbinding_another_provider_keeps_the_binding() -> None:
    bound = BoundTracerProvider()
    first, _ = _recording_provider()
    second, _ = _recording_provider()
    bound.bind(second)

    bound.unbind(first)

    assert bound.target is second


def test_unbound_provider_that_is_the_global_does_not_recurse(monkeypatch: pytest.MonkeyPatch) -> None:
    bound = BoundTracerProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: bound)

    span = bound.get_tracer("lib").start_span("nowhere")

    assert not span.is_recording()
    assert bound.force_flush() is True
