"""The `pgotel` command line: `demo`, `serve`, `migrate`, `prune` and `db start|stop|status|url`."""

from __future__ import annotations

from pgotel.cli._main import build_parser, main

__all__ = ["build_parser", "main"]
