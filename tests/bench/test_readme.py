"""The README block a benchmark rewrites: only the text between its markers changes, and the plot is copied."""

from __future__ import annotations

from pathlib import Path

import pytest

from textsae.bench.readme import BUDGETS_MARKERS, check_readme_markers, update_budgets_readme
from textsae.errors import UserError


def _combined(out_dir: Path) -> dict:
    (out_dir / "accuracy_vs_bytes.png").write_bytes(b"\x89PNG\r\n\x1a\nplot")
    best = {"sae": {"accuracy": 0.8, "name": "tfidf/sae-k2"}, "lsa": {"accuracy": 0.7, "name": "tfidf/lsa-2"}}
    return {
        "dataset": {"name": "toy"},
        "sources": [{"label": "tfidf"}, {"label": "minilm"}],
        "protocol": "train on train, test on test",
        "metric": "logreg",
        "command": "textsae bench budgets a b --out c",
        "budgets": [{"budget": 8, "best": best, "sae_wins": True}],
        "out_dir": str(out_dir),
        "plots": ["accuracy_vs_bytes.png"],
    }


def test_only_the_block_between_the_markers_changes(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    before, after = "# x\nkept " + BUDGETS_MARKERS[0], BUDGETS_MARKERS[1] + "\nend\n"
    readme.write_text(before + "\nold table\n" + after)
    update_budgets_readme(readme, _combined(tmp_path))
    text = readme.read_text()
    assert text.startswith(before) and text.endswith(after) and "old table" not in text
    block = text[len(before) : -len(after)]
    assert block.startswith("\n**toy**, tfidf and minilm sources: train on train, test on test.")
    assert "regenerate with `textsae bench budgets a b --out c --readme README.md`:" in block
    assert "| 8 | 0.8000 (tfidf/sae-k2) | 0.7000 (tfidf/lsa-2) | yes |" in block
    assert block.endswith("![accuracy vs bytes per document](docs/budgets_toy.png)\n")
    assert (tmp_path / "docs" / "budgets_toy.png").read_bytes().endswith(b"plot")


def test_a_readme_without_markers_is_refused(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(BUDGETS_MARKERS[1] + BUDGETS_MARKERS[0])  # wrong order
    with pytest.raises(UserError, match="needs the markers"):
        check_readme_markers(readme, BUDGETS_MARKERS)
    with pytest.raises(UserError, match="no such file"):
        check_readme_markers(tmp_path / "missing.md", BUDGETS_MARKERS)
