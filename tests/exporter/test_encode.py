"""The attribute encoder's fast path (orjson) hands every value it would alter to the counted slow path."""

from __future__ import annotations

import json

from pgotel.config import LimitSettings, RedactionSettings, Redactor
from pgotel.exporter._accounting import Accounting
from pgotel.exporter._encode import ValueEncoder


def _encoder() -> tuple[ValueEncoder, Accounting]:
    accounting = Accounting()
    redactor = Redactor.from_settings(RedactionSettings())
    return ValueEncoder("spans", LimitSettings(), redactor, accounting), accounting


def test_plain_values_round_trip_without_counting() -> None:
    encoder, accounting = _encoder()
    attributes = {"message": "null pointer", "ratio": 0.5, "ok": True, "ids": (1, 2), "city": "Zürich"}
    assert json.loads(encoder.attributes(attributes)) == {**attributes, "ids": [1, 2]}
    assert accounting.snapshot()["sanitized"] == {}


def test_non_finite_floats_are_kept_as_text_and_counted() -> None:
    encoder, accounting = _encoder()
    assert json.loads(encoder.attributes({"nan": float("nan"), "low": float("-inf"), "n": 1})) == {
        "nan": "nan",
        "low": "-inf",
        "n": 1,
    }
    assert accounting.snapshot()["sanitized"] == {"spans/non_finite_number": 2}
