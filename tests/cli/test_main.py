"""`--config` is read before or after the command, and defaults to $OTEL_CONFIG_FILE, else ./otel-config.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgotel.cli import main

# A config error names the file that was read: each candidate file below is one.
INVALID_CONFIG = 'file_format: "1.0"\npgotel:\n  retention:\n    dayz: 3\n'


@pytest.fixture
def candidate_configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("otel-config.yaml", "from-env.yaml", "before.yaml", "after.yaml"):
        (tmp_path / name).write_text(INVALID_CONFIG)


@pytest.mark.usefixtures("candidate_configs")
@pytest.mark.parametrize(
    ("argv", "read"),
    [
        (["migrate"], "from-env.yaml"),
        (["--config", "before.yaml", "migrate"], "before.yaml"),
        (["migrate", "--config", "after.yaml"], "after.yaml"),
        (["--config", "before.yaml", "migrate", "--config", "after.yaml"], "after.yaml"),
        (["--config", "before.yaml", "db", "status"], "before.yaml"),
        (["db", "--config", "after.yaml", "status"], "after.yaml"),
        (["db", "status", "--config", "after.yaml"], "after.yaml"),
    ],
    ids=["env", "before", "after", "after over before", "before db", "between db and action", "after db action"],
)
def test_config_option_before_or_after_the_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], read: str
) -> None:
    monkeypatch.setenv("OTEL_CONFIG_FILE", "from-env.yaml")
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(f"pgotel: {read}: pgotel.retention.dayz: unknown key")


@pytest.mark.usefixtures("candidate_configs")
def test_without_option_or_environment_the_config_is_the_working_directorys(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OTEL_CONFIG_FILE", raising=False)
    assert main(["migrate"]) == 2
    assert capsys.readouterr().err.startswith("pgotel: otel-config.yaml: pgotel.retention.dayz: unknown key")
