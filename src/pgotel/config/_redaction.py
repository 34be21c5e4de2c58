"""Secret redaction: which keys, query-string parameters and URL passwords never reach storage."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

from pgotel.config._model import RedactionSettings

_V = TypeVar("_V")

# Attributes whose values are URLs (or parts of one) that may carry secrets in their query string.
_URL_ATTRIBUTE_KEYS = frozenset({"url.full", "url.query", "http.url", "http.target", "db.connection_string"})

_QUERY_PARAMETER = re.compile(r"(?P<lead>^|[?&;])(?P<name>[^=&;#?\s]+)=(?P<value>[^&;#\s]*)")
_URL_PASSWORD = re.compile(r"(?P<lead>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)(?P<password>[^@/\s]+)@")
# Distinct keys seen by one Redactor are attribute and field names: few, but not trusted to be bounded.
_MAX_CACHED_KEYS = 4096


def _normalise(key: str) -> str:
    return key.lower().replace("-", "_")


class Redactor:
    """Replaces the values of secret-looking keys, query parameters and URL passwords.

    A key is secret when its normalised form (lower case, `-` read as `_`) contains one of the
    configured keys, so `api_key` covers `X-Api-Key`, `http.request.header.x_api_key` and `apikey`
    needs its own entry.
    """

    __slots__ = ("_decisions", "_keys", "_plain_keys", "replacement")

    def __init__(self, keys: tuple[str, ...], replacement: str) -> None:
        self._keys = tuple(sorted({_normalise(key) for key in keys if key}))
        self.replacement = replacement
        self._decisions: dict[str, bool] = {}
        self._plain_keys: set[str] = set()

    @classmethod
    def from_settings(cls, settings: RedactionSettings) -> Redactor:
        return cls(settings.keys, settings.replacement)

    def is_secret_key(self, key: str) -> bool:
        decision = self._decisions.get(key)
        if decision is None:
            normalised = _normalise(key)
            decision = any(secret in normalised for secret in self._keys)
            if len(self._decisions) < _MAX_CACHED_KEYS:
                self._decisions[key] = decision
        return decision

    def redact_value(self, key: str, value: _V) -> _V | str:
        """`value`, or the replacement when `key` is secret; secrets inside URL-valued keys are redacted."""
        if self.is_secret_key(key):
            return self.replacement
        if key in _URL_ATTRIBUTE_KEYS and isinstance(value, str):
            return self.redact_url(value)
        return value

    def redact_url(self, text: str) -> str:
        """`text` with the values of secret query parameters and any `scheme://user:password@` replaced."""
        if "=" in text:
            text = _QUERY_PARAMETER.sub(self._redact_parameter, text)
        if "@" in text:
            text = _URL_PASSWORD.sub(rf"\g<lead>{_escape_group(self.replacement)}@", text)
        return text

    def redact_attributes(self, mapping: Mapping[str, _V]) -> Mapping[str, _V | str]:
        """`mapping` with secrets redacted; `mapping` itself when none of its keys can hold a secret.

        Telemetry repeats the same few keys, so the keys known to need no work are kept in a set: a map
        with nothing to redact costs one subset test."""
        keys = mapping.keys()
        if keys <= self._plain_keys:
            return mapping
        plan = [key for key in keys if self._needs_work(key)]
        if not plan:
            return mapping
        redacted: dict[str, _V | str] = dict(mapping)
        for key in plan:
            redacted[key] = self.redact_value(key, redacted[key])
        return redacted

    def _needs_work(self, key: str) -> bool:
        if self.is_secret_key(key) or key in _URL_ATTRIBUTE_KEYS:
            return True
        if len(self._plain_keys) < _MAX_CACHED_KEYS:
            self._plain_keys.add(key)
        return False

    def _redact_parameter(self, match: re.Match[str]) -> str:
        if not self.is_secret_key(match["name"]):
            return match[0]
        return f"{match['lead']}{match['name']}={self.replacement}"


def _escape_group(text: str) -> str:
    return text.replace("\\", "\\\\")
