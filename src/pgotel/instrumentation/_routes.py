"""Route names for server spans and RED metrics: the route template, or a bounded normalisation of the path."""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

from starlette.routing import Mount

OVERFLOW_ROUTE = "/:other"

_UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")
_LONG_HEX = re.compile(r"[0-9a-fA-F]{16,}")


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


class RouteNamer:
    """Names a finished request: its route template, else its normalised path, at most `max_routes` of those."""

    __slots__ = ("_max_routes", "_normalised")

    def __init__(self, max_routes: int) -> None:
        self._max_routes = max_routes
        self._normalised: set[str] = set()

    def name(self, scope: MutableMapping[str, Any], root_path: str) -> str:
        """The route of `scope` after routing; `root_path` is the app's own root path, before any mount."""
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
