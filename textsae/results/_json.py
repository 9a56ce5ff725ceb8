"""Helpers shared by the typed results: JSON-safe numbers and reading a mapping back."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, TypeAlias

__all__ = ["JSONObject", "json_safe", "nan_if_null", "read_object"]

JSONObject: TypeAlias = dict[str, Any]
"""A JSON object as Python reads and writes it."""


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as null: JSON has no such numbers, and strict readers refuse them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def nan_if_null(value: Any) -> Any:
    """A number read back from a file written through :func:`json_safe`: null (a NaN or infinity when written)
    becomes NaN, anything else is returned as it is."""
    return float("nan") if value is None else value


def read_object(data: Any, what: str, keys: Iterable[str]) -> JSONObject:
    """``data`` as a JSON object holding every one of ``keys``.

    Raises:
        ValueError: ``data`` is not a mapping, or lacks some of ``keys`` (the message names ``what`` and them).
    """
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be a JSON object. Got {type(data).__name__} instead.")
    missing = [key for key in keys if key not in data]
    if missing:
        raise ValueError(f"{what} has no {', '.join(repr(key) for key in missing)}.")
    return data
