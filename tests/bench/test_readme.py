"""The README block a benchmark rewrites: only the text between its markers changes, and the plot is copied."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from textsae.bench.budgets import BudgetsReport, SourceInfo
from textsae.bench.quality_report import BestCell, BudgetRow, QualityDataset
from textsae.bench.readme import BUDGETS_MARKERS, check_readme_markers, update_budgets_readme
from textsae.errors import UserError


def _combined(out_dir: Path) -> BudgetsReport:
    (out_dir / "accuracy_vs_bytes.png").write_bytes(b"\x89PNG\r\n\x1a\nplot")
    best = {"sae": BestCell("tfidf/sae-k2", 0.8, 8.0), "lsa": BestCell("tfidf/lsa-2", 0.7, 4.0)}
    source = SourceInfo(
        "tfidf", "a/report.json", "tfidf_recipe", "tfidf", "sparse", "topk, 64 latents, trained at k = 2"
    )
    return BudgetsReport(
        dataset=QualityDataset("toy", "local folder", 2),
        protocol="train on train, test on test",
        metric="logreg",
        budget_bytes=(8,),
        sources=(source, replace(source, label="minilm")),
        rows=(),
        budgets=(BudgetRow(8, best, True),),
        command="textsae bench budgets a b --out c",
        out_dir=str(out_dir),
        plots=("accuracy_vs_bytes.png",),
    )


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
