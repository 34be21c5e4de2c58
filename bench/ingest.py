"""Spans per second through pgotel's span exporter into PostgreSQL, vs a raw binary COPY of the same rows.

Both paths write into the migrated `pgotel.spans` (daily partitions, the real indexes) of an embedded
PostgreSQL started in a temp dir; the table is truncated and checkpointed before every run, and the two
paths alternate so noise spreads over both.

- exporter: `PostgresSpanExporter.export()` in batches of 2,048 spans (the BatchSpanProcessor batch size of
  otel-config.yaml), conversion included, then `force_flush()`: the clock stops when every row is stored.
- raw COPY: the same spans converted to rows beforehand (not timed), written by one
  `asyncpg.copy_records_to_table` call on one connection: the ceiling for this table.

The prepared spans and rows are frozen out of the garbage collector (`gc.freeze()`), like a process's
long-lived objects; the collections the exporter's own allocations trigger are still timed.

    .venv/bin/python bench/ingest.py            # 5 rounds x 100,000 spans
    .venv/bin/python bench/ingest.py --quick    # 1 round x 20,000 spans
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import time
from collections.abc import Sequence

from _support import (
    machine_line,
    median,
    print_table,
    process_tree_cpu_seconds,
    run_benchmark,
    temporary_postgres,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from pgotel import db
from pgotel.config import DatabaseSettings, PgotelSettings, Redactor
from pgotel.exporter import Accounting, PostgresSpanExporter

# Private, but the only way to get exactly the rows the exporter writes for the raw-COPY comparison.
from pgotel.exporter._encode import ValueEncoder
from pgotel.exporter._rows import RowConverter

EXPORT_BATCH = 2048
ROUTES = ("/api/users/{user_id}", "/api/orders", "/api/orders/{order_id}", "/api/reports/slow", "/health")


def make_spans(count: int) -> list[ReadableSpan]:
    """Realistic request traces: a server span (HTTP attributes as pgotel records them), an asyncpg client
    span and an internal span per request; ~2% of requests fail with an exception event."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench", "service.version": "1.0.0"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    server_tracer = provider.get_tracer("pgotel.instrumentation.fastapi")
    db_tracer = provider.get_tracer("opentelemetry.instrumentation.asyncpg", "0.66b1")
    app_tracer = provider.get_tracer("app.orders")
    rng = random.Random(42)
    while len(exporter.get_finished_spans()) < count:
        route = rng.choice(ROUTES)
        failed = rng.random() < 0.02
        status = 500 if failed else rng.choice((200, 200, 200, 201, 404))
        attributes = {
            "http.request.method": "GET",
            "url.scheme": "http",
            "url.path": route.replace("{user_id}", str(rng.randrange(10**6))).replace("{order_id}", "17"),
            "network.protocol.version": "1.1",
            "server.address": "127.0.0.1",
            "server.port": 8000,
            "client.address": "10.0.0.7",
            "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64) bench",
            "http.route": route,
            "http.response.status_code": status,
        }
        with server_tracer.start_as_current_span(f"GET {route}", kind=SpanKind.SERVER, attributes=attributes) as span:
            with db_tracer.start_as_current_span(
                "SELECT postgres",
                kind=SpanKind.CLIENT,
                attributes={
                    "db.system": "postgresql",
                    "db.name": "postgres",
                    "db.user": "app",
                    "net.peer.name": "127.0.0.1",
                    "net.peer.port": 5432,
                    "db.statement": "SELECT id, name, email FROM users WHERE id = $1",
                },
            ):
                pass
            with app_tracer.start_as_current_span("load_order", attributes={"order.items": rng.randrange(1, 9)}):
                pass
            if failed:
                span.record_exception(RuntimeError("database timeout"))
                span.set_status(Status(StatusCode.ERROR))
    provider.shutdown()
    return list(exporter.get_finished_spans()[:count])


async def reset_table(dsn: str) -> None:
    conn = await db.connect(dsn)
    try:
        await conn.execute("TRUNCATE pgotel.spans")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def count_spans(dsn: str) -> int:
    conn = await db.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM pgotel.spans"))
    finally:
        await conn.close()


def run_exporter(exporter: PostgresSpanExporter, spans: Sequence[ReadableSpan]) -> tuple[float, float]:
    """Wall seconds and process CPU seconds (this thread + the writer thread) to export and store `spans`."""
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(spans), EXPORT_BATCH):
        exporter.export(spans[start : start + EXPORT_BATCH])
    if not exporter.force_flush(120_000):
        raise SystemExit("the exporter did not flush within 120 s")
    return time.perf_counter() - wall, time.process_time() - cpu


