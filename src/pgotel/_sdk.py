"""The pinned OTel SDK's span and log containers, read without their locks.

Ended spans are immutable, and through their public Mapping / Sequence interfaces every key or item costs a
lock and several Python-level calls; the exporter's conversion and the redacting processors read what is
inside instead."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def sdk_attributes(attributes: Any) -> tuple[Mapping[str, Any], int]:
    """The plain dict inside the SDK's BoundedAttributes (immutable once its span ended) and its dropped
    count. Through its public Mapping interface every key costs a lock and several calls."""
    inner = getattr(attributes, "_dict", None)
    if type(inner) is dict:  # checked first: BoundedAttributes' own truth test is a Python-level __len__
        return inner, attributes.dropped
    return attributes or {}, 0


def sdk_sequence(items: Any) -> tuple[Sequence[Any], int]:
    """The deque inside the SDK's BoundedList (events, links) and its dropped count, without its lock."""
    inner = getattr(items, "_dq", None)
    if inner is not None:
        return inner, items.dropped
    return items or (), 0
