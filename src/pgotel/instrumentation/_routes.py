"""Route names for server spans and RED metrics: the route template, or a bounded normalisation of the path."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, MutableMapping
from typing import Any

from starlette.routing import Mount

OVERFLOW_ROUTE = "/:other"

_UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")
_LONG_HEX = re.compile(r"[0-9a-fA-F]{16,}")


def _fastapi_route_report_type() -> Callable[..., Any] | None:
    try:
        module = importlib.import_module("fastapi.telemetry._api")
    except ImportError:  # FastAPI before its native telemetry: Starlette's scope["route"] is all there is
        return None
    report_type: Callable[..., Any] | None = getattr(module, "_RequestTelemetry", None)
    return report_type


_ROUTE_REPORT_TYPE = _fastapi_route_report_type()


def normalise_path(path: str) -> str:
    """`path` with integer segments as `:id`, UUIDs as `:uuid` and hex strings of 16+ digits as `:hash`."""
    return "/".join(_normalise_segment(segment) for segment in path.split("/"))


def _normalise_segment(segment: str) -> str:
    if segment.isdigit():
        return ":id"
    if len(segment) >= 16:
        if _UUID.fullmatch(segment):
            return ":uuid"
        if _LONG_HEX.fullmatch(segment):
            return ":hash"
    return segment


def new_route_report(method: str) -> Any:
    """A slot, stored as scope["fastapi.telemetry"], that FastAPI's router fills with the full route template.

    FastAPI composes included routers lazily, so the route it leaves in scope["route"] lacks the prefixes of
    the routers that include it; only what it reports to its telemetry slot is the template a user wrote.
    An empty slot (no span, no logger) also keeps FastAPI's native telemetry out of mounted sub-apps.
    """
    return None if _ROUTE_REPORT_TYPE is None else _ROUTE_REPORT_TYPE(span=None, span_method=method, data=None)


class RouteNamer:
    """Names a finished request: its route template, else its normalised path, at most `max_routes` of those."""

    __slots__ = ("_max_routes", "_normalised")

    def __init__(self, max_routes: int) -> None:
        self._max_routes = max_routes
        self._normalised: set[str] = set()

    def name(self, scope: MutableMapping[str, Any], root_path: str, report: Any = None) -> str:
        """The route of `scope` after routing; `root_path` is the app's own root path, before any mount."""
        reported = getattr(report, "route", None)
        if isinstance(reported, str):
            return reported
        route = scope.get("route")
        template = getattr(route, "path_format", None)
        if isinstance(template, str):
            # Routers inside mounts match on the path below the mount, which they add to root_path.
            mount_prefix = scope.get("root_path", "")[len(root_path) :]
            return f"{mount_prefix}/{{path}}" if isinstance(route, Mount) else mount_prefix + template
        path: str = scope["path"]
        return self._bounded(normalise_path(path.removeprefix(root_path) if root_path else path))

    def _bounded(self, normalised: str) -> str:
        if normalised in self._normalised:
            return normalised
        if len(self._normalised) >= self._max_routes:
            return OVERFLOW_ROUTE
        self._normalised.add(normalised)
        return normalised
