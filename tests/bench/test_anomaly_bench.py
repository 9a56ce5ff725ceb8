"""The anomaly benchmark on a synthetic corpus of four topics with disjoint vocabularies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from textsae.bench.anomaly import format_anomaly_table, run_anomaly_bench
from textsae.config.compose import load_recipe
from textsae.errors import UserError

COMMON = ["news", "report", "today", "people", "said"]
TOPICS = [[f"topic{t}word{i}" for i in range(6)] for t in range(4)]
"""Every document mixes common words with words of its own topic; a held-out topic's own words are outside
the vocabulary fitted on the training topics, so only its common words remain: a vector unlike any
training document."""


def _write_topics(folder: Path) -> None:
    rng = np.random.default_rng(0)
    for split, n_docs in (("train", 160), ("test", 120)):
        labels = np.arange(n_docs) % len(TOPICS)
        texts = [" ".join([*rng.choice(COMMON, size=4), *rng.choice(TOPICS[label], size=6)]) for label in labels]
        pd.DataFrame({"text": texts, "label": labels}).to_parquet(folder / f"{split}.parquet")


def test_held_out_topics_are_detected(tmp_path: Path, tiny_recipe: Path) -> None:
    _write_topics(tmp_path)
    config = load_recipe(tiny_recipe, [f"data.path={tmp_path}", "sae.n_latents=8", "sae.k=1", "train.epochs=10"])
    result = run_anomaly_bench(config, lsa_widths=[2])
    assert [h.train_docs for h in result.halves] == [80, 80]
    assert [h.held_out_test_docs for h in result.halves] == [60, 60]
    for half in result.halves:
        assert half.scores.sae["squared"] > 0.9 and half.scores.lsa["2"]["squared"] > 0.9
    assert result.mean.sae["squared"] == np.mean([h.scores.sae["squared"] for h in result.halves])
    assert "| SAE |" in format_anomaly_table(result)
    written = result.to_json()  # what --out writes: the scores beside each half's sizes
    assert list(written) == ["dataset", "source", "halves", "mean"]
    assert list(written["halves"][0]) == [
        "in_distribution",
        "train_docs",
        "test_docs",
        "held_out_test_docs",
        "sae",
        "lsa",
        "seconds",
    ]


def test_a_recipe_that_trains_with_labels_is_refused_before_any_work(tmp_path: Path, tiny_recipe: Path) -> None:
    _write_topics(tmp_path)
    config = load_recipe(tiny_recipe, [f"data.path={tmp_path}", "sae.dense_latents=auto", "train.dense_init=probe"])
    with pytest.raises(UserError, match="without labels.*train.dense_init=learned"):
        run_anomaly_bench(config, lsa_widths=[2])
