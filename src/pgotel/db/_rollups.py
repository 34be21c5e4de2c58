"""Per-endpoint RED rollups: their maintenance, and the exponential-histogram math they are read with.

The tables and the refresh procedure live in migrations/0002_rollups.sql; this module runs the refresh
(one runner at a time across processes) and turns rollup histograms into percentiles.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pgotel.db._migrate import Connection

# Scale of every rollup histogram (must equal pgotel.rollup_scale() in the migration): 32 buckets per
# doubling, so a bucket's geometric midpoint is within 2^(1/64) - 1 = 1.09% of any value in it.
ROLLUP_SCALE = 5
MINUTE_RETENTION = dt.timedelta(days=8)
HOUR_RETENTION = dt.timedelta(days=90)

# Any constant unique to pgotel's rollups: one refresher at a time across every process on the database.
ROLLUP_LOCK_KEY = 0x70670_7E2

_TRY_LOCK = "SELECT pg_try_advisory_xact_lock($1)"
_REFRESH = "SELECT pgotel.refresh_http_rollups($1::interval, $2::interval)"


@dataclass(frozen=True)
class RollupHistogram:
    """Positive buckets of a base-2 exponential histogram at ROLLUP_SCALE, plus its zero bucket.

    counts[k] is the number of values in bucket offset + k, i.e. in (b^(offset+k), b^(offset+k+1)]
    with b = 2^(2^-ROLLUP_SCALE).
    """

    zero_count: int = 0
    offset: int = 0
    counts: tuple[int, ...] = ()

    @property
    def total(self) -> int:
        return self.zero_count + sum(self.counts)


def merge_histograms(added: Iterable[RollupHistogram], subtracted: Iterable[RollupHistogram] = ()) -> RollupHistogram:
    """Sum of `added` minus sum of `subtracted`, bucket by bucket, trimmed of empty end buckets."""
    terms = [(1, histogram) for histogram in added] + [(-1, histogram) for histogram in subtracted]
    zero = sum(sign * histogram.zero_count for sign, histogram in terms)
    spans = [(histogram.offset, histogram.offset + len(histogram.counts)) for _, histogram in terms if histogram.counts]
    if not spans:
        return RollupHistogram(zero_count=zero)
    low = min(start for start, _ in spans)
    merged = [0] * (max(end for _, end in spans) - low)
    for sign, histogram in terms:
        base = histogram.offset - low
        for k, count in enumerate(histogram.counts, base):
            merged[k] += sign * count
    used = [k for k, count in enumerate(merged) if count]
    if not used:
        return RollupHistogram(zero_count=zero)
    return RollupHistogram(zero, low + used[0], tuple(merged[used[0] : used[-1] + 1]))


def bucket_midpoint(index: int, scale: int = ROLLUP_SCALE) -> float:
    """Geometric midpoint of bucket `index`: the estimate with the smallest worst-case relative error."""
    return math.pow(2.0, (index + 0.5) / (1 << scale))


def percentile_from_histogram(histogram: RollupHistogram, quantile: float) -> float:
    """The `quantile` (0..1) of the recorded values, interpolated between ranks as PERCENTILE_CONT does.

    Each ranked value is estimated by its bucket's geometric midpoint (zero-bucket values by 0), so the
    result is within 1.09% of PERCENTILE_CONT over the raw values at scale 5. 0.0 when empty.
    """
    return percentiles_from_histogram(histogram, (quantile,))[0]


def percentiles_from_histogram(histogram: RollupHistogram, quantiles: Sequence[float]) -> tuple[float, ...]:
    """percentile_from_histogram for several quantiles, in one pass over the buckets."""
    for quantile in quantiles:
        if not 0.0 <= quantile <= 1.0:
            raise ValueError(f"quantile must be within 0..1, got {quantile}")
    total = histogram.total
    if total == 0:
        return tuple(0.0 for _ in quantiles)
    positions = [quantile * (total - 1) for quantile in quantiles]
    ranks = sorted({rank for position in positions for rank in (math.floor(position), math.ceil(position))})
    values = _values_at_ranks(histogram, ranks)
    found = []
    for position in positions:
        lower, upper = values[math.floor(position)], values[math.ceil(position)]
        found.append(lower + (position - math.floor(position)) * (upper - lower))
    return tuple(found)


def _values_at_ranks(histogram: RollupHistogram, ranks: Sequence[int]) -> dict[int, float]:
    """Estimated values of the `ranks`-th (0-based, ascending) smallest recorded values."""
    values: dict[int, float] = {}
    pending = [rank for rank in ranks if rank >= histogram.zero_count]
    values.update((rank, 0.0) for rank in ranks if rank < histogram.zero_count)
    seen = histogram.zero_count
    next_rank = 0
    for k, count in enumerate(histogram.counts):
        seen += count
        while next_rank < len(pending) and pending[next_rank] < seen:
            values[pending[next_rank]] = bucket_midpoint(histogram.offset + k)
            next_rank += 1
        if next_rank == len(pending):
            return values
    # Counts that sum to less than the total (inconsistent input): the highest bucket bounds the answer.
    highest = bucket_midpoint(histogram.offset + len(histogram.counts) - 1) if histogram.counts else 0.0
    values.update((rank, highest) for rank in pending[next_rank:])
    return values


def excess_above(histogram: RollupHistogram, threshold: float) -> tuple[int, float]:
    """(values above `threshold`, total amount by which they exceed it), each value at its bucket midpoint."""
    above = 0
    excess = 0.0
    for k, count in enumerate(histogram.counts):
        value = bucket_midpoint(histogram.offset + k)
        if count and value > threshold:
            above += count
            excess += count * (value - threshold)
    return above, excess


async def refresh_rollups(conn: Connection) -> int:
    """Bring the minute and hour rollups up to date with every exponential-histogram point written so far.

    Idempotent and cheap when nothing changed (an empty queue of dirty minutes). Returns the number of
    minutes recomputed, 0 when another process holds the refresh (it will pick the new points up).
    """
    async with conn.transaction():
        if not await conn.fetchval(_TRY_LOCK, ROLLUP_LOCK_KEY):
            return 0
        return int(await conn.fetchval(_REFRESH, MINUTE_RETENTION, HOUR_RETENTION))
