"""The server-side telemetry of one HTTP request: a SERVER span, its duration, trace headers.

A lean ASGI middleware on the OTel API: one span per request (no ASGI send/receive spans), one
`http.server.request.duration` measurement per request whether or not the trace is sampled, and the
trace id returned to the client in `X-Trace-ID` and `traceresponse`.
"""

from __future__ import annotations

import logging
from time import perf_counter

from opentelemetry import context, propagate, trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pgotel._sdk import add_plain_attributes, attributes_read_at_start, span_processors
from pgotel.instrumentation._durations import RequestDurations, outcome_attributes
from pgotel.instrumentation._logging import mark_escaped
from pgotel.instrumentation._redaction import RedactingSpanProcessor
from pgotel.instrumentation._routes import RouteNamer, new_route_report

TRACE_ID_HEADER = "X-Trace-ID"

_logger = logging.getLogger(__name__)
_KNOWN_METHODS = frozenset({"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE"})
# Request headers read by the middleware: the propagators' and the user agent. No other header is captured.
_PROPAGATION_HEADERS = frozenset({"traceparent", "tracestate", "baggage"})
_READ_HEADERS = frozenset(name.encode() for name in (*_PROPAGATION_HEADERS, "user-agent"))


class ServerTelemetryMiddleware:
    """Traces and measures every HTTP request to `app`, except those under `excluded_prefixes`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        tracer: trace.Tracer,
        durations: RequestDurations,
        routes: RouteNamer,
        excluded_prefixes: tuple[str, ...],
    ) -> None:
        self.app = app
        self._tracer = tracer
        self._durations = durations
        self._routes = routes
        self._excluded_prefixes = excluded_prefixes
        self._checked_processors: object = None
        self._attributes_at_start = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The dashboard's own requests (and its database queries) stay out of the telemetry it displays.
        if scope["path"].startswith(self._excluded_prefixes):
            scope["fastapi.telemetry"] = None  # nor by FastAPI's native telemetry, should it be a mounted app
            token = context.attach(context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
            try:
                await self.app(scope, receive, send)
            finally:
                context.detach(token)
            return
        await self._traced(scope, receive, send)

    async def _traced(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = perf_counter()
        root_path: str = scope.get("root_path", "")
        method: str = scope["method"]
        span_method = method if method in _KNOWN_METHODS else "HTTP"
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"] if name in _READ_HEADERS
        }
        # Without a propagation header every propagator extracts an empty context: skip the call.
        parent = Context() if headers.keys().isdisjoint(_PROPAGATION_HEADERS) else propagate.extract(headers)
        span = self._start_span(span_method, parent, self._request_attributes(scope, headers))
        token = context.attach(trace.set_span_in_context(span, parent))
        span_context = span.get_span_context()
        trace_id = format(span_context.trace_id, "032x")
        trace_headers = (
            (b"x-trace-id", trace_id.encode()),
            (
                b"traceresponse",
                f"00-{trace_id}-{span_context.span_id:016x}-{span_context.trace_flags:02x}".encode(),
            ),
        )
        status_code = 0

        async def send_with_trace_headers(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), *trace_headers]}
            await send(message)

        report = new_route_report(span_method)
        scope["fastapi.telemetry"] = report
        error: BaseException | None = None
        try:
            await self.app(scope, receive, send_with_trace_headers)
        except BaseException as exc:
            error = exc
            mark_escaped(exc, span_context)  # the server's log line about it, written after the span, joins its trace
            raise
        finally:
            context.detach(token)
            try:
                route = self._routes.name(scope, root_path, report)
                self._finish(route, method, span_method, span, status_code, error, started)
            except Exception:
                # A telemetry defect must not turn a served request into a failed one.
                _logger.exception("pgotel: recording the request telemetry failed")

    def _start_span(self, name: str, parent: Context, attributes: dict[str, str | int]) -> trace.Span:
        """The server span, with the request's attributes: given at start when a sampler or a span processor may
        read them then, else written once it has started, without the SDK's validation of each value."""
        processors = span_processors(self._tracer)
        if processors is not self._checked_processors:  # a processor was added since the last check
            self._checked_processors = processors
            self._attributes_at_start = attributes_read_at_start(self._tracer, (RedactingSpanProcessor,))
        if self._attributes_at_start:
            return self._tracer.start_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes)
        span = self._tracer.start_span(name, context=parent, kind=SpanKind.SERVER)
        add_plain_attributes(span, attributes)
        return span

    def _request_attributes(self, scope: Scope, headers: dict[str, str]) -> dict[str, str | int]:
        method: str = scope["method"]
        attributes: dict[str, str | int] = {
            "http.request.method": method if method in _KNOWN_METHODS else "_OTHER",
            "url.scheme": scope.get("scheme", "http"),
            "url.path": scope["path"],
            "network.protocol.version": scope.get("http_version", "1.1"),
        }
        if method not in _KNOWN_METHODS:
            attributes["http.request.method_original"] = method
        query: bytes = scope.get("query_string", b"")
        if query:
            attributes["url.query"] = query.decode("latin-1")  # redacted as the span ends (redact_before_export)
        server = scope.get("server")
        if server:
            attributes["server.address"] = server[0]
            if server[1] is not None:
                attributes["server.port"] = server[1]
        client = scope.get("client")
        if client:
            attributes["client.address"] = client[0]
        user_agent = headers.get("user-agent")
        if user_agent:
            attributes["user_agent.original"] = user_agent
        return attributes

    def _finish(
        self,
        route: str,
        method: str,
        span_method: str,
        span: trace.Span,
        status_code: int,
        error: BaseException | None,
        started: float,
    ) -> None:
        method_attribute = method if method in _KNOWN_METHODS else "_OTHER"
        status_attribute = status_code or 500
        failed = error is not None or status_code >= 500 or status_code == 0
        error_type = (_error_type(error) if error is not None else str(status_attribute)) if failed else ""
        span_context = span.get_span_context()
        self._durations.record(
            perf_counter() - started,
            method_attribute,
            route,
            status_attribute,
            error_type,
            span_context if span_context.trace_flags.sampled else None,
        )
        try:
            if span.is_recording():
                span.update_name(f"{span_method} {route}")
                add_plain_attributes(span, outcome_attributes(method_attribute, route, status_attribute, error_type))
                if failed:
                    span.set_status(Status(StatusCode.ERROR))
                if error is not None:
                    _record_exception(span, error)
        finally:
            span.end()  # whatever failed above: the request's span is never lost


def _record_exception(span: trace.Span, error: BaseException) -> None:
    try:
        span.record_exception(error)
    except Exception:  # the exception's own __str__ (or its traceback's formatting) raised
        span.add_event("exception", {"exception.type": _error_type(error), "exception.message": "<str() failed>"})


def _error_type(error: BaseException) -> str:
    cls = type(error)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
