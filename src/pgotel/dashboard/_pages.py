"""The dashboard page, its HTMX fragments (one route each) and the login/logout forms."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined

from pgotel.dashboard import _views
from pgotel.dashboard._auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_MAX_AGE_S,
    DashboardAuth,
    csrf_token,
    read_form,
)
from pgotel.dashboard._models import EndpointSortField

SortOrder = Literal["asc", "desc"]
ENDPOINT_COLUMNS: tuple[tuple[EndpointSortField, str, bool], ...] = (
    ("endpoint", "Endpoint", False),
    ("method", "Method", False),
    ("request_count", "Requests", True),
    ("requests_per_second", "Req/s", True),
    ("avg_latency_ms", "Avg ms", True),
    ("p50_latency_ms", "P50 ms", True),
    ("p95_latency_ms", "P95 ms", True),
    ("p99_latency_ms", "P99 ms", True),
    ("error_count", "Errors", True),
    ("error_rate", "Error %", True),
)
PERIODS: tuple[tuple[int, str], ...] = ((1, "1h"), (24, "24h"), (168, "7d"))
ENDPOINTS_LIMIT = 100

ContextBuilder = Callable[["PageView"], Awaitable[dict[str, Any]]]
PeriodHours = Annotated[int, Query(ge=1, le=168, description="window in hours, 1..168")]
ThresholdMs = Annotated[float, Query(gt=0, le=600_000, description="slow-endpoint P95 threshold in ms")]


class DashboardData(Protocol):
    """Where the page reads its figures: the same answers, in the same JSON shape, as the JSON API."""

    async def summary(self, period_hours: int) -> Mapping[str, Any]: ...

    async def endpoints(
        self, period_hours: int, limit: int, sort: EndpointSortField, order: SortOrder
    ) -> Sequence[Mapping[str, Any]]: ...

    async def slow_endpoints(self, period_hours: int, threshold_ms: float) -> Sequence[Mapping[str, Any]]: ...

    async def error_hotspots(self, period_hours: int) -> Sequence[Mapping[str, Any]]: ...


@dataclass(frozen=True)
class ChartPanel:
    key: str
    title: str
    hint: str
    empty: str


CHARTS: tuple[ChartPanel, ...] = (
    ChartPanel("latency", "Latency", "P50 / P95 / P99 in ms", "No traffic yet: send requests to your app."),
    ChartPanel("traffic", "Requests & errors", "per interval", "No traffic yet: send requests to your app."),
    ChartPanel("postgres", "PostgreSQL connections", "sampled every refresh", "Waiting for the first sample…"),
    ChartPanel("resources", "CPU & memory", "host, % · sampled every refresh", "Waiting for the first sample…"),
)

_TEMPLATES = Environment(
    loader=PackageLoader("pgotel.dashboard", "templates"), autoescape=True, undefined=StrictUndefined
)


@dataclass(frozen=True)
class PageView:
    """The query state of one page view: period, endpoint sort, slow threshold."""

    period_hours: int
    sort: EndpointSortField = "request_count"
    order: SortOrder = "desc"
    threshold_ms: float = _views.LATENCY_WARN_MS

    def query(self, **changes: Any) -> str:
        state = {
            "period_hours": self.period_hours,
            "sort": self.sort,
            "order": self.order,
            "threshold_ms": f"{self.threshold_ms:g}",
        }
        state.update(changes)
        return urlencode(state)


def page_view(
    period_hours: PeriodHours = 1,
    sort: EndpointSortField = "request_count",
    order: SortOrder = "desc",
    threshold_ms: ThresholdMs = _views.LATENCY_WARN_MS,
) -> PageView:
    """The page's query parameters (validated: bad values get 422 naming the parameter)."""
    return PageView(period_hours, sort, order, threshold_ms)


def _period_label(hours: int) -> str:
    return next((label for value, label in PERIODS if value == hours), f"{hours}h")


