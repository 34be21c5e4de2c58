"""Shared pieces of the benchmarks: a throw-away embedded PostgreSQL, discard exporters, CPU accounting, tables.

Every benchmark cleans up what it starts (servers, processes, temp dirs), on Ctrl-C and SIGTERM too."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricExporter, MetricExportResult
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from pgotel import db
from pgotel.exporter import DELTA_PREFERENCE

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
OTEL_CONFIG = REPO_ROOT / "otel-config.yaml"


# -- discard exporters ---------------------------------------------------------------------------


class DiscardSpanExporter(SpanExporter):
    """Accepts every batch and keeps nothing: the cost of recording, without the cost of storing.

    Counts what it was given (process-wide), so a benchmark can check that no span was dropped upstream."""

    received = 0

    def __init__(self, **_plugin_options: Any) -> None:
        pass

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        DiscardSpanExporter.received += len(spans)
        return SpanExportResult.SUCCESS


class DiscardLogExporter(LogRecordExporter):
    def __init__(self, **_plugin_options: Any) -> None:
        pass

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        return LogRecordExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def shutdown(self) -> None:
        pass


class DiscardMetricExporter(MetricExporter):
    """Cumulative temporality, as a stock OTel exporter prefers by default."""

    def __init__(self, preferred_temporality: dict[type, AggregationTemporality] | None = None) -> None:
        super().__init__(preferred_temporality=preferred_temporality)

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **_kwargs: Any) -> MetricExportResult:
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **_kwargs: Any) -> None:
        pass


class PgotelDiscardMetricExporter(DiscardMetricExporter):
    """Prefers the temporalities of pgotel's own metric exporter, so the SDK aggregates exactly as in mode (d)."""

    def __init__(self, **_plugin_options: Any) -> None:
        super().__init__(preferred_temporality=DELTA_PREFERENCE)


def swap_pgotel_exporters_for_discard() -> None:
    """Make the `pgotel` exporter plugins of otel-config.yaml resolve to discard exporters.

    The entry points name `pgotel.exporter:PostgresSpanExporter` (etc.); the configuration package loads
    them by attribute, so replacing the attributes swaps the exporters and nothing else: the same file,
    the same `pgotel.setup()`, the same processors, views and instrumentation."""
    import pgotel.exporter

    pgotel.exporter.PostgresSpanExporter = DiscardSpanExporter  # type: ignore[misc,assignment]
    pgotel.exporter.PostgresMetricExporter = PgotelDiscardMetricExporter  # type: ignore[misc,assignment]
    pgotel.exporter.PostgresLogExporter = DiscardLogExporter  # type: ignore[misc,assignment]


def discard_pgotel_rows_before_the_writer() -> None:
    """Make pgotel's writer accept every converted batch and keep nothing: the exporters still convert each
    span, log record and metric point to its row (their whole work in the exporting threads), but nothing is
    queued or written. Between (c) and (d), this splits what storing costs the app into converting and writing."""
    from pgotel.exporter._writer import TelemetryWriter

    def submit(self: TelemetryWriter, batch: object) -> bool:
        return True

    TelemetryWriter.submit = submit  # type: ignore[method-assign,assignment]


# -- processes, signals, temporary PostgreSQL ----------------------------------------------------


def app_environment(mode: str, dsn: str) -> dict[str, str]:
    """Environment of a benchmark app process: the real otel-config.yaml reads its DSN and token from here."""
    return {
        **os.environ,
        "BENCH_MODE": mode,
        "BENCH_DSN": dsn,
        "PGOTEL_DSN": dsn,
        "PGOTEL_DASHBOARD_TOKEN": "bench-dashboard-token",
        "OTEL_SERVICE_NAME": "bench",
        "PYTHONUNBUFFERED": "1",
    }


def exit_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so `finally` blocks clean up as on Ctrl-C."""

    def _raise(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _raise)


def run_benchmark(main: Callable[[], None]) -> None:
    """Run a benchmark's `main`: SIGTERM and Ctrl-C unwind through its `finally` blocks (which stop what it
    started), then exit 130 with one line instead of a traceback."""
    exit_on_sigterm()
    try:
        main()
    except KeyboardInterrupt:
        print("\ninterrupted; everything the benchmark started has been stopped", file=sys.stderr)
        sys.exit(130)


@contextlib.contextmanager
def uninterruptible() -> Iterator[None]:
    """Let a cleanup finish even if Ctrl-C is pressed again meanwhile."""
    previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    previous_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)


@contextlib.contextmanager
def temporary_postgres() -> Iterator[db.EmbeddedServer]:
    """An embedded PostgreSQL in a temp dir, stopped and deleted on exit (Ctrl-C included)."""
    data_dir = Path(tempfile.mkdtemp(prefix="pgotel-bench-pg-"))
    try:
        yield db.start_embedded(data_dir)
    finally:
        with uninterruptible():
            try:
                db.stop_embedded(data_dir)
            except Exception as exc:
                print(f"warning: stopping the benchmark PostgreSQL in {data_dir} failed: {exc}", file=sys.stderr)
            shutil.rmtree(data_dir, ignore_errors=True)


def stop_process(process: subprocess.Popen[Any], *, grace_s: float = 15.0) -> None:
    """SIGINT (graceful: lifespan shutdown flushes telemetry), then SIGKILL after `grace_s`; children too."""
    if process.poll() is not None:
        return
    with uninterruptible():
        try:
            children = psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=grace_s)
        except Exception:
            process.kill()
            process.wait(timeout=5)
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


def other_threads_cpu_seconds(pid: int) -> float:
    """CPU of every thread of process `pid` but its main one (whose id is `pid`): in a benchmark app, the
    SDK's batch workers and pgotel's writer, i.e. the export work."""
    return sum(thread.user_time + thread.system_time for thread in psutil.Process(pid).threads() if thread.id != pid)


def process_tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, its reaped children and its live descendants.

    A PostgreSQL backend that exits moves its CPU time into the postmaster's `children_*` counters, so the
    sum stays monotonic across connections coming and going."""
    root = psutil.Process(pid)
    times = root.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in root.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            child_times = child.cpu_times()
            total += child_times.user + child_times.system
    return total


def backend_cpu_seconds(postmaster_pid: int) -> dict[int, float]:
    """User + system CPU of each live PostgreSQL server process, by pid."""
    seconds = {}
    for child in psutil.Process(postmaster_pid).children():
        with contextlib.suppress(psutil.NoSuchProcess):
            times = child.cpu_times()
            seconds[child.pid] = times.user + times.system
    return seconds


# -- reporting -----------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float]) -> str:
    """min-max of the runs, to show the noise next to each median."""
    if len(values) < 2:
        return ""
    return f"{min(values):.0f}-{max(values):.0f}"


def machine_line() -> str:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
        f"{psutil.cpu_count()} CPUs (shared, noisy), load average {load}"
    )


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A Markdown table, so the output can be pasted into README.md as is."""
    widths = [max(len(headers[i]), *(len(row[i]) for row in rows)) for i in range(len(headers))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")
