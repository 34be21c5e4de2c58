"""The public surface: what `import pgotel` and `import pgotel.instrumentation` promise."""

from __future__ import annotations

import inspect

import pgotel
import pgotel.instrumentation


def test_top_level_api() -> None:
    assert pgotel.__all__ == ["PgOtel", "setup", "traced"]
    assert all(hasattr(pgotel, name) for name in pgotel.__all__)


def test_setup_signature() -> None:
    signature = inspect.signature(pgotel.setup)

    assert list(signature.parameters) == ["app", "config"]
    assert signature.parameters["app"].default is None
    assert signature.parameters["config"].kind is inspect.Parameter.KEYWORD_ONLY


def test_handle_api() -> None:
    public = {name for name in vars(pgotel.PgOtel) if not name.startswith("_")}

    assert public == {"force_flush", "settings", "shutdown"}


def test_instrumentation_api_is_sorted_and_complete() -> None:
    names = pgotel.instrumentation.__all__

    assert names == sorted(names, key=lambda name: (not name.isupper(), not name[0].isupper(), name))
    assert all(hasattr(pgotel.instrumentation, name) for name in names)
    assert {"add_trace_context", "redact_secrets", "traced", "instrument_app"} <= set(names)
