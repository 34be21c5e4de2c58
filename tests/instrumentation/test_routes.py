"""Path normalisation and the cap on distinct normalised routes."""

from __future__ import annotations

import pytest

from pgotel.instrumentation import OVERFLOW_ROUTE, RouteNamer, normalise_path


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/users/42", "/users/:id"),
        ("/users/42/orders/7", "/users/:id/orders/:id"),
        ("/u/6f1c2a9e-8d4b-4c3a-9e1f-0a2b3c4d5e6f", "/u/:uuid"),
        ("/u/6F1C2A9E8D4B4C3A9E1F0A2B3C4D5E6F", "/u/:uuid"),
        ("/commits/9fceb02d0ae598e95dc970b74767f19372d61af8", "/commits/:hash"),
        ("/short/abcdef12", "/short/abcdef12"),
        ("/not-hex/ghijklmnopqrstuvwxyz", "/not-hex/ghijklmnopqrstuvwxyz"),
        ("/", "/"),
        ("/health", "/health"),
    ],
)
def test_normalise_path(path: str, expected: str) -> None:
    assert normalise_path(path) == expected


def test_route_namer_caps_distinct_normalised_paths() -> None:
    namer = RouteNamer(max_routes=2)

    names = [namer.name({"path": path}, "") for path in ("/a/1", "/b", "/c", "/a/2", "/b")]

    assert names == ["/a/:id", "/b", OVERFLOW_ROUTE, "/a/:id", "/b"]


def test_route_namer_strips_the_app_root_path() -> None:
    assert RouteNamer(max_routes=10).name({"path": "/svc/users/5", "root_path": "/svc"}, "/svc") == "/users/:id"
