"""Dashboard authentication: the configured token, signed session cookies, CSRF checks, loopback rules,
and a throttle on failed token attempts."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from fastapi import HTTPException, Request, status

from pgotel.config import DashboardSettings, PgotelConfigError, PgotelSettings

SESSION_COOKIE = "pgotel_session"
CSRF_COOKIE = "pgotel_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SESSION_MAX_AGE_S = 12 * 3600
# A login or logout form is a few hundred bytes; refuse to buffer anything bigger.
MAX_FORM_BYTES = 4096
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_NO_TOKEN_MESSAGE = (
    "the dashboard has no access token: set pgotel.dashboard.auth in otel-config.yaml or the "
    "PGOTEL_DASHBOARD_TOKEN environment variable (or set pgotel.dashboard.enabled: false)"
)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind_allowed(settings: PgotelSettings, host: str) -> None:
    """Refuse to serve the dashboard on `host` when that would expose it without authentication."""
    dashboard = settings.dashboard
    if not dashboard.enabled:
        return
    if not dashboard.auth_disabled:
        DashboardAuth.from_settings(dashboard)
        return
    if not _is_loopback(host):
        raise PgotelConfigError(
            f"pgotel.dashboard.auth_disabled: true is only allowed on a loopback address, but the "
            f"dashboard would listen on {host!r}; bind to 127.0.0.1, or set pgotel.dashboard.auth "
            "(or PGOTEL_DASHBOARD_TOKEN) and remove auth_disabled"
        )


class FailedAttemptThrottle:
    """Failed token attempts per client address: after `limit` of them within `window_s`, that address
    may not try again until the oldest leaves the window. At most `max_clients` addresses are tracked
    (the least recently failing are forgotten first), so memory stays bounded under a spray of addresses.
    Behind a reverse proxy every client shares the proxy's address, so a guesser there blocks logins
    for everyone for `window_s`; that is the price of not trusting forwarded headers."""

    def __init__(self, *, limit: int = 10, window_s: float = 300.0, max_clients: int = 10_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self._max_clients = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after_s(self, client: str, now: float | None = None) -> float:
        """Seconds until `client` may try again; 0 when it may now."""
        moment = time.monotonic() if now is None else now
        failures = self._recent(client, moment)
        if len(failures) < self.limit:
            return 0.0
        return max(0.0, failures[-self.limit] + self.window_s - moment)

    @property
    def tracked_clients(self) -> int:
        return len(self._failures)

    def record_failure(self, client: str, now: float | None = None) -> None:
        moment = time.monotonic() if now is None else now
        self._recent(client, moment).append(moment)
        self._failures.move_to_end(client)
        while len(self._failures) > self._max_clients:
            self._failures.popitem(last=False)

    def _recent(self, client: str, moment: float) -> deque[float]:
        failures = self._failures.setdefault(client, deque(maxlen=self.limit))
        while failures and failures[0] <= moment - self.window_s:
            failures.popleft()
        return failures


def _client_address(request: Request) -> str:
    return request.client.host if request.client is not None else ""


@dataclass(frozen=True)
class DashboardAuth:
    """Who may read the dashboard: holders of the token, or (auth disabled) loopback clients only."""

    token: str | None
    login_path: str
    throttle: FailedAttemptThrottle = field(default_factory=FailedAttemptThrottle, compare=False, repr=False)

    @classmethod
    def from_settings(cls, dashboard: DashboardSettings) -> DashboardAuth:
        """Raise PgotelConfigError when no token is configured and auth is not explicitly disabled."""
        if dashboard.auth_disabled:
            return cls(token=None, login_path=f"{dashboard.path.rstrip('/')}/login")
        if dashboard.auth is None:
            raise PgotelConfigError(_NO_TOKEN_MESSAGE)
        return cls(token=dashboard.auth, login_path=f"{dashboard.path.rstrip('/')}/login")

    @property
    def enabled(self) -> bool:
        return self.token is not None

    def check_token(self, request: Request, candidate: str) -> bool:
        """Whether `candidate` is the token; 429 once the client has failed too often recently."""
        client = _client_address(request)
        wait_s = self.throttle.retry_after_s(client)
        if wait_s:
            seconds = math.ceil(wait_s)
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                detail=f"too many failed token attempts from this address: try again in {seconds} s",
                headers={"Retry-After": str(seconds)},
            )
        if self.token is not None and hmac.compare_digest(candidate.encode(), self.token.encode()):
            return True
        self.throttle.record_failure(client)
        return False

    def _sign(self, issued_at: int) -> str:
        assert self.token is not None
        # The signing key is derived from the token, so changing the token ends every session.
        key = hashlib.sha256(b"pgotel-dashboard-session\0" + self.token.encode()).digest()
        return hmac.new(key, str(issued_at).encode(), hashlib.sha256).hexdigest()

    def issue_session(self, now: float | None = None) -> str:
        """A cookie value proving a successful login at `now`; it never contains the token."""
        issued_at = int(time.time() if now is None else now)
        return f"{issued_at}.{self._sign(issued_at)}"

    def session_valid(self, value: str, now: float | None = None) -> bool:
        if self.token is None:
            return False
        issued_text, _, signature = value.partition(".")
        if not issued_text.isdigit():
            return False
        issued_at = int(issued_text)
        age = (time.time() if now is None else now) - issued_at
        if not 0 <= age <= SESSION_MAX_AGE_S:
            return False
        return hmac.compare_digest(signature.encode(), self._sign(issued_at).encode())

    def authenticated_by_bearer(self, request: Request) -> bool:
        """Whether the request carries the token as `Authorization: Bearer`. Decided once per request (the
        auth and CSRF checks both ask), so a wrong token counts as one failed attempt, not two."""
        verdict: bool | None = getattr(request.state, "pgotel_bearer", None)
        if verdict is None:
            scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
            verdict = scheme.lower() == "bearer" and self.check_token(request, credentials.strip())
            request.state.pgotel_bearer = verdict
        return verdict

    def is_authenticated(self, request: Request) -> bool:
        if self.token is None:
            # Auth disabled: only serve requests that arrived on a loopback interface.
            server = request.scope.get("server")
            return server is not None and _is_loopback(str(server[0]))
        if self.authenticated_by_bearer(request):
            return True
        session = request.cookies.get(SESSION_COOKIE)
        return session is not None and self.session_valid(session)

    def require_api(self, request: Request) -> None:
        """Dependency for JSON routes: 401 with a JSON body unless the request is authenticated."""
        if not self.is_authenticated(request):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail=(
                    f"authentication required: send 'Authorization: Bearer <token>' or log in at {self.login_path}"
                ),
                headers={"WWW-Authenticate": "Bearer"},
            )

    def require_page(self, request: Request) -> None:
        """Dependency for HTML routes: redirect to the login form (HTMX requests get HX-Redirect)."""
        if self.is_authenticated(request):
            return
        if request.headers.get("hx-request") == "true":
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="session expired: log in again",
                headers={"HX-Redirect": self.login_path},
            )
        raise HTTPException(status.HTTP_303_SEE_OTHER, headers={"Location": self.login_path})

    async def require_csrf(self, request: Request) -> None:
        """Dependency for state-changing routes: same origin, and the double-submit token matches.

        Requests authenticated by an Authorization header are exempt: browsers never add it on their own.
        """
        if self.authenticated_by_bearer(request):
            return
        expected = request.cookies.get(CSRF_COOKIE)
        submitted = request.headers.get(CSRF_HEADER) or (await read_form(request)).get(CSRF_FIELD)
        if (
            not _same_origin(request)
            or not expected
            or not submitted
            or not hmac.compare_digest(expected.encode(), submitted.encode())
        ):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail="CSRF check failed: reload the dashboard page and submit the form again",
            )

    async def require_csrf_if_unsafe(self, request: Request) -> None:
        """Dependency for a whole router: CSRF protection on every method that can change state."""
        if request.method not in SAFE_METHODS:
            await self.require_csrf(request)


def csrf_token(request: Request) -> str:
    """The browser's CSRF token (double-submit cookie); a new one when it has none yet."""
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded body of a small form (first value of each field)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, detail="form too large")
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def _same_origin(request: Request) -> bool:
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")
