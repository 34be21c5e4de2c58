"""Configuration: the otel-config.yaml model and its loading."""

from __future__ import annotations

from pgotel.config._load import (
    DEFAULT_CONFIG_FILE,
    LoadedConfig,
    PgotelConfigError,
    activate,
    active_settings,
    load_config,
    parse_settings,
)
from pgotel.config._model import (
    DashboardSettings,
    DatabaseSettings,
    EmbeddedSettings,
    ExporterSettings,
    LimitSettings,
    MonitoringSettings,
    PgotelSettings,
    RedactionSettings,
    RetentionSettings,
)
from pgotel.config._redaction import Redactor

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "DashboardSettings",
    "DatabaseSettings",
    "EmbeddedSettings",
    "ExporterSettings",
    "LimitSettings",
    "LoadedConfig",
    "MonitoringSettings",
    "PgotelConfigError",
    "PgotelSettings",
    "RedactionSettings",
    "Redactor",
    "RetentionSettings",
    "activate",
    "active_settings",
    "load_config",
    "parse_settings",
]
