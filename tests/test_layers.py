"""The package's layers: which parts of textsae may import which. A new back-edge fails here, naming the file."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "textsae"

FORBIDDEN = {
    "sae": {"train", "eval", "featurize", "data", "pipeline", "cli", "bench", "encode", "estimators"},
    "rows": {"sae", "train", "eval", "featurize", "data", "pipeline", "cli", "bench"},
    "train": {"eval", "featurize", "data", "pipeline", "cli", "bench", "encode", "estimators"},
    "data": {"featurize", "sae", "train", "eval", "pipeline", "cli", "bench"},
    "config": {"pipeline", "cli", "bench", "sae", "train", "eval", "featurize", "data", "encode", "estimators"},
    "store": {"sae", "train", "eval", "featurize", "data", "pipeline", "cli", "bench", "config"},
    "featurize": {"sae", "train", "eval", "pipeline", "cli", "bench"},
    "eval": {"train", "pipeline", "cli", "bench", "estimators"},
    "export": {"train", "eval", "data", "pipeline", "cli", "bench", "estimators"},
    "codebook": {"train", "eval", "pipeline", "cli", "bench", "estimators"},
    "model_card": {"sae", "train", "eval", "featurize", "data", "pipeline", "cli", "bench", "encode", "store"},
}
"""Per part of the package (a subpackage or a top-level module), the parts it must never import. Everything
that is not ``cli`` must also never import ``cli`` (checked separately)."""


def _part(path: Path) -> str:
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def _imported_parts(path: Path) -> set[tuple[str, int]]:
    """``(part, line)`` for every ``textsae.<part>`` import in the file, at any depth (function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found |= {(name.split(".")[1], node.lineno) for name in names if name.startswith("textsae.")}
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_the_rules_name_existing_parts() -> None:
    parts = {_part(path) for path in SOURCES}
    assert set(FORBIDDEN) <= parts and set().union(*FORBIDDEN.values()) <= parts


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_layers(path: Path) -> None:
    part = _part(path)
    forbidden = set(FORBIDDEN.get(part, set())) | ({"cli"} if part not in ("cli", "__main__") else set())
    leaks = sorted((target, line) for target, line in _imported_parts(path) if target in forbidden and target != part)
    assert not leaks, (
        f"{path.relative_to(PACKAGE.parent)} imports {', '.join(f'textsae.{t} (line {n})' for t, n in leaks)}"
    )
