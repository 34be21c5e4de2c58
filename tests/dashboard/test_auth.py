"""Dashboard auth on the real mounted app: every route needs credentials, tokens and sessions are checked,
CSRF is enforced."""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount

from pgotel.config import PgotelConfigError, PgotelSettings, parse_settings
from pgotel.dashboard._api import MonitoringData, create_api_router
from pgotel.dashboard._auth import SESSION_MAX_AGE_S, DashboardAuth, FailedAttemptThrottle, check_bind_allowed
from pgotel.dashboard._router import DashboardPool, install_dashboard
from tests.dashboard.conftest import API, PAGE, TOKEN, dashboard_app, login

PUBLIC_ROUTES = {("GET", f"{PAGE}/login"), ("POST", f"{PAGE}/login")}
BEARER = {"Authorization": f"Bearer {TOKEN}"}
STATE_CHANGE = f"{API}/test-only/acknowledge/7"


def dashboard_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, concrete path) for every dashboard route of the app; path parameters filled with 1."""
    found = []
    for context in iter_route_contexts(app.routes):
        path = context.path or ""
        if not (path.startswith(PAGE) or path.startswith(API)) or isinstance(context.route, Mount):
            continue
        for method in sorted(context.methods or ()):
            if method != "HEAD":
                found.append((method, re.sub(r"\{[^}]+\}", "1", path)))
    return found


def protected_routes(app: FastAPI) -> list[tuple[str, str]]:
    """The routes that need credentials, logout last (it ends the session the others use)."""
    routes = [route for route in dashboard_routes(app) if route not in PUBLIC_ROUTES]
    return sorted(routes, key=lambda route: route == ("POST", f"{PAGE}/logout"))


def assert_got_through(client: TestClient, method: str, path: str) -> None:
    """The route's own handler answered: GETs render, logout ends the session."""
    response = client.request(method, path, headers={"X-CSRF-Token": client.cookies.get("pgotel_csrf", "")})
    if (method, path) == ("POST", f"{PAGE}/logout"):
        assert response.status_code == 303, (method, path)
        assert response.headers["set-cookie"].startswith('pgotel_session="";')
    else:
        assert response.status_code == 200, (method, path, response.text[:200])


def test_routes_are_found(app: FastAPI) -> None:
    routes = dashboard_routes(app)
    assert ("GET", PAGE) in routes
    assert ("GET", f"{PAGE}/fragments/endpoints") in routes
    assert ("POST", f"{PAGE}/logout") in routes
    for api_route in ("summary", "performance/endpoints", "performance/slow-endpoints", "timeseries/latency"):
        assert ("GET", f"{API}/{api_route}") in routes
    assert set(routes) >= PUBLIC_ROUTES
    assert len(routes) >= 16  # 6 API, the page, 6 fragments, logout, the login form and its post


def test_every_route_but_login_requires_credentials(app: FastAPI, dashboard: TestClient) -> None:
    for method, path in protected_routes(app):
        response = dashboard.request(method, path)
        if path.startswith(API):
            assert response.status_code == 401, (method, path)
            assert "Bearer" in response.json()["detail"]
            assert response.headers["www-authenticate"] == "Bearer"
        else:
            assert response.status_code == 303, (method, path)
            assert response.headers["location"] == f"{PAGE}/login"


def test_every_route_lets_a_bearer_through(app: FastAPI, dashboard: TestClient) -> None:
    dashboard.headers.update(BEARER)
    for method, path in protected_routes(app):
        assert_got_through(dashboard, method, path)


def test_every_route_lets_a_session_through(app: FastAPI, dashboard: TestClient) -> None:
    assert login(dashboard).status_code == 303
    for method, path in protected_routes(app):
        assert_got_through(dashboard, method, path)


