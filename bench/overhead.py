"""Throughput and latency of one FastAPI app under wrk, in six instrumentation modes, side by side.

Each mode runs in its own uvicorn process (1 worker, loopback, no access log) against one embedded
PostgreSQL started in a temp dir. The app runs on a CPU of its own, and wrk, PostgreSQL and this script on
the others, as clients and a database run beside a server's app in production: left to share two vCPUs,
the scheduler moves the app's request thread between them whenever PostgreSQL or wrk wakes up, and the
request thread then runs 5-15% slower per request, by an amount that differs from mode to mode
(`--shared-cpus` measures that layout). Every round starts a fresh process per mode and stops them all at its
end: two processes of the same code can serve up to ±5% apart for their whole life (seen with the CPUs
shared; a fixed hash seed did not remove it), so one process per mode for a whole run would bias every ratio
by that lottery; with fresh ones each round, it is one more noise the median over the rounds sees through.
A round loads each mode in turn on one endpoint (after a warm-up), in an order rotated from round to round;
the shared machine's speed drifts within minutes, so a ratio between two modes is taken per round (from
runs seconds apart) and its median over the rounds is printed, next to the medians of req/s, latency and
the CPU that the app and the PostgreSQL server processes spent per request.

    .venv/bin/python bench/overhead.py            # 7 rounds x 6 s per mode and endpoint (~11 min)
    .venv/bin/python bench/overhead.py --quick    # 1 round x 3 s
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from _support import (
    BENCH_DIR,
    app_environment,
    backend_cpu_seconds,
    machine_line,
    median,
    other_threads_cpu_seconds,
    print_table,
    process_tree_cpu_seconds,
    run_benchmark,
    stop_process,
    temporary_postgres,
    uninterruptible,
)
from bench_app import ALL_MODES, DIAGNOSTIC_MODES, MODES, TELEMETRY_CONNECTIONS

from pgotel import db

ENDPOINTS = ("/trivial", "/db")
_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


@dataclass
class Run:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    postgres_cpu_s: float
    telemetry_postgres_cpu_s: float  # of which the backends of the connections that store the telemetry
    app_cpu_s: float
    background_cpu_s: float  # the app's threads other than the request (event loop) thread


@dataclass
class Results:
    runs: dict[tuple[str, str], list[Run]] = field(default_factory=dict)

    def add(self, mode: str, endpoint: str, run: Run) -> None:
        self.runs.setdefault((mode, endpoint), []).append(run)

    def median_of(self, mode: str, endpoint: str, attribute: str) -> float:
        return median([getattr(run, attribute) for run in self.runs.get((mode, endpoint), [])])


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit(
            "bench/overhead.py needs the `wrk` load generator: apt-get install -y wrk (or brew install wrk)"
        )
    return wrk


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class CpuLayout:
    """Which CPUs the apps run on and which the load generator, PostgreSQL and this script run on."""

    app: frozenset[int]
    load: frozenset[int]

    @classmethod
    def choose(cls, *, shared: bool) -> CpuLayout:
        cpus = sorted(os.sched_getaffinity(0))
        if shared or len(cpus) < 2:
            return cls(frozenset(cpus), frozenset(cpus))
        return cls(frozenset(cpus[:1]), frozenset(cpus[1:]))

    def describe(self) -> str:
        if self.app == self.load:
            return f"app, wrk and PostgreSQL sharing CPUs {_cpu_list(self.app)}"
        return f"app on CPU {_cpu_list(self.app)}, wrk and PostgreSQL on CPU {_cpu_list(self.load)}"

    @contextlib.contextmanager
    def for_apps(self) -> Iterator[None]:
        """Processes started inside run on the app CPUs (a child inherits its parent's CPUs)."""
        previous = os.sched_getaffinity(0)
        os.sched_setaffinity(0, self.app)
        try:
            yield
        finally:
            os.sched_setaffinity(0, previous)


def _cpu_list(cpus: frozenset[int]) -> str:
    return ",".join(str(cpu) for cpu in sorted(cpus))


def start_app(mode: str, dsn: str, port: int, workdir: Path, cpus: CpuLayout) -> subprocess.Popen[bytes]:
    env = app_environment(mode, dsn)
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "bench_app:app_from_environment", "--app-dir", str(BENCH_DIR),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    # Own session: Ctrl-C reaches only this script, which then stops the app gracefully (telemetry flushed).
    with cpus.for_apps():
        return subprocess.Popen(command, env=env, cwd=workdir, start_new_session=True, stdin=subprocess.DEVNULL)


def wait_until_serving(process: subprocess.Popen[bytes], port: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the benchmark app exited with status {process.returncode} before serving")
        try:
            for endpoint in ENDPOINTS:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{endpoint}", timeout=2) as response:
                    response.read()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the benchmark app did not serve on port {port} within {timeout_s:.0f} s")


def run_wrk(wrk: str, url: str, *, seconds: float, connections: int) -> dict[str, Any]:
    command = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", url]
    output = subprocess.run(command, check=True, capture_output=True, text=True, timeout=seconds + 60).stdout
    return parse_wrk(output)


def _duration_s(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(match.group(1)) * _UNITS_S[match.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if not (rate and total and p50 and p99):
        raise ValueError(f"cannot parse wrk output:\n{output}")
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    error_count = int(errors.group(1)) if errors else 0
    if socket_errors:
        error_count += sum(int(group) for group in socket_errors.groups())
    return {
        "requests_per_s": float(rate.group(1)),
        "requests": int(total.group(1)),
        "p50_ms": _duration_s(p50.group(1)) * 1000,
        "p99_ms": _duration_s(p99.group(1)) * 1000,
        "errors": error_count,
    }


def backend_pids(dsn: str, application_name: str) -> set[int]:
    """The server processes of the connections named `application_name` (asked after a measurement, on a
    connection of its own whose backend is not one of them)."""

    async def query() -> set[int]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE application_name = $1", application_name)
        finally:
            await conn.close()
        return {row["pid"] for row in rows}

    return asyncio.run(query())


def measure(
    app: subprocess.Popen[bytes], url: str, *, mode: str, wrk: str, server: db.EmbeddedServer, args: argparse.Namespace
) -> Run:
    run_wrk(wrk, url, seconds=args.warmup, connections=args.connections)
    postgres_before = process_tree_cpu_seconds(server.pid)
    backends_before = backend_cpu_seconds(server.pid)
    app_before = process_tree_cpu_seconds(app.pid)
    background_before = other_threads_cpu_seconds(app.pid)
    figures = run_wrk(wrk, url, seconds=args.duration, connections=args.connections)
    postgres_after = process_tree_cpu_seconds(server.pid)
    backends_after = backend_cpu_seconds(server.pid)
    telemetry = backend_pids(server.dsn, TELEMETRY_CONNECTIONS[mode]) if mode in TELEMETRY_CONNECTIONS else set()
    return Run(
        postgres_cpu_s=postgres_after - postgres_before,
        # A telemetry connection opened during the measurement counts from its start; one closed during it
        # is missed (pools keep their connections: none closes within a run).
        telemetry_postgres_cpu_s=sum(
            backends_after[pid] - backends_before.get(pid, 0.0) for pid in telemetry & backends_after.keys()
        ),
        app_cpu_s=process_tree_cpu_seconds(app.pid) - app_before,
        background_cpu_s=other_threads_cpu_seconds(app.pid) - background_before,
        **figures,
    )


def run_round(
    round_number: int,
    order: list[str],
    *,
    server: db.EmbeddedServer,
    wrk: str,
    workdir: Path,
    cpus: CpuLayout,
    results: Results,
    args: argparse.Namespace,
) -> None:
    """Start a fresh app per mode, load each in `order` on each endpoint, then stop them all."""
    apps: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        for mode in order:
            port = free_port()
            apps[mode] = (start_app(mode, server.dsn, port, workdir, cpus), port)
        for app, port in apps.values():
            wait_until_serving(app, port)
        for endpoint in ENDPOINTS:
            for mode in order:
                app, port = apps[mode]
                run = measure(app, f"http://127.0.0.1:{port}{endpoint}", mode=mode, wrk=wrk, server=server, args=args)
                results.add(mode, endpoint, run)
                print(
                    f"round {round_number + 1}/{args.rounds} {mode:<15} {endpoint:<8} "
                    f"{run.requests_per_s:8,.0f} req/s  p50 {run.p50_ms:6.2f} ms  "
                    f"p99 {run.p99_ms:6.2f} ms  PG CPU {run.postgres_cpu_s * 1000:7.0f} ms",
                    flush=True,
                )
    finally:
        for app, _ in apps.values():
            stop_process(app)


def _rate(run: Run) -> float:
    return run.requests_per_s


def _capacity(run: Run) -> float:
    """Requests per app-CPU-second: what req/s would be on an idle core."""
    return run.requests / run.app_cpu_s


def report(results: Results, args: argparse.Namespace, cpus: CpuLayout) -> None:
    modes = [mode for mode in ALL_MODES if (mode, ENDPOINTS[0]) in results.runs]  # those measured (--modes)
    for endpoint in ENDPOINTS:
        base = results.median_of("none", endpoint, "requests_per_s")
        print(f"\n### `GET {endpoint}`\n")
        rows = []
        for mode in modes:
            runs = results.runs.get((mode, endpoint), [])
            rates = [run.requests_per_s for run in runs]
            rate = median(rates)
            postgres_ms = median([run.postgres_cpu_s / run.requests * 1e6 for run in runs])
            telemetry_ms = median([run.telemetry_postgres_cpu_s / run.requests * 1e6 for run in runs])
            app_us = median([run.app_cpu_s / run.requests * 1e6 for run in runs])
            background_us = median([run.background_cpu_s / run.requests * 1e6 for run in runs])
            errors = sum(run.errors for run in runs)
            rows.append(
                [
                    ALL_MODES[mode],
                    f"{rate:,.0f}",
                    f"{min(rates):,.0f}-{max(rates):,.0f}",
                    f"{rate / base:.2f}",
                    f"{results.median_of(mode, endpoint, 'p50_ms'):.2f}",
                    f"{results.median_of(mode, endpoint, 'p99_ms'):.2f}",
                    f"{app_us:,.0f}",
                    f"{background_us:,.1f}",
                    f"{postgres_ms:,.0f}",
                    f"{telemetry_ms:,.1f}" if mode in TELEMETRY_CONNECTIONS else "",
                    str(errors),
                ]
            )
        print_table(
            [
                "mode",
                "req/s (median)",
                "req/s (runs)",
                "x (a)",
                "p50 ms",
                "p99 ms",
                "app CPU us/req",
                "of which other threads",
                "PG CPU ms/1k req",
                "of which telemetry connections",
                "errors",
            ],
            rows,
        )
    rows = []
    compared = ENDPOINTS if "pgotel" in modes else ()  # every ratio reads (d), the diagnostic split included
    for endpoint in compared:

        def per_round_ratios(
            ours: str, other: str, figure: Callable[[Run], float], endpoint: str = endpoint
        ) -> list[float]:
            """`ours`'s `figure` over `other`'s, per round: two runs seconds apart, on a machine whose speed drifts."""
            pairs = zip(results.runs[(ours, endpoint)], results.runs[(other, endpoint)], strict=True)
            return [figure(mine) / figure(theirs) for mine, theirs in pairs]

        trivial = endpoint == "/trivial"
        for ours, other, label, bar in (
            ("pgotel", "pgotel-discard", "(d) / (c)", ">= 0.95"),
            ("pgotel", "otel", "(d) / (b)", ">= 1.3" if trivial else ">= 1.0"),
            ("pgotel", "logfire", "(d) / (f)", ">= 1.5" if trivial else ">= 1.0"),
            ("pgotel", "insert", "(d) / (e)", ">= 1.1" if trivial else ">= 1.0"),
            # The diagnostic split of (d) / (c): converting, then writing.
            ("pgotel-convert", "pgotel-discard", "(d') / (c)", ""),
            ("pgotel", "pgotel-convert", "(d) / (d')", ""),
        ):
            if ours not in modes or other not in modes:
                continue
            ratios = per_round_ratios(ours, other, _rate)
            rows.append(
                [
                    endpoint,
                    label,
                    f"{median(ratios):.2f}",
                    f"{min(ratios):.2f}-{max(ratios):.2f}",
                    f"{median(per_round_ratios(ours, other, _capacity)):.2f}",
                    bar,
                ]
            )

        def postgres_per_request(mode: str, endpoint: str = endpoint, attribute: str = "postgres_cpu_s") -> float:
            runs = results.runs.get((mode, endpoint), [])
            return median([getattr(run, attribute) / run.requests for run in runs])

        def postgres_added(mode: str) -> float:
            return postgres_per_request(mode) - postgres_per_request("none")

        if "insert" not in modes:
            continue
        rows.append(
            [
                endpoint,
                "PG CPU/req (e) / (d)",
                f"{postgres_per_request('insert') / postgres_per_request('pgotel'):.1f}",
                "",
                f"{postgres_added('insert') / postgres_added('pgotel'):.1f} (beyond (a))",
                ">= 5",
            ]
        )
        telemetry = "telemetry_postgres_cpu_s"
        insert_telemetry = postgres_per_request("insert", attribute=telemetry)
        rows.append(
            [
                endpoint,
                "PG CPU/req of the telemetry connections (e) / (d)",
                f"{insert_telemetry / postgres_per_request('pgotel', attribute=telemetry):.1f}",
                "",
                "",
                ">= 5",
            ]
        )
    if rows:  # the modes measured include (d) and something to compare it with
        print("\n### Acceptance ratios (medians of the per-round ratios)\n")
        print_table(["endpoint", "ratio", "req/s", "req/s, rounds", "req per app CPU-s", "bar"], rows)
    print(
        f"\nwrk -t1 -c{args.connections} -d{args.duration:g}s --latency, {args.rounds} round(s) with a fresh app per "
        f"mode, each loaded in turn after {args.warmup:g} s of warm-up; uvicorn 1 worker, loopback, --no-access-log; "
        f"{cpus.describe()}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s per mode and endpoint")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds of load per measurement")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of load before each measurement")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--shared-cpus", action="store_true", help="let the apps, wrk and PostgreSQL share every CPU (no pinning)"
    )
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help=f"comma-separated subset of {', '.join(ALL_MODES)} (default: all but the diagnostic "
        f"{', '.join(DIAGNOSTIC_MODES)})",
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration, args.warmup = 1, 3.0, 1.0
    modes = [mode for mode in args.modes.split(",") if mode]
    unknown = set(modes) - set(ALL_MODES)
    if unknown or "none" not in modes:
        raise SystemExit(f"--modes: unknown {sorted(unknown)} (the uninstrumented mode `none` is required)")
    wrk = require_wrk()
    cpus = CpuLayout.choose(shared=args.shared_cpus)
    os.sched_setaffinity(0, cpus.load)  # PostgreSQL and wrk, started from here, inherit it
    print(f"# bench/overhead.py — {machine_line()}; {cpus.describe()}")
    results = Results()
    workdir = Path(tempfile.mkdtemp(prefix="pgotel-bench-app-"))
    try:
        with temporary_postgres() as server:
            for round_number in range(args.rounds):
                # Rotate the order each round so no mode always runs first (or right after a heavy one).
                order = modes[round_number % len(modes) :] + modes[: round_number % len(modes)]
                run_round(
                    round_number, order, server=server, wrk=wrk, workdir=workdir, cpus=cpus, results=results, args=args
                )
        report(results, args, cpus)
    finally:
        with uninterruptible():
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    try:
        run_benchmark(main)
    except psutil.Error as exc:
        raise SystemExit(f"bench/overhead.py: {exc}") from exc
