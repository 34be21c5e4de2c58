"""otel-config.yaml loading: the shipped file is valid, and every kind of bad config names file, key and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgotel.config import PgotelConfigError, load_config

_MINIMAL = 'file_format: "1.0"\n'


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
        ("retention:\n    days: -1", r"pgotel\.retention\.days: .*greater than or equal to 1"),
        ("database:\n    dsn: mysql://x", r"pgotel\.database\.dsn: .*pattern"),
        ("dashboard:\n    path: 'no-slash'", r"pgotel\.dashboard\.path: "),
        ("limits:\n    max_routes: 1", r"pgotel\.limits\.max_routes: .*greater than or equal to 10"),
        ("gc_young_threshold: -5", r"pgotel\.gc_young_threshold: .*greater than or equal to 0"),
    ],
)
def test_bad_values_are_named_with_what_is_expected(tmp_path: Path, section: str, expected: str) -> None:
    path = _write(tmp_path, _MINIMAL + f"pgotel:\n  {section}\n")
    with pytest.raises(PgotelConfigError, match=expected):
        load_config(path)


def test_pgotel_section_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(PgotelConfigError, match=r"pgotel: expected a mapping, got list"):
        load_config(_write(tmp_path, _MINIMAL + "pgotel: [1, 2]\n"))


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
