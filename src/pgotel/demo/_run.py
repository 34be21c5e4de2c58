"""The demo orchestrator: embedded Redis, the instrumented app on uvicorn and its traffic, in one process.

Everything runs on one asyncio loop in the main thread, so Ctrl-C, SIGTERM and the end of `--duration`
take the same path: traffic stops, the server drains, pgotel flushes, Redis stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

import uvicorn

import pgotel
from pgotel.config import LoadedConfig, load_config
from pgotel.dashboard import check_bind_allowed
from pgotel.demo._app import configure_logging, create_demo_app
from pgotel.demo._redis import EmbeddedRedis
from pgotel.demo._traffic import TrafficReport, generate_traffic

HOST = "127.0.0.1"
TRAFFIC_WORKERS = 4
GRACEFUL_SHUTDOWN_S = 3


class DemoError(RuntimeError):
    """The demo cannot run; the message says why and what to do."""


@dataclass(frozen=True)
class DemoOptions:
    port: int = 8000
    duration_s: float = 0.0  # 0: until Ctrl-C or SIGTERM
    rate_per_s: float = 30.0


@dataclass(frozen=True)
class _DemoRun:
    """What one demo run serves and prints."""

    config: LoadedConfig
    dsn: str
    cache: EmbeddedRedis
    listener: socket.socket
    options: DemoOptions
    generated_token: str | None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.listener.getsockname()[1]}"


def bind_loopback(port: int) -> socket.socket:
    """Bind the app's socket first, so that a port in use fails before anything is started."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((HOST, port))
    except OSError as exc:
        listener.close()
        raise DemoError(f"cannot listen on {HOST}:{port} ({exc.strerror}); pass another --port") from exc
    listener.listen(2048)
    return listener


def run_demo(
    config: LoadedConfig,
    dsn: str,
    listener: socket.socket,
    options: DemoOptions,
    *,
    started_at: float,
    out: TextIO = sys.stdout,
) -> TrafficReport:
    """Run the demo against the database at `dsn` until the duration ends or a signal arrives."""
    dashboard = config.settings.dashboard
    token = None if dashboard.auth is not None or dashboard.auth_disabled else secrets.token_urlsafe(18)
    # Started from the main thread: the server's parent-death signal is tied to the starting thread.
    cache = EmbeddedRedis.start(config.settings.database.embedded.data_dir / "redis")
    try:
        # setup() reads the file again: the dashboard watches the demo's Redis, gets this run's token
        # when none is configured, and the service is named, through variables the file honours.
        os.environ["PGOTEL_REDIS_URL"] = cache.url
        os.environ.setdefault("OTEL_SERVICE_NAME", "pgotel-demo")
        if token is not None:
            os.environ["PGOTEL_DASHBOARD_TOKEN"] = token
        demo_config = load_config(config.path)
        check_bind_allowed(demo_config.settings, HOST)
        run = _DemoRun(demo_config, dsn, cache, listener, options, token)
        return asyncio.run(_serve(run, started_at=started_at, out=out))
    finally:
        cache.stop()


class _DemoServer(uvicorn.Server):
    """uvicorn without its own signal handling: the demo decides how a signal stops everything."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve(run: _DemoRun, *, started_at: float, out: TextIO) -> TrafficReport:
    stop = asyncio.Event()
    with _stop_on_signals(stop):
        app = create_demo_app(run.dsn, run.cache.url)
        configure_logging()
        handle = pgotel.setup(app, config=run.config.path)
        server = _DemoServer(
            uvicorn.Config(
                app,
                log_config=None,
                log_level="warning",
                access_log=False,
                # An open dashboard keeps its live-log stream connected: do not wait for it forever.
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            )
        )
        serving = asyncio.create_task(_serve_until_exit(server, run.listener))
        report = TrafficReport()
        try:
            if await _started(server, serving, stop):
                _print_banner(run, ready_s=time.monotonic() - started_at, out=out)
                traffic = asyncio.create_task(
                    generate_traffic(run.base_url, stop, rate_per_s=run.options.rate_per_s, workers=TRAFFIC_WORKERS)
                )
                await _until_stopped(stop, serving, run.options.duration_s)
                stop.set()
                report = await traffic
            elif not stop.is_set():
                raise DemoError("the demo app failed to start; its error is logged above")
        finally:
            server.should_exit = True
            await serving
            await asyncio.to_thread(handle.shutdown)
    return report


async def _serve_until_exit(server: uvicorn.Server, listener: socket.socket) -> None:
    """uvicorn's serve(), which exits the process (SystemExit) when the app's startup fails: here that ends the
    task instead, so the demo reports it and stops what it started (a SystemExit inside a task would escape
    asyncio.run before its cleanup, leaving threads that keep the process alive)."""
    with contextlib.suppress(SystemExit):
        await server.serve(sockets=[listener])


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()

    def request_stop(signum: int, frame: object) -> None:
        loop.call_soon_threadsafe(stop.set)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def _started(server: uvicorn.Server, serving: asyncio.Task[None], stop: asyncio.Event) -> bool:
    """Wait until uvicorn serves (True), or gives up or is asked to stop first (False)."""
    while not server.started:
        if serving.done() or stop.is_set():
            return False
        await asyncio.sleep(0.05)
    return True


async def _until_stopped(stop: asyncio.Event, serving: asyncio.Task[None], duration_s: float) -> None:
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({stopped, serving}, timeout=duration_s or None, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()


def _print_banner(run: _DemoRun, *, ready_s: float, out: TextIO) -> None:
    settings = run.config.settings
    options = run.options
    how_long = f"for {options.duration_s:g} s" if options.duration_s else "until Ctrl-C"
    lines = [
        f"pgotel demo serving on {run.base_url} (ready in {ready_s:.1f} s)",
        f"  dashboard  {run.base_url}{settings.dashboard.path}",
    ]
    if run.generated_token:
        lines.append(f"  token      {run.generated_token}  (generated; set PGOTEL_DASHBOARD_TOKEN to choose one)")
    elif settings.dashboard.auth:
        lines.append("  token      the one in pgotel.dashboard.auth / PGOTEL_DASHBOARD_TOKEN")
    lines += [
        f"  app        {run.base_url}/docs  (every response carries X-Trace-ID)",
        f"  traffic    ~{options.rate_per_s:g} requests/s from {TRAFFIC_WORKERS} workers, {how_long}",
        f"  telemetry  psql {run.dsn}",
        "             tables pgotel.spans, pgotel.logs, pgotel.metric_points, pgotel.exp_histogram_points",
        f"  redis      {run.cache.url}  (monitored by the dashboard)",
        f"  logs       {settings.database.embedded.data_dir / 'pg' / 'server.log'}",
        f"             {run.cache.directory / 'redis.log'}",
        "Press Ctrl-C to stop.",
    ]
    print("\n".join(lines), file=out, flush=True)
