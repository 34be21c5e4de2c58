"""Redactor: which keys are secret, and what a redacted value, URL or attribute mapping looks like."""

from __future__ import annotations

import pytest

from pgotel.config import RedactionSettings, Redactor


@pytest.fixture
def redactor() -> Redactor:
    return Redactor.from_settings(RedactionSettings())


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "DB.Password",
        "x-api-key",
        "X-Api-Key",
        "http.request.header.authorization",
        "http.request.header.cookie",
        "http.response.header.set-cookie",
        "apikey",
        "access_token",
        "client_secret",
        "session_id",
        "aws.credentials",
    ],
)
def test_secret_keys_match_case_insensitively_by_substring(redactor: Redactor, key: str) -> None:
    assert redactor.is_secret_key(key)


@pytest.mark.parametrize("key", ["http.route", "user.id", "url.path", "db.statement", "order_total"])
def test_ordinary_keys_are_not_secret(redactor: Redactor, key: str) -> None:
    assert not redactor.is_secret_key(key)


def test_configured_keys_and_replacement_are_used() -> None:
    redactor = Redactor.from_settings(RedactionSettings(keys=("ssn",), replacement="<hidden>"))

    assert redactor.redact_value("customer.ssn", "123-45-6789") == "<hidden>"
    assert redactor.redact_value("password", "hunter2") == "hunter2"


def test_redact_value_keeps_ordinary_values_and_types(redactor: Redactor) -> None:
    assert redactor.redact_value("http.response.status_code", 200) == 200
    assert redactor.redact_value("db.password", 1234) == "[REDACTED]"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://api.example/v1/items?page=2&api_key=K1&token=T1#top",
            "https://api.example/v1/items?page=2&api_key=[REDACTED]&token=[REDACTED]#top",
        ),
        ("/search?q=shoes;session=S1", "/search?q=shoes;session=[REDACTED]"),
        ("password=P1&user=ada", "password=[REDACTED]&user=ada"),
        ("postgresql://app:P2@db.internal:5432/app", "postgresql://app:[REDACTED]@db.internal:5432/app"),
        ("https://example.org/plain/path", "https://example.org/plain/path"),
        ("/items?tokenizer=gpt&limit=5", "/items?tokenizer=[REDACTED]&limit=5"),
    ],
)
def test_redact_url(redactor: Redactor, url: str, expected: str) -> None:
    assert redactor.redact_url(url) == expected


def test_redact_attributes_covers_secret_keys_and_url_attributes(redactor: Redactor) -> None:
    attributes = {
        "url.full": "https://shop.example/cart?access_token=T2&item=9",
        "url.query": "apikey=K2",
        "http.target": "/cart?secret=S3",
        "http.request.header.authorization": ("Bearer B1",),
        "enduser.id": "ada",
        "note": "token=looks-like-a-query-but-is-free-text",
    }

    assert redactor.redact_attributes(attributes) == {
        "url.full": "https://shop.example/cart?access_token=[REDACTED]&item=9",
        "url.query": "apikey=[REDACTED]",
        "http.target": "/cart?secret=[REDACTED]",
        "http.request.header.authorization": "[REDACTED]",
        "enduser.id": "ada",
        "note": "token=looks-like-a-query-but-is-free-text",
    }
