from __future__ import annotations

import datetime as dt
import math
import random
from collections import Counter

import asyncpg
import pytest

from pgotel import db
from pgotel.db._rollups import percentiles_from_histogram
from tests.db.traffic import Traffic, exact_percentile, random_requests, store_interval

ENDPOINTS = [("GET", "/items/{item_id}", 0.012), ("POST", "/orders", 0.180), ("GET", "/health", 0.0008)]


def minute_of(moment: dt.datetime) -> dt.datetime:
    return moment.replace(second=0, microsecond=0)


@pytest.fixture
async def week_conn(conn: asyncpg.Connection) -> asyncpg.Connection:
    today = db.utc_today()
    await db.ensure_partitions(conn, today - dt.timedelta(days=8), today + dt.timedelta(days=1))
    return conn


def histogram_of(values: list[float]) -> db.RollupHistogram:
    """A scale-5 histogram of `values`, built independently of the SQL downscaling."""
    buckets: dict[int, int] = {}
    for value in values:
        index = math.ceil(math.log2(value) * (1 << db.ROLLUP_SCALE)) - 1
        buckets[index] = buckets.get(index, 0) + 1
    low, high = min(buckets), max(buckets)
    return db.RollupHistogram(0, low, tuple(buckets.get(i, 0) for i in range(low, high + 1)))


def test_percentile_of_empty_histogram_is_zero() -> None:
    assert db.percentile_from_histogram(db.RollupHistogram(), 0.95) == 0.0


def test_percentile_rejects_quantile_outside_0_1() -> None:
    with pytest.raises(ValueError, match="quantile"):
        db.percentile_from_histogram(db.RollupHistogram(0, 0, (1,)), 95)


def test_percentile_of_single_bucket_is_its_midpoint() -> None:
    histogram = db.RollupHistogram(0, 32, (10,))  # (2, 2^(33/32)]
    assert db.percentile_from_histogram(histogram, 0.5) == pytest.approx(2 ** (32.5 / 32))


def test_percentile_counts_zero_bucket_values_as_zero() -> None:
    histogram = db.RollupHistogram(zero_count=6, offset=0, counts=(4,))
    assert db.percentile_from_histogram(histogram, 0.5) == 0.0
    assert db.percentile_from_histogram(histogram, 0.9) == pytest.approx(2 ** (0.5 / 32))


@pytest.mark.parametrize("quantile", [0.0, 0.5, 0.9, 0.95, 0.99, 1.0])
def test_percentile_within_1_1_percent_of_percentile_cont(quantile: float) -> None:
    rng = random.Random(7)
    values = [0.02 * rng.lognormvariate(0, 1.2) for _ in range(5000)]
    estimate = db.percentile_from_histogram(histogram_of(values), quantile)
    assert estimate == pytest.approx(exact_percentile(values, quantile), rel=0.011)


def test_merge_adds_and_subtracts_bucket_by_bucket() -> None:
    a = db.RollupHistogram(1, 10, (1, 2, 3))
    b = db.RollupHistogram(2, 8, (5, 0, 0, 1))
    assert db.merge_histograms([a, b]) == db.RollupHistogram(3, 8, (5, 0, 1, 3, 3))
    assert db.merge_histograms([a, b], [b]) == a
    assert db.merge_histograms([a], [a]) == db.RollupHistogram()


async def rollup_counts(conn: asyncpg.Connection, table: str) -> dict[tuple[str, dt.datetime], tuple[int, ...]]:
    rows = await conn.fetch(
        f"SELECT e.route, e.method, r.bucket, r.count, r.error_count, r.count_4xx, r.count_5xx, r.cum_count"
        f" FROM pgotel.{table} r JOIN pgotel.http_endpoints e ON e.id = r.endpoint_id"
    )
    return {(f"{r['method']} {r['route']}", r["bucket"]): tuple(r)[3:] for r in rows}


def expected_counts(traffic: Traffic, step: dt.timedelta) -> dict[tuple[str, dt.datetime], tuple[int, ...]]:
    found: dict[tuple[str, dt.datetime], list[int]] = {}
    epoch = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    for at, request in traffic.requests:
        bucket = at - (at - epoch) % step
        for key in ((f"{request.method} {request.route}", bucket), (" ", bucket)):
            counts = found.setdefault(key, [0, 0, 0, 0])
            counts[0] += 1
            counts[1] += request.is_error
            counts[2] += 400 <= request.status < 500
            counts[3] += 500 <= request.status < 600
    return {key: tuple(value) for key, value in found.items()}


