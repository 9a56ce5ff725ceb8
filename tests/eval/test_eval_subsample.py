"""eval.max_docs: evaluation on a stratified, seeded subsample, said in the report; codes for every document."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from textsae.artifacts import load_sae_artifact
from textsae.config.compose import load_recipe
from textsae.errors import ConfigError
from textsae.pipeline import Pipeline
from textsae.results import DatasetInfo
from textsae.sae.reconstruction import reconstruction_metrics
from textsae.store.codes import load_codes


def test_max_docs_subsamples_evaluation_and_says_so(tiny_recipe: Path, tiny_run_dir: Path, tmp_path: Path) -> None:
    run_dir = Path(shutil.copytree(tiny_run_dir, tmp_path / "run"))
    pipeline = Pipeline(load_recipe(tiny_recipe, [f"run.dir={run_dir}", "eval.max_docs=90"]))
    rows = pipeline._evaluated_rows("train")
    assert rows is not None and len(rows) == 90 and np.all(np.diff(rows) > 0)
    assert not np.array_equal(rows, np.arange(90))  # drawn, not the first documents
    np.testing.assert_array_equal(rows, pipeline._evaluated_rows("train"))  # seeded
    labels = pipeline.corpus.train.labels
    assert labels is not None
    assert abs(labels[rows].mean() - labels.mean()) <= 1 / 90  # stratified by label

    report = pipeline.evaluate()
    assert (report.dataset.train_docs_evaluated, report.dataset.eval_docs_evaluated) == (90, 90)
    assert any("used 90 of 400 training and 90 of 200" in note for note in report.notes)
    assert load_codes(run_dir / "codes" / "train").shape[0] == 400  # codes for every document
    features = pipeline.load_features()
    sae = load_sae_artifact(run_dir / "sae")
    eval_rows = pipeline._evaluated_rows("eval")
    expected = reconstruction_metrics(sae, features.eval.subset(eval_rows), k=pipeline.config.encode.k)["fvu"]
    assert report.sae.fvu == pytest.approx(expected, rel=1e-6)
    saved = json.loads((run_dir / "report.json").read_text())["dataset"]
    assert saved["train_docs_evaluated"] == 90 and DatasetInfo.from_json(saved) == report.dataset


def test_the_default_evaluates_every_document_of_our_corpora(tiny_run_dir: Path) -> None:
    saved = json.loads((tiny_run_dir / "report.json").read_text())["dataset"]
    assert "train_docs_evaluated" not in saved and "eval_docs_evaluated" not in saved
    info = DatasetInfo.from_json(saved)  # reports written before the field load too
    assert info.train_docs_evaluated is None


def test_max_docs_below_the_folds_is_refused(tiny_recipe: Path) -> None:
    with pytest.raises(ConfigError, match="eval.max_docs"):
        load_recipe(tiny_recipe, ["eval.max_docs=3"])
