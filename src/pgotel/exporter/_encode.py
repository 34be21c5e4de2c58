"""Turns telemetry values into what PostgreSQL accepts: JSON text for attribute maps and bodies, clean
text for columns. The fast path is one orjson.dumps; anything unusual (NUL bytes, lone surrogates, NaN,
huge or very many values, unknown types) takes a slow path that sanitizes value by value and counts it."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from pgotel.config import LimitSettings, Redactor
from pgotel.exporter._accounting import Accounting

_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
_TRUNCATED = "...[truncated]"
_INT64 = 1 << 63


def signed64(unsigned: int) -> int:
    """A 64-bit OTel span id as PostgreSQL's signed bigint (two's complement)."""
    return unsigned - (1 << 64) if unsigned >= _INT64 else unsigned


# Python refuses to print an int of more than 4,300 digits (ValueError); below ~13,000 bits it has fewer.
_DECIMAL_INT_BITS = 13_000


def int_text(value: int) -> str:
    """Decimal text of `value`, or, past Python's int-to-str limit, its hex text (which has no limit)."""
    return str(value) if value.bit_length() <= _DECIMAL_INT_BITS else hex(value)


def repr_text(value: object) -> str:
    """`repr(value)`, or a placeholder naming its type when that repr raises."""
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__qualname__} whose repr() failed>"


def key_text(key: object) -> str:
    """A mapping key as text: itself when a str, else its repr (see repr_text)."""
    return key if isinstance(key, str) else repr_text(key)


def utf8_ok(text: str) -> bool:
    """Whether `text` encodes to UTF-8 (no lone surrogates), ASCII checked first as the cheap common case."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class ValueEncoder:
    """Encodes and sanitizes the values of one signal, counting every change it makes."""

    def __init__(self, signal: str, limits: LimitSettings, redactor: Redactor, accounting: Accounting) -> None:
        self._signal = signal
        self._limits = limits
        self._redactor = redactor
        self._accounting = accounting

    def attributes(self, attributes: Mapping[str, Any] | None) -> str:
        """JSON object text for an attribute map, secrets redacted."""
        if not attributes:
            return "{}"
        if type(attributes) is not dict:
            attributes = dict(attributes)
        redacted = self._redactor.redact_attributes(attributes)
        if len(redacted) <= self._limits.max_attributes:
            text = self._fast_json(redacted)
            if text is not None:
                return text
        return _dumps(self._clean_mapping(redacted))

    def any_value(self, value: Any) -> str | None:
        """JSON text for a log body (any OTel AnyValue), or None when absent."""
        if value is None:
            return None
        if isinstance(value, Mapping):
            value = self._redactor.redact_attributes(value)
        text = self._fast_json(value)
        return text if text is not None else _dumps(self._clean(value))

    def text(self, value: str | None) -> str | None:
        """A text column: NUL bytes and lone surrogates replaced, length capped."""
        if value is None:
            return None
        if "\x00" not in value and len(value) <= self._limits.max_value_length and utf8_ok(value):
            return value
        return self._clean_str(value)

    def _fast_json(self, value: Any) -> str | None:
        """Compact JSON of `value`, or None when it needs the slow path. orjson rejects lone surrogates,
        non-string keys, unknown types and integers beyond 64 bits; it writes NaN and infinities as null,
        so any null takes the slow path too, which counts them (OTel values are never None otherwise)."""
        try:
            data = orjson.dumps(value)
        except TypeError:
            return None
        if len(data) > self._limits.max_value_length:
            return None
        text = data.decode()  # searching a str is twice as fast as searching bytes
        return None if "null" in text or "\\u0000" in text else text

    def _clean_mapping(self, mapping: Mapping[Any, Any]) -> dict[str, Any]:
        items = list(mapping.items())
        limit = self._limits.max_attributes
        if len(items) > limit:
            self._accounting.sanitized(self._signal, "too_many_attributes", len(items) - limit)
            items = items[:limit]
        return {self._clean_str(key_text(key)): self._clean(value) for key, value in items}

    def _clean(self, value: Any) -> Any:
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str):
            return self._clean_str(value)
        if isinstance(value, int):
            if value.bit_length() <= _DECIMAL_INT_BITS:
                return value  # a JSON number (jsonb keeps it exact)
            self._accounting.sanitized(self._signal, "integer_too_long")
            return int_text(value)
        if isinstance(value, float):
            if math.isfinite(value):
                return value
            self._accounting.sanitized(self._signal, "non_finite_number")
            return str(value)
        if isinstance(value, bytes | bytearray):
            return base64.b64encode(bytes(value)).decode("ascii")
        if isinstance(value, Mapping):
            return self._clean_mapping(value)
        if isinstance(value, Sequence):
            items = list(value)
            limit = self._limits.max_attributes
            if len(items) > limit:
                self._accounting.sanitized(self._signal, "sequence_too_long", len(items) - limit)
                items = items[:limit]
            return [self._clean(item) for item in items]
        self._accounting.sanitized(self._signal, "unsupported_type")
        return self._clean_str(repr_text(value))

    def _clean_str(self, value: str) -> str:
        if "\x00" in value:
            self._accounting.sanitized(self._signal, "nul_byte")
            value = value.replace("\x00", "\ufffd")
        if not utf8_ok(value):
            self._accounting.sanitized(self._signal, "invalid_unicode")
            value = value.encode("utf-8", "replace").decode("utf-8")
        limit = self._limits.max_value_length
        if len(value) > limit:
            self._accounting.sanitized(self._signal, "value_too_long")
            value = value[: limit - len(_TRUNCATED)] + _TRUNCATED
        return value
