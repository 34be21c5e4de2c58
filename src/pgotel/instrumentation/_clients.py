"""asyncpg and redis client spans, instrumented once per process, minus asyncpg's pool-reset span."""

from __future__ import annotations

import functools
import threading
from typing import Any

import asyncpg.connection
from opentelemetry import context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor

from pgotel.instrumentation._tracer import pgotel_tracer_provider

_lock = threading.Lock()
_RESET_WRAPPED_FLAG = "_pgotel_unobserved"


def instrument_clients() -> None:
    """Emit asyncpg and redis client spans through pgotel's tracer provider (idempotent)."""
    with _lock:
        _suppress_pool_reset_spans()
        for instrumentor in (AsyncPGInstrumentor(), RedisInstrumentor()):  # type: ignore[no-untyped-call]
            if not instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.instrument(tracer_provider=pgotel_tracer_provider)


def _suppress_pool_reset_spans() -> None:
    # A pool release runs Connection.reset(), whose query would add one span to every pooled query.
    original = asyncpg.connection.Connection.reset
    if getattr(original, _RESET_WRAPPED_FLAG, False):
        return

    @functools.wraps(original)
    async def reset(self: asyncpg.connection.Connection, *args: Any, **kwargs: Any) -> None:
        token = context.attach(context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            await original(self, *args, **kwargs)
        finally:
            context.detach(token)

    setattr(reset, _RESET_WRAPPED_FLAG, True)
    asyncpg.connection.Connection.reset = reset  # type: ignore[method-assign,assignment]