async def test_refresh_rolls_up_exact_counts_per_minute_and_hour(week_conn: asyncpg.Connection) -> None:
    rng = random.Random(1)
    traffic = Traffic()
    base = minute_of(dt.datetime.now(dt.UTC)) - dt.timedelta(hours=3)
    for k in range(10):
        await store_interval(week_conn, traffic, base + k * dt.timedelta(minutes=17, seconds=13),
                             random_requests(rng, 150, ENDPOINTS))  # fmt: skip
    assert await db.refresh_rollups(week_conn) == 10
    minutes = await rollup_counts(week_conn, "http_rollup_1m")
    assert {key: value[:4] for key, value in minutes.items()} == expected_counts(traffic, dt.timedelta(minutes=1))
    hours = await rollup_counts(week_conn, "http_rollup_1h")
    assert {key: value[:4] for key, value in hours.items()} == expected_counts(traffic, dt.timedelta(hours=1))
    assert max(value[4] for key, value in minutes.items() if key[0] == " ") == 1500  # running total


async def test_refresh_is_idempotent_and_does_nothing_without_new_points(week_conn: asyncpg.Connection) -> None:
    traffic = Traffic()
    now = dt.datetime.now(dt.UTC)
    await store_interval(
        week_conn, traffic, now - dt.timedelta(minutes=5), random_requests(random.Random(2), 50, ENDPOINTS)
    )
    assert await db.refresh_rollups(week_conn) == 1
    before = await week_conn.fetch("SELECT * FROM pgotel.http_rollup_1m ORDER BY endpoint_id, bucket")
    assert await db.refresh_rollups(week_conn) == 0
    await week_conn.execute("INSERT INTO pgotel.rollup_dirty_minutes SELECT DISTINCT bucket FROM pgotel.http_rollup_1m")
    assert await db.refresh_rollups(week_conn) == 1
    assert await week_conn.fetch("SELECT * FROM pgotel.http_rollup_1m ORDER BY endpoint_id, bucket") == before


async def test_late_points_update_their_minute_hour_and_later_running_totals(week_conn: asyncpg.Connection) -> None:
    rng = random.Random(3)
    traffic = Traffic()
    now = minute_of(dt.datetime.now(dt.UTC))
    for minutes_ago in (150, 90, 30, 2):
        await store_interval(
            week_conn, traffic, now - dt.timedelta(minutes=minutes_ago), random_requests(rng, 40, ENDPOINTS)
        )
    await db.refresh_rollups(week_conn)
    # Two hours late: the exporter was cut off from PostgreSQL and flushes its backlog now.
    await store_interval(
        week_conn, traffic, now - dt.timedelta(minutes=120, seconds=-7), random_requests(rng, 70, ENDPOINTS)
    )
    assert await db.refresh_rollups(week_conn) == 1
    for table, step in (("http_rollup_1m", dt.timedelta(minutes=1)), ("http_rollup_1h", dt.timedelta(hours=1))):
        got = await rollup_counts(week_conn, table)
        assert {key: value[:4] for key, value in got.items()} == expected_counts(traffic, step)
    newest = await week_conn.fetchval(
        "SELECT cum_count FROM pgotel.http_rollup_1m r JOIN pgotel.http_endpoints e ON e.id = r.endpoint_id"
        " WHERE e.is_total ORDER BY bucket DESC LIMIT 1"
    )
    assert newest == len(traffic.requests) == 230
    window = traffic.within(now - dt.timedelta(hours=2) + dt.timedelta(minutes=1), now + dt.timedelta(minutes=1))
    stats = await db.api_summary(week_conn, period_hours=2, now=now)
    assert stats.request_count == len(window)
    # The error breakdown's running totals moved with the late point too.
    hotspots = await db.error_hotspots(week_conn, period_hours=2, now=now)
    assert hotspots
    for hotspot in hotspots:
        failed = [r for r in window if r.is_error and (r.method, r.route) == (hotspot.method, hotspot.route)]
        assert dict(hotspot.status_codes) == dict(Counter(r.status for r in failed))
        assert dict(hotspot.error_types) == dict(Counter(r.error_type for r in failed if r.error_type))


