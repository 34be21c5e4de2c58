from __future__ import annotations

from pathlib import Path

import pytest

from pgotel import db
from pgotel.cli import main


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """A config whose embedded server lives in tmp_path (so no test touches ./.pgotel)."""
    path = tmp_path / "otel-config.yaml"
    path.write_text(f'file_format: "1.0"\npgotel:\n  database:\n    embedded:\n      data_dir: {tmp_path / "pg"}\n')
    return path


def test_db_start_status_url_stop(config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "pg"
    config = ["--config", str(config_file)]
    try:
        assert main(["db", "status", *config]) == 1
        assert "not running" in capsys.readouterr().out

        assert main(["db", "start", *config]) == 0
        server = db.embedded_status(data_dir)
        assert server is not None
        assert f"psql {server.dsn}" in capsys.readouterr().out

        assert main(["db", "status", *config]) == 0
        assert capsys.readouterr().out.strip() == (
            f"embedded PostgreSQL running: pid {server.pid}, port {server.port}, data dir {data_dir.resolve()}"
        )

        assert main(["db", "url", *config]) == 0
        assert capsys.readouterr().out.strip() == server.dsn

        assert main(["db", "stop", *config]) == 0
        assert "stopped" in capsys.readouterr().out
        assert db.embedded_status(data_dir) is None
        assert main(["db", "status", *config]) == 1
        assert main(["db", "url", *config]) == 1
        assert "pgotel db start" in capsys.readouterr().err
    finally:
        db.stop_embedded(data_dir)


def test_migrate_and_prune_stop_the_server_they_started(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "pg"
    config = ["--config", str(config_file)]
    try:
        assert main(["migrate", *config]) == 0
        assert capsys.readouterr().out.splitlines() == [f"applied {m.name}" for m in db.shipped_migrations()]
        assert db.embedded_status(data_dir) is None

        assert main(["db", "start", *config]) == 0
        assert main(["migrate", *config]) == 0
        assert main(["prune", *config]) == 0
        captured = capsys.readouterr()
        assert captured.out.splitlines()[-1] == "schema up to date"
        assert "nothing to prune" in captured.err
        assert db.embedded_status(data_dir) is not None, "a server running before the command keeps running"
    finally:
        db.stop_embedded(data_dir)


def test_db_url_prints_an_external_dsn_as_configured(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "otel-config.yaml"
    path.write_text('file_format: "1.0"\npgotel:\n  database:\n    dsn: postgresql://app@db.internal:5432/app\n')
    assert main(["db", "url", "--config", str(path)]) == 0
    assert capsys.readouterr().out.strip() == "postgresql://app@db.internal:5432/app"
    assert main(["db", "start", "--config", str(path)]) == 2
    assert "pgotel.database.dsn" in capsys.readouterr().err
