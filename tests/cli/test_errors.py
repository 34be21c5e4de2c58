from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pgotel.cli import main


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('file_format: "1.0"\npgotel:\n  retention:\n    dayz: 3\n', "pgotel.retention.dayz: unknown key"),
        ('file_format: "1.0"\npgotel:\n  retention:\n    days: 0\n', "pgotel.retention.days"),
        ('file_format: "1.0"\npgotel: [unclosed\n', "otel-config.yaml"),
    ],
)
def test_config_error_is_one_line_and_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, expected: str
) -> None:
    path = tmp_path / "otel-config.yaml"
    path.write_text(content)
    assert main(["migrate", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert err.startswith(f"pgotel: {path}")


def test_missing_config_file_through_the_console_script(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "pgotel"), "db", "status", "--config", "absent.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "pgotel: absent.yaml: configuration file not found (pass config=... to pgotel.setup, "
        "or set OTEL_CONFIG_FILE to an existing otel-config.yaml)"
    ]
    assert "Traceback" not in result.stderr
