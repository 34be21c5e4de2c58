"""otel-config.yaml loading: the shipped file is valid, and every kind of bad config names file, key and fix."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import get_origin

import pytest
from pydantic import BaseModel

from pgotel.cli import main
from pgotel.config import DashboardSettings, PgotelConfigError, PgotelSettings, load_config

_MINIMAL = 'file_format: "1.0"\n'
_ENV_OVERRIDES = ("PGOTEL_DSN", "PGOTEL_DASHBOARD_TOKEN", "PGOTEL_REDIS_URL")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "otel-config.yaml"
    path.write_text(text)
    return path


def test_the_shipped_config_loads_with_defaults(repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGOTEL_DSN", raising=False)
    loaded = load_config(repo_root / "otel-config.yaml")
    assert loaded.settings.database.dsn == "embedded"
    assert loaded.settings.retention.days == 30
    assert "password" in loaded.settings.redaction.keys
    assert loaded.otel.tracer_provider is not None
    processor = loaded.otel.tracer_provider.processors[0]
    assert processor.batch is not None
    assert "pgotel" in processor.batch.exporter.additional_properties


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(PgotelConfigError, match=r"nowhere\.yaml: configuration file not found"):
        load_config(tmp_path / "nowhere.yaml")


def test_yaml_error_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, 'file_format: "1.0"\npgotel: [unclosed\n')
    with pytest.raises(PgotelConfigError, match=r"otel-config\.yaml: "):
        load_config(path)


def test_unknown_pgotel_key_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, _MINIMAL + "pgotel:\n  retention:\n    dayz: 3\n")
    with pytest.raises(PgotelConfigError, match=r"otel-config\.yaml: pgotel\.retention\.dayz: unknown key"):
        load_config(path)


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("retention:\n    days: zero", r"pgotel\.retention\.days: .*integer.*got 'zero'"),
        ("retention:\n    days: -1", r"pgotel\.retention\.days: expected at least 1; got -1"),
        ("retention:\n    days: 4000", r"pgotel\.retention\.days: expected at most 3650; got 4000"),
        ("database:\n    dsn: mysql://x", r"pgotel\.database\.dsn: expected a string matching \^\(embedded\|"),
        ("dashboard:\n    path: 'no-slash'", r"pgotel\.dashboard\.path: "),
        ("limits:\n    max_routes: 1", r"pgotel\.limits\.max_routes: expected at least 10; got 1"),
        ("gc_young_threshold: -5", r"pgotel\.gc_young_threshold: expected at least 0; got -5"),
    ],
)
def test_bad_values_are_named_with_what_is_expected(tmp_path: Path, section: str, expected: str) -> None:
    path = _write(tmp_path, _MINIMAL + f"pgotel:\n  {section}\n")
    with pytest.raises(PgotelConfigError, match=expected):
        load_config(path)


@pytest.mark.parametrize("value", ["[1, 2]", "false", "0", "''"])
def test_pgotel_section_must_be_a_mapping(tmp_path: Path, value: str) -> None:
    path = _write(tmp_path, _MINIMAL + f"pgotel: {value}\n")
    with pytest.raises(PgotelConfigError, match=r"otel-config\.yaml: pgotel: expected a mapping; got "):
        load_config(path)


def test_an_empty_pgotel_section_means_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in _ENV_OVERRIDES:
        monkeypatch.delenv(variable, raising=False)
    assert load_config(_write(tmp_path, _MINIMAL + "pgotel:\n")).settings == PgotelSettings()


def test_a_section_with_nothing_under_it_means_its_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in _ENV_OVERRIDES:
        monkeypatch.delenv(variable, raising=False)
    section = "pgotel:\n  retention:\n    # days: 7\n  database:\n    embedded:\n  dashboard: {enabled: false}\n"
    settings = load_config(_write(tmp_path, _MINIMAL + section)).settings
    assert settings == PgotelSettings(dashboard=DashboardSettings(enabled=False))


@pytest.mark.parametrize(
    "dsn", ["postgresql://app@db:5432/shop", "postgres://h1:5432,h2:5433/shop", "postgresql:///shop?host=/run/pg"]
)
def test_dsns_asyncpg_takes_are_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dsn: str) -> None:
    monkeypatch.delenv("PGOTEL_DSN", raising=False)
    loaded = load_config(_write(tmp_path, _MINIMAL + f"pgotel:\n  database:\n    dsn: '{dsn}'\n"))
    assert loaded.settings.database.dsn == dsn


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGOTEL_DSN", "postgresql://env@localhost/db")
    loaded = load_config(_write(tmp_path, _MINIMAL + "pgotel:\n  database:\n    dsn: postgresql://file@x/db\n"))
    assert loaded.settings.database.dsn == "postgresql://env@localhost/db"


def test_redis_url_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGOTEL_REDIS_URL", "redis://127.0.0.1:6390/0")
    loaded = load_config(_write(tmp_path, _MINIMAL + "pgotel:\n  monitoring:\n    redis_url: redis://file:1/0\n"))
    assert loaded.settings.monitoring.redis_url == "redis://127.0.0.1:6390/0"


def test_otel_schema_errors_name_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, _MINIMAL + "tracer_provider:\n  processors: 12\n")
    with pytest.raises(PgotelConfigError, match=r"otel-config\.yaml: .*processors"):
        load_config(path)


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("retention: {days: true}", "pgotel.retention.days: expected an integer; got True"),
        ("retention: {days: '7'}", "pgotel.retention.days: expected an integer; got '7'"),
        ("retention: {days: 7.0}", "pgotel.retention.days: expected an integer; got 7.0"),
        ("gc_young_threshold: false", "pgotel.gc_young_threshold: expected an integer; got False"),
        ("freeze_gc: 1", "pgotel.freeze_gc: expected true or false; got 1"),
        ("dashboard: {enabled: 'yes'}", "pgotel.dashboard.enabled: expected true or false; got 'yes'"),
        ("service_name: 42", "pgotel.service_name: expected a string (quote a value YAML would read as a number"),
        ("redaction: {replacement: no}", "pgotel.redaction.replacement: expected a string (quote"),
        ("monitoring: {redis_url: 0}", "pgotel.monitoring.redis_url: expected a string (quote"),
        ("redaction: {keys: password}", "pgotel.redaction.keys: expected a list of strings; got 'password'"),
        ("redaction: {keys: {password: 1}}", "pgotel.redaction.keys: expected a list of strings; got {'password': 1}"),
        ("redaction: {keys: [password, 5]}", "pgotel.redaction.keys[1]: expected a string (quote"),
        ("database: {embedded: {data_dir: 5}}", "pgotel.database.embedded.data_dir: expected a path; got 5"),
        ("retention: 5", "pgotel.retention: expected a mapping; got 5"),
        (
            "database: {dsn: 'postgresql://app:pw@db:abc/shop'}",
            "pgotel.database.dsn: expected a postgresql:// URL with a numeric port (Port could not be cast",
        ),
    ],
)
def test_values_of_the_wrong_type_are_refused_in_yaml_words(tmp_path: Path, section: str, expected: str) -> None:
    path = _write(tmp_path, _MINIMAL + f"pgotel:\n  {section}\n")
    with pytest.raises(PgotelConfigError) as raised:
        load_config(path)
    assert str(raised.value).startswith(f"{path}: {expected}")
    assert "Input should" not in str(raised.value)


def test_every_list_setting_holds_strings() -> None:
    """The wording "expected a list of strings" is right only while every tuple in PgotelSettings is tuple[str, ...]."""

    def tuple_fields(model: type[BaseModel]) -> Iterator[object]:
        for field in model.model_fields.values():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                yield from tuple_fields(annotation)
            elif get_origin(annotation) is tuple:
                yield annotation

    annotations = list(tuple_fields(PgotelSettings))
    assert annotations
    assert all(annotation == tuple[str, ...] for annotation in annotations)


def test_yaml_lists_paths_and_substituted_numbers_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGOTEL_TEST_PORT", "5499")
    monkeypatch.delenv("PGOTEL_TEST_DAYS", raising=False)
    path = _write(
        tmp_path,
        _MINIMAL + "pgotel:\n"
        "  retention:\n    days: ${PGOTEL_TEST_DAYS:-7}\n"
        "  database:\n    embedded:\n      data_dir: /srv/pg\n      port: ${PGOTEL_TEST_PORT}\n"
        "  redaction:\n    keys: [ssn, iban]\n",
    )
    settings = load_config(path).settings
    assert settings.retention.days == 7
    assert settings.database.embedded.port == 5499
    assert settings.database.embedded.data_dir == Path("/srv/pg")
    assert settings.redaction.keys == ("ssn", "iban")


def test_environment_overrides_are_strings_even_when_yaml_would_read_a_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGOTEL_DSN", "postgresql://env@localhost/db")
    monkeypatch.setenv("PGOTEL_DASHBOARD_TOKEN", "123456")
    monkeypatch.setenv("PGOTEL_REDIS_URL", "redis://127.0.0.1:6390/0")
    # The shipped file's form: `auth: ${PGOTEL_DASHBOARD_TOKEN:-}` reads 123456 as an int; the override wins.
    path = _write(
        tmp_path,
        _MINIMAL + "pgotel:\n  dashboard:\n    auth: ${PGOTEL_DASHBOARD_TOKEN:-}\n  monitoring: {redis_url: ''}\n",
    )
    settings = load_config(path).settings
    assert settings.database.dsn == "postgresql://env@localhost/db"
    assert settings.dashboard.auth == "123456"
    assert settings.monitoring.redis_url == "redis://127.0.0.1:6390/0"


def test_an_empty_redis_url_means_no_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGOTEL_REDIS_URL", raising=False)
    path = _write(tmp_path, _MINIMAL + "pgotel:\n  monitoring: {redis_url: ''}\n")
    assert load_config(path).settings.monitoring.redis_url is None


def test_a_yaml_syntax_error_is_one_line_with_its_position(tmp_path: Path) -> None:
    path = _write(tmp_path, _MINIMAL + "pgotel: [unclosed\n")
    with pytest.raises(PgotelConfigError) as raised:
        load_config(path)
    assert str(raised.value) == (
        f"{path}: line 3, column 1: not valid YAML: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence at line 2, column 9)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (_MINIMAL + "pgotel: [unclosed\n", "line 3, column 1: not valid YAML"),
        (_MINIMAL + "a: b: c\n", "line 2, column 5: not valid YAML: mapping values are not allowed here"),
        (_MINIMAL + "pgotel: \x07\n", "Failed to parse YAML: unacceptable character #x0007: special characters"),
        ("", "Configuration file is empty"),
        ("- 1\n", "Configuration must be a mapping/object, got list"),
        ("tracer_provider: {}\n", "Configuration does not match schema"),
    ],
)
def test_the_loaders_errors_are_only_pgotels_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, text: str, expected: str
) -> None:
    caplog.set_level(logging.DEBUG)
    path = _write(tmp_path, text)
    assert main(["migrate", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"pgotel: {path}: {expected}")
    assert err.count("\n") == 1
    assert caplog.records == []  # opentelemetry-configuration logged these, the YAML parser's traceback included


def test_the_loaders_warnings_still_reach_the_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    load_config(_write(tmp_path, 'file_format: "1.99"\n'))
    assert [record.levelno for record in caplog.records] == [logging.WARNING]
    assert "newer minor version" in caplog.records[0].getMessage()
