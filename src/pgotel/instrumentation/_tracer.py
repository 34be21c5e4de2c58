"""The tracer provider behind `@traced`, the client spans and the global API, re-pointed by each `setup()`.

Client libraries are instrumented once per process and the OTel API's global can be set only once, but
each `setup()` (each app built by a test, say) brings its own SDK provider; spans follow the provider
bound last.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.util._decorator import _AgnosticContextManager
from opentelemetry.util.types import Attributes


class BoundTracerProvider(trace.TracerProvider):
    """A TracerProvider whose tracers delegate to the provider bound last (the global one by default)."""

    def __init__(self) -> None:
        self._target: trace.TracerProvider | None = None
        self._generation = 0

    def bind(self, provider: trace.TracerProvider | None) -> None:
        """Send the spans of every tracer handed out so far, and later, to `provider` (None: the global)."""
        self._target = provider
        self._generation += 1

    def unbind(self, provider: trace.TracerProvider) -> None:
        """Fall back to the global provider, if `provider` is still the one bound."""
        if self._target is provider:
            self.bind(None)

    @property
    def target(self) -> trace.TracerProvider:
        if self._target is not None:
            return self._target
        global_provider = trace.get_tracer_provider()
        return trace.NoOpTracerProvider() if global_provider is self else global_provider

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        """Add `span_processor` to the bound SDK provider, as code written for the SDK's global expects."""
        target = self.target
        if isinstance(target, TracerProvider):
            target.add_span_processor(span_processor)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        target = self.target
        return target.force_flush(timeout_millis) if isinstance(target, TracerProvider) else True

    @property
    def generation(self) -> int:
        return self._generation

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> trace.Tracer:
        return _BoundTracer(self, instrumenting_module_name, instrumenting_library_version, schema_url, attributes)


class _BoundTracer(trace.Tracer):
    def __init__(
        self,
        owner: BoundTracerProvider,
        name: str,
        version: str | None,
        schema_url: str | None,
        attributes: Attributes,
    ) -> None:
        self._owner = owner
        self._scope = (name, version, schema_url, attributes)
        self._generation = -1
        self._delegate: trace.Tracer = trace.NoOpTracer()

    def _tracer(self) -> trace.Tracer:
        if self._generation != self._owner.generation:
            self._delegate = self._owner.target.get_tracer(*self._scope)
            self._generation = self._owner.generation
        return self._delegate

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._tracer().start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> _AgnosticContextManager[trace.Span]:
        # The delegate's own context manager (usable as a decorator too), not one more layer around it.
        return self._tracer().start_as_current_span(*args, **kwargs)


pgotel_tracer_provider = BoundTracerProvider()
