"""Checks of the OpenTelemetry part of otel-config.yaml that its schema leaves open: root keys, pgotel's exporters."""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterator
from typing import Any

from opentelemetry.configuration import OpenTelemetryConfiguration

from pgotel.config._errors import PgotelConfigError

PGOTEL_KEY = "pgotel"

# Where the traces, metrics and logs pipelines name their exporters: `<provider>.<list>[i].<kind>.exporter`.
_EXPORTER_PARENTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("tracer_provider", "processors", ("batch", "simple")),
    ("meter_provider", "readers", ("periodic",)),
    ("logger_provider", "processors", ("batch", "simple")),
)


def check_otel_config(otel: OpenTelemetryConfiguration, *, source: str) -> None:
    """Raise PgotelConfigError for a root key nobody reads, or for options given to a `pgotel` exporter."""
    known = [*_otel_root_keys(), PGOTEL_KEY]
    for key in otel.additional_properties:
        if key != PGOTEL_KEY:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]}?" if close else "remove it or check its spelling"
            raise PgotelConfigError(
                f"{source}: {key}: unknown top-level key ({hint}); expected one of {', '.join(known)}"
            )
    for key, options in _pgotel_exporters(otel):
        if options:
            raise PgotelConfigError(
                f"{source}: {key}: takes no options (pgotel's settings go under the top-level pgotel: key); "
                f"got {options!r}"
            )


def _otel_root_keys() -> list[str]:
    """The root keys the installed opentelemetry-configuration reads, spelled as in the file.

    Its loader reads an experimental key such as `instrumentation/development` into the field
    `instrumentation_development`, and any other key into `additional_properties`."""
    return [
        re.sub(r"_development$", "/development", field.name) for field in dataclasses.fields(OpenTelemetryConfiguration)
    ]


def _pgotel_exporters(otel: OpenTelemetryConfiguration) -> Iterator[tuple[str, Any]]:
    """The key and the options (a mapping, or None) of every `pgotel` exporter in the file's pipelines."""
    for provider_key, list_key, kinds in _EXPORTER_PARENTS:
        provider = getattr(otel, provider_key)
        for index, entry in enumerate(getattr(provider, list_key, None) or ()):
            for kind in kinds:
                component = getattr(entry, kind)
                if component is not None and PGOTEL_KEY in component.exporter.additional_properties:
                    key = f"{provider_key}.{list_key}[{index}].{kind}.exporter.{PGOTEL_KEY}"
                    yield key, component.exporter.additional_properties[PGOTEL_KEY]
