"""The built-in dashboard: `mount(app, settings)` adds it to a FastAPI app; `pgotel serve` runs it alone."""

from __future__ import annotations

from fastapi import FastAPI

from pgotel.config import PgotelSettings
from pgotel.dashboard._api import MonitoringData, create_api_router
from pgotel.dashboard._auth import check_bind_allowed
from pgotel.dashboard._router import DashboardPool, install_dashboard

__all__ = ["check_bind_allowed", "create_dashboard_app", "mount"]


def mount(app: FastAPI, settings: PgotelSettings) -> None:
    """Serve the dashboard page at settings.dashboard.path and its JSON API at settings.dashboard.api_path.

    Raises PgotelConfigError when no token is configured and auth is not explicitly disabled. The
    database pool is created on the first dashboard request, in the app's event loop, and closed
    when the app shuts down.
    """
    pool = DashboardPool(settings.database)
    redis_url = settings.monitoring.redis_url
    install_dashboard(
        app,
        settings,
        api_router=create_api_router(pool, redis_url=redis_url),
        data=MonitoringData(pool, redis_url=redis_url),
        pool=pool,
    )


def create_dashboard_app(settings: PgotelSettings) -> FastAPI:
    """A standalone app serving only the dashboard (what `pgotel serve` runs)."""
    app = FastAPI(title="pgotel dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    mount(app, settings)
    return app
