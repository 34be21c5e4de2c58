"""`@traced` on sync and async functions."""

from __future__ import annotations

import pytest
from opentelemetry.trace import StatusCode

from pgotel import traced
from tests.instrumentation.conftest import Telemetry


class Basket:
    @traced
    def total(self, prices: list[int]) -> int:
        return sum(prices)

    @traced(name="basket.checkout", attributes={"shop.tier": "gold"})
    async def checkout(self) -> str:
        return "paid"


@traced
async def charge(amount: int) -> None:
    raise ValueError(f"card declined for {amount}")


def test_sync_function_span_is_named_by_qualname(telemetry: Telemetry) -> None:
    assert Basket().total([1, 2]) == 3

    [span] = telemetry.finished_spans()
    assert span.name == "Basket.total"
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes == {"code.function.name": f"{__name__}.Basket.total"}


async def test_async_function_with_name_and_attributes(telemetry: Telemetry) -> None:
    assert await Basket().checkout() == "paid"

    [span] = telemetry.finished_spans()
    assert span.name == "basket.checkout"
    assert span.attributes == {"code.function.name": f"{__name__}.Basket.checkout", "shop.tier": "gold"}


async def test_exception_is_recorded_and_reraised_unchanged(telemetry: Telemetry) -> None:
    with pytest.raises(ValueError, match="card declined for 5") as raised:
        await charge(5)

    [span] = telemetry.finished_spans()
    assert span.name == "charge"
    assert span.status.status_code is StatusCode.ERROR
    [event] = span.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"
    assert raised.type is ValueError


def test_nested_calls_are_parent_and_child(telemetry: Telemetry) -> None:
    @traced
    def outer() -> int:
        return Basket().total([4])

    assert outer() == 4

    inner, parent = telemetry.finished_spans()
    assert inner.parent is not None
    assert inner.parent.span_id == parent.context.span_id
    assert parent.name == "test_nested_calls_are_parent_and_child.<locals>.outer"
