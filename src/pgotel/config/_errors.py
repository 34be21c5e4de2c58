"""The one error a configuration problem raises."""

from __future__ import annotations


class PgotelConfigError(ValueError):
    """The configuration file cannot be used; the message names the file, the key and the fix."""
