"""A bounded traffic generator: a few paced workers sending a realistic mix of requests to the demo app."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from pgotel.demo._app import ITEM_COUNT

# A small set of order ids, so that the Redis cache sees both hits and (after its TTL) misses.
ORDER_IDS = tuple(uuid.uuid5(uuid.NAMESPACE_URL, f"pgotel-demo-order-{n}") for n in range(40))


@dataclass(frozen=True)
class DemoRequest:
    method: str
    path: str
    json: dict[str, Any] | None = None


@dataclass
class TrafficReport:
    """What the generator sent: responses by status code, and requests that got no response."""

    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0

    @property
    def sent(self) -> int:
        return sum(self.statuses.values()) + self.transport_errors

    def summary(self) -> str:
        classes = Counter(f"{status // 100}xx" for status in self.statuses.elements())
        parts = [f"{count} {name}" for name, count in sorted(classes.items())]
        if self.transport_errors:
            parts.append(f"{self.transport_errors} without response")
        return f"{self.sent} requests ({', '.join(parts) or 'none'})"


def _health(rng: random.Random) -> DemoRequest:
    return DemoRequest("GET", "/api/health")


def _list_items(rng: random.Random) -> DemoRequest:
    return DemoRequest("GET", f"/api/items?limit={rng.choice((10, 20, 50))}")


def _get_item(rng: random.Random) -> DemoRequest:
    # About one in ten ids does not exist: a 404 from the handler.
    return DemoRequest("GET", f"/api/items/{rng.randint(1, ITEM_COUNT + ITEM_COUNT // 10)}")


def _get_order(rng: random.Random) -> DemoRequest:
    return DemoRequest("GET", f"/api/orders/{rng.choice(ORDER_IDS)}")


def _checkout(rng: random.Random) -> DemoRequest:
    quantity = rng.choice((1, 1, 2, 3, 0))  # 0: a 422 from the handler
    return DemoRequest("POST", "/api/checkout", {"item_id": rng.randint(1, ITEM_COUNT), "quantity": quantity})


def _invalid_checkout(rng: random.Random) -> DemoRequest:
    return DemoRequest("POST", "/api/checkout", {"item_id": "not-a-number"})


def _slow_report(rng: random.Random) -> DemoRequest:
    return DemoRequest("GET", "/api/reports/slow")


def _capture_payment(rng: random.Random) -> DemoRequest:
    return DemoRequest("POST", f"/api/payments/{rng.randint(1, 10_000)}/capture")


def _unmatched(rng: random.Random) -> DemoRequest:
    # Paths no route matches: the dashboard shows them normalized (/api/v1/users/:id, /files/:hash).
    return rng.choice(
        (
            DemoRequest("GET", f"/api/v1/users/{rng.randint(1, 5000)}"),
            DemoRequest("GET", f"/api/v1/sessions/{uuid.UUID(int=rng.getrandbits(128), version=4)}"),
            DemoRequest("GET", f"/files/{rng.getrandbits(160):040x}"),
        )
    )


TRAFFIC_MIX: tuple[tuple[Callable[[random.Random], DemoRequest], int], ...] = (
    (_health, 20),
    (_list_items, 10),
    (_get_item, 20),
    (_get_order, 20),
    (_checkout, 8),
    (_invalid_checkout, 2),
    (_slow_report, 8),
    (_capture_payment, 6),
    (_unmatched, 6),
)


async def generate_traffic(
    base_url: str, stop: asyncio.Event, *, rate_per_s: float, workers: int = 4, seed: int | None = None
) -> TrafficReport:
    """Send the mix at about `rate_per_s` requests/s in all until `stop` is set; in-flight requests finish."""
    report = TrafficReport()
    rng = random.Random(seed)
    factories = [factory for factory, _ in TRAFFIC_MIX]
    weights = [weight for _, weight in TRAFFIC_MIX]
    interval = workers / rate_per_s
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:

        async def worker(offset: float) -> None:
            next_at = time.monotonic() + offset
            while not stop.is_set():
                delay = next_at - time.monotonic()
                if delay > 0:
                    try:
                        await asyncio.wait_for(stop.wait(), timeout=delay)
                        return
                    except TimeoutError:
                        pass
                # A slow response delays this worker; it does not make it burst afterwards.
                next_at = max(next_at + interval, time.monotonic())
                request = rng.choices(factories, weights)[0](rng)
                try:
                    response = await client.request(request.method, request.path, json=request.json)
                    report.statuses[response.status_code] += 1
                except httpx.HTTPError:
                    report.transport_errors += 1

        await asyncio.gather(*(worker(n * interval / workers) for n in range(workers)))
    return report
