"""Security headers (a strict Content-Security-Policy and friends) on every dashboard response."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# All JavaScript is served from the dashboard's static files; nothing inline, nothing evaluated.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


class SecurityHeadersMiddleware:
    """Adds SECURITY_HEADERS to responses under the dashboard's path prefixes, and only there.

    Pages and API answers also get `Cache-Control: no-store` (they carry telemetry); the static files
    under `static_prefix` are cached (their URLs carry the package version).
    """

    def __init__(self, app: ASGIApp, *, path_prefixes: tuple[str, ...], static_prefix: str) -> None:
        self.app = app
        self.path_prefixes = path_prefixes
        self.static_prefix = static_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not any(_under(scope["path"], p) for p in self.path_prefixes):
            await self.app(scope, receive, send)
            return

        cache_control = "public, max-age=86400" if _under(scope["path"], self.static_prefix) else "no-store"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                headers["Cache-Control"] = cache_control
            await send(message)

        await self.app(scope, receive, send_with_headers)
