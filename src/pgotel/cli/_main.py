"""Argument parsing and dispatch; user-caused errors become one line on stderr and an exit code."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import asyncpg

from pgotel.cli import _db, _demo, _schema, _serve
from pgotel.config import DEFAULT_CONFIG_FILE, PgotelConfigError
from pgotel.db import DatabaseConnectError, EmbeddedPostgresError

EXIT_CONFIG_ERROR = 2
EXIT_DATABASE_ERROR = 1
CONFIG_HELP = "otel-config.yaml to read (default: $OTEL_CONFIG_FILE, else ./otel-config.yaml)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgotel",
        description="OpenTelemetry for FastAPI, stored in PostgreSQL, with a dashboard.",
    )
    parser.add_argument("--config", default=os.environ.get("OTEL_CONFIG_FILE", DEFAULT_CONFIG_FILE), help=CONFIG_HELP)
    # Also accepted after the command. A subcommand's parser writes its defaults over the values parsed before
    # the command, so its copy has none (SUPPRESS): `pgotel --config x.yaml migrate` keeps x.yaml.
    after_command = argparse.ArgumentParser(add_help=False)
    after_command.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _demo.register(commands, parents=[after_command])
    _serve.register(commands, parents=[after_command])
    _schema.register(commands, parents=[after_command])
    _db.register(commands, parents=[after_command])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `pgotel` console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except PgotelConfigError as exc:
        print(f"pgotel: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    except (EmbeddedPostgresError, DatabaseConnectError) as exc:
        print(f"pgotel: {exc}", file=sys.stderr)
        return EXIT_DATABASE_ERROR
    except asyncpg.PostgresError as exc:  # connected, then refused: e.g. a role without CREATE rights
        print(f"pgotel: PostgreSQL refused the command: {exc} (SQLSTATE {exc.sqlstate})", file=sys.stderr)
        return EXIT_DATABASE_ERROR
    return code
