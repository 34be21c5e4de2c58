"""pgotel's own settings: the top-level `pgotel:` section of otel-config.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_REDACTED_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "authorization",
    "cookie",
    "set-cookie",
    "session",
    "private_key",
    "credential",
)


class _Section(BaseModel):
    # Strict: YAML gives real ints, bools and strings, so `days: true` or `days: "7"` is a mistake, not a 1 or a 7.
    # (YAML types a `${VAR:-7}` value after substituting it, so `days: ${DAYS:-7}` is still an int.)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections_are_defaults(cls, data: Any) -> Any:
        """A section written with nothing under it (`retention:`, every key commented out) is YAML's null:
        its defaults, as for an empty `pgotel:`."""
        if not isinstance(data, dict):
            return data
        return {key: {} if value is None and _is_section(cls, key) else value for key, value in data.items()}


def _is_section(model: type[BaseModel], key: str) -> bool:
    field = model.model_fields.get(key)
    return field is not None and isinstance(field.annotation, type) and issubclass(field.annotation, _Section)


class EmbeddedSettings(_Section):
    """Where the embedded PostgreSQL keeps its data, and on which loopback port it listens."""

    data_dir: Annotated[Path, Field(strict=False)] = Path(".pgotel")  # YAML gives a string
    port: Annotated[int, Field(ge=0, le=65535)] = 0


class DatabaseSettings(_Section):
    """Which PostgreSQL receives the telemetry: `embedded` or a postgresql:// DSN."""

    dsn: str = Field(default="embedded", pattern=r"^(embedded|postgres(ql)?://.*)$")
    embedded: EmbeddedSettings = EmbeddedSettings()
    pool_size: Annotated[int, Field(ge=1, le=32)] = 2

    @field_validator("dsn")
    @classmethod
    def _dsn_parses(cls, value: str) -> str:
        """A DSN whose port is not a number would otherwise fail at the first connection, not at startup."""
        if value == "embedded":
            return value
        url = urlsplit(value)
        if "," not in url.netloc:  # asyncpg also takes several hosts (h1:5432,h2:5433), which urlsplit cannot read
            try:
                _ = url.port  # the property parses it
            except ValueError as exc:
                raise ValueError(f"expected a postgresql:// URL with a numeric port ({exc})") from exc
        return value


class RetentionSettings(_Section):
    """How long raw telemetry is kept: whole daily partitions older than `days` are dropped."""

    days: Annotated[int, Field(ge=1, le=3650)] = 30
    partitions_ahead_days: Annotated[int, Field(ge=1, le=30)] = 3


class RedactionSettings(_Section):
    """Attribute, header, log-field and query-parameter names whose values never reach storage."""

    keys: Annotated[tuple[str, ...], Field(strict=False)] = DEFAULT_REDACTED_KEYS  # YAML gives a list
    replacement: str = "[REDACTED]"


class LimitSettings(_Section):
    """Cardinality and size caps applied before telemetry is stored."""

    max_routes: Annotated[int, Field(ge=10, le=100_000)] = 1000
    max_attributes: Annotated[int, Field(ge=1, le=10_000)] = 128
    max_value_length: Annotated[int, Field(ge=16, le=1_000_000)] = 8192


class ExporterSettings(_Section):
    """Buffering and deadlines of the PostgreSQL exporters."""

    # Rows held while PostgreSQL is unreachable (~1 KB each in memory): 100k rows is a 20 s outage at 5k rows/s.
    queue_rows: Annotated[int, Field(ge=100, le=10_000_000)] = 100_000
    batch_rows: Annotated[int, Field(ge=1, le=100_000)] = 5000
    flush_interval_ms: Annotated[int, Field(ge=10, le=60_000)] = 500
    export_timeout_ms: Annotated[int, Field(ge=10, le=60_000)] = 2000
    shutdown_timeout_ms: Annotated[int, Field(ge=10, le=120_000)] = 5000
    connect_backoff_max_ms: Annotated[int, Field(ge=100, le=120_000)] = 5000


class DashboardSettings(_Section):
    """The built-in dashboard: where it is mounted and how it is protected."""

    enabled: bool = True
    path: str = Field(default="/ui/monitoring/advanced", pattern=r"^/[A-Za-z0-9_/.-]*$")
    api_path: str = Field(default="/api/monitoring/advanced", pattern=r"^/[A-Za-z0-9_/.-]*$")
    auth: str | None = None
    auth_disabled: bool = False

    @field_validator("auth")
    @classmethod
    def _empty_token_is_none(cls, value: str | None) -> str | None:
        return value or None


class MonitoringSettings(_Section):
    """Resources the dashboard watches besides the app: a Redis server (optional) and the host."""

    redis_url: str | None = Field(default=None, pattern=r"^(rediss?|unix)://.*$")

    @field_validator("redis_url", mode="before")
    @classmethod
    def _empty_url_is_none(cls, value: object) -> object:
        return None if value == "" else value


class PgotelSettings(_Section):
    """Everything under the `pgotel:` key of otel-config.yaml."""

    service_name: str | None = None
    freeze_gc: bool = True  # objects alive at setup and app startup skip full GC scans (_setup._freeze_gc)
    gc_young_threshold: int = Field(default=10_000, ge=0)  # 0: leave gc thresholds alone (_setup._raise_gc_threshold)
    database: DatabaseSettings = DatabaseSettings()
    retention: RetentionSettings = RetentionSettings()
    redaction: RedactionSettings = RedactionSettings()
    limits: LimitSettings = LimitSettings()
    exporter: ExporterSettings = ExporterSettings()
    dashboard: DashboardSettings = DashboardSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
