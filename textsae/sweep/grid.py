"""Sweep grids from command-line overrides: ``key=[a,b,c]`` is an axis, any other ``key=value`` is fixed."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, get_args, get_origin

import yaml

from textsae.config.compose import key_type
from textsae.config.safe_yaml import load_yaml
from textsae.errors import ConfigError

__all__ = ["Axis", "GridPoint", "expand_grid", "parse_grid"]


@dataclass(frozen=True)
class Axis:
    """One swept key and its values, in the order given."""

    key: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class GridPoint:
    """One combination of axis values."""

    index: int
    assignments: dict[str, Any]

    @property
    def overrides(self) -> list[str]:
        """The point's values as ``key=value`` overrides (values as JSON, which YAML reads back)."""
        return [f"{key}={json.dumps(value)}" for key, value in self.assignments.items()]

    @property
    def label(self) -> str:
        return " ".join(f"{key}={json.dumps(value)}" for key, value in self.assignments.items())


def _is_list_key(annotation: Any) -> bool:
    origins = {get_origin(annotation)} | {get_origin(arg) for arg in get_args(annotation)}
    return bool(origins & {list, tuple})


def parse_grid(overrides: Sequence[str]) -> tuple[list[str], list[Axis]]:
    """Split overrides into fixed ones and grid axes.

    A bracketed list is an axis: ``sae.k=[8,32,128]``. For a key whose value is itself a list
    (``featurizer.ngram_range``, ``eval.C_grid``) an axis is a list of lists,
    ``featurizer.ngram_range=[[1,1],[1,2]]``, and a plain list is a fixed value.

    Args:
        overrides: ``key=value`` and ``~key`` strings as on the command line.

    Returns:
        The fixed overrides (unchanged strings) and the axes, in command-line order.

    Raises:
        ConfigError: An axis is empty, or a key appears as an axis twice.
    """
    fixed: list[str] = []
    axes: list[Axis] = []
    problems: list[str] = []
    for item in overrides:
        key, sep, text = item.partition("=")
        try:
            value = load_yaml(text) if sep and text.strip().startswith("[") else None
        except yaml.YAMLError:
            value = None
        annotation = key_type(key.strip())
        is_axis = isinstance(value, list) and (
            not _is_list_key(annotation) or (value and all(isinstance(v, list) for v in value))
        )
        if not is_axis:
            fixed.append(item)
        elif not value:
            problems.append(f"Sweep axis {key.strip()} has no values; give at least one, e.g. {key.strip()}=[8,32].")
        elif any(axis.key == key.strip() for axis in axes):
            problems.append(f"Sweep axis {key.strip()} is given twice; merge the values into one list.")
        else:
            axes.append(Axis(key.strip(), tuple(value)))
    if problems:
        raise ConfigError(problems)
    return fixed, axes


def expand_grid(axes: Sequence[Axis]) -> list[GridPoint]:
    """Every combination of the axes' values (the last axis varies fastest); one empty point without axes."""
    combos = itertools.product(*(axis.values for axis in axes))
    return [GridPoint(i, {axis.key: value for axis, value in zip(axes, combo)}) for i, combo in enumerate(combos)]
