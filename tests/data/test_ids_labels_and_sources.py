"""Ids from a named column, when a missing label column means "unlabelled", and one column named by two settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from textsae.config.schema import DataConfig
from textsae.data.corpus import load_corpus, load_split
from textsae.errors import UserError

TEXTS = ["good film", "bad film", "great plot", "awful plot"] * 3


def test_ids_keep_their_kind_and_odd_ids_are_refused(tmp_path: Path) -> None:
    jsonl = tmp_path / "ids.jsonl"
    rows = [{"id": 100 + i, "text": text} for i, text in enumerate(TEXTS)]
    rows[1] = {"id": None, "text": " "}  # a dropped row may lack an id; pandas then reads the column as floats
    jsonl.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    ids = load_split(jsonl, id_column="id").doc_ids
    assert ids.dtype == np.int64 and ids[:2].tolist() == [100, 102]
    big = tmp_path / "big.parquet"
    pd.DataFrame({"id": np.arange(12, dtype=np.uint64) + np.uint64(2**63), "text": TEXTS}).to_parquet(big)
    assert load_split(big, id_column="id").doc_ids[0] == str(2**63)  # beyond int64: kept exactly, as text
    nested = tmp_path / "nested.jsonl"
    nested.write_text("\n".join(json.dumps({"id": [i, i], "text": t}) for i, t in enumerate(TEXTS)), encoding="utf-8")
    with pytest.raises(UserError, match="holds lists or objects"):
        load_split(nested, id_column="id")


def test_one_column_named_by_two_settings_reads_once(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pd.DataFrame({"text": [f"{t} {i}" for i, t in enumerate(TEXTS)], "label": [0, 1] * 6}).to_parquet(path)
    split = load_split(path, id_column="text")
    assert split.doc_ids.tolist() == split.texts


def test_a_missing_label_column_is_unlabelled_unless_named_or_misspelt(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    pd.DataFrame({"text": TEXTS * 5, "channel": ["a"] * 60}).to_csv(path, index=False)
    assert load_corpus(DataConfig(path=str(path))).train.labels is None  # 'channel' is not a typo of 'label'
    with pytest.raises(UserError, match="no label column 'sentiment'"):
        load_corpus(DataConfig(path=str(path), label_column="sentiment"))  # a column the user named must exist


def test_sweep_refuses_an_unlabelled_corpus_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import REPO
    from textsae.cli.main import main

    path = tmp_path / "d.csv"
    pd.DataFrame({"text": TEXTS * 5}).to_csv(path, index=False)
    argv = [
        "sweep",
        str(REPO / "recipes" / "tfidf_auto.yaml"),
        f"data.path={path}",
        "sae.k=[4,8]",
        "--out",
        str(tmp_path / "s"),
    ]
    assert main(argv) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("textsae: error:")]
    assert len(errors) == 1 and "has no labels" in errors[0], errors
