from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from pgotel import db
from pgotel.cli import main
from tests.cli.console import PGOTEL


def _write_config(tmp_path: Path, dashboard: str) -> Path:
    path = tmp_path / "otel-config.yaml"
    path.write_text(
        'file_format: "1.0"\npgotel:\n'
        f"  database:\n    embedded:\n      data_dir: {tmp_path / 'pg'}\n"
        f"  dashboard:\n{dashboard}"
    )
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_refuses_to_expose_an_unauthenticated_dashboard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write_config(tmp_path, "    auth_disabled: true\n")
    assert main(["serve", "--config", str(config), "--host", "0.0.0.0"]) == 2
    assert "pgotel.dashboard.auth_disabled" in capsys.readouterr().err


def test_serve_without_a_token_names_the_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _write_config(tmp_path, "    path: /ui/monitoring/advanced\n")
    assert main(["serve", "--config", str(config)]) == 2
    assert "PGOTEL_DASHBOARD_TOKEN" in capsys.readouterr().err


def test_serve_answers_the_summary_api(tmp_path: Path) -> None:
    config = _write_config(tmp_path, "    auth: s3cret-token\n")
    port = _free_port()
    server = subprocess.Popen(
        [str(PGOTEL), "serve", "--config", str(config), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/api/monitoring/advanced/summary"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(url, headers={"Authorization": "Bearer s3cret-token"})
                break
            except httpx.TransportError:
                assert server.poll() is None, server.communicate()[1]
                assert time.monotonic() < deadline, "pgotel serve did not start listening"
                time.sleep(0.2)
        assert response.status_code == 200, response.text
        assert {"api", "redis", "postgres", "system"} <= set(response.json())
        assert httpx.get(url).status_code == 401
    finally:
        server.terminate()
        server.wait(timeout=30)
        db.stop_embedded(tmp_path / "pg")
