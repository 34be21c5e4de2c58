"""PostgreSQL storage: embedded server lifecycle, schema migrations, partitions, writes and reads."""

from __future__ import annotations

from pgotel.db._connect import WRITER_SERVER_SETTINGS, connect, create_pool, resolve_dsn
from pgotel.db._embedded import EmbeddedPostgresError, EmbeddedServer
from pgotel.db._embedded import start as start_embedded
from pgotel.db._embedded import status as embedded_status
from pgotel.db._embedded import stop as stop_embedded
from pgotel.db._migrate import migrate, shipped_migrations
from pgotel.db._retention import ensure_partitions, ensure_partitions_around_today, prune, utc_today

__all__ = [
    "WRITER_SERVER_SETTINGS",
    "EmbeddedPostgresError",
    "EmbeddedServer",
    "connect",
    "create_pool",
    "embedded_status",
    "ensure_partitions",
    "ensure_partitions_around_today",
    "migrate",
    "prune",
    "resolve_dsn",
    "shipped_migrations",
    "start_embedded",
    "stop_embedded",
    "utc_today",
]
