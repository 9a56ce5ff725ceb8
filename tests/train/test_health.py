"""The automatic budget and the health gate end to end: a converged run is quiet, a forced 5-step run warns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from textsae.config.compose import load_recipe
from textsae.pipeline import Pipeline
from textsae.results import Report

AUTO = [
    "sae.n_latents=auto",
    "sae.k=auto",
    "sae.decoder_init=neighbours",
    "train.epochs=null",
    "train.min_steps=60",
    "train.eval_every=20",
    "train.patience=2",
    "train.val_fraction=0.1",
    "train.max_steps=2000",
    "train.warmup_steps=10",
]


def _run(tiny_recipe: Path, run_dir: Path, overrides: list[str]) -> Report:
    return Pipeline(load_recipe(tiny_recipe, [f"run.dir={run_dir}", *overrides])).run()


def test_a_converged_run_stops_by_itself_and_raises_no_warning(
    tiny_recipe: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    report = _run(tiny_recipe, tmp_path / "run", AUTO)
    sae = report.sae
    assert sae.training_budget is not None and "levelled off at step" in sae.training_budget, sae.training_budget
    assert sae.training_steps is not None and sae.training_steps < 2000
    assert sae.warnings == (), sae.warnings
    assert sae.fvu < 1 and sae.fvu_train < 1 and sae.dead_fraction <= 0.5 and sae.top1_top2_median <= 3
    assert sae.k is not None and sae.l0_train <= sae.k and sae.adaptive_k == "input_nnz"
    assert sae.labels_shaped_codes is False
    assert "Warning" not in (tmp_path / "run" / "report.md").read_text()
    evaluations = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if "val_fvu" in line
    ]
    assert len(evaluations) >= 3


def test_a_forced_five_step_run_warns(tiny_recipe: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # untrained random directions add more variance than they explain: FVU 1.04-1.05 for seeds 0-2
    report = _run(tiny_recipe, tmp_path / "run", ["train.steps=5", "sae.decoder_init=random", "sae.tied_init=false"])
    warnings = report.sae.warnings
    assert any("worse than its mean" in line for line in warnings), warnings
    assert report.sae.training_budget == "5 steps (train.steps=5)"
    markdown = (tmp_path / "run" / "report.md").read_text()
    assert "> **Warning:** The SAE reconstructs the test split worse than its mean" in markdown
    assert any("worse than its mean" in record.getMessage() for record in caplog.records)


def test_codes_larger_than_the_source_are_noted(tiny_recipe: Path, tmp_path: Path) -> None:
    report = _run(
        tiny_recipe, tmp_path / "run", ["sae.k=40", "sae.n_latents=64", "sae.adaptive_k=none", "train.steps=5"]
    )
    assert report.eval["codes"].bytes_per_doc > report.eval["source"].bytes_per_doc
    assert any("more than the source's" in note for note in report.notes)
    assert "> **Note:** The codes take" in (tmp_path / "run" / "report.md").read_text()


def test_probe_dense_latents_of_the_wrong_count_are_refused(tiny_recipe: Path, tmp_path: Path) -> None:
    from textsae.errors import UserError

    with pytest.raises(UserError, match=r"needs sae.dense_latents=auto \(1 decision values.*got sae.dense_latents=3"):
        _run(tiny_recipe, tmp_path / "run", ["sae.dense_latents=3", "train.dense_init=probe", "train.steps=5"])
