"""Server spans, RED measurements and trace headers, asserted on the exported telemetry."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, StatusCode, TraceState
from opentelemetry.util.types import Attributes

from pgotel._sdk import attributes_read_at_start
from pgotel.config import LimitSettings, PgotelSettings
from pgotel.instrumentation import OVERFLOW_ROUTE
from tests.instrumentation.conftest import Telemetry, client_for, instrumented, make_app, make_telemetry

TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


async def test_server_span_is_named_by_route_template(client: httpx.AsyncClient, telemetry: Telemetry) -> None:
    response = await client.get("/items/42?color=red", headers={"user-agent": "pytest-agent"})

    assert response.status_code == 200
    [span] = telemetry.finished_spans()
    assert span.name == "GET /items/{item_id}"
    assert span.kind is SpanKind.SERVER
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "url.path": "/items/42",
        "url.query": "color=red",
        "network.protocol.version": "1.1",
        "server.address": "testserver",
        "client.address": "127.0.0.1",
        "user_agent.original": "pytest-agent",
        "http.route": "/items/{item_id}",
        "http.response.status_code": 200,
    }


async def test_x_trace_id_and_traceresponse_name_the_server_span(
    client: httpx.AsyncClient, telemetry: Telemetry
) -> None:
    response = await client.get("/items/1")

    [span] = telemetry.server_spans()
    trace_id = response.headers["X-Trace-ID"]
    assert TRACE_ID.match(trace_id)
    assert trace_id == format(span.context.trace_id, "032x")
    assert span.context.trace_flags.sampled
    assert (
        response.headers["traceresponse"] == f"00-{trace_id}-{span.context.span_id:016x}-{span.context.trace_flags:02x}"
    )


async def test_incoming_traceparent_is_continued(client: httpx.AsyncClient, telemetry: Telemetry) -> None:
    parent_trace, parent_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"

    response = await client.get("/items/1", headers={"traceparent": f"00-{parent_trace}-{parent_span}-01"})

    [span] = telemetry.server_spans()
    assert response.headers["X-Trace-ID"] == parent_trace
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == parent_span


async def test_a_request_without_traceparent_starts_its_own_trace(
    client: httpx.AsyncClient, telemetry: Telemetry
) -> None:
    """Even when the app is called inside an active span (an in-process caller): only headers propagate."""
    with telemetry.tracer_provider.get_tracer("caller").start_as_current_span("caller"):
        await client.get("/items/1")

    [span] = telemetry.server_spans()
    assert span.parent is None


async def test_unmatched_paths_are_normalised(client: httpx.AsyncClient, telemetry: Telemetry) -> None:
    await client.get(f"/orders/123/lines/{uuid.uuid4()}")
    await client.get("/blobs/0123456789abcdef0123")

    names = [span.name for span in telemetry.server_spans()]
    assert names == ["GET /orders/:id/lines/:uuid", "GET /blobs/:hash"]


async def test_normalised_routes_are_capped(telemetry: Telemetry) -> None:
    settings = PgotelSettings(limits=LimitSettings(max_routes=10))
    app = instrumented(make_app(), telemetry, settings)
    async with client_for(app) as client:
        for n in range(12):
            await client.get(f"/page-{n}")
        await client.get("/page-3")
        await client.get("/items/7")

    names = [span.name for span in telemetry.server_spans()]
    assert names[:10] == [f"GET /page-{n}" for n in range(10)]
    assert names[10:] == [f"GET {OVERFLOW_ROUTE}", f"GET {OVERFLOW_ROUTE}", "GET /page-3", "GET /items/{item_id}"]


async def test_dashboard_paths_are_not_traced_or_measured(client: httpx.AsyncClient, telemetry: Telemetry) -> None:
    page = await client.get("/ui/monitoring/advanced/page")
    api = await client.get("/api/monitoring/advanced/summary")
    await client.get("/items/5")

    assert (page.status_code, api.status_code) == (200, 200)
    assert "X-Trace-ID" not in page.headers
    assert [span.name for span in telemetry.finished_spans()] == ["GET /items/{item_id}"]
    assert [point.attributes["http.route"] for point in telemetry.duration_points()] == ["/items/{item_id}"]


async def test_one_span_per_request_without_asgi_send_receive_spans(
    client: httpx.AsyncClient, telemetry: Telemetry
) -> None:
    await client.post("/items/3")  # 405: still one span, named by the partially matched route

    [span] = telemetry.finished_spans()
    assert span.name == "POST /items/{item_id}"
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 405


async def test_5xx_response_marks_span_and_measurement_as_errors(
    client: httpx.AsyncClient, telemetry: Telemetry
) -> None:
    response = await client.get("/fail")

    assert response.status_code == 503
    [span] = telemetry.server_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "503"
    [point] = telemetry.duration_points()
    assert point.attributes == {
        "http.request.method": "GET",
        "http.route": "/fail",
        "http.response.status_code": 503,
        "error.type": "503",
    }


async def test_unhandled_exception_is_recorded_and_still_gets_trace_headers(
    client: httpx.AsyncClient, telemetry: Telemetry
) -> None:
    response = await client.get("/boom")

    assert response.status_code == 500
    [span] = telemetry.server_spans()
    assert response.headers["X-Trace-ID"] == format(span.context.trace_id, "032x")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "RuntimeError"
    assert [event.name for event in span.events] == ["exception"]
    [point] = telemetry.duration_points()
    assert point.attributes is not None
    assert point.attributes["error.type"] == "RuntimeError"


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


async def test_an_exception_that_cannot_be_printed_still_ends_its_requests_span(telemetry: Telemetry) -> None:
    app = FastAPI()

    @app.get("/odd")
    async def odd() -> None:
        raise _Unprintable

    instrumented(app, telemetry)
    async with client_for(app) as client:
        response = await client.get("/odd")

    assert response.status_code == 500
    [span] = telemetry.server_spans()
    assert response.headers["X-Trace-ID"] == format(span.context.trace_id, "032x")
    assert span.status.status_code is StatusCode.ERROR
    [event] = span.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.message"] == "<str() failed>"
    assert str(event.attributes["exception.type"]).endswith("_Unprintable")


async def test_4xx_is_not_an_error(client: httpx.AsyncClient, telemetry: Telemetry) -> None:
    await client.get("/missing")

    [span] = telemetry.server_spans()
    assert span.status.status_code is StatusCode.UNSET
    [point] = telemetry.duration_points()
    assert point.attributes == {
        "http.request.method": "GET",
        "http.route": "/missing",
        "http.response.status_code": 404,
    }


async def test_every_request_is_measured_even_when_traces_are_sampled_out() -> None:
    sampled_out = make_telemetry(sampler=ALWAYS_OFF)
    app = instrumented(make_app(), sampled_out)
    async with client_for(app) as client:
        responses = [await client.get(f"/items/{n}") for n in range(7)] + [await client.get("/fail")]

    assert sampled_out.finished_spans() == []
    assert all(TRACE_ID.match(response.headers["X-Trace-ID"]) for response in responses)
    counts = {point.attributes["http.route"]: point.count for point in sampled_out.duration_points()}
    assert counts == {"/items/{item_id}": 7, "/fail": 1}


async def test_duration_is_an_exponential_histogram_in_seconds(client: httpx.AsyncClient, telemetry: Telemetry) -> None:
    await client.get("/items/1")
    await client.get("/items/2")

    [point] = telemetry.duration_points()
    assert type(point).__name__ == "ExponentialHistogramDataPoint"
    assert point.count == 2
    assert 0 < point.sum < 5


async def test_secret_query_parameters_are_redacted_and_headers_not_captured(
    client: httpx.AsyncClient, telemetry: Telemetry
) -> None:
    await client.get(
        "/items/9?api_key=PLANTED-KEY&page=2&access_token=PLANTED-TOKEN",
        headers={"Authorization": "Bearer PLANTED-BEARER", "Cookie": "session=PLANTED-COOKIE"},
    )

    [span] = telemetry.server_spans()
    exported = repr(dict(span.attributes or {}))
    assert "PLANTED" not in exported
    assert span.attributes is not None
    assert span.attributes["url.query"] == "api_key=[REDACTED]&page=2&access_token=[REDACTED]"


class _PathSampler(Sampler):
    """Drops the requests to one path, as a user's sampler might drop health checks: it reads `url.path`."""

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        dropped = (attributes or {}).get("url.path") == "/items/0"
        return SamplingResult(Decision.DROP if dropped else Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return "PathSampler"


async def test_a_sampler_reading_attributes_gets_the_request_attributes_at_start() -> None:
    pipeline = make_telemetry(sampler=_PathSampler())
    async with client_for(instrumented(make_app(), pipeline)) as client:
        await client.get("/items/0")
        await client.get("/items/1")

    [span] = pipeline.server_spans()
    assert span.attributes is not None
    assert span.attributes["url.path"] == "/items/1"


class _StartRecorder(SpanProcessor):
    def __init__(self) -> None:
        self.seen: list[dict[str, object]] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.seen.append(dict(span.attributes or {}))


async def test_a_span_processor_added_later_sees_the_request_attributes_at_start(
    client: httpx.AsyncClient, telemetry: Telemetry
) -> None:
    await client.get("/items/1")
    recorder = _StartRecorder()
    telemetry.tracer_provider.add_span_processor(recorder)
    await client.get("/items/2")

    assert [attributes.get("url.path") for attributes in recorder.seen] == ["/items/2"]


async def test_the_span_attribute_limits_apply_to_the_request_attributes() -> None:
    pipeline = make_telemetry()
    limits = SpanLimits(max_span_attributes=6, max_span_attribute_length=8)
    pipeline.tracer_provider = TracerProvider(span_limits=limits)
    pipeline.tracer_provider.add_span_processor(SimpleSpanProcessor(pipeline.spans))
    async with client_for(instrumented(make_app(), pipeline)) as client:
        await client.get("/items/123456789", headers={"user-agent": "a-very-long-agent"})

    [span] = pipeline.server_spans()
    assert dict(span.attributes or {}) == {  # the last six set, each value cut to 8 characters
        "server.address": "testserv",
        "client.address": "127.0.0.",
        "user_agent.original": "a-very-l",
        "http.request.method": "GET",
        "http.route": "/items/{",
        "http.response.status_code": 200,
    }
    assert span.dropped_attributes == 4


@pytest.mark.parametrize(
    ("sampler", "processor", "read"),
    [
        (ParentBased(ALWAYS_ON), None, False),
        (ParentBasedTraceIdRatio(0.5), None, False),
        (TraceIdRatioBased(0.1), None, False),
        (_PathSampler(), None, True),
        (ParentBased(_PathSampler()), None, True),
        (ParentBased(ALWAYS_ON), _StartRecorder(), True),
    ],
)
def test_attributes_are_given_at_start_when_a_sampler_or_processor_may_read_them(
    sampler: Sampler, processor: SpanProcessor | None, read: bool
) -> None:
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    if processor is not None:
        provider.add_span_processor(processor)
    assert attributes_read_at_start(provider.get_tracer("t")) is read
