"""The key structure of a JSON report: every object's keys in order, nested, with the recipe's sections left out."""

from __future__ import annotations

from typing import Any

GOLDEN = "report_keys.json"
"""Beside this module: the key structures of reports written by textsae before the results were typed."""

CONFIG_SECTIONS = {
    "run": ("config",),
    "quality": ("featurizer", "bench", "eval", "train", "sae.config"),
    "universal": (),
}
"""Per report kind: the paths that copy the resolved recipe (their keys follow the config schema, not the report)."""


def by_position(summary: dict[str, Any]) -> dict[str, Any]:
    """A universal codebook's summary with its datasets named ``dataset0``, ``dataset1`` ... (their names are the
    corpora's folder names, which differ between machines and test sessions)."""
    return {**summary, "datasets": {f"dataset{i}": entry for i, entry in enumerate(summary["datasets"].values())}}


def key_structure(value: Any, skip: tuple[str, ...] = (), path: str = "") -> Any:
    """``[[key, structure], ...]`` for an object, ``[structure, ...]`` for a list, ``None`` for a scalar; a path in
    ``skip`` (dotted, from the top) becomes ``"<recipe section>"``."""
    if path in skip:
        return "<recipe section>"
    if isinstance(value, dict):
        return [[key, key_structure(item, skip, f"{path}.{key}" if path else key)] for key, item in value.items()]
    if isinstance(value, list):
        return [key_structure(item, skip, f"{path}[]") for item in value]
    return None
