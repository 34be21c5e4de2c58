"""pgotel: OpenTelemetry for FastAPI, stored in PostgreSQL. `pgotel.setup(app)` is the entry point."""

from __future__ import annotations

from pgotel._setup import PgOtel, setup
from pgotel.instrumentation import traced

__all__ = ["PgOtel", "setup", "traced"]
