"""PostgreSQL down at startup, stopped under load, crashed, hung, or gone at shutdown: the app never notices,
and every span is either stored (for good) or counted as dropped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

from pgotel import db
from pgotel.db._embedded import pgdata_of
from pgotel.exporter import PostgresSpanExporter, TelemetryWriter

from .conftest import finished_spans, settings_for

_OUTAGE_S = 20.0
_SPANS_PER_S = 200


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _unreachable_dsn() -> str:
    """A DSN nothing listens on: PostgreSQL gone for the whole test."""
    return f"postgresql://nobody@127.0.0.1:{_free_port()}/none"


async def _wait_until(predicate: object, *, seconds: float) -> bool:
    for _ in range(int(seconds * 10)):
        if predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.1)
    return False


def _export_to_own_server(
    data_dir: Path, port: int, *, schedule_delay_millis: int
) -> tuple[db.EmbeddedServer, PostgresSpanExporter, TracerProvider]:
    """An embedded server for this test alone (it stops and starts it), and a provider exporting spans to it."""
    server = db.start_embedded(data_dir, port=port)
    exporter = PostgresSpanExporter(settings=settings_for(server.dsn))
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=schedule_delay_millis))
    return server, exporter, provider


async def test_postgres_stopped_under_load_loses_nothing(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "outage-pg", _free_port()
    server, exporter, provider = _export_to_own_server(data_dir, port, schedule_delay_millis=200)
    tracer = provider.get_tracer("load")
    emitted = 0
    stop = threading.Event()

    def produce() -> None:
        nonlocal emitted
        while not stop.is_set():
            for _ in range(_SPANS_PER_S // 10):
                with tracer.start_as_current_span("request"):
                    pass
                emitted += 1
            stop.wait(0.1)

    producer = threading.Thread(target=produce)
    try:
        assert await _wait_until(lambda: exporter.writer.connected, seconds=30)
        producer.start()
        await asyncio.sleep(2)
        db.stop_embedded(data_dir)
        await asyncio.sleep(_OUTAGE_S)
        assert not exporter.writer.connected
        db.start_embedded(data_dir, port=port)
        await asyncio.sleep(2)
        stop.set()
        producer.join()
        assert provider.force_flush(30_000)
        assert exporter.force_flush(30_000)
        conn = await asyncpg.connect(server.dsn)
        try:
            stored = await conn.fetchval("SELECT count(*) FROM pgotel.spans")
        finally:
            await conn.close()
        counts = exporter.writer.accounting.snapshot()
        assert emitted > _SPANS_PER_S * _OUTAGE_S
        assert counts["received"]["spans"] == emitted
        assert stored == emitted - exporter.writer.accounting.dropped_total("spans")
        assert counts["dropped"] == {}  # the queue holds a 20 s outage at this rate
        assert counts["stored"]["spans"] == stored
    finally:
        stop.set()
        provider.shutdown()
        db.stop_embedded(data_dir)


async def test_spans_counted_as_stored_survive_a_server_crash(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "crash-pg", _free_port()
    server, exporter, provider = _export_to_own_server(data_dir, port, schedule_delay_millis=100)
    tracer = provider.get_tracer("crash")
    try:
        for _ in range(500):
            with tracer.start_as_current_span("request"):
                pass
        assert provider.force_flush(30_000)
        assert exporter.force_flush(30_000)
        stored = exporter.writer.accounting.snapshot()["stored"]["spans"]
        # SIGQUIT is PostgreSQL's immediate shutdown: no checkpoint, and WAL not yet written is lost.
        os.kill(server.pid, signal.SIGQUIT)
        assert await _wait_until(lambda: not (pgdata_of(data_dir) / "postmaster.pid").exists(), seconds=30)
        restarted = db.start_embedded(data_dir, port=port)  # crash recovery replays the WAL
        conn = await asyncpg.connect(restarted.dsn)
        try:
            assert await conn.fetchval("SELECT count(*) FROM pgotel.spans") == stored == 500
        finally:
            await conn.close()
    finally:
        provider.shutdown()
        db.stop_embedded(data_dir)


@contextlib.contextmanager
def _exporter_to_own_server(
    data_dir: Path, **exporter: int
) -> Iterator[tuple[db.EmbeddedServer, PostgresSpanExporter]]:
    """An embedded server for this test alone and a span exporter (with `exporter` settings) writing to it, both
    stopped at the end."""
    server = db.start_embedded(data_dir, port=_free_port())
    span_exporter = PostgresSpanExporter(settings=settings_for(server.dsn, exporter=exporter))
    try:
        yield server, span_exporter
    finally:
        span_exporter.shutdown()
        db.stop_embedded(data_dir)


def _server_processes(postmaster: int) -> list[int]:
    children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
    return [postmaster, *map(int, children)]


@pytest.mark.parametrize("hanging", ["flush", "writer"])
def test_a_hung_server_bounds_flush_and_shutdown_and_every_span_is_counted(tmp_path: Path, hanging: str) -> None:
    """A PostgreSQL that stops answering mid-COPY (frozen, or a network that drops packets): flushes time out,
    shutdown keeps its deadline, and counts the rows of the COPY that hangs, whichever drain started it."""
    # Whose COPY hangs: the flush's (the writer's own drains wait a minute), or the writer's own (every 20 ms).
    interval_ms = 60_000 if hanging == "flush" else 20
    own_server = _exporter_to_own_server(tmp_path / "hung-pg", flush_interval_ms=interval_ms, shutdown_timeout_ms=500)
    with own_server as (server, exporter):
        writer: TelemetryWriter = exporter.writer
        frozen: list[int] = []
        try:
            exporter.export(finished_spans(*["before"] * 20))
            assert exporter.force_flush(30_000)
            time.sleep(1)  # the writer's first rollup refresh, which follows its first rows, is done long before
            frozen = _server_processes(server.pid)
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
            exporter.export(finished_spans(*["hung"] * 30))
            if hanging == "flush":
                assert not exporter.force_flush(500)  # its COPY stays in flight: asyncpg waits for the server to unwind
            else:
                assert asyncio.run(_wait_until(lambda: writer.queued == 0, seconds=10)), "the writer's COPY took them"
            finisher = threading.Thread(target=exporter.shutdown)
            finisher.start()
            finisher.join(timeout=30)
            assert not finisher.is_alive(), "shutdown must return while PostgreSQL hangs"
            counts = writer.accounting.snapshot()
            assert counts["received"] == {"spans": 50}
            assert counts["stored"] == {"spans": 20}
            assert counts["dropped"] == {"spans/shutdown_deadline": 30}
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)


async def _every_span_stored_once(exporter: PostgresSpanExporter, spans: int) -> None:
    """The next flush stores every span exported, requeued ones included, each counted once."""
    assert await asyncio.to_thread(exporter.force_flush, 30_000)
    counts = exporter.writer.accounting.snapshot()
    assert counts == {"received": {"spans": spans}, "stored": {"spans": spans}, "dropped": {}, "sanitized": {}}


async def test_a_flush_that_times_out_behind_a_lock_loses_nothing(tmp_path: Path) -> None:
    """A flush that times out while its COPY waits (here for a lock) is cancelled: its rows go back to the queue
    and are stored once the table is free, each counted once."""
    with _exporter_to_own_server(tmp_path / "locked-pg", flush_interval_ms=60_000) as (server, exporter):
        conn = await asyncpg.connect(server.dsn)
        try:
            exporter.export(finished_spans(*["before"] * 20))
            assert exporter.force_flush(30_000)
            locked = conn.transaction()
            await locked.start()
            await conn.execute("LOCK TABLE pgotel.spans IN ACCESS EXCLUSIVE MODE")
            exporter.export(finished_spans(*["behind the lock"] * 30))
            assert not await asyncio.to_thread(exporter.force_flush, 500)
            queued_again = await _wait_until(lambda: exporter.writer.queued == 30, seconds=10)
            assert queued_again, "the cancelled COPY's rows are queued again"
            await locked.rollback()
            await _every_span_stored_once(exporter, 50)
            assert await conn.fetchval("SELECT count(*) FROM pgotel.spans") == 50
        finally:
            await conn.close()


async def test_a_drain_cancelled_before_its_copies_start_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """flush() cancels its drain from another thread when it times out; the cancel may land after the drain took
    rows off the queue and before the tasks that COPY them took their first step: they never run, and the rows
    must still go back to the queue."""
    with _exporter_to_own_server(tmp_path / "cancel-pg", flush_interval_ms=60_000) as (_, exporter):
        writer: TelemetryWriter = exporter.writer
        write_side_rows = writer._write_side_rows
        calls_left_before_the_cancel: list[int] = []

        async def side_rows_then_cancel(store: db.TelemetryStore) -> None:
            await write_side_rows(store)
            if calls_left_before_the_cancel and calls_left_before_the_cancel.pop() == 0:
                # The drain's second call comes after it took its rows, just before their COPY tasks are created.
                task = asyncio.current_task()
                assert task is not None
                asyncio.get_running_loop().call_soon(task.cancel)  # as flush()'s future.cancel() schedules it

        monkeypatch.setattr(writer, "_write_side_rows", side_rows_then_cancel)
        exporter.export(finished_spans(*["before"] * 20))
        assert exporter.force_flush(30_000)
        calls_left_before_the_cancel[:] = [0, 1]  # popped from the end: the first call passes, the second cancels
        exporter.export(finished_spans(*["cancelled"] * 30))
        assert not await asyncio.to_thread(exporter.force_flush, 30_000)
        assert await _wait_until(lambda: writer.queued == 30, seconds=10), "the cancelled drain's rows are queued again"
        await _every_span_stored_once(exporter, 50)


def test_unreachable_at_startup_export_succeeds_and_shutdown_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_for(_unreachable_dsn(), exporter={"shutdown_timeout_ms": 500})
    exporter = PostgresSpanExporter(settings=settings)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=50))
    tracer = provider.get_tracer("unreachable")
    for _ in range(25):
        with tracer.start_as_current_span("request"):
            pass
    writer: TelemetryWriter = exporter.writer
    provider.force_flush(5_000)  # hands every span to the exporter, which queues them
    assert not exporter.force_flush(300)
    assert writer.queued == 25
    finisher = threading.Thread(target=provider.shutdown)
    finisher.start()
    finisher.join(timeout=30)
    assert not finisher.is_alive(), "shutdown must return even though PostgreSQL never answered"
    counts = writer.accounting.snapshot()
    assert counts["received"]["spans"] == 25
    assert counts["dropped"] == {"spans/shutdown_deadline": 25}
    assert "25 spans dropped (shutdown_deadline, 25 so far): the process shut down before PostgreSQL" in caplog.text


def test_shutdown_budgets_its_flush_and_the_writer_thread_stop_within_one_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The flush gets the deadline minus a grace for the writer thread to stop, and the stop gets what is left:
    a flush that uses its whole budget (PostgreSQL gone) no longer pushes shutdown past the deadline."""
    settings = settings_for(_unreachable_dsn(), exporter={"shutdown_timeout_ms": 500})
    exporter = PostgresSpanExporter(settings=settings)
    writer: TelemetryWriter = exporter.writer
    exporter.export(finished_spans("queued"))
    budgets: dict[str, float] = {}

    def flush_using_its_whole_budget(timeout_s: float) -> bool:
        budgets["flush"] = timeout_s
        time.sleep(timeout_s)
        return False

    join = writer._thread.join

    def recorded_join(timeout: float | None = None) -> None:
        budgets["join"] = timeout if timeout is not None else float("inf")
        join(timeout)

    monkeypatch.setattr(writer, "flush", flush_using_its_whole_budget)
    monkeypatch.setattr(writer._thread, "join", recorded_join)
    exporter.shutdown()
    assert 0 < budgets["flush"] < 0.5
    assert budgets["flush"] + budgets["join"] <= 0.5
    assert writer.accounting.snapshot()["dropped"] == {"spans/shutdown_deadline": 1}


def test_a_full_queue_drops_and_counts_the_overflow_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_for(
        _unreachable_dsn(),
        exporter={"queue_rows": 100, "shutdown_timeout_ms": 200},
    )
    exporter = PostgresSpanExporter(settings=settings)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("overflow")
    try:
        for _ in range(250):
            with tracer.start_as_current_span("request"):
                pass  # never blocks nor raises, whatever the queue holds

        assert exporter.writer.queued == 100
        assert exporter.writer.accounting.snapshot()["dropped"] == {"spans/queue_full": 150}
        warnings = [r.getMessage() for r in caplog.records if "queue_full" in r.getMessage()]
        assert warnings == [
            "pgotel: 1 spans dropped (queue_full, 1 so far): the writer's queue (pgotel.exporter.queue_rows) is "
            "full: PostgreSQL is unreachable or too slow"
        ], "one line per reason every 30 s, not one per dropped batch"
    finally:
        provider.shutdown()
