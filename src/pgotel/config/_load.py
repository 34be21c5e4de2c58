"""Loads otel-config.yaml: the OpenTelemetry model plus pgotel's settings, with errors that name the key."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.configuration import ConfigurationError, OpenTelemetryConfiguration, load_config_file
from pydantic import ValidationError

from pgotel.config._errors import PgotelConfigError
from pgotel.config._model import PgotelSettings
from pgotel.config._views import HistogramShape, request_duration_shape

DEFAULT_CONFIG_FILE = "otel-config.yaml"
_ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "PGOTEL_DSN": ("database", "dsn"),
    "PGOTEL_DASHBOARD_TOKEN": ("dashboard", "auth"),
    "PGOTEL_REDIS_URL": ("monitoring", "redis_url"),
}


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
        otel = load_config_file(file)
    except ConfigurationError as exc:
        raise PgotelConfigError(f"{file}: {exc}") from exc
    raw = dict(getattr(otel, "additional_properties", {}) or {}).get("pgotel") or {}
    return LoadedConfig(
        path=file,
        otel=otel,
        settings=parse_settings(raw, source=str(file)),
        request_duration=request_duration_shape(otel, source=str(file)),
    )


def parse_settings(raw: Any, *, source: str) -> PgotelSettings:
    """Validate the `pgotel:` mapping, applying PGOTEL_* environment overrides (env wins over file)."""
    if not isinstance(raw, dict):
        raise PgotelConfigError(f"{source}: pgotel: expected a mapping, got {type(raw).__name__}")
    merged = _with_env_overrides(raw)
    try:
        return PgotelSettings.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in ("pgotel", *first["loc"]))
        got = first.get("input")
        hint = "unknown key (remove it or check its spelling)" if first["type"] == "extra_forbidden" else first["msg"]
        raise PgotelConfigError(f"{source}: {key}: {hint}; got {got!r}") from exc


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