class DashboardPages:
    """Renders the page and its fragments for one mounted dashboard."""

    def __init__(self, *, path: str, api_path: str, auth: DashboardAuth, data: DashboardData, version: str):
        self.path = path.rstrip("/") or "/"
        self.api_path = api_path.rstrip("/")
        self.auth = auth
        self.data = data
        self.version = version

    def url(self, suffix: str = "") -> str:
        return f"{self.path.rstrip('/')}{suffix}" or "/"

    def base_context(self, request: Request, view: PageView) -> dict[str, Any]:
        fragments = ("banner", "kpis", "metrics", "endpoints", "slow_endpoints", "error_hotspots")
        return {
            "version": self.version,
            "static_url": self.url("/static"),
            "api_url": self.api_path,
            "logout_url": self.url("/logout"),
            "auth_enabled": self.auth.enabled,
            "csrf_token": csrf_token(request),
            "period_hours": view.period_hours,
            "period_label": _period_label(view.period_hours),
            "updated_at": dt.datetime.now(dt.UTC).strftime("%H:%M:%S"),
            "fragment_urls": {
                name: f"{self.url('/fragments/' + name.replace('_', '-'))}?{view.query()}" for name in fragments
            },
            "latency_warn_ms": f"{_views.LATENCY_WARN_MS:g}",
            "latency_crit_ms": f"{_views.LATENCY_CRIT_MS:g}",
            "error_warn_pct": f"{_views.ERROR_RATE_WARN_PCT:g}",
            "error_crit_pct": f"{_views.ERROR_RATE_CRIT_PCT:g}",
            "slow_threshold_ms": f"{view.threshold_ms:g}",
        }

    async def summary_context(self, view: PageView) -> dict[str, Any]:
        summary = await self.data.summary(view.period_hours)
        kpis = _views.build_kpis(summary)
        return {"kpis": kpis, "banner": _views.build_banner(kpis, summary)}

    async def endpoints_context(self, view: PageView) -> dict[str, Any]:
        rows = await self.data.endpoints(view.period_hours, ENDPOINTS_LIMIT, view.sort, view.order)
        columns = []
        for key, label, numeric in ENDPOINT_COLUMNS:
            sorted_here = key == view.sort
            # First click sorts figures worst-first and names alphabetically; a second click flips.
            order = ("asc" if view.order == "desc" else "desc") if sorted_here else ("desc" if numeric else "asc")
            query = view.query(sort=key, order=order)
            columns.append(
                {
                    "label": label,
                    "numeric": numeric,
                    "sorted": sorted_here,
                    "arrow": "▼" if view.order == "desc" else "▲",
                    "aria_sort": "descending" if view.order == "desc" else "ascending",
                    "page_url": f"{self.path}?{query}",
                    "fragment_url": f"{self.url('/fragments/endpoints')}?{query}",
                }
            )
        return {"endpoint_rows": _views.build_endpoint_rows(rows), "endpoint_columns": columns}

    async def slow_context(self, view: PageView) -> dict[str, Any]:
        rows = await self.data.slow_endpoints(view.period_hours, view.threshold_ms)
        return {"slow_rows": _views.build_slow_rows(rows)}

    async def hotspots_context(self, view: PageView) -> dict[str, Any]:
        rows = await self.data.error_hotspots(view.period_hours)
        return {"hotspot_rows": _views.build_hotspot_rows(rows)}

    def render(self, request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
        html = _TEMPLATES.get_template(template).render(context)
        response = HTMLResponse(html, status_code=status_code)
        if CSRF_COOKIE not in request.cookies:
            self._set_cookie(request, response, CSRF_COOKIE, context["csrf_token"], max_age=None)
        return response

    def _set_cookie(self, request: Request, response: Response, name: str, value: str, *, max_age: int | None) -> None:
        # Path "/" because the page and the API live under different prefixes.
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    async def page(self, request: Request, view: PageView) -> HTMLResponse:
        summary, endpoints, slow, hotspots = await asyncio.gather(
            self.summary_context(view),
            self.endpoints_context(view),
            self.slow_context(view),
            self.hotspots_context(view),
        )
        periods = [
            {
                "hours": hours,
                "label": label,
                "active": hours == view.period_hours,
                "url": f"{self.path}?{view.query(period_hours=hours)}",
            }
            for hours, label in PERIODS
        ]
        context = {
            **self.base_context(request, view),
            **summary,
            **endpoints,
            **slow,
            **hotspots,
            "periods": periods,
            "charts": CHARTS,
        }
        return self.render(request, "dashboard.html", context)

    def login_form(self, request: Request, error: str | None = None, status_code: int = 200) -> HTMLResponse:
        context = {
            "version": self.version,
            "static_url": self.url("/static"),
            "login_url": self.url("/login"),
            "csrf_token": csrf_token(request),
            "error": error,
        }
        return self.render(request, "login.html", context, status_code)

    async def login(self, request: Request) -> Response:
        submitted = (await read_form(request)).get("token", "")
        try:
            matches = self.auth.check_token(request, submitted)
        except HTTPException as refused:
            form = self.login_form(request, f"{str(refused.detail).capitalize()}.", status_code=refused.status_code)
            form.headers.update(refused.headers or {})
            return form
        if not matches:
            return self.login_form(request, "Wrong token.", status_code=401)
        response = RedirectResponse(self.path, status_code=303)
        self._set_cookie(request, response, SESSION_COOKIE, self.auth.issue_session(), max_age=SESSION_MAX_AGE_S)
        return response

    def logout(self) -> Response:
        response = RedirectResponse(self.url("/login"), status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response


def create_pages_router(pages: DashboardPages) -> APIRouter:
    """Routes under the dashboard path: the page and fragments behind auth, the login form open."""
    protected = APIRouter(dependencies=[Depends(pages.auth.require_page)])
    fragment_routes: dict[str, tuple[str, ContextBuilder]] = {
        "banner": ("fragments/banner.html", pages.summary_context),
        "kpis": ("fragments/kpis.html", pages.summary_context),
        "metrics": ("fragments/metrics.html", pages.summary_context),
        "endpoints": ("fragments/endpoints.html", pages.endpoints_context),
        "slow-endpoints": ("fragments/slow_endpoints.html", pages.slow_context),
        "error-hotspots": ("fragments/error_hotspots.html", pages.hotspots_context),
    }

    @protected.get(pages.path, response_class=HTMLResponse, include_in_schema=False)
    async def dashboard_page(request: Request, state: Annotated[PageView, Depends(page_view)]) -> HTMLResponse:
        return await pages.page(request, state)

    def fragment_endpoint(template: str, build: ContextBuilder) -> Callable[..., Awaitable[HTMLResponse]]:
        async def fragment(request: Request, state: Annotated[PageView, Depends(page_view)]) -> HTMLResponse:
            context = {**pages.base_context(request, state), **await build(state)}
            return pages.render(request, template, context)

        return fragment

    for name, (template, build) in fragment_routes.items():
        protected.add_api_route(
            pages.url(f"/fragments/{name}"),
            fragment_endpoint(template, build),
            methods=["GET"],
            response_class=HTMLResponse,
            include_in_schema=False,
            name=f"pgotel_dashboard_fragment_{name.replace('-', '_')}",
        )

    @protected.post(pages.url("/logout"), include_in_schema=False, dependencies=[Depends(pages.auth.require_csrf)])
    async def logout() -> Response:
        return pages.logout()

    public = APIRouter()

    @public.get(pages.url("/login"), response_class=HTMLResponse, include_in_schema=False)
    async def login_form(request: Request) -> Response:
        if pages.auth.is_authenticated(request):
            return RedirectResponse(pages.path, status_code=303)
        return pages.login_form(request)

    @public.post(pages.url("/login"), include_in_schema=False, dependencies=[Depends(pages.auth.require_csrf)])
    async def login(request: Request) -> Response:
        return await pages.login(request)

    public.include_router(protected)
    return public
