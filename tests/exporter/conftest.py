"""Fixtures for exporter tests: settings pointing at a fresh database, and exporters that are shut down."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pgotel.config import PgotelSettings, parse_settings

_UNIX_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def partition_time(unix_nano: int) -> dt.datetime:
    """The partition-key time PostgreSQL should hold for an OTel time: truncated to the microsecond."""
    return _UNIX_EPOCH + dt.timedelta(microseconds=unix_nano // 1000)


def finished_spans(*names: str) -> tuple[ReadableSpan, ...]:
    """Ended SDK spans named `names`, in that order, for a test to hand an exporter itself."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    for name in names:
        with tracer.start_as_current_span(name):
            pass
    return memory.get_finished_spans()


def settings_for(dsn: str, **sections: Any) -> PgotelSettings:
    return parse_settings({"database": {"dsn": dsn}, **sections}, source="test")


@pytest.fixture
def settings(dsn: str) -> PgotelSettings:
    return settings_for(dsn)


@pytest.fixture
def shutdowns() -> Iterator[list[Any]]:
    """Exporters appended here are shut down after the test, even when it fails."""
    items: list[Any] = []
    yield items
    for item in items:
        item.shutdown()
