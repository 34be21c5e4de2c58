"""Schema migrations: ordered SQL files shipped in the wheel, applied once each under an advisory lock."""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass

import asyncpg

Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

# Any constant unique to pgotel: serialises migrations across every process sharing the database.
MIGRATION_LOCK_KEY = 0x70670_7E1

_BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS pgotel;
CREATE TABLE IF NOT EXISTS pgotel.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def shipped_migrations() -> list[Migration]:
    """The migrations packaged under pgotel/db/migrations, ordered by their numeric prefix."""
    folder = importlib.resources.files("pgotel.db") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append(Migration(version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda migration: migration.version)


async def migrate(conn: Connection) -> list[str]:
    """Apply every shipped migration not yet applied; return the names applied now. Idempotent."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(_BOOTSTRAP)
        applied = {row["version"] for row in await conn.fetch("SELECT version FROM pgotel.schema_migrations")}
        done = []
        for migration in shipped_migrations():
            if migration.version in applied:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO pgotel.schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            done.append(migration.name)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
