"""The structlog processors as plain functions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from pgotel.config import RedactionSettings, Redactor
from pgotel.instrumentation import add_trace_context, redact_secrets, use_redactor


@pytest.fixture
def default_redactor() -> Iterator[None]:
    yield
    use_redactor(Redactor.from_settings(RedactionSettings()))


def test_add_trace_context_outside_a_span_adds_nothing() -> None:
    assert add_trace_context(None, "info", {"event": "idle"}) == {"event": "idle"}


def test_add_trace_context_inside_a_span() -> None:
    with TracerProvider().get_tracer("test").start_as_current_span("work") as span:
        event = add_trace_context(None, "info", {"event": "busy"})

    context = span.get_span_context()
    assert event == {
        "event": "busy",
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
    }
    assert len(event["trace_id"]) == 32


def test_redact_secrets_replaces_secret_keys_and_url_secrets() -> None:
    event = redact_secrets(
        None,
        "info",
        {
            "event": "signup",
            "X-Api-Key": "k-123",
            "db_password": "hunter2",
            "next": "/welcome?session_id=s-9&lang=en",
            "dsn": "postgresql://app:hunter2@db:5432/app",
            "count": 3,
        },
    )

    assert event == {
        "event": "signup",
        "X-Api-Key": "[REDACTED]",
        "db_password": "[REDACTED]",
        "next": "/welcome?session_id=[REDACTED]&lang=en",
        "dsn": "postgresql://app:[REDACTED]@db:5432/app",
        "count": 3,
    }


def test_redact_secrets_uses_the_configured_redactor(default_redactor: None) -> None:
    use_redactor(Redactor(("ssn",), "***"))

    assert redact_secrets(None, "info", {"event": "e", "ssn": "1", "password": "p"}) == {
        "event": "e",
        "ssn": "***",
        "password": "p",
    }
