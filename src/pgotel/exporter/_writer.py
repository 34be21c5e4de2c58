"""The telemetry writer: one private asyncio loop thread per process owning a `db.TelemetryStore` (asyncpg pool).

Exporters hand it converted rows through `submit()`, which never blocks and never touches the network:
rows wait in a bounded in-memory queue and a flush task COPYs them in batches. While PostgreSQL is
unreachable the queue absorbs the backlog and the writer reconnects with backoff; rows that overflow
the queue, that PostgreSQL rejects, or that are still queued or in flight when the shutdown deadline passes
are dropped and counted by reason, so every received item is either stored or counted.

Rows taken off the queue for a COPY are "in flight" until their outcome is counted: stored, dropped, or put
back at the head of the queue when the COPY fails or is cancelled. Whoever takes them off the books under the
lock counts them, exactly once: the writer when their COPY ends, or close() when its deadline passes while a
COPY hangs (a PostgreSQL that stopped answering); a COPY that ends after that counts nothing more."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import os
import random
import selectors
import ssl
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Coroutine
from typing import Any, NamedTuple, TypeVar

from opentelemetry import context as otel_context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

from pgotel import db
from pgotel.config import PgotelSettings
from pgotel.exporter._accounting import SIGNAL_OF_TABLE, Accounting, RateLimitedLog
from pgotel.exporter._rows import RowBatch

_T = TypeVar("_T")
_PARTITION_CHECK_INTERVAL_S = 3600.0
_PRUNE_INTERVAL_S = 86_400.0
_ROLLUP_INTERVAL_S = 10.0
_FUTURE_DAYS_ACCEPTED = 2
_STOP_GRACE_S = 0.1  # of close()'s deadline, kept from its flush for the writer thread to stop in


class _Outcome(NamedTuple):
    """What became of one table's in-flight rows: how many were stored, and which were left out."""

    stored: int
    outside_retention: int
    rejected: list[BaseException]


