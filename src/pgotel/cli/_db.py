"""`pgotel db start|stop|status|url`: manage the embedded PostgreSQL server by hand."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pgotel import db
from pgotel.config import EmbeddedSettings, PgotelConfigError, load_config

EXIT_NOT_RUNNING = 1


def register(commands: argparse._SubParsersAction[Any], *, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("db", parents=parents, help="manage the embedded PostgreSQL server")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, run, summary in (
        ("start", _start, "start the embedded server (or reuse the one already running)"),
        ("stop", _stop, "stop the embedded server"),
        ("status", _status, "print pid, port and data dir; exit 1 when not running"),
        ("url", _url, "print the DSN of the configured database"),
    ):
        actions.add_parser(name, parents=parents, help=summary).set_defaults(run=run)


def _embedded_settings(config_file: str) -> EmbeddedSettings:
    """The embedded server's settings; a config error when the configured database is external."""
    loaded = load_config(config_file)
    database = loaded.settings.database
    if database.dsn != "embedded":
        raise PgotelConfigError(
            f"{loaded.path}: pgotel.database.dsn: `pgotel db start|stop|status` manage the embedded server, "
            "but the database is an external DSN (set the key to `embedded`, or unset PGOTEL_DSN)"
        )
    return database.embedded


def _describe(server: db.EmbeddedServer) -> str:
    return f"embedded PostgreSQL running: pid {server.pid}, port {server.port}, data dir {server.data_dir}"


def _not_running(embedded: EmbeddedSettings) -> str:
    return f"embedded PostgreSQL not running (data dir {embedded.data_dir.resolve()})"


def _start(args: argparse.Namespace) -> int:
    embedded = _embedded_settings(args.config)
    server = db.start_embedded(embedded.data_dir, port=embedded.port)
    print(_describe(server))
    print(f"psql {server.dsn}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    embedded = _embedded_settings(args.config)
    if db.stop_embedded(embedded.data_dir):
        print(f"embedded PostgreSQL stopped (data dir {embedded.data_dir.resolve()})")
    else:
        print(_not_running(embedded))
    return 0


def _status(args: argparse.Namespace) -> int:
    embedded = _embedded_settings(args.config)
    server = db.embedded_status(embedded.data_dir)
    if server is None:
        print(_not_running(embedded))
        return EXIT_NOT_RUNNING
    print(_describe(server))
    return 0


def _url(args: argparse.Namespace) -> int:
    database = load_config(args.config).settings.database
    if database.dsn != "embedded":
        print(database.dsn)
        return 0
    server = db.embedded_status(database.embedded.data_dir)
    if server is None:
        print(f"pgotel: {_not_running(database.embedded)}; start it with `pgotel db start`", file=sys.stderr)
        return EXIT_NOT_RUNNING
    print(server.dsn)
    return 0
