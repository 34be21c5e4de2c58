"""`pgotel migrate` and `pgotel prune`: apply the shipped migrations; drop partitions past retention."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from pgotel import db
from pgotel.cli._database import database_dsn
from pgotel.config import PgotelSettings, load_config


def register(commands: argparse._SubParsersAction[Any], *, parents: list[argparse.ArgumentParser]) -> None:
    migrate = commands.add_parser(
        "migrate", parents=parents, help="apply pending schema migrations and create partitions ahead"
    )
    migrate.set_defaults(run=_migrate)
    prune = commands.add_parser(
        "prune", parents=parents, help="drop daily partitions older than retention.days; print their names"
    )
    prune.set_defaults(run=_prune)


def _migrate(args: argparse.Namespace) -> int:
    settings = load_config(args.config).settings
    with database_dsn(settings.database) as dsn:
        applied = asyncio.run(_apply_migrations(dsn, settings))
    for name in applied:
        print(f"applied {name}")
    if not applied:
        print("schema up to date")
    return 0


def _prune(args: argparse.Namespace) -> int:
    settings = load_config(args.config).settings
    with database_dsn(settings.database) as dsn:
        dropped = asyncio.run(_drop_expired(dsn, settings))
    for name in dropped:
        print(name)
    if not dropped:
        print(f"nothing to prune: no partition is older than {settings.retention.days} days", file=sys.stderr)
    return 0


async def _apply_migrations(dsn: str, settings: PgotelSettings) -> list[str]:
    conn = await db.connect(dsn)
    try:
        applied = await db.migrate(conn)
        await db.ensure_partitions_around_today(conn, days_ahead=settings.retention.partitions_ahead_days)
        return applied
    finally:
        await conn.close()


async def _drop_expired(dsn: str, settings: PgotelSettings) -> list[str]:
    conn = await db.connect(dsn)
    try:
        return await db.prune(conn, retention_days=settings.retention.days)
    finally:
        await conn.close()
