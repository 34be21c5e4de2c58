"""Dashboard query time against data volume: every JSON API endpoint at 1 h, 24 h and 7 d windows over
7 days x 50 endpoints at two volumes (default 2M and 20M requests), and side by side the same per-endpoint
answer computed with PERCENTILE_CONT over raw span rows.

Requests are generated in bulk with SQL (lognormal latencies, 4xx/5xx mixes per endpoint) into a staging
table, then aggregated into the minute rollups exactly as the exporter's points would be (same bucket
indexes at the rollup scale), and the running totals and hour rows are built by the migration's own
functions. The same requests are also written as raw span rows, and the per-endpoint answer is timed with
PERCENTILE_CONT over them at both volumes (the approach of the system pgotel replaces). Both volumes are
generated first, then timed call by call in turn, so a noisy neighbour weighs on both sides of a ratio.

    .venv/bin/python bench/queries.py [--volumes 2000000 20000000] [--runs 7] [--dsn postgresql://... [--reuse]]

With --reuse the data is not regenerated, so "the last 7 days" is older than now: generate afresh for
figures to report.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
from fastapi import FastAPI

from pgotel import db
from pgotel.dashboard._api import create_api_router

ENDPOINTS = 50
DAYS = 7
WINDOWS = (1, 24, 168)
API = "/api/monitoring/advanced"
QUERIES: tuple[tuple[str, str, dict[str, str | int | float]], ...] = (
    ("summary", "summary", {}),
    ("endpoints", "performance/endpoints", {"limit": 100}),
    ("slow-endpoints", "performance/slow-endpoints", {"threshold_ms": 50}),
    ("error-hotspots", "performance/error-hotspots", {"limit": 100}),
    ("timeseries/latency", "timeseries/latency", {}),
    ("timeseries/requests", "timeseries/requests", {}),
    ("timeseries/latency 1 ep", "timeseries/latency", {"endpoint": "/api/v1/resource7/{id}", "method": "GET"}),
)

_ENDPOINTS = """
INSERT INTO pgotel.http_endpoints (service_name, method, route)
SELECT 'bench', CASE WHEN e % 3 = 0 THEN 'POST' ELSE 'GET' END, '/api/v1/resource' || e || '/{id}'
FROM generate_series(1, $1) AS e ORDER BY e
"""
# Endpoint e (id e + 1) has a median of 4 ms x 1.57^(e % 10) and sends 4xx/5xx at rates varying with e.
_SAMPLES = """
CREATE UNLOGGED TABLE bench_samples AS
SELECT e + 1 AS endpoint_id, $2::timestamptz - random() * interval '7 days' AS at,
       exp(ln(0.004) + (e % 10) * 0.45 + 0.6 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())) AS seconds,
       CASE WHEN random() < 0.004 * (e % 5) THEN 500 WHEN random() < 0.03 THEN 404 ELSE 200 END AS status
FROM generate_series(1, $1) AS g, LATERAL (SELECT 1 + g % $3 AS e) AS pick
"""
# Failed requests per minute by status and error type (5xx ones carry error.type TimeoutError).
_ERROR_COUNTS = """
CREATE UNLOGGED TABLE bench_error_counts AS
SELECT endpoint_id, bucket, jsonb_object_agg(key, n) AS error_counts
FROM (
    SELECT COALESCE(endpoint_id, 1) AS endpoint_id, bucket, key, count(*) AS n
    FROM (
        SELECT endpoint_id, date_trunc('minute', at, 'UTC') AS bucket, k.key
        FROM bench_samples,
             LATERAL (VALUES ('status:' || status), (CASE WHEN status >= 500 THEN 'type:TimeoutError' END)) AS k(key)
        WHERE status >= 400 AND k.key IS NOT NULL
    ) AS failed
    GROUP BY GROUPING SETS ((endpoint_id, bucket, key), (bucket, key))
) AS per_key
GROUP BY 1, 2
"""
_MINUTE_ROLLUPS = """
INSERT INTO pgotel.http_rollup_1m (endpoint_id, bucket, count, error_count, count_4xx, count_5xx, sum, min, max,
                                   zero_count, hist_offset, hist_counts, error_counts)
