"""`pgotel serve`: the dashboard as a standalone app, reading what other processes exported."""

from __future__ import annotations

import argparse
from typing import Any

from pgotel.config import load_config


def register(commands: argparse._SubParsersAction[Any], *, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("serve", parents=parents, help="serve the dashboard on its own")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8001, help="port to bind (default 8001)")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    # Imported here: the dashboard and uvicorn are only needed by this command.
    import uvicorn

    from pgotel.dashboard import check_bind_allowed, create_dashboard_app

    settings = load_config(args.config).settings
    check_bind_allowed(settings, args.host)
    app = create_dashboard_app(settings)
    print(f"pgotel dashboard on http://{args.host}:{args.port}{settings.dashboard.path}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
