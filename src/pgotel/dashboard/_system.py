"""Snapshots of the resources around the app for the summary: Redis (INFO), PostgreSQL, the host."""

from __future__ import annotations

import asyncio

import psutil
import redis.asyncio
import redis.exceptions

from pgotel import db
from pgotel.dashboard._models import PostgresStats, RedisStats, SystemStats

# The summary is polled every few seconds: a Redis that does not answer quickly is reported as down.
REDIS_TIMEOUT_S = 1.0
_MB = 1024 * 1024


async def redis_snapshot(redis_url: str | None) -> RedisStats:
    """Memory, keyspace hit rate and key count from INFO; connected=false (with the reason) otherwise."""
    if redis_url is None:
        return RedisStats(connected=False, error="no Redis to monitor: set pgotel.monitoring.redis_url")
    client = redis.asyncio.Redis.from_url(
        redis_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
    )
    try:
        info = await asyncio.wait_for(client.info(), REDIS_TIMEOUT_S)
    except (redis.exceptions.RedisError, OSError, TimeoutError) as exc:
        return RedisStats(connected=False, error=f"{type(exc).__name__}: {exc}")
    finally:
        await client.aclose()
    hits, misses = int(info.get("keyspace_hits", 0)), int(info.get("keyspace_misses", 0))
    max_memory = int(info.get("maxmemory", 0))
    return RedisStats(
        connected=True,
        memory_used_mb=int(info.get("used_memory", 0)) / _MB,
        memory_max_mb=max_memory / _MB if max_memory else None,
        hit_rate=100.0 * hits / (hits + misses) if hits + misses else None,
        keys=sum(int(value.get("keys", 0)) for key, value in info.items() if key.startswith("db")),
        evicted_keys=int(info.get("evicted_keys", 0)),
        connected_clients=int(info.get("connected_clients", 0)),
    )


async def postgres_snapshot(executor: db.Executor) -> PostgresStats:
    stats = await db.database_server_stats(executor)
    return PostgresStats(
        connections_total=stats.connections_total,
        connections_active=stats.connections_active,
        connections_idle=stats.connections_idle,
        connections_max=stats.connections_max,
        cache_hit_ratio=stats.cache_hit_ratio,
        db_size_mb=stats.database_size_bytes / _MB,
    )


def host_snapshot() -> SystemStats:
    """CPU use since the previous call (psutil's non-blocking form), memory and root-disk use."""
    return SystemStats(
        cpu_percent=psutil.cpu_percent(interval=None),
        cpu_count=psutil.cpu_count() or 1,
        memory_percent=psutil.virtual_memory().percent,
        disk_percent=psutil.disk_usage("/").percent,
    )