SELECT g.endpoint_id, g.bucket, g.count, g.errors, g.c4, g.c5, g.sum, g.min, g.max, 0, d.hist_offset, d.hist_counts,
       COALESCE(x.error_counts, '{}')
FROM (
    SELECT COALESCE(endpoint_id, 1) AS endpoint_id, bucket, sum(n)::bigint AS count, sum(errors)::bigint AS errors,
           sum(c4)::bigint AS c4, sum(c5)::bigint AS c5, sum(total) AS sum, min(lo) AS min, max(hi) AS max,
           array_agg(idx) AS idx, array_agg(n) AS cnt
    FROM (
        SELECT endpoint_id, date_trunc('minute', at, 'UTC') AS bucket,
               ceil(log(2, seconds::numeric) * (1 << pgotel.rollup_scale()))::integer - 1 AS idx,
               count(*) AS n, count(*) FILTER (WHERE status >= 400) AS errors,
               count(*) FILTER (WHERE status BETWEEN 400 AND 499) AS c4,
               count(*) FILTER (WHERE status >= 500) AS c5,
               sum(seconds) AS total, min(seconds) AS lo, max(seconds) AS hi
        FROM bench_samples
        GROUP BY GROUPING SETS ((endpoint_id, 2, 3), (2, 3))
    ) AS per_bucket
    GROUP BY 1, 2
) AS g
CROSS JOIN LATERAL pgotel.hist_dense(g.idx, g.cnt::bigint[]) AS d
LEFT JOIN bench_error_counts x ON x.endpoint_id = g.endpoint_id AND x.bucket = g.bucket
"""
_TOTALS = """
SELECT pgotel.rollup_rebuild_totals(id, '-infinity'), pgotel.rollup_rebuild_hours(id, '-infinity')
FROM pgotel.http_endpoints ORDER BY id
"""
_RAW_SPANS = """
INSERT INTO pgotel.spans (start_time, start_unix_nano, duration_ns, trace_id, span_id, name, kind, status_code,
                          service_name, resource_id, scope_id, http_method, http_route, http_status_code, attributes)
SELECT s.at, (extract(epoch FROM s.at) * 1e9)::bigint, (s.seconds * 1e9)::bigint, gen_random_uuid(),
       (random() * 9e18)::bigint, e.method || ' ' || e.route, 2, CASE WHEN s.status >= 500 THEN 2 ELSE 0 END,
       'bench', $1, $1, e.method, e.route, s.status, '{}'
FROM bench_samples s JOIN pgotel.http_endpoints e ON e.id = s.endpoint_id
"""
# What the replaced system ran: exact percentiles over every raw request row of the window.
_RAW_ENDPOINTS = """
SELECT http_method, http_route, count(*) AS request_count, avg(duration_ns) / 1e6 AS avg_latency_ms,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ns) / 1e6 AS p50_latency_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ns) / 1e6 AS p95_latency_ms,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ns) / 1e6 AS p99_latency_ms,
       count(*) FILTER (WHERE http_status_code >= 400) AS error_count
FROM pgotel.spans
WHERE kind = 2 AND http_route IS NOT NULL AND start_time >= $1 AND start_time < $2
GROUP BY 1, 2
"""


@asynccontextmanager
async def server(dsn: str | None) -> AsyncIterator[str]:
    if dsn is not None:
        yield dsn
        return
    with tempfile.TemporaryDirectory(prefix="pgotel-bench-") as folder:
        started = db.start_embedded(Path(folder))
        try:
            yield started.dsn
        finally:
            db.stop_embedded(Path(folder))


async def fresh_database(admin_dsn: str, name: str, *, reuse: bool) -> tuple[str, bool]:
    """(DSN of database `name`, whether it is new). With `reuse`, a database left by a previous run is kept."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        exists = await admin.fetchval("SELECT count(*) > 0 FROM pg_database WHERE datname = $1", name)
        if not (reuse and exists):
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return admin_dsn.rsplit("/", 1)[0] + f"/{name}", not (reuse and exists)


