"""Configuration: the otel-config.yaml model and its loading."""

from __future__ import annotations

from pgotel.config._errors import PgotelConfigError
from pgotel.config._load import (
    DEFAULT_CONFIG_FILE,
    LoadedConfig,
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
from pgotel.config._views import REQUEST_DURATION_METRIC, HistogramShape

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "REQUEST_DURATION_METRIC",
    "DashboardSettings",
    "DatabaseSettings",
    "EmbeddedSettings",
    "ExporterSettings",
    "HistogramShape",
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
