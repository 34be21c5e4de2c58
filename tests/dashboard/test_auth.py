"""Dashboard auth: every route needs credentials, tokens and sessions are checked, CSRF is enforced."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount

from pgotel.config import PgotelConfigError, PgotelSettings, parse_settings
from pgotel.dashboard._auth import SESSION_MAX_AGE_S, DashboardAuth, check_bind_allowed
from tests.dashboard.conftest import TOKEN, build_app, dashboard_settings, login

PAGE = "/ui/monitoring/advanced"
API = "/api/monitoring/advanced"
PUBLIC_ROUTES = {("GET", f"{PAGE}/login"), ("POST", f"{PAGE}/login")}


def dashboard_routes(client: TestClient) -> list[tuple[str, str]]:
    """(method, concrete path) for every dashboard route of the app; path parameters filled with 1."""
    found = []
    for context in iter_route_contexts(client.app.routes):  # type: ignore[attr-defined]
        path = context.path
        if not (path.startswith(PAGE) or path.startswith(API)) or isinstance(context.route, Mount):
            continue
        for method in sorted(context.methods or ()):
            if method != "HEAD":
                found.append((method, re.sub(r"\{[^}]+\}", "1", path)))
    return found


def test_routes_are_found(client: TestClient) -> None:
    routes = dashboard_routes(client)
    assert ("GET", PAGE) in routes
    assert ("GET", f"{API}/summary") in routes
    assert ("GET", f"{PAGE}/fragments/endpoints") in routes
    assert ("POST", f"{API}/alerts/1/acknowledge") in routes
    assert set(routes) >= PUBLIC_ROUTES


def test_every_route_but_login_requires_credentials(client: TestClient) -> None:
    for method, path in dashboard_routes(client):
        if (method, path) in PUBLIC_ROUTES:
            continue
        response = client.request(method, path)
        if path.startswith(API):
            assert response.status_code == 401, (method, path)
            assert "Bearer" in response.json()["detail"]
            assert response.headers["www-authenticate"] == "Bearer"
        else:
            assert response.status_code == 303, (method, path)
            assert response.headers["location"] == f"{PAGE}/login"


def test_htmx_fragment_without_session_asks_htmx_to_redirect(client: TestClient) -> None:
    response = client.get(f"{PAGE}/fragments/kpis", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["hx-redirect"] == f"{PAGE}/login"


def test_bearer_token_opens_the_api_and_page(client: TestClient) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get(f"{API}/summary", headers=headers).status_code == 200
    assert client.get(PAGE, headers=headers).status_code == 200


@pytest.mark.parametrize(
    "authorization", [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ", f"Basic {TOKEN}", TOKEN]
)
def test_wrong_bearer_token_is_rejected(client: TestClient, authorization: str) -> None:
    assert client.get(f"{API}/summary", headers={"Authorization": authorization}).status_code == 401


def test_login_with_wrong_token_is_rejected(client: TestClient) -> None:
    response = login(client, token="not-the-token")
    assert response.status_code == 401
    assert "Wrong token" in response.text
    assert "pgotel_session" not in client.cookies
    assert client.get(PAGE).status_code == 303


def test_login_sets_a_strict_httponly_session_cookie_without_the_token(client: TestClient) -> None:
    response = login(client)
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
    assert client.get(PAGE).status_code == 200
    assert client.get(f"{API}/summary").status_code == 200


def test_session_cookie_is_secure_over_https() -> None:
    with TestClient(build_app(dashboard_settings()), base_url="https://testserver", follow_redirects=False) as c:
        c.get(f"{PAGE}/login")
        response = c.post(
            f"{PAGE}/login",
            data={"token": TOKEN, "csrf_token": c.cookies["pgotel_csrf"]},
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
def test_forged_session_cookie_is_rejected(client: TestClient, session: str) -> None:
    client.cookies.set("pgotel_session", session)
    assert client.get(PAGE).status_code == 303
    assert client.get(f"{API}/summary").status_code == 401


def test_session_expires() -> None:
    auth = DashboardAuth(token=TOKEN, login_path="/l")
    session = auth.issue_session(now=1_000_000)
    assert auth.session_valid(session, now=1_000_000 + SESSION_MAX_AGE_S)
    assert not auth.session_valid(session, now=1_000_001 + SESSION_MAX_AGE_S)
    assert not auth.session_valid(session, now=999_999)


def test_login_form_redirects_a_logged_in_browser(client: TestClient) -> None:
    login(client)
    response = client.get(f"{PAGE}/login")
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
    client: TestClient, form: dict[str, str], headers: dict[str, str]
) -> None:
    client.get(f"{PAGE}/login")
    csrf = client.cookies["pgotel_csrf"]
    data = {name: value.replace("{csrf}", csrf) for name, value in form.items()}
    response = client.post(f"{PAGE}/login", data=data, headers=headers)
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert "pgotel_session" not in client.cookies


def test_logout_requires_csrf_and_ends_the_session(client: TestClient) -> None:
    login(client)
    assert client.post(f"{PAGE}/logout").status_code == 403
    assert client.get(PAGE).status_code == 200
    response = client.post(f"{PAGE}/logout", data={"csrf_token": client.cookies["pgotel_csrf"]})
    assert response.status_code == 303
    assert response.headers["location"] == f"{PAGE}/login"
    assert client.get(PAGE).status_code == 303


def test_state_changing_api_call_with_session_cookie_requires_csrf(client: TestClient) -> None:
    login(client)
    url = f"{API}/alerts/7/acknowledge"
    assert client.post(url).status_code == 403
    response = client.post(url, headers={"X-CSRF-Token": client.cookies["pgotel_csrf"]})
    assert response.status_code == 200
    assert response.json() == {"acknowledged": 7}


def test_state_changing_api_call_with_bearer_needs_no_csrf(client: TestClient) -> None:
    response = client.post(f"{API}/alerts/7/acknowledge", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200


def test_no_token_configured_refuses_to_start() -> None:
    with pytest.raises(PgotelConfigError, match=r"pgotel\.dashboard\.auth.*PGOTEL_DASHBOARD_TOKEN"):
        build_app(PgotelSettings())


def test_token_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGOTEL_DASHBOARD_TOKEN", "from-env")
    with TestClient(build_app(parse_settings({}, source="test"))) as c:
        assert c.get(f"{API}/summary", headers={"Authorization": "Bearer from-env"}).status_code == 200
        assert c.get(f"{API}/summary", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_auth_may_be_disabled_on_loopback(host: str) -> None:
    check_bind_allowed(PgotelSettings.model_validate({"dashboard": {"auth_disabled": True}}), host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com"])
def test_auth_disabled_is_refused_on_other_addresses(host: str) -> None:
    settings = PgotelSettings.model_validate({"dashboard": {"auth_disabled": True}})
    with pytest.raises(PgotelConfigError, match=r"pgotel\.dashboard\.auth_disabled"):
        check_bind_allowed(settings, host)


def test_bind_check_with_token_allows_any_address_and_without_refuses() -> None:
    check_bind_allowed(dashboard_settings(), "0.0.0.0")
    with pytest.raises(PgotelConfigError, match=r"pgotel\.dashboard\.auth"):
        check_bind_allowed(PgotelSettings(), "127.0.0.1")


def test_auth_disabled_serves_loopback_requests_only() -> None:
    settings = PgotelSettings.model_validate({"dashboard": {"auth_disabled": True}})
    with TestClient(build_app(settings), base_url="http://127.0.0.1", follow_redirects=False) as local:
        assert local.get(f"{API}/summary").status_code == 200
        assert local.get(PAGE).status_code == 200
    with TestClient(build_app(settings), base_url="http://192.0.2.7", follow_redirects=False) as remote:
        assert remote.get(f"{API}/summary").status_code == 401
        assert remote.get(PAGE).status_code == 303
