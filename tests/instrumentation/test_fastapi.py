"""Wiring into a FastAPI app: outermost layer, once per app, mounts, FastAPI's native telemetry off."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tests.instrumentation.conftest import Telemetry, client_for, instrumented


async def test_fastapi_native_telemetry_is_replaced_not_doubled(telemetry: Telemetry) -> None:
    app = FastAPI(telemetry={"tracer_provider": telemetry.tracer_provider, "meter_provider": telemetry.meter_provider})

    @app.get("/ping")
    async def ping() -> str:
        return "pong"

    instrumented(app, telemetry)
    async with client_for(app) as client:
        await client.get("/ping")

    assert [span.name for span in telemetry.finished_spans()] == ["GET /ping"]
    [point] = telemetry.duration_points()
    assert point.count == 1


async def test_instrumenting_twice_traces_once(telemetry: Telemetry) -> None:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> str:
        return "pong"

    for _ in range(2):
        instrumented(app, telemetry)
    async with client_for(app) as client:
        await client.get("/ping")

    assert len(telemetry.finished_spans()) == 1


async def test_routes_inside_mounts_are_named_by_their_full_template(telemetry: Telemetry) -> None:
    api = FastAPI()

    @api.get("/things/{thing_id}")
    async def thing(thing_id: int) -> int:
        return thing_id

    async def files(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"file"})

    app = FastAPI()
    app.mount("/v1", api)
    app.mount("/static", files)
    instrumented(app, telemetry)
    async with client_for(app) as client:
        thing_response = await client.get("/v1/things/3")
        file_response = await client.get("/static/css/site.css")

    assert (thing_response.status_code, file_response.status_code) == (200, 200)
    assert [span.name for span in telemetry.finished_spans()] == ["GET /v1/things/{thing_id}", "GET /static/{path}"]
    assert file_response.headers["X-Trace-ID"] == format(telemetry.finished_spans()[1].context.trace_id, "032x")


async def test_routes_of_included_routers_carry_every_prefix(telemetry: Telemetry) -> None:
    users = APIRouter(prefix="/users")

    @users.get("/{user_id}/orders/{order_id}")
    async def order(user_id: int, order_id: int) -> int:
        return order_id

    api = APIRouter(prefix="/api")
    api.include_router(users)
    app = FastAPI()
    app.include_router(api, prefix="/v2")
    instrumented(app, telemetry)
    async with client_for(app) as client:
        response = await client.get("/v2/api/users/1/orders/2")

    assert response.status_code == 200
    assert [span.name for span in telemetry.finished_spans()] == ["GET /v2/api/users/{user_id}/orders/{order_id}"]
    [point] = telemetry.duration_points()
    assert point.attributes is not None
    assert point.attributes["http.route"] == "/v2/api/users/{user_id}/orders/{order_id}"


async def test_plain_starlette_apps_are_named_by_their_routes(telemetry: Telemetry) -> None:
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hi")

    app = instrumented(Starlette(routes=[Route("/hello/{name}", hello)]), telemetry)
    async with client_for(app) as client:
        await client.get("/hello/world")

    assert [span.name for span in telemetry.finished_spans()] == ["GET /hello/{name}"]


async def test_a_dashboard_mounted_as_a_fastapi_app_is_not_traced(telemetry: Telemetry) -> None:
    dashboard = FastAPI(
        telemetry={"tracer_provider": telemetry.tracer_provider, "meter_provider": telemetry.meter_provider}
    )

    @dashboard.get("/summary")
    async def summary() -> str:
        return "ok"

    app = FastAPI()
    app.mount("/api/monitoring/advanced", dashboard)
    instrumented(app, telemetry)
    async with client_for(app) as client:
        response = await client.get("/api/monitoring/advanced/summary")

    assert response.status_code == 200
    assert telemetry.finished_spans() == []
    assert telemetry.duration_points() == []