async def generate(dsn: str, volume: int) -> float:
    """Fill a migrated database with `volume` requests over the last 7 days; seconds taken."""
    began = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET work_mem = '256MB'; SET synchronous_commit = off")
        await db.migrate(conn)
        today = db.utc_today()
        await db.ensure_partitions(conn, today - dt.timedelta(days=DAYS + 1), today + dt.timedelta(days=1))
        await conn.execute(_ENDPOINTS, ENDPOINTS)
        await conn.execute(_SAMPLES, volume, dt.datetime.now(dt.UTC), ENDPOINTS)
        await conn.execute(_ERROR_COUNTS)
        await conn.execute(_MINUTE_ROLLUPS)
        await conn.execute("DROP TABLE bench_error_counts")
        await conn.execute(_TOTALS)
        await conn.execute(_RAW_SPANS, uuid.uuid4())
        await conn.execute("DROP TABLE bench_samples")
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - began


def median_ms(samples: list[float]) -> float:
    return 1000 * statistics.median(samples)


def api_client(pool: asyncpg.Pool) -> httpx.AsyncClient:
    """An in-process HTTP client of the dashboard's JSON API reading `pool`."""

    async def pool_provider() -> asyncpg.Pool:
        return pool

    app = FastAPI()
    app.include_router(create_api_router(pool_provider, prefix=API))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench")


async def time_api(pools: dict[int, asyncpg.Pool], runs: int) -> dict[int, dict[tuple[str, int], float]]:
    """Median ms per (query, window) and volume. The volumes take turns call by call, so machine noise
    falls on both sides of each ratio alike."""
    clients = {volume: api_client(pool) for volume, pool in pools.items()}
    samples: dict[int, dict[tuple[str, int], list[float]]] = {volume: {} for volume in pools}
    try:
        for label, path, params in QUERIES:
            for hours in WINDOWS:
                for run in range(runs + 1):
                    for volume, client in clients.items():
                        began = time.perf_counter()
                        response = await client.get(f"{API}/{path}", params={**params, "period_hours": hours})
                        elapsed = time.perf_counter() - began
                        response.raise_for_status()
                        if run:  # the first run warms caches and prepared statements
                            samples[volume].setdefault((label, hours), []).append(elapsed)
    finally:
        for client in clients.values():
            await client.aclose()
    return {volume: {key: median_ms(values) for key, values in found.items()} for volume, found in samples.items()}


async def time_raw(pool: asyncpg.Pool, runs: int, now: dt.datetime) -> tuple[dict[int, float], list[asyncpg.Record]]:
    """Median ms of the raw PERCENTILE_CONT query per window ending at `now`, at most 3 runs (a 7-day one
    takes ~2 min at 20M), and the 7-day answer itself."""
    timings = {}
    week: list[asyncpg.Record] = []
    for hours in WINDOWS:
        start, end = db.window_bounds(hours, now)
        samples = []
        for run in range(min(3, runs) + 1):
            began = time.perf_counter()
            answer = await pool.fetch(_RAW_ENDPOINTS, start, end)
            if run:
                samples.append(time.perf_counter() - began)
        timings[hours] = median_ms(samples)
        if hours == 168:
            week = answer
    return timings, week


