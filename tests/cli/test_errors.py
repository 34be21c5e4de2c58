from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from pgotel.cli import main
from tests.cli.console import run_pgotel

MINIMAL_CONFIG = 'file_format: "1.0"\n'


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
    result = run_pgotel("db", "status", "--config", "absent.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "pgotel: absent.yaml: configuration file not found (pass config=... to pgotel.setup, "
        "or set OTEL_CONFIG_FILE to an existing otel-config.yaml)"
    ]
    assert "Traceback" not in result.stderr


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, so no one else takes it, but not listening."""
    with socket.socket() as unlistened:
        unlistened.bind(("127.0.0.1", 0))
        yield int(unlistened.getsockname()[1])


@pytest.mark.parametrize(
    "command",
    [["migrate"], ["prune"], ["demo", "--port", "0", "--duration", "1"]],
    ids=["migrate", "prune", "demo"],
)
def test_an_unreachable_database_is_one_line_without_the_password_and_exit_code_1(
    tmp_path: Path, refused_port: int, command: list[str]
) -> None:
    (tmp_path / "otel-config.yaml").write_text(MINIMAL_CONFIG)
    dsn = f"postgresql://app:s3cret-pw@127.0.0.1:{refused_port}/shop"
    result = run_pgotel(*command, cwd=tmp_path, env={"PGOTEL_DSN": dsn})
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"pgotel: cannot connect to PostgreSQL at postgresql://app:***@127.0.0.1:{refused_port}/shop: "
        "Connection refused"
    ]
    assert "Traceback" not in result.stderr
    assert "s3cret-pw" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("password", "database", "reason"),
    [
        ("wrong-password", "postgres", 'password authentication failed for user "postgres"'),
        (None, "pgotel_no_such_db", 'database "pgotel_no_such_db" does not exist'),
    ],
    ids=["wrong password", "missing database"],
)
def test_a_login_the_server_rejects_is_one_line_naming_why(
    tmp_path: Path, server_dsn: str, password: str | None, database: str, reason: str
) -> None:
    server = urlsplit(server_dsn)
    dsn = f"postgresql://{server.username}:{password or server.password}@{server.hostname}:{server.port}/{database}"
    (tmp_path / "otel-config.yaml").write_text(MINIMAL_CONFIG)
    result = run_pgotel("migrate", cwd=tmp_path, env={"PGOTEL_DSN": dsn})
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"pgotel: cannot connect to PostgreSQL at postgresql://{server.username}:***@{server.hostname}:{server.port}"
        f"/{database}: {reason}"
    ]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("command", "data_dir", "reason"),
    [
        (["db", "start"], "/proc/nope", "/proc/nope: No such file or directory"),
        (["migrate"], "a-file/pg", "a-file/pg: Not a directory"),
    ],
)
def test_an_unusable_embedded_data_dir_is_one_line_and_exit_code_1(
    tmp_path: Path, command: list[str], data_dir: str, reason: str
) -> None:
    (tmp_path / "a-file").write_text("a regular file, not a directory\n")
    config = tmp_path / "otel-config.yaml"
    config.write_text(f"{MINIMAL_CONFIG}pgotel:\n  database:\n    embedded:\n      data_dir: {data_dir}\n")
    result = run_pgotel(*command, "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"pgotel: cannot use {data_dir} as the embedded PostgreSQL's data dir ({reason}); "
        "set pgotel.database.embedded.data_dir to a directory this user can create and write"
    ]
    assert "Traceback" not in result.stderr


async def _create_role(dsn: str, name: str, password: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
    finally:
        await conn.close()


async def _drop_role(dsn: str, name: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP ROLE {name}")
    finally:
        await conn.close()


def test_a_command_postgresql_refuses_after_login_is_one_line_and_exit_code_1(tmp_path: Path, empty_dsn: str) -> None:
    role = f"pgotel_no_create_{uuid.uuid4().hex[:8]}"
    asyncio.run(_create_role(empty_dsn, role, "pw"))
    try:
        target = urlsplit(empty_dsn)
        dsn = f"postgresql://{role}:pw@{target.hostname}:{target.port}{target.path}"
        (tmp_path / "otel-config.yaml").write_text(MINIMAL_CONFIG)
        result = run_pgotel("migrate", cwd=tmp_path, env={"PGOTEL_DSN": dsn})
    finally:
        asyncio.run(_drop_role(empty_dsn, role))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"pgotel: PostgreSQL refused the command: permission denied for database {target.path[1:]} (SQLSTATE 42501)"
    ]
