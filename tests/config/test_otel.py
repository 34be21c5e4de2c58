"""The OpenTelemetry part of otel-config.yaml: a root key nobody reads, or options given to a `pgotel` exporter,
fail at startup naming the key."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from opentelemetry.configuration import OpenTelemetryConfiguration

from pgotel.config import PgotelConfigError, load_config

_PIPELINES = """\
file_format: "1.0"
tracer_provider:
  processors:
    - simple: {{exporter: {{console: {{}}}}}}
    - batch: {{exporter: {{{traces_batch}}}}}
    - simple: {{exporter: {{{traces_simple}}}}}
meter_provider:
  readers:
    - periodic: {{exporter: {{{metrics}}}}}
logger_provider:
  processors:
    - batch: {{exporter: {{{logs_batch}}}}}
    - simple: {{exporter: {{{logs_simple}}}}}
"""
_NO_OPTIONS = "pgotel: {}"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "otel-config.yaml"
    path.write_text(text)
    return path


def _pipelines(tmp_path: Path, **exporters: str) -> Path:
    slots = dict.fromkeys(("traces_batch", "traces_simple", "metrics", "logs_batch", "logs_simple"), _NO_OPTIONS)
    return _write(tmp_path, _PIPELINES.format(**(slots | exporters)))


def test_a_misspelled_section_is_named_with_the_keys_expected(tmp_path: Path) -> None:
    path = _write(tmp_path, 'file_format: "1.0"\ntracer_providr:\n  processors: []\n')
    with pytest.raises(PgotelConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert message.startswith(
        f"{path}: tracer_providr: unknown top-level key (did you mean tracer_provider?); expected one of file_format, "
    )
    expected = message.split("expected one of ", 1)[1].split(", ")
    # The keys come from the installed model, spelled as the file spells them, and pgotel's own.
    fields = [field.name for field in dataclasses.fields(OpenTelemetryConfiguration)]
    assert expected == [re.sub(r"_development$", "/development", name) for name in fields] + ["pgotel"]
    assert "instrumentation/development" in expected


def test_an_unknown_key_unlike_any_other_is_named_too(tmp_path: Path) -> None:
    path = _write(tmp_path, 'file_format: "1.0"\npgotel: {}\nzzz: 1\n')
    with pytest.raises(PgotelConfigError, match=r"otel-config\.yaml: zzz: unknown top-level key \(remove it or check"):
        load_config(path)


def test_every_key_the_model_reads_is_accepted(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        'file_format: "1.0"\ndisabled: false\nlog_level: info\nattribute_limits: {}\npropagator: {}\nresource: {}\n'
        "instrumentation/development: {}\ndistribution: {acme: {}}\npgotel: {}\n",
    )
    assert load_config(path).otel.instrumentation_development is not None


@pytest.mark.parametrize(
    ("slot", "key"),
    [
        ("traces_batch", "tracer_provider.processors[1].batch.exporter.pgotel"),
        ("traces_simple", "tracer_provider.processors[2].simple.exporter.pgotel"),
        ("metrics", "meter_provider.readers[0].periodic.exporter.pgotel"),
        ("logs_batch", "logger_provider.processors[0].batch.exporter.pgotel"),
        ("logs_simple", "logger_provider.processors[1].simple.exporter.pgotel"),
    ],
)
def test_options_given_to_a_pgotel_exporter_are_refused_naming_the_key(tmp_path: Path, slot: str, key: str) -> None:
    path = _pipelines(tmp_path, **{slot: "pgotel: {bogus: 1}"})
    with pytest.raises(PgotelConfigError) as raised:
        load_config(path)
    assert str(raised.value) == (
        f"{path}: {key}: takes no options (pgotel's settings go under the top-level pgotel: key); got {{'bogus': 1}}"
    )


def test_a_pgotel_exporter_may_be_empty_or_null(tmp_path: Path) -> None:
    loaded = load_config(_pipelines(tmp_path, traces_batch="pgotel:", metrics="pgotel: null"))
    assert loaded.otel.tracer_provider is not None
    batch = loaded.otel.tracer_provider.processors[1].batch
    assert batch.exporter.additional_properties == {"pgotel": None}


def test_other_exporters_keep_their_options(tmp_path: Path) -> None:
    path = _pipelines(tmp_path, traces_batch="otlp_http: {endpoint: 'http://collector:4318/v1/traces'}")
    loaded = load_config(path)
    assert loaded.otel.tracer_provider is not None
    batch = loaded.otel.tracer_provider.processors[1].batch
    assert batch.exporter.otlp_http.endpoint == "http://collector:4318/v1/traces"