async def accuracy(pool: asyncpg.Pool, raw_week: list[asyncpg.Record], now: dt.datetime) -> tuple[int, float, int]:
    """(endpoints compared, worst relative percentile difference, request-count mismatches) of the rollups
    against `raw_week`, the raw answer for the 7 days ending at `now`."""
    raw = {(r["http_method"], r["http_route"]): r for r in raw_week}
    worst, mismatches = 0.0, 0
    stats = await db.endpoint_stats(pool, period_hours=168, now=now)
    for item in stats:
        exact = raw[item.method, item.route]
        mismatches += item.request_count != exact["request_count"] or item.error_count != exact["error_count"]
        for name in ("p50_latency_ms", "p95_latency_ms", "p99_latency_ms"):
            worst = max(worst, abs(getattr(item, name) / exact[name] - 1))
    return len(stats), worst, mismatches


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--volumes", type=int, nargs=2, default=(2_000_000, 20_000_000))
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--dsn", help="an existing PostgreSQL (default: a temporary embedded one)")
    parser.add_argument("--reuse", action="store_true", help="with --dsn: keep data generated by a previous run")
    args = parser.parse_args()
    small, large = args.volumes
    async with server(args.dsn) as admin_dsn:
        pools: dict[int, asyncpg.Pool] = {}
        raw_ms: dict[int, dict[int, float]] = {}
        try:
            for volume in (small, large):
                dsn, new = await fresh_database(admin_dsn, f"pgotel_bench_{volume}", reuse=args.reuse)
                seconds = await generate(dsn, volume) if new else 0.0
                pool = pools[volume] = await asyncpg.create_pool(dsn, min_size=2, max_size=2)
                count = await pool.fetchval(
                    "SELECT sum(count) FROM pgotel.http_rollup_1m r JOIN pgotel.http_endpoints e"
                    " ON e.id = r.endpoint_id WHERE NOT e.is_total"
                )
                rows = await pool.fetchval("SELECT count(*) FROM pgotel.http_rollup_1m")
                print(f"generated {int(count):,} requests ({rows:,} minute rollup rows) in {seconds:.0f} s")
            results = await time_api(pools, args.runs)
            for volume, pool in pools.items():
                now = dt.datetime.now(dt.UTC)
                raw_ms[volume], raw_week = await time_raw(pool, args.runs, now)
                compared, worst, mismatches = await accuracy(pool, raw_week, now)
                print(
                    f"7d accuracy vs PERCENTILE_CONT over the same {volume:,} raw rows: {compared} endpoints,"
                    f" worst P50/P95/P99 difference {100 * worst:.2f}%, count/error mismatches {mismatches}"
                )
        finally:
            for pool in pools.values():
                await pool.close()
        print(f"\nmedian of {args.runs} runs, volumes interleaved, ms (full HTTP API call through FastAPI, in-process)")
        print(f"{'query':<26}{'window':>7}{f'{small:,}':>13}{f'{large:,}':>13}{'ratio':>8}")
        for label, _, _ in QUERIES:
            for hours in WINDOWS:
                a, b = results[small][label, hours], results[large][label, hours]
                print(f"{label:<26}{f'{hours}h':>7}{a:>13.1f}{b:>13.1f}{b / a:>8.2f}")
        print("\nPERCENTILE_CONT over raw span rows (the per-endpoint answer), median ms")
        for hours in WINDOWS:
            a, b = raw_ms[small][hours], raw_ms[large][hours]
            rollup = results[large]["endpoints", hours]
            print(
                f"{'raw endpoints':<26}{f'{hours}h':>7}{a:>13.1f}{b:>13.1f}{b / a:>8.2f}"
                f"   rollups at {large:,}: {rollup:.1f} ms (raw / rollups {b / rollup:.1f}x)"
            )
        worst_7d = max(results[large][label, 168] for label, _, _ in QUERIES)
        worst_ratio = max(results[large][key] / results[small][key] for key in results[small])
        print(
            f"\nslowest 7d query at {large:,}: {worst_7d:.1f} ms (target < 100); worst ratio {worst_ratio:.2f} (< 1.5)"
        )


if __name__ == "__main__":
    asyncio.run(main())
