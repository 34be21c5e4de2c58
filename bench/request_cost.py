"""CPU microseconds per request, in-process: the cost each instrumentation mode adds to a FastAPI request.

No HTTP server and no load generator: the app is called as an ASGI callable with a prepared scope,
sequentially, on the trivial endpoint. `time.process_time()` counts every thread of the process (the
SDK's batch workers, pgotel's writer thread), and the timed part ends with a flush, so the export work
of the timed requests is included; the threads other than the main one (the export work) are also
reported on their own. Each (mode, round) runs in a fresh subprocess, modes interleaved.

    .venv/bin/python bench/request_cost.py            # 3 rounds x 20,000 requests per mode
    .venv/bin/python bench/request_cost.py --quick    # 1 round x 3,000 requests
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from _support import (
    DiscardSpanExporter,
    app_environment,
    machine_line,
    median,
    other_threads_cpu_seconds,
    print_table,
    process_tree_cpu_seconds,
    run_benchmark,
    stop_process,
    temporary_postgres,
)
from bench_app import MODES, build_app
from fastapi import FastAPI

ENDPOINT = "/trivial"
_REQUEST_SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": ENDPOINT,
    "raw_path": ENDPOINT.encode(),
    "root_path": "",
    "query_string": b"",
    "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}
_REQUEST_MESSAGE = {"type": "http.request", "body": b"", "more_body": False}
_DISCONNECT_MESSAGE = {"type": "http.disconnect"}


class _Exchange:
    """One request's receive/send: the body once, then `http.disconnect` after the response, like uvicorn."""

    __slots__ = ("body_sent", "finished", "status")

    def __init__(self) -> None:
        self.body_sent = False
        self.finished = asyncio.Event()
        self.status = 0

    async def receive(self) -> dict[str, Any]:
        if not self.body_sent:
            self.body_sent = True
            return _REQUEST_MESSAGE
        await self.finished.wait()
        return _DISCONNECT_MESSAGE

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self.finished.set()


async def call_app(app: FastAPI, count: int) -> None:
    for _ in range(count):
        exchange = _Exchange()
        await app(dict(_REQUEST_SCOPE), exchange.receive, exchange.send)
        if exchange.status != 200:
            raise SystemExit(f"{ENDPOINT} answered {exchange.status}")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the app's ASGI lifespan (startup, then shutdown on exit), as a server would."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set_result(None)
        elif message["type"] == "lifespan.startup.failed":
            started.set_exception(SystemExit(f"app startup failed: {message.get('message')}"))

    await inbox.put({"type": "lifespan.startup"})
    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, send))
    await started
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await task


async def stored_spans(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        exists = await conn.fetchval("SELECT to_regclass('pgotel.spans') IS NOT NULL")
        return int(await conn.fetchval("SELECT count(*) FROM pgotel.spans")) if exists else 0
    finally:
        await conn.close()


async def measure(mode: str, dsn: str, postmaster_pid: int, requests: int, warmup: int) -> dict[str, float]:
    """One (mode, round), in this process: warm up, flush, then time `requests` requests plus their flush."""
    app, telemetry = build_app(mode, dsn)
    async with lifespan(app):
        await call_app(app, warmup)
        telemetry.flush()
        spans_before = await stored_spans(dsn) if mode == "pgotel" else DiscardSpanExporter.received
        gc.collect()
        postgres_before = process_tree_cpu_seconds(postmaster_pid)
        other_before = other_threads_cpu_seconds(os.getpid())
        wall_before, cpu_before = time.perf_counter(), time.process_time()
        await call_app(app, requests)
        telemetry.flush()
        cpu, wall = time.process_time() - cpu_before, time.perf_counter() - wall_before
        other = other_threads_cpu_seconds(os.getpid()) - other_before
        postgres = process_tree_cpu_seconds(postmaster_pid) - postgres_before
        spans_after = await stored_spans(dsn) if mode == "pgotel" else DiscardSpanExporter.received
    return {
        "cpu_us": cpu / requests * 1e6,
        "other_threads_us": other / requests * 1e6,
        "wall_us": wall / requests * 1e6,
        "postgres_us": postgres / requests * 1e6,
        "spans_per_request": (spans_after - spans_before) / requests,
    }


def run_worker(mode: str, dsn: str, postmaster_pid: int, workdir: str, args: argparse.Namespace) -> dict[str, float]:
    command = [
        sys.executable, __file__, "--worker", mode, "--dsn", dsn, "--postmaster-pid", str(postmaster_pid),
        "--requests", str(args.requests), "--warmup", str(args.warmup),
    ]  # fmt: skip
    env = app_environment(mode, dsn)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=workdir)
    try:
        output, _ = process.communicate(timeout=600)
    finally:
        stop_process(process)
    if process.returncode != 0:
        raise SystemExit(f"request_cost worker for mode {mode!r} failed (exit {process.returncode})")
    result: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    return result


def report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    base = median([run["cpu_us"] for run in results["none"]])
    rows = []
    for mode, runs in results.items():
        cpu = [run["cpu_us"] for run in runs]
        rows.append(
            [
                MODES[mode],
                f"{median(cpu):.0f}",
                f"{min(cpu):.0f}-{max(cpu):.0f}",
                f"{median(cpu) - base:+.0f}",
                f"{median(cpu) / base:.1f}",
                f"{median([run['other_threads_us'] for run in runs]):.1f}",
                f"{median([run['wall_us'] for run in runs]):.0f}",
                f"{median([run['postgres_us'] for run in runs]):.0f}",
                f"{median([run['spans_per_request'] for run in runs]):.2f}",
            ]
        )
    print(f"\n### CPU per request, `GET {ENDPOINT}` in-process\n")
    print_table(
        [
            "mode",
            "CPU us/req (median)",
            "runs",
            "added vs (a)",
            "x (a)",
            "of which other threads",
            "wall us/req",
            "PG server CPU us/req",
            "spans exported/req",
        ],
        rows,
    )
    added = median([run["cpu_us"] for run in results.get("pgotel", [])]) - base
    print(
        f"\npgotel full pipeline (d) adds {added:.0f} us per request (bar: <= 130 us); "
        f"{args.rounds} round(s) x {args.requests:,} requests after {args.warmup:,} warm-up, modes interleaved."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 round of 3,000 requests per mode")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {', '.join(MODES)}")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    parser.add_argument("--postmaster-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = asyncio.run(measure(args.worker, args.dsn, args.postmaster_pid, args.requests, args.warmup))
        print(json.dumps(result))
        return
    if args.quick:
        args.rounds, args.requests, args.warmup = 1, 3_000, 500
    modes = [mode for mode in args.modes.split(",") if mode]
    unknown = set(modes) - set(MODES)
    if unknown or "none" not in modes:
        raise SystemExit(f"--modes: unknown {sorted(unknown)} (the uninstrumented mode `none` is required)")
    print(f"# bench/request_cost.py — {machine_line()}")
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    with temporary_postgres() as server, tempfile.TemporaryDirectory(prefix="pgotel-bench-cost-") as workdir:
        for round_number in range(args.rounds):
            order = modes[round_number % len(modes) :] + modes[: round_number % len(modes)]
            for mode in order:
                run = run_worker(mode, server.dsn, server.pid, workdir, args)
                results[mode].append(run)
                print(
                    f"round {round_number + 1}/{args.rounds} {mode:<15} {run['cpu_us']:7.0f} us CPU/req  "
                    f"{run['spans_per_request']:.2f} spans/req",
                    flush=True,
                )
    report(results, args)


if __name__ == "__main__":
    run_benchmark(main)
