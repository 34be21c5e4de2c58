"""`pgotel demo`: an instrumented FastAPI shop with embedded Redis and generated traffic."""

from __future__ import annotations

from pgotel.demo._app import create_demo_app
from pgotel.demo._redis import EmbeddedRedis, EmbeddedRedisError
from pgotel.demo._run import DemoError, DemoOptions, bind_loopback, run_demo
from pgotel.demo._traffic import TRAFFIC_MIX, TrafficReport, generate_traffic

__all__ = [
    "TRAFFIC_MIX",
    "DemoError",
    "DemoOptions",
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "TrafficReport",
    "bind_loopback",
    "create_demo_app",
    "generate_traffic",
    "run_demo",
]
