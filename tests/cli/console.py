"""The `pgotel` console script run as a user runs it: a separate process, in a directory of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

PGOTEL = Path(sys.executable).parent / "pgotel"


def run_pgotel(*args: str, cwd: Path, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `pgotel ARGS...` in `cwd` to its end, with `env` added to this process's environment."""
    return subprocess.run(
        [str(PGOTEL), *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