def test_htmx_fragment_without_session_asks_htmx_to_redirect(dashboard: TestClient) -> None:
    response = dashboard.get(f"{PAGE}/fragments/kpis", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["hx-redirect"] == f"{PAGE}/login"


@pytest.mark.parametrize(
    "authorization", [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ", f"Basic {TOKEN}", TOKEN]
)
def test_wrong_bearer_token_is_rejected(dashboard: TestClient, authorization: str) -> None:
    assert dashboard.get(f"{API}/summary", headers={"Authorization": authorization}).status_code == 401
    assert dashboard.get(PAGE, headers={"Authorization": authorization}).status_code == 303


def test_tokens_are_compared_in_constant_time(dashboard: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    compare_digest = hmac.compare_digest

    def recording_compare_digest(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return compare_digest(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording_compare_digest)
    assert dashboard.get(f"{API}/summary", headers={"Authorization": "Bearer guess"}).status_code == 401
    assert (b"guess", TOKEN.encode()) in compared
    assert login(dashboard, token="guess-2").status_code == 401
    assert (b"guess-2", TOKEN.encode()) in compared


def test_login_with_wrong_token_is_rejected(dashboard: TestClient) -> None:
    response = login(dashboard, token="not-the-token")
    assert response.status_code == 401
    assert "Wrong token" in response.text
    assert "pgotel_session" not in dashboard.cookies
    assert dashboard.get(PAGE).status_code == 303


def test_repeated_wrong_tokens_are_throttled_per_address(dashboard: TestClient) -> None:
    for attempt in range(10):
        assert login(dashboard, token=f"guess-{attempt}").status_code == 401
    throttled = login(dashboard)  # even the right token: the address may not try for now
    assert throttled.status_code == 429
    assert 0 < int(throttled.headers["retry-after"]) <= 300
    assert "Too many failed token attempts" in throttled.text
    assert "pgotel_session" not in dashboard.cookies
    api = dashboard.get(f"{API}/summary", headers=BEARER)
    assert api.status_code == 429
    assert api.headers["retry-after"] == throttled.headers["retry-after"]


def test_throttle_forgets_failures_after_the_window_and_bounds_its_memory() -> None:
    throttle = FailedAttemptThrottle(limit=3, window_s=60, max_clients=2)
    for second in (0, 10, 20):
        assert throttle.retry_after_s("10.0.0.1", now=second) == 0
        throttle.record_failure("10.0.0.1", now=second)
    assert throttle.retry_after_s("10.0.0.1", now=30) == 30  # until the failure at 0 is 60 s old
    assert throttle.retry_after_s("10.0.0.2", now=30) == 0
    assert throttle.retry_after_s("10.0.0.1", now=60) == 0
    for client in ("10.0.0.2", "10.0.0.3", "10.0.0.4"):
        throttle.record_failure(client, now=61)
    assert throttle.tracked_clients == 2


def test_login_sets_a_strict_httponly_session_cookie_without_the_token(dashboard: TestClient) -> None:
    response = login(dashboard)
    assert response.status_code == 303
    assert response.headers["location"] == PAGE
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("pgotel_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/" in cookie
    assert f"Max-Age={SESSION_MAX_AGE_S}" in cookie
    assert "Secure" not in cookie  # plain http in this test; see the https case below
    assert TOKEN not in cookie
    assert dashboard.get(PAGE).status_code == 200
    assert dashboard.get(f"{API}/summary").status_code == 200


def test_session_cookie_is_secure_over_https(app: FastAPI) -> None:
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        client.get(f"{PAGE}/login")
        response = client.post(
            f"{PAGE}/login",
            data={"token": TOKEN, "csrf_token": client.cookies["pgotel_csrf"]},
            headers={"Origin": "https://testserver"},
        )
        assert response.status_code == 303
        assert "Secure" in response.headers["set-cookie"]


@pytest.mark.parametrize(
    "session",
    [
        "garbage",
        "1700000000.deadbeef",
        DashboardAuth(token="another-token", login_path="/l").issue_session(),
    ],
)
def test_forged_session_cookie_is_rejected(dashboard: TestClient, session: str) -> None:
    dashboard.cookies.set("pgotel_session", session)
    assert dashboard.get(PAGE).status_code == 303
    assert dashboard.get(f"{API}/summary").status_code == 401


def test_session_expires() -> None:
    auth = DashboardAuth(token=TOKEN, login_path="/l")
    session = auth.issue_session(now=1_000_000)
    assert auth.session_valid(session, now=1_000_000 + SESSION_MAX_AGE_S)
    assert not auth.session_valid(session, now=1_000_001 + SESSION_MAX_AGE_S)
    assert not auth.session_valid(session, now=999_999)


def test_login_form_redirects_a_logged_in_browser(dashboard: TestClient) -> None:
    login(dashboard)
    response = dashboard.get(f"{PAGE}/login")
    assert response.status_code == 303
    assert response.headers["location"] == PAGE


@pytest.mark.parametrize(
    ("form", "headers"),
    [
        ({"token": TOKEN}, {}),
        ({"token": TOKEN, "csrf_token": "guessed"}, {}),
        ({"token": TOKEN, "csrf_token": "{csrf}"}, {"Sec-Fetch-Site": "cross-site"}),
        ({"token": TOKEN, "csrf_token": "{csrf}"}, {"Origin": "https://evil.example"}),
    ],
)
def test_login_without_valid_csrf_is_rejected(
    dashboard: TestClient, form: dict[str, str], headers: dict[str, str]
) -> None:
    dashboard.get(f"{PAGE}/login")
    csrf = dashboard.cookies["pgotel_csrf"]
    data = {name: value.replace("{csrf}", csrf) for name, value in form.items()}
    response = dashboard.post(f"{PAGE}/login", data=data, headers=headers)
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert "pgotel_session" not in dashboard.cookies


def test_logout_requires_csrf_and_ends_the_session(dashboard: TestClient) -> None:
    login(dashboard)
    assert dashboard.post(f"{PAGE}/logout").status_code == 403
    assert dashboard.get(PAGE).status_code == 200
    response = dashboard.post(f"{PAGE}/logout", data={"csrf_token": dashboard.cookies["pgotel_csrf"]})
    assert response.status_code == 303
    assert response.headers["location"] == f"{PAGE}/login"
    assert dashboard.get(PAGE).status_code == 303


@pytest.fixture
def state_changing(settings: PgotelSettings) -> Iterator[TestClient]:
    """The real dashboard on the real database, plus one POST route added to its JSON API here only.

    The API has no state-changing route yet (alert acknowledge comes later). This route is not a fake of
    the database: it is wired exactly as `mount` wires the real API (`install_dashboard` puts the
    dashboard's own auth and CSRF dependencies on every route of the API router), so the real CSRF
    mechanism is what these tests exercise.
    """
    pool = DashboardPool(settings.database)
    api_router = create_api_router(pool)

    @api_router.post("/test-only/acknowledge/{alert_id}")
    async def acknowledge(alert_id: int) -> dict[str, int]:
        return {"acknowledged": alert_id}

    app = FastAPI()
    install_dashboard(app, settings, api_router=api_router, data=MonitoringData(pool), pool=pool)
    with TestClient(app, follow_redirects=False) as client:
        yield client


def test_state_changing_api_call_needs_credentials(state_changing: TestClient) -> None:
    response = state_changing.post(STATE_CHANGE, headers={"X-CSRF-Token": "anything"})
    assert response.status_code == 401
    assert state_changing.get(f"{API}/summary", headers=BEARER).status_code == 200  # the real API beside it


def test_state_changing_api_call_with_session_cookie_requires_csrf(state_changing: TestClient) -> None:
    login(state_changing)
    csrf = state_changing.cookies["pgotel_csrf"]
    assert state_changing.post(STATE_CHANGE).status_code == 403
    assert state_changing.post(STATE_CHANGE, headers={"X-CSRF-Token": "guessed"}).status_code == 403
    cross_site = {"X-CSRF-Token": csrf, "Origin": "https://evil.example"}
    assert state_changing.post(STATE_CHANGE, headers=cross_site).status_code == 403
    response = state_changing.post(STATE_CHANGE, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 200
    assert response.json() == {"acknowledged": 7}


def test_state_changing_api_call_with_bearer_needs_no_csrf(state_changing: TestClient) -> None:
    response = state_changing.post(STATE_CHANGE, headers=BEARER)
    assert response.status_code == 200
    assert response.json() == {"acknowledged": 7}


def test_no_token_configured_refuses_to_start(dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGOTEL_DASHBOARD_TOKEN", raising=False)
    with pytest.raises(PgotelConfigError, match=r"pgotel\.dashboard\.auth.*PGOTEL_DASHBOARD_TOKEN"):
        dashboard_app(parse_settings({"database": {"dsn": dsn}}, source="test"))


def test_token_from_environment(dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGOTEL_DASHBOARD_TOKEN", "from-env")
    settings = parse_settings({"database": {"dsn": dsn}}, source="test")
    with TestClient(dashboard_app(settings)) as client:
        assert client.get(f"{API}/summary", headers={"Authorization": "Bearer from-env"}).status_code == 200
        assert client.get(f"{API}/summary", headers=BEARER).status_code == 401


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_auth_may_be_disabled_on_loopback(host: str) -> None:
    check_bind_allowed(PgotelSettings.model_validate({"dashboard": {"auth_disabled": True}}), host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com"])
def test_auth_disabled_is_refused_on_other_addresses(host: str) -> None:
    settings = PgotelSettings.model_validate({"dashboard": {"auth_disabled": True}})
    with pytest.raises(PgotelConfigError, match=r"pgotel\.dashboard\.auth_disabled"):
        check_bind_allowed(settings, host)


def test_bind_check_with_token_allows_any_address_and_without_refuses(settings: PgotelSettings) -> None:
    check_bind_allowed(settings, "0.0.0.0")
    with pytest.raises(PgotelConfigError, match=r"pgotel\.dashboard\.auth"):
        check_bind_allowed(PgotelSettings(), "127.0.0.1")


def test_auth_disabled_serves_loopback_requests_only(dsn: str) -> None:
    settings = parse_settings({"database": {"dsn": dsn}, "dashboard": {"auth_disabled": True}}, source="test")
    with TestClient(dashboard_app(settings), base_url="http://127.0.0.1", follow_redirects=False) as local:
        assert local.get(f"{API}/summary").status_code == 200
        assert local.get(PAGE).status_code == 200
    with TestClient(dashboard_app(settings), base_url="http://192.0.2.7", follow_redirects=False) as remote:
        assert remote.get(f"{API}/summary").status_code == 401
        assert remote.get(PAGE).status_code == 303
