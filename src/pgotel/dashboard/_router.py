"""Assembles the dashboard: JSON API and pages behind auth, static assets, security headers, DB pool."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import importlib.resources
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, FastAPI
from starlette.staticfiles import StaticFiles

from pgotel import db
from pgotel.config import DatabaseSettings, PgotelSettings
from pgotel.dashboard._auth import DashboardAuth
from pgotel.dashboard._pages import DashboardData, DashboardPages, create_pages_router
from pgotel.dashboard._security import SecurityHeadersMiddleware

if TYPE_CHECKING:
    import asyncpg

# The dashboard reads a handful of aggregate queries per refresh: two connections are plenty.
DASHBOARD_POOL_SIZE = 2


class DashboardPool:
    """The dashboard's read pool, created on first use in the serving event loop and closed at shutdown.

    Creating it lazily keeps `mount()` synchronous and makes it safe under `uvicorn --workers N`
    (each worker creates its own pool after the fork).
    """

    def __init__(self, database: DatabaseSettings, *, size: int = DASHBOARD_POOL_SIZE) -> None:
        self._database = database
        self._size = size
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        async with self._lock:
            if self._pool is None:
                # Resolving `embedded` may start the server: a blocking call, kept off the loop.
                dsn = await asyncio.to_thread(db.resolve_dsn, self._database)
                # A dashboard may be the first to reach a new database (`pgotel serve` before any app):
                # the pool gives it the schema so it shows empty states rather than errors.
                self._pool = await db.open_pool(dsn, size=self._size)
            return self._pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()


def _version() -> str:
    try:
        return importlib.metadata.version("pgotel")
    except importlib.metadata.PackageNotFoundError:
        return "dev"


def create_dashboard_router(settings: PgotelSettings, *, api_router: APIRouter, data: DashboardData) -> APIRouter:
    """The API router (prefixed with api_path) and the pages, each route behind dashboard auth."""
    dashboard = settings.dashboard
    auth = DashboardAuth.from_settings(dashboard)
    router = APIRouter()
    router.include_router(
        api_router,
        prefix=dashboard.api_path,
        dependencies=[Depends(auth.require_api), Depends(auth.require_csrf_if_unsafe)],
    )
    pages = DashboardPages(path=dashboard.path, api_path=dashboard.api_path, auth=auth, data=data, version=_version())
    router.include_router(create_pages_router(pages))
    return router


def install_dashboard(
    app: FastAPI, settings: PgotelSettings, *, api_router: APIRouter, data: DashboardData, pool: DashboardPool
) -> None:
    """Add the dashboard to `app`: routes, static files, security headers, pool shutdown."""
    dashboard = settings.dashboard
    static_path = f"{dashboard.path.rstrip('/')}/static"
    app.include_router(create_dashboard_router(settings, api_router=api_router, data=data))
    static_dir = importlib.resources.files("pgotel.dashboard") / "static"
    app.mount(static_path, StaticFiles(directory=str(static_dir)), name="pgotel_dashboard_static")
    app.add_middleware(
        SecurityHeadersMiddleware,
        path_prefixes=(dashboard.path, dashboard.api_path),
        static_prefix=static_path,
    )
    _close_on_shutdown(app, pool)


def _close_on_shutdown(app: FastAPI, pool: DashboardPool) -> None:
    # Wrap the app's own lifespan so the pool closes after it, whatever lifespan style the app uses.
    app_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(running: Any) -> AsyncIterator[Any]:
        try:
            async with app_lifespan(running) as state:
                yield state
        finally:
            await pool.close()

    app.router.lifespan_context = lifespan
