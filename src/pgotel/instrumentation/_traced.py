"""`@traced`: one span per call of a sync or async function, named after its qualified name."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ParamSpec, TypeVar, cast, overload

from opentelemetry.util.types import AttributeValue

from pgotel.instrumentation._tracer import pgotel_tracer_provider

_P = ParamSpec("_P")
_R = TypeVar("_R")

_tracer = pgotel_tracer_provider.get_tracer("pgotel.traced")


@overload
def traced(func: Callable[_P, _R], /) -> Callable[_P, _R]: ...


@overload
def traced(
    *, name: str | None = None, attributes: Mapping[str, AttributeValue] | None = None
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]: ...


def traced(
    func: Callable[_P, _R] | None = None,
    /,
    *,
    name: str | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Callable[_P, _R] | Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Trace every call of the decorated function; exceptions are recorded, marked ERROR and re-raised.

    Use as `@traced` or `@traced(name="checkout", attributes={"shop.tier": "gold"})`.
    """

    def decorate(function: Callable[_P, _R]) -> Callable[_P, _R]:
        span_name = name or function.__qualname__
        span_attributes: dict[str, AttributeValue] = {
            "code.function.name": f"{function.__module__}.{function.__qualname__}"
        }
        span_attributes.update(attributes or {})
        if inspect.iscoroutinefunction(function):
            coroutine_function = cast(Callable[_P, Awaitable[Any]], function)

            @functools.wraps(function)
            async def traced_coroutine(*args: _P.args, **kwargs: _P.kwargs) -> Any:
                with _tracer.start_as_current_span(span_name, attributes=span_attributes):
                    return await coroutine_function(*args, **kwargs)

            return cast(Callable[_P, _R], traced_coroutine)

        @functools.wraps(function)
        def traced_call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            with _tracer.start_as_current_span(span_name, attributes=span_attributes):
                return function(*args, **kwargs)

        return traced_call

    return decorate if func is None else decorate(func)
