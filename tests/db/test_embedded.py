"""The embedded server's own guarantees: any project path and locale work, a password guards it, failures say why."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from pgotel import db
from pgotel.db import _embedded


@pytest.fixture
def deep_data_dir(tmp_path: Path) -> Iterator[Path]:
    """A data dir whose Unix socket path (`.../pg/.s.PGSQL.<port>`) would exceed the 107 bytes allowed."""
    data_dir = tmp_path / ("project-" * 8) / ("backend-" * 8) / ".pgotel"
    assert len(str(data_dir / "pg" / ".s.PGSQL.54321")) > 107
    yield data_dir
    db.stop_embedded(data_dir)


async def test_a_deep_project_path_starts_a_server_that_requires_its_password(deep_data_dir: Path) -> None:
    server = db.start_embedded(deep_data_dir)

    connection = await asyncpg.connect(server.dsn)
    try:
        assert await connection.fetchval("SELECT current_user") == "postgres"
    finally:
        await connection.close()
    assert server.password is not None
    password_file = deep_data_dir / _embedded.PASSWORD_FILE
    assert password_file.read_text() == server.password
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    without_password = server.dsn.replace(f":{server.password}@", "@", 1)
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(without_password)
    assert db.embedded_status(deep_data_dir) == server, "a second process finds the same server and password"


async def test_a_locale_missing_from_the_machine_does_not_keep_the_server_from_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("LANG", "LC_ALL"):
        monkeypatch.setenv(variable, "xx_XX.UTF-8")  # as an SSH session may bring from another machine
    try:
        server = db.start_embedded(tmp_path / "pg")
        connection = await asyncpg.connect(server.dsn)
        try:
            assert await connection.fetchval("SELECT upper('été')") == "ÉTÉ", "Unicode case mapping all the same"
        finally:
            await connection.close()
    finally:
        db.stop_embedded(tmp_path / "pg")


def test_a_server_that_cannot_start_says_why(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        try:
            with pytest.raises(db.EmbeddedPostgresError, match=r"(?s)server\.log ends.*Address already in use"):
                db.start_embedded(tmp_path / "pg", port=port)
        finally:
            db.stop_embedded(tmp_path / "pg")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as a system user of its own")
def test_as_root_without_useradd_the_error_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_embedded, "SYSTEM_USER", "pgotel_test_absent_user")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # a slim container: no useradd

    with pytest.raises(db.EmbeddedPostgresError, match=r"creating the system user .* failed .*pgotel\.database\.dsn"):
        db.start_embedded(tmp_path / "pg")