async def run_raw_copy(dsn: str, rows: list[db.Row]) -> tuple[float, float]:
    conn = await db.connect(dsn)
    await db.register_timestamp_codec(conn)  # the rows' timestamps are encoded as the writer's are
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        await conn.copy_records_to_table("spans", records=rows, columns=db.COLUMNS["spans"], schema_name="pgotel")
        return time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 round of 20,000 spans")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--spans", type=int, default=100_000)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.spans = 1, 20_000
    print(f"# bench/ingest.py — {machine_line()}")
    spans = make_spans(args.spans)
    with temporary_postgres() as server:
        settings = PgotelSettings(database=DatabaseSettings(dsn=server.dsn))
        exporter = PostgresSpanExporter(settings=settings)
        try:
            # Connect, migrate, create partitions and store the side rows (resources, scopes) before timing.
            exporter.export(spans[:EXPORT_BATCH])
            if not exporter.force_flush(60_000):
                raise SystemExit(f"cannot write to the benchmark PostgreSQL at {server.dsn}")
            encoder = ValueEncoder("spans", settings.limits, Redactor.from_settings(settings.redaction), Accounting())
            convert_cpu = time.process_time()
            rows = RowConverter(encoder).spans(spans).rows["spans"]
            convert_cpu = time.process_time() - convert_cpu
            # The prepared spans and rows (millions of objects no real process holds) are moved out of the
            # garbage collector's reach: otherwise a full collection scanning them lands on whichever path
            # happens to run then (~0.5 s at 60,000 spans), a cost of this benchmark, not of either path.
            gc.freeze()
            results: dict[str, list[tuple[float, float, float]]] = {"exporter": [], "raw COPY": []}
            for round_number in range(args.rounds):
                order = ["exporter", "raw COPY"] if round_number % 2 == 0 else ["raw COPY", "exporter"]
                for path in order:
                    asyncio.run(reset_table(server.dsn))
                    postgres_before = process_tree_cpu_seconds(server.pid)
                    if path == "exporter":
                        wall, cpu = run_exporter(exporter, spans)
                    else:
                        wall, cpu = asyncio.run(run_raw_copy(server.dsn, rows))
                    # A closed connection's backend is counted once the postmaster has reaped it.
                    time.sleep(0.5)
                    postgres = process_tree_cpu_seconds(server.pid) - postgres_before
                    stored = asyncio.run(count_spans(server.dsn))
                    if stored != len(spans):
                        raise SystemExit(f"{path}: {stored} spans stored, {len(spans)} expected")
                    results[path].append((len(spans) / wall, cpu, postgres))
                    print(
                        f"round {round_number + 1}/{args.rounds} {path:<9} {len(spans) / wall:9,.0f} spans/s  "
                        f"client CPU {cpu:5.2f} s  PG CPU {postgres:5.2f} s",
                        flush=True,
                    )
        finally:
            exporter.shutdown()
    exporter_rate = median([rate for rate, _, _ in results["exporter"]])
    raw_rate = median([rate for rate, _, _ in results["raw COPY"]])
    print(f"\n### Span ingest into `pgotel.spans` ({args.spans:,} spans per run, {args.rounds} runs per path)\n")
    rows_out = []
    for path, runs in results.items():
        rates = [rate for rate, _, _ in runs]
        rows_out.append(
            [
                path,
                f"{median(rates):,.0f}",
                f"{min(rates):,.0f}-{max(rates):,.0f}",
                f"{median(rates) / raw_rate:.2f}",
                f"{median([cpu for _, cpu, _ in runs]) / args.spans * 1e6:.1f}",
                f"{median([pg for _, _, pg in runs]) / args.spans * 1e6:.1f}",
            ]
        )
    print_table(["path", "spans/s (median)", "runs", "x raw COPY", "client CPU us/span", "PG CPU us/span"], rows_out)
    print(
        f"\nconversion alone (RowConverter.spans, not timed above for raw COPY): "
        f"{convert_cpu / args.spans * 1e6:.1f} us CPU per span"
    )
    print(
        f"exporter {exporter_rate:,.0f} spans/s (bar: >= 30,000), "
        f"{exporter_rate / raw_rate:.2f}x raw COPY (bar: >= 0.5)"
    )


if __name__ == "__main__":
    run_benchmark(main)
