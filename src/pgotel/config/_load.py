"""Loads otel-config.yaml: the OpenTelemetry model plus pgotel's settings, with errors that name the key."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from opentelemetry.configuration import ConfigurationError, OpenTelemetryConfiguration, load_config_file
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from pgotel.config._errors import PgotelConfigError
from pgotel.config._model import PgotelSettings
from pgotel.config._otel import PGOTEL_KEY, check_otel_config
from pgotel.config._views import HistogramShape, request_duration_shape

DEFAULT_CONFIG_FILE = "otel-config.yaml"
_ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "PGOTEL_DSN": ("database", "dsn"),
    "PGOTEL_DASHBOARD_TOKEN": ("dashboard", "auth"),
    "PGOTEL_REDIS_URL": ("monitoring", "redis_url"),
}
# What a key expects, in YAML's words, by pydantic error type (formatted with the error's context).
_EXPECTED: dict[str, str] = {
    "extra_forbidden": "unknown key (remove it or check its spelling)",
    "model_type": "expected a mapping",
    "int_type": "expected an integer",
    "bool_type": "expected true or false",
    "string_type": "expected a string (quote a value YAML would read as a number or true/false)",
    "tuple_type": "expected a list of strings",  # every list in PgotelSettings holds strings (a test checks)
    "path_type": "expected a path",
    "greater_than_equal": "expected at least {ge}",
    "less_than_equal": "expected at most {le}",
    "string_pattern_mismatch": "expected a string matching {pattern}",
    "value_error": "{error}",  # a validator's own message
}
# opentelemetry-configuration's loader logs each error it raises, a YAML parser's traceback included.
_OTEL_LOADER_LOGGER = logging.getLogger(load_config_file.__module__)


@dataclass(frozen=True)
class LoadedConfig:
    """One parsed configuration file: the OTel SDK model and pgotel's own settings."""

    path: Path
    otel: OpenTelemetryConfiguration
    settings: PgotelSettings
    # How pgotel records `http.server.request.duration` (from its view); None when a view drops it.
    request_duration: HistogramShape | None


def load_config(path: str | os.PathLike[str] = DEFAULT_CONFIG_FILE) -> LoadedConfig:
    """Parse and validate `path`; raise PgotelConfigError naming the file and the key on any problem."""
    file = Path(path)
    if not file.is_file():
        raise PgotelConfigError(
            f"{file}: configuration file not found (pass config=... to pgotel.setup, "
            "or set OTEL_CONFIG_FILE to an existing otel-config.yaml)"
        )
    try:
        with _otel_loader_errors_unlogged():
            otel = load_config_file(file)
    except ConfigurationError as exc:
        raise PgotelConfigError(f"{file}: {_one_line(exc)}") from exc
    check_otel_config(otel, source=str(file))
    raw = otel.additional_properties.get(PGOTEL_KEY)
    return LoadedConfig(
        path=file,
        otel=otel,
        settings=parse_settings({} if raw is None else raw, source=str(file)),
        request_duration=request_duration_shape(otel, source=str(file)),
    )


@contextmanager
def _otel_loader_errors_unlogged() -> Iterator[None]:
    """Drop the loader's error records: each precedes the ConfigurationError that becomes pgotel's one message.

    Its warnings (a newer minor `file_format`) still go through."""

    def below_error(record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR

    _OTEL_LOADER_LOGGER.addFilter(below_error)
    try:
        yield
    finally:
        _OTEL_LOADER_LOGGER.removeFilter(below_error)


def _one_line(exc: ConfigurationError) -> str:
    """The loader's message on one line; a YAML syntax error as its line, column and problem, without the excerpt."""
    cause = exc.__cause__
    if isinstance(cause, yaml.MarkedYAMLError) and cause.problem_mark is not None:
        problem = f"{_position(cause.problem_mark)}: not valid YAML: {cause.problem}"
        if cause.context is not None and cause.context_mark is not None:
            problem += f" ({cause.context} at {_position(cause.context_mark)})"
        return problem
    return " ".join(str(exc).split())


def _position(mark: yaml.Mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def parse_settings(raw: Any, *, source: str) -> PgotelSettings:
    """Validate the `pgotel:` mapping, applying PGOTEL_* environment overrides (env wins over file)."""
    if not isinstance(raw, dict):
        raise PgotelConfigError(f"{source}: {PGOTEL_KEY}: expected a mapping; got {raw!r}")
    merged = _with_env_overrides(raw)
    try:
        return PgotelSettings.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = PGOTEL_KEY + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"])
        raise PgotelConfigError(f"{source}: {key}: {_expected(first)}; got {first['input']!r}") from exc


def _expected(error: ErrorDetails) -> str:
    template = _EXPECTED.get(error["type"])
    return error["msg"] if template is None else template.format(**error.get("ctx", {}))


def _with_env_overrides(raw: dict[str, Any]) -> dict[str, Any]:
    merged = {key: (dict(value) if isinstance(value, dict) else value) for key, value in raw.items()}
    for variable, (section, key) in _ENV_OVERRIDES.items():
        value = os.environ.get(variable)
        if value:
            target = merged.setdefault(section, {})
            if isinstance(target, dict):
                target[key] = value
    return merged


_active_lock = threading.Lock()
_active: LoadedConfig | None = None


def activate(config: LoadedConfig) -> None:
    """Make `config` the one the exporter plugins read when the OTel SDK constructs them."""
    global _active
    with _active_lock:
        _active = config


def active_settings() -> PgotelSettings:
    """Settings of the active config; under `opentelemetry-instrument`, the file named by OTEL_CONFIG_FILE."""
    global _active
    with _active_lock:
        if _active is None:
            _active = load_config(os.environ.get("OTEL_CONFIG_FILE", DEFAULT_CONFIG_FILE))
        return _active.settings