class TelemetryWriter:
    """Buffers rows and writes them to PostgreSQL from its own thread; see the module docstring."""

    def __init__(self, settings: PgotelSettings, accounting: Accounting | None = None) -> None:
        self.settings = settings
        self.accounting = accounting or Accounting()
        self._exporter = settings.exporter
        self._reset()
        # OpenSSL's one-time initialization of what a connection uses (TLS; SCRAM's PBKDF2 through hashlib),
        # here rather than in the writer thread's first connect: a process forked while another thread ran it
        # (gunicorn --preload right after setup()) hung in its own first SSL use (tests/exporter/test_fork.py).
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        hashlib.pbkdf2_hmac("sha256", b"", b"", 1)
        self._thread.start()

    def _reset(self) -> None:
        """This process's queues, loop and writer thread (not started)."""
        self._lock = threading.Lock()
        self._queue: dict[str, deque[db.Row]] = {table: deque() for table in db.PARTITIONED_TABLES}
        self._side: dict[str, dict[uuid.UUID, db.Row]] = {table: {} for table in db.SIDE_TABLES}
        self._queued = 0
        # Rows per table taken off the queue whose outcome is not counted yet: one batch per table at a time (the
        # drain lock), so each table's count is that batch's size or 0 (settled, requeued, or counted by close()).
        self._in_flight: Counter[str] = Counter()
        self._known_side: set[uuid.UUID] = set()
        self._side_day = db.utc_today()  # the UTC day `_known_side` was marked seen in the database
        self._known_days: set[int] = set()  # db.day_number of the partitions known to exist
        self._store: db.TelemetryStore | None = None
        self._connected = threading.Event()
        self._closing = False
        self._log = RateLimitedLog()
        self._selector = selectors.DefaultSelector()
        self._loop = asyncio.SelectorEventLoop(self._selector)
        self._wakeup = asyncio.Event()
        self._ready = asyncio.Event()  # set while connected; the loop-side twin of `_connected`
        # One drain at a time: a flush must not return while another drain's COPY is still in flight.
        self._drain_lock = asyncio.Lock()
        self._thread = threading.Thread(target=self._run, name="pgotel-writer", daemon=True)

    def restart_in_child(self) -> None:
        """After a fork: the parent's writer thread does not exist here, and its loop and pool are the parent's.
        They are kept, never run (dropping them would destroy their pending tasks, which asyncio logs as errors),
        and cut off from the parent's sockets. What the parent queued and counted is the parent's to store and
        report: the child starts empty, and its own thread (then pool) starts with its first rows, so a child
        that never exports (a `subprocess` pre-exec child, a worker of other code) costs nothing."""
        _INHERITED.append((self._loop, self._store))
        _detach_from_parent(self._selector)
        self.accounting.start_over()
        self._reset()

    # -- called from exporter threads ----------------------------------------------------------

    def submit(self, batch: RowBatch) -> bool:
        """Queue a converted batch; drop (and count) what does not fit. Never blocks."""
        with self._lock:
            closing = self._closing
            dropped = self._dropped_when_closing(batch) if closing else self._enqueue_locked(batch)
            wake = not closing and self._queued >= self._exporter.batch_rows
            if not closing and self._thread.ident is None:  # a forked child's first rows
                self._thread.start()
        for (signal, reason), count in dropped.items():  # outside the lock: counting a drop may log it
            self.accounting.dropped(signal, reason, count)
        if wake:
            with contextlib.suppress(RuntimeError):  # the loop is gone: rows wait, and overflow is counted
                self._loop.call_soon_threadsafe(self._wakeup.set)
        return not dropped

    @staticmethod
    def _dropped_when_closing(batch: RowBatch) -> Counter[tuple[str, str]]:
        return Counter({(SIGNAL_OF_TABLE[table], "writer_closed"): len(rows) for table, rows in batch.rows.items()})

    def _enqueue_locked(self, batch: RowBatch) -> Counter[tuple[str, str]]:
        """Queue what fits of `batch` (the lock held); return the overflow by (signal, reason)."""
        for table, side_rows in batch.side.items():
            pending = self._side[table]
            for row_id, row in side_rows.items():
                if row_id not in self._known_side:
                    pending[row_id] = row
        overflow: Counter[tuple[str, str]] = Counter()
        room = self._exporter.queue_rows - self._queued
        for table, rows in batch.rows.items():
            taken = rows if len(rows) <= room else rows[: max(room, 0)]
            if len(taken) < len(rows):
                overflow[(SIGNAL_OF_TABLE[table], "queue_full")] += len(rows) - len(taken)
            self._queue[table].extend(taken)
            room -= len(taken)
            self._queued += len(taken)
        return overflow

    def flush(self, timeout_s: float) -> bool:
        """Write everything queued so far; False when it could not within `timeout_s`."""
        if self._thread.ident is None:
            return True  # never started: nothing was ever queued
        if threading.current_thread() is self._thread or not self._thread.is_alive():
            return False
        future = asyncio.run_coroutine_threadsafe(self._untraced(self._drain_once_connected()), self._loop)
        try:
            return bool(future.result(timeout=timeout_s))
        except BaseException:  # timeout, loop gone, or a failure inside: the caller only needs "not flushed"
            future.cancel()
            return False

    def close(self, timeout_s: float) -> None:
        """Flush within the deadline, then stop; rows still queued or in flight are counted as dropped (a hung
        COPY may still store its rows afterwards: counted as dropped, never as lost)."""
        deadline = time.monotonic() + timeout_s
        # Rows wait for a connection too: a forked child's writer starts with its first rows, often at shutdown.
        if self._connected.is_set() or self.queued:
            self.flush(max(0.0, deadline - _STOP_GRACE_S - time.monotonic()))
        with self._lock:
            self._closing = True
        if self._thread.ident is None:  # a forked child that never had rows: its loop never ran
            self._loop.close()
        elif self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._wakeup.set)
            self._thread.join(max(0.0, deadline - time.monotonic()))
        unwritten: Counter[str] = Counter()
        with self._lock:
            for table, rows in self._queue.items():
                unwritten[SIGNAL_OF_TABLE[table]] += len(rows) + self._in_flight[table]
                rows.clear()
            self._queued = 0
            self._in_flight.clear()
        for signal, count in unwritten.items():
            self.accounting.dropped(signal, "shutdown_deadline", count)

    @property
    def queued(self) -> int:
        with self._lock:
            return self._queued

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # -- the writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._untraced(self._main()))
        finally:
            self._loop.close()

    @staticmethod
    async def _untraced(coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run `coroutine` with instrumentation suppressed: the writer's own queries are never traced."""
        token = otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            return await coroutine
        finally:
            otel_context.detach(token)

    async def _main(self) -> None:
        backoff = 0.1
        last_partitions = last_prune = last_rollup = 0.0
        while not self._closing:
            try:
                if self._store is None:
                    self._store = await self._connect()
                    backoff = 0.1
                    last_partitions = last_prune = time.monotonic()
                await self._drain()
                self._forget_side_rows_on_a_new_day()
                now = time.monotonic()
                if now - last_partitions >= _PARTITION_CHECK_INTERVAL_S:
                    await self._ensure_partitions(self._store)
                    last_partitions = now
                if now - last_prune >= _PRUNE_INTERVAL_S:
                    await self._prune(self._store)
                    last_prune = now
                if now - last_rollup >= _ROLLUP_INTERVAL_S:
                    await self._store.refresh_rollups()
                    last_rollup = now
                if self.queued < self._exporter.batch_rows:  # else a batch came during the drain: no sleep
                    await self._sleep(self._exporter.flush_interval_ms / 1000)
            except Exception as exc:
                self._log.warning("pgotel: PostgreSQL unavailable, buffering telemetry and retrying: %r", exc)
                await self._disconnect()
                await self._sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, self._exporter.connect_backoff_max_ms / 1000)
        await self._disconnect()

    def _forget_side_rows_on_a_new_day(self) -> None:
        """On a new UTC day the side rows in use are upserted again, which marks them seen that day: rows no
        writer uses any more expire (migration 0004)."""
        today = db.utc_today()
        if today != self._side_day:
            with self._lock:
                self._known_side.clear()
            self._side_day = today

    async def _sleep(self, seconds: float) -> None:
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout=seconds)

    async def _connect(self) -> db.TelemetryStore:
        store = await db.TelemetryStore.open(self.settings.database, timeout_s=5)
        try:
            await self._ensure_partitions(store)
            await self._prune(store)
        except BaseException:
            store.terminate()
            raise
        self._known_side.clear()
        self._connected.set()
        self._ready.set()
        return store

    async def _disconnect(self) -> None:
        self._connected.clear()
        self._ready.clear()
        store, self._store = self._store, None
        if store is not None:
            store.terminate()

    async def _ensure_partitions(self, store: db.TelemetryStore) -> None:
        ahead = self.settings.retention.partitions_ahead_days
        await store.ensure_partitions_around_today(days_ahead=ahead)
        today = db.day_number(db.utc_today())
        self._known_days.update(range(today - 1, today + ahead + 1))

    async def _prune(self, store: db.TelemetryStore) -> None:
        dropped = await store.prune(retention_days=self.settings.retention.days)
        self._known_days.difference_update(
            db.day_number(dt.datetime.strptime(name[-8:], "%Y%m%d").date()) for name in dropped
        )

    async def _drain_once_connected(self) -> bool:
        await self._ready.wait()
        return await self._drain()

    async def _drain(self) -> bool:
        """Write what is queued now. Raises on connection loss (rows are kept)."""
        async with self._drain_lock:
            store = self._store
            if store is None:
                return False
            await self._write_side_rows(store)
            await self._write_batches(store)
            return True

    async def _write_batches(self, store: db.TelemetryStore) -> None:
        """Write, in batches, as many rows as are queued when called: under a steady stream of rows the writer
        still returns to its periodic work (the rollups, partitions, the daily side-row refresh)."""
        with self._lock:  # per table: each table's rows queued now are the head of its queue
            left = {table: len(rows) for table, rows in self._queue.items()}
        while any(left.values()):
            with self._lock:
                work = {
                    table: [rows.popleft() for _ in range(min(len(rows), left[table], self._exporter.batch_rows))]
                    for table, rows in self._queue.items()
                    if rows and left[table]
                }
                self._queued -= sum(len(rows) for rows in work.values())
                self._in_flight.update({table: len(rows) for table, rows in work.items()})
            if not work:
                return
            for table, rows in work.items():
                left[table] -= len(rows)
            try:
                # A batch submitted after _drain() wrote the side rows is popped here too: write its series
                # first (submit() queues both under the lock), or the rollup refresh could take the points'
                # dirty minutes while their series is still missing and never roll them up.
                await self._write_side_rows(store)
                results = await asyncio.gather(
                    *(self._write_and_count(store, table, rows) for table, rows in work.items()),
                    return_exceptions=True,
                )
            finally:
                self._requeue_unsettled(work)
            failures = [result for result in results if result is not None]
            if failures:
                raise failures[0]

    def _requeue_unsettled(self, work: dict[str, list[db.Row]]) -> None:
        """Put the rows of `work` still in flight back at the head of the queue: their side rows or their COPY
        failed (and was rolled back), or the drain was cancelled (a flush that timed out) before or during it."""
        with self._lock:
            for table, rows in work.items():
                if self._settle_locked(table):
                    self._queue[table].extendleft(reversed(rows))
                    self._queued += len(rows)

    def _settle_locked(self, table: str) -> bool:
        """Take `table`'s in-flight rows off the books (the lock held); False when they are settled already.
        Whichever comes first settles them, once: the writer counting their outcome, a requeue, or close() counting
        them as dropped."""
        if not self._in_flight[table]:
            return False
        self._in_flight[table] = 0
        return True

    async def _write_side_rows(self, store: db.TelemetryStore) -> None:
        with self._lock:
            pending = {table: dict(rows) for table, rows in self._side.items() if rows}
        for table in db.SIDE_TABLES:
            rows = pending.get(table)
            if rows:
                await store.insert_side_rows(table, list(rows.values()))
                with self._lock:
                    for row_id in rows:
                        self._side[table].pop(row_id, None)
                    self._known_side.update(rows)

    async def _write_and_count(self, store: db.TelemetryStore, table: str, rows: list[db.Row]) -> None:
        outcome = await self._write_table(store, table, rows)
        with self._lock:
            if not self._settle_locked(table):
                return
        signal = SIGNAL_OF_TABLE[table]
        self.accounting.stored(signal, outcome.stored)
        self.accounting.dropped(signal, "timestamp_outside_retention", outcome.outside_retention)
        for error in outcome.rejected:
            self.accounting.dropped(signal, "rejected_by_database", error=error)

    async def _write_table(self, store: db.TelemetryStore, table: str, rows: list[db.Row]) -> _Outcome:
        """COPY in-flight `rows` (the caller counts the outcome, or puts them back in the queue if this raises)."""
        rejected: list[BaseException] = []
        kept = await self._rows_with_partitions(store, table, rows)
        stored = await self._copy_isolating_bad_rows(store, table, kept, rejected) if kept else 0
        return _Outcome(stored, len(rows) - len(kept), rejected)

    async def _rows_with_partitions(self, store: db.TelemetryStore, table: str, rows: list[db.Row]) -> list[db.Row]:
        """Create missing partitions inside the retention window; leave out the rows outside it.
        Days are compared as numbers: a nonsense timestamp is just a day far outside the window."""
        days = {row[0] // db.US_PER_DAY for row in rows}
        missing = days - self._known_days
        if not missing:
            return rows
        today = db.day_number(db.utc_today())
        first, last = today - self.settings.retention.days, today + _FUTURE_DAYS_ACCEPTED
        storable = {day for day in missing if first <= day <= last}
        if storable:
            await store.ensure_partitions(db.day_of(min(storable)), db.day_of(max(storable)))
            self._known_days.update(storable)
        rejected = missing - storable
        if not rejected:
            return rows
        return [row for row in rows if row[0] // db.US_PER_DAY not in rejected]

    async def _copy_isolating_bad_rows(
        self, store: db.TelemetryStore, table: str, rows: list[db.Row], rejected: list[BaseException]
    ) -> int:
        """COPY the rows and return how many were stored; if PostgreSQL rejects the data, bisect so that only the
        bad rows are left out, each one's error appended to `rejected`.

        A connection loss during the bisection re-queues the whole batch, so the part already stored
        may be written twice: a rare data error coinciding with an outage costs a duplicate, never a loss."""
        try:
            await store.copy_rows(table, rows)
            return len(rows)
        except Exception as exc:
            if not db.is_data_error(exc):
                raise
            if len(rows) == 1:
                rejected.append(exc)
                return 0
            middle = len(rows) // 2
            first = await self._copy_isolating_bad_rows(store, table, rows[:middle], rejected)
            return first + await self._copy_isolating_bad_rows(store, table, rows[middle:], rejected)


_shared_lock = threading.Lock()
_shared: TelemetryWriter | None = None
_users = 0
_INHERITED: list[object] = []  # a forked child's copies of its parent's writer loops and pools


def acquire_writer(settings: PgotelSettings) -> TelemetryWriter:
    """The process's writer, created on first use (and restarted in a forked child, see below)."""
    global _shared, _users
    with _shared_lock:
        if _shared is None:
            _shared = TelemetryWriter(settings)
            _shared.accounting.register_self_metrics()
        _users += 1
        return _shared


def flush_shared_writer(timeout_s: float) -> bool:
    """Write what the process's writer holds (the SDK's batch processors hand rows over but never wait
    for them to be stored); True when there is no writer in this process."""
    with _shared_lock:
        writer = _shared
    return True if writer is None else writer.flush(timeout_s)


def release_writer(writer: TelemetryWriter) -> None:
    """Called by each exporter's shutdown; the last one closes the writer within its deadline."""
    global _shared, _users
    with _shared_lock:
        if writer is not _shared:
            return
        _users -= 1
        if _users > 0:
            return
        _shared = None
    writer.close(writer.settings.exporter.shutdown_timeout_ms / 1000)


def _detach_from_parent(selector: selectors.BaseSelector) -> None:
    """Point a forked child's copies of the descriptors its parent's writer loop watches (the pool's sockets, the
    loop's wake-up pipe) at /dev/null: an inherited connection finalized in the child then neither unregisters the
    parent's socket from the epoll set both processes share nor ends the parent's session."""
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for key in selector.get_map().values():
            os.dup2(null, key.fd, inheritable=False)
    finally:
        os.close(null)


def _restart_writer_in_child() -> None:
    """`gunicorn --preload`, multiprocessing: exporters created before a fork keep working in the child. The
    SDK restarts its batch workers after a fork; this restarts the writer they hand rows to."""
    global _shared_lock
    _shared_lock = threading.Lock()  # a thread of the parent may have held it at the fork
    if _shared is not None:
        _shared.restart_in_child()


os.register_at_fork(after_in_child=_restart_writer_in_child)