async def test_points_of_any_scale_are_downscaled_to_the_rollup_scale(week_conn: asyncpg.Connection) -> None:
    now = minute_of(dt.datetime.now(dt.UTC)) - dt.timedelta(minutes=3)
    series = await week_conn.fetchrow("SELECT gen_random_uuid() AS s, gen_random_uuid() AS r, gen_random_uuid() AS c")
    await db.insert_side_rows(week_conn, "resources", [(series["r"], "svc", "{}", "")])
    await db.insert_side_rows(week_conn, "scopes", [(series["c"], "t", None, "", "{}")])
    attributes = '{"http.route": "/x", "http.request.method": "GET", "http.response.status_code": 200}'
    series_row = (series["s"], "http.server.request.duration", "", "s", 4, 1, False, "svc", series["r"], series["c"])
    await db.insert_side_rows(week_conn, "metric_series", [(*series_row, attributes)])
    # The same value 0.1 s at scale 8 (index ceil(log2(0.1) * 256) - 1 = -851) and at scale 2 (index -14).
    rows = [
        (now, 0, 0, series["s"], 3, 0.3, 0.1, 0.1, 8, 0, 0.0, -851, [3], 0, [], None),
        (now, 0, 0, series["s"], 1, 0.1, 0.1, 0.1, 2, 0, 0.0, -14, [1], 0, [], None),
    ]
    await db.copy_rows(week_conn, "exp_histogram_points", rows)
    await db.refresh_rollups(week_conn)
    row = await week_conn.fetchrow(
        "SELECT count, hist_offset, hist_counts FROM pgotel.http_rollup_1m r"
        " JOIN pgotel.http_endpoints e ON e.id = r.endpoint_id WHERE e.route = '/x'"
    )
    assert row["count"] == 4
    # Finer point: exact (-851 >> 3 = -107). Coarser point: the sub-bucket just above its bucket's geometric
    # midpoint, -14 * 8 + 4 = -108 (its true value, 0.1 s, is in -107: coarse input keeps its coarse precision).
    assert (row["hist_offset"], list(row["hist_counts"])) == (-108, [1, 3])


async def test_only_one_refresher_runs_at_a_time(week_conn: asyncpg.Connection, dsn: str) -> None:
    await store_interval(week_conn, Traffic(), dt.datetime.now(dt.UTC), random_requests(random.Random(4), 5, ENDPOINTS))
    other = await asyncpg.connect(dsn)
    try:
        async with other.transaction():
            await other.execute("SELECT pg_advisory_xact_lock($1)", 0x70670_7E2)
            assert await db.refresh_rollups(week_conn) == 0
        assert await db.refresh_rollups(week_conn) == 1
    finally:
        await other.close()


async def test_retention_drops_minutes_after_8_days_and_hours_after_90(week_conn: asyncpg.Connection) -> None:
    now = dt.datetime.now(dt.UTC)
    for table, age in (("http_rollup_1m", dt.timedelta(days=8, minutes=5)), ("http_rollup_1h", dt.timedelta(days=91))):
        await week_conn.execute(
            f"INSERT INTO pgotel.{table} (endpoint_id, bucket, count, error_count, count_4xx, count_5xx, sum,"
            " zero_count, hist_offset, hist_counts) VALUES (1, $1, 1, 0, 0, 0, 0.1, 0, 0, '{1}'),"
            " (1, $2, 1, 0, 0, 0, 0.1, 0, 0, '{1}')",
            now - age,
            now - dt.timedelta(days=7),
        )
    await db.refresh_rollups(week_conn)
    assert await week_conn.fetchval("SELECT count(*) FROM pgotel.http_rollup_1m") == 1
    assert await week_conn.fetchval("SELECT count(*) FROM pgotel.http_rollup_1h") == 1


async def test_week_window_matches_ground_truth(week_conn: asyncpg.Connection) -> None:
    rng = random.Random(5)
    traffic = Traffic()
    now = dt.datetime.now(dt.UTC)
    for k in range(24):
        at = now - dt.timedelta(hours=7 * 24 - 2) + k * dt.timedelta(hours=7, minutes=11)
        await store_interval(week_conn, traffic, at, random_requests(rng, 300, ENDPOINTS))
    await db.refresh_rollups(week_conn)
    start, end = db.window_bounds(168, now)
    stats = {s.route: s for s in await db.endpoint_stats(week_conn, period_hours=168, now=now)}
    for method, route, _ in ENDPOINTS:
        requests = [r for r in traffic.within(start, end) if r.route == route]
        latencies = [r.seconds * 1000 for r in requests]
        got = stats[route]
        assert (got.method, got.request_count) == (method, len(requests))
        assert got.error_count == sum(r.is_error for r in requests)
        assert got.error_rate == pytest.approx(100 * got.error_count / len(requests))
        assert got.avg_latency_ms == pytest.approx(sum(latencies) / len(latencies))
        for quantile, value in ((0.5, got.p50_latency_ms), (0.95, got.p95_latency_ms), (0.99, got.p99_latency_ms)):
            assert value == pytest.approx(exact_percentile(latencies, quantile), rel=0.02)


def test_several_percentiles_in_one_pass_equal_each_alone() -> None:
    histogram = db.RollupHistogram(zero_count=3, offset=-200, counts=(5, 0, 2, 9, 1))
    quantiles = (0.0, 0.1, 0.5, 0.95, 0.99, 1.0)
    together = percentiles_from_histogram(histogram, quantiles)
    assert together == tuple(db.percentile_from_histogram(histogram, q) for q in quantiles)
    assert together[0] == 0.0 < together[2] < together[-1] == pytest.approx(2 ** ((-196 + 0.5) / 32))
