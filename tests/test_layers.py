"""The package's layers: which parts of textsae may import which.

Every module under ``textsae/`` is parsed; every import of a textsae part (``import textsae.x``, ``from textsae.x
import y``, ``from textsae import x``, relative imports, ``importlib.import_module("textsae.x")``), at module level or
inside a function, is an edge from the importing part to the imported one. A part is a subpackage (``sae``,
``train``, ...) or a top-level module (``rows``, ``pipeline``, ...); ``__init__`` is the package root, which
re-exports the pipeline-level API lazily. An edge a rule forbids fails, naming the file, the line and the rule.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "textsae"
SOURCES = sorted(PACKAGE.rglob("*.py"))


def _part(path: Path) -> str:
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


PARTS = frozenset(_part(path) for path in SOURCES)
"""Every part of the package: its subpackages, top-level modules and ``__init__`` (the root)."""

CLI_RULE = "library code (everything but cli/ and __main__) never imports cli/"
ENTRY_POINTS = frozenset({"cli", "__main__"})
"""The parts that may import ``cli``."""

RULES: dict[str, tuple[frozenset[str], str]] = {
    "errors": (PARTS - {"errors"}, "errors.py is the bottom layer: it imports nothing from textsae"),
    "markdown": (PARTS - {"markdown"}, "markdown.py (the table builder every layer uses) imports nothing from textsae"),
    "rows": (
        PARTS - {"rows", "errors"},
        "rows.py (the tensor helpers train/, eval/ and encode share) lives below them: it imports only errors",
    ),
    "distributed": (
        PARTS - {"distributed", "_io", "errors"},
        "distributed.py (torchrun's process group and collectives, used by every stage) imports only _io and errors",
    ),
    "results": (
        PARTS - {"results", "errors"},
        "results/ (the typed reports that the pipeline, eval/, bench/ and the sweep write and read) lives below them: "
        "it imports only errors",
    ),
    "sae": (
        frozenset({"train", "eval", "featurize", "data", "pipeline", "bench", "encode", "estimators", "__init__"}),
        "sae/ imports none of train/, eval/, featurize/, data/ or what builds on them",
    ),
    "train": (
        frozenset({"eval", "featurize", "data", "pipeline", "bench", "encode", "estimators", "__init__"}),
        "train/ never imports eval/ (nor featurize/, data/ or what builds on them)",
    ),
    "data": (
        frozenset({"featurize", "sae", "train", "eval", "pipeline", "bench", "__init__"}),
        "data/ never imports featurize/ (nor the model, training or evaluation)",
    ),
    "config": (
        frozenset({"pipeline", "bench", "train", "eval", "data", "encode", "estimators", "__init__"}),
        "config/ never imports the pipeline, nor train/, eval/, data/ or bench/ (it reads sae/ and featurize/ only "
        "through their registries, where each architecture and featurizer declares its config class)",
    ),
    "store": (
        frozenset({"sae", "train", "eval", "featurize", "data", "pipeline", "bench", "config", "__init__"}),
        "store/ (manifests, shards) imports no model, data or config code",
    ),
    "featurize": (
        frozenset({"sae", "train", "eval", "pipeline", "bench", "__init__"}),
        "featurize/ imports neither the SAE nor training, evaluation or the pipeline",
    ),
    "eval": (
        frozenset({"train", "pipeline", "bench", "estimators", "__init__"}),
        "eval/ never imports train/ (nor the pipeline or benchmarks)",
    ),
    "export": (
        frozenset({"train", "eval", "data", "pipeline", "bench", "estimators", "__init__"}),
        "export/ reads trained artefacts only: no training, evaluation, data or pipeline",
    ),
    "codebook": (
        frozenset({"train", "eval", "pipeline", "bench", "estimators"}),
        "codebook.py loads and applies a trained codebook: no training, evaluation or pipeline",
    ),
    "model_card": (
        frozenset({"sae", "train", "eval", "featurize", "data", "pipeline", "bench", "encode", "store", "__init__"}),
        "model_card.py renders text from dicts: no model, data or storage code",
    ),
}
"""Per importing part: the parts it must never import, and the rule that says so. Every part but ``cli`` and
``__main__`` must also never import ``cli`` (:data:`CLI_RULE`)."""


@dataclass(frozen=True)
class Violation:
    """An import edge a rule forbids."""

    file: str
    line: int
    target: str
    rule: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} imports textsae.{self.target}, which breaks the rule: {self.rule}"


def _module_name(path: Path) -> list[str]:
    """``textsae/train/trainer.py`` -> ``["textsae", "train", "trainer"]`` (a package's ``__init__`` is the package)."""
    parts = ["textsae", *path.relative_to(PACKAGE).with_suffix("").parts]
    return parts[:-1] if parts[-1] == "__init__" else parts


def _target_part(dotted: str) -> str | None:
    """The part ``dotted`` (a module or attribute path) lies in; ``None`` outside textsae."""
    names = dotted.split(".")
    if names[0] != "textsae":
        return None
    if len(names) == 1:
        return "__init__"
    return names[1] if names[1] in PARTS else "__init__"  # ``textsae.__version__`` and lazy re-exports: the root


def import_edges(source: str, path: Path) -> list[tuple[str, int]]:
    """``(part, line)`` for every import of a textsae part in ``source`` (the text of the module at ``path``).

    Imports at any depth count (inside functions, classes, ``if`` blocks), relative imports are resolved against
    ``path``'s package, and ``importlib.import_module`` with a literal textsae module name counts too.
    """
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module[:-1]
    edges = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            edges += [(_target_part(alias.name), node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            stem = ".".join([*base, *(node.module.split(".") if node.module else [])])
            # ``from textsae import cli`` imports the part cli; ``from textsae.sae import losses`` stays in sae.
            edges += [
                (_target_part(f"{stem}.{alias.name}" if stem == "textsae" else stem), node.lineno)
                for alias in node.names
            ]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Attribute, ast.Name))
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            edges.append((_target_part(node.args[0].value), node.lineno))
    return sorted({(part, line) for part, line in edges if part is not None}, key=lambda edge: (edge[1], edge[0]))


def find_violations(source: str, path: Path) -> list[Violation]:
    """Every import edge of ``source`` (the module at ``path`` under ``textsae/``) that a rule forbids."""
    part = _part(path)
    forbidden, rule = RULES.get(part, (frozenset(), ""))
    shown = str(path.relative_to(PACKAGE.parent))
    violations = []
    for target, line in import_edges(source, path):
        if target == part:
            continue
        if target == "cli" and part not in ENTRY_POINTS:
            violations.append(Violation(shown, line, target, CLI_RULE))
        elif target in forbidden:
            violations.append(Violation(shown, line, target, rule))
    return violations


def test_the_rules_name_existing_parts() -> None:
    assert set(RULES) <= PARTS and set().union(*(forbidden for forbidden, _ in RULES.values())) <= PARTS
    assert {"cli", "sae", "train", "eval", "featurize", "data", "config", "pipeline", "rows", "markdown"} <= PARTS


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_layers(path: Path) -> None:
    violations = find_violations(path.read_text(encoding="utf-8"), path)
    assert not violations, "\n".join(map(str, violations))


BACK_EDGES = """
import importlib
import textsae.cli.main

from textsae.sae.losses import fvu  # allowed: train/ stands on sae/


def evaluate():
    from textsae.eval.classify import fit_probe
    from ..eval import report
    from textsae import cli, rows
    return importlib.import_module("textsae.eval.health")
"""


def test_a_back_edge_is_reported_with_file_line_and_rule() -> None:
    """The checker can fail: a made-up train/ module with back-edges at module and function level."""
    violations = find_violations(BACK_EDGES, PACKAGE / "train" / "made_up.py")
    assert [(v.line, v.target) for v in violations] == [
        (3, "cli"),
        (9, "eval"),
        (10, "eval"),
        (11, "cli"),
        (12, "eval"),
    ]
    assert str(violations[0]) == (f"textsae/train/made_up.py:3 imports textsae.cli, which breaks the rule: {CLI_RULE}")
    assert str(violations[1]).endswith(
        "breaks the rule: train/ never imports eval/ (nor featurize/, data/ or what builds on them)"
    )


@pytest.mark.parametrize(
    ("module", "source", "target"),
    [
        ("sae/made_up.py", "from textsae.data.corpus import Corpus", "data"),
        ("sae/made_up.py", "from textsae.featurize import base", "featurize"),
        ("data/made_up.py", "import textsae.featurize.tfidf", "featurize"),
        ("config/made_up.py", "def f():\n    from textsae.pipeline import Pipeline", "pipeline"),
        ("config/made_up.py", "from textsae import Pipeline  # the root's lazy re-export", "__init__"),
        ("rows.py", "from textsae.sae.losses import fvu", "sae"),
        ("bench/made_up.py", "from textsae.cli.bench import add_parsers", "cli"),
        ("eval/sub/made_up.py", "from ...train import batches", "train"),
    ],
)
def test_each_layer_rule_fails_on_its_back_edge(module: str, source: str, target: str) -> None:
    [violation] = find_violations(source, PACKAGE / module)
    assert violation.target == target and violation.file == f"textsae/{module}"


def test_allowed_edges_are_not_reported() -> None:
    assert not find_violations(
        "from textsae.sae.losses import fvu\nfrom textsae.rows import rows_to_tensor", PACKAGE / "eval" / "x.py"
    )
    assert not find_violations("from textsae.cli.main import main", PACKAGE / "__main__.py")
    assert not find_violations("from . import batches\nimport numpy", PACKAGE / "train" / "x.py")
