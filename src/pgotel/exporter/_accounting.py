"""Counts of what the exporters stored, sanitized and dropped (by reason), and their self-metrics.

A drop is also logged (logger `pgotel.exporter`, one line per signal and reason every 30 s at most): the self-metrics
cannot reach PostgreSQL while it is unreachable, nor after shutdown, nor with the host's clock far off."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

SIGNAL_OF_TABLE = {
    "spans": "spans",
    "logs": "logs",
    "metric_points": "metric_points",
    "histogram_points": "metric_points",
    "exp_histogram_points": "metric_points",
}


_log = logging.getLogger("pgotel.exporter")
# Why items were dropped, as the log line says it (a reason not listed here is printed as is).
_DROP_EXPLANATIONS = {
    "queue_full": "the writer's queue (pgotel.exporter.queue_rows) is full: PostgreSQL is unreachable or too slow",
    "shutdown_deadline": "the process shut down before PostgreSQL took them",
    "writer_closed": "they arrived after the writer closed",
    "timestamp_outside_retention": "their timestamps are outside the retention window: is this host's clock right?",
    "rejected_by_database": "PostgreSQL rejected them",
    "conversion_error": "converting them failed, a pgotel defect",
    "unconvertible": "they lack what a row needs (a span without a context, a metric of no known data type)",
    "malformed_batch": "the SDK handed over something that is not a batch of its items",
    "exporter_shut_down": "they arrived after the exporter shut down",
}


class RateLimitedLog:
    """Logs a warning at most once every `interval_s` seconds per key (the message itself by default)."""

    def __init__(self, interval_s: float = 30.0) -> None:
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}

    def warning(self, message: str, *args: object, key: str | None = None) -> None:
        now = time.monotonic()
        key = message if key is None else key
        with self._lock:
            if now - self._last.get(key, -math.inf) < self._interval_s:
                return
            self._last[key] = now
        _log.warning(message, *args)


class Accounting:
    """Thread-safe counters, keyed by (signal, reason). Every item an exporter receives ends up in
    exactly one of `stored` or `dropped`, so `received == stored + dropped` once the queue is empty."""

    def __init__(self) -> None:
        self.start_over()

    def start_over(self) -> None:
        """Zero counts (a forked child's: its parent reports what it counted itself)."""
        self._lock = threading.Lock()
        self._received: Counter[str] = Counter()
        self._stored: Counter[str] = Counter()
        self._dropped: Counter[tuple[str, str]] = Counter()
        self._sanitized: Counter[tuple[str, str]] = Counter()
        self._log = RateLimitedLog()

    def received(self, signal: str, count: int) -> None:
        with self._lock:
            self._received[signal] += count

    def stored(self, signal: str, count: int) -> None:
        if not count:
            return
        with self._lock:
            self._stored[signal] += count

    def dropped(self, signal: str, reason: str, count: int = 1, *, error: BaseException | None = None) -> None:
        """Count `count` dropped items and log it (with `error`, if given) unless this signal's drops for this
        reason were logged lately."""
        if not count:
            return
        with self._lock:
            self._dropped[(signal, reason)] += count
            total = self._dropped[(signal, reason)]
        self._log.warning(
            "pgotel: %d %s dropped (%s, %d so far): %s%s",
            count, signal, reason, total, _DROP_EXPLANATIONS.get(reason, reason),
            f": {error!r}" if error is not None else "",
            key=f"{signal}/{reason}",
        )  # fmt: skip

    def sanitized(self, signal: str, reason: str, count: int = 1) -> None:
        with self._lock:
            self._sanitized[(signal, reason)] += count

    def snapshot(self) -> dict[str, dict[str, int]]:
        """{"received": {signal: n}, "stored": {...}, "dropped": {"signal/reason": n}, "sanitized": {...}}."""
        with self._lock:
            return {
                "received": dict(self._received),
                "stored": dict(self._stored),
                "dropped": {f"{signal}/{reason}": n for (signal, reason), n in self._dropped.items()},
                "sanitized": {f"{signal}/{reason}": n for (signal, reason), n in self._sanitized.items()},
            }

    def dropped_total(self, signal: str) -> int:
        with self._lock:
            return sum(n for (sig, _), n in self._dropped.items() if sig == signal)

    def register_self_metrics(self) -> None:
        """Expose the counters as OTel observable counters (`pgotel.exporter.*`) on the global meter."""
        meter = metrics.get_meter("pgotel.exporter")
        meter.create_observable_counter(
            "pgotel.exporter.dropped",
            [self._observe_dropped],
            unit="{item}",
            description="Items dropped, by reason",
        )
        meter.create_observable_counter(
            "pgotel.exporter.sanitized",
            [self.observe_sanitized],
            unit="{item}",
            description="Values sanitized",
        )
        meter.create_observable_counter(
            "pgotel.exporter.stored", [self._observe_stored], unit="{item}", description="Items stored"
        )

    def _observe_dropped(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self._dropped.items())
        return [Observation(n, {"signal": signal, "reason": reason}) for (signal, reason), n in items]

    def observe_sanitized(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self._sanitized.items())
        return [Observation(n, {"signal": signal, "reason": reason}) for (signal, reason), n in items]

    def _observe_stored(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self._stored.items())
        return [Observation(n, {"signal": signal}) for signal, n in items]
