"""`textsae encode` streams a Parquet file: the scan finds the documents, ids, labels and dropped rows `load_split`
finds, the streamed texts are its texts in any order of reading, errors name rows of the whole file, and the codes are
those of the same documents read whole (a JSON Lines copy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_texts
from textsae.cli.encode import _texts_fingerprint
from textsae.cli.main import main
from textsae.data.corpus import load_split
from textsae.data.documents import StreamedTexts, scan_documents
from textsae.errors import UserError
from textsae.store.codes import load_codes


def _frame(n_docs: int = 40) -> pd.DataFrame:
    texts, labels = make_texts(n_docs, seed=5)
    frame = pd.DataFrame(
        {"text": texts, "label": np.where(labels == 1, "pos", "neg"), "doc_id": 1000 + np.arange(n_docs)}
    )
    frame.loc[[3, 8, 9, 10, 11, 30], "text"] = ["", None, "  ", "", "\t", None]  # rows 8-11 fill a batch of 4
    return frame


def test_the_scan_and_the_streamed_texts_match_load_split(tmp_path: Path) -> None:
    path = tmp_path / "docs.parquet"
    _frame().to_parquet(path, row_group_size=12)
    split = load_split(path, id_column="doc_id")
    index = scan_documents(path, id_column="doc_id", batch_rows=4)
    assert index is not None and len(index) == len(split.texts) == 34
    np.testing.assert_array_equal(index.doc_ids, split.doc_ids)
    np.testing.assert_array_equal(index.labels, split.labels)  # names in sorted order: neg 0, pos 1
    np.testing.assert_array_equal(index.dropped, [3, 8, 9, 10, 11, 30])
    assert index.texts_sha256 == _texts_fingerprint(split.texts)
    texts = StreamedTexts(index, batch_rows=4)
    assert texts[5:30] == split.texts[5:30] and texts[:3] == split.texts[:3]  # backwards: the file is read again
    assert texts[33] == split.texts[33] and list(texts) == split.texts


def test_errors_name_rows_of_the_whole_file(tmp_path: Path) -> None:
    frame = _frame().iloc[12:]  # one blank text, row 19 of this file (30 of the other)
    frame.reset_index(drop=True).to_parquet(tmp_path / "blank.parquet")
    with pytest.raises(UserError, match=r"empty or whitespace-only in 1 row: row 19\. Fix"):
        scan_documents(tmp_path / "blank.parquet", empty_text="error", batch_rows=4)
    frame = _frame()
    frame.loc[33, "doc_id"] = 1001
    frame.to_parquet(tmp_path / "twice.parquet")
    with pytest.raises(UserError, match=r"id 1001 in column 'doc_id' is used by row 2 and row 34"):
        scan_documents(tmp_path / "twice.parquet", id_column="doc_id", batch_rows=4)
    assert scan_documents(tmp_path / "twice.jsonl") is None  # does not stream: read whole


def test_streamed_codes_equal_the_codes_of_the_file_read_whole(tiny_run_dir: Path, tmp_path: Path) -> None:
    frame = _frame()
    frame.to_parquet(tmp_path / "docs.parquet", row_group_size=7)
    frame.to_json(tmp_path / "docs.jsonl", orient="records", lines=True)
    for name in ("docs.parquet", "docs.jsonl"):
        argv = ["encode", str(tiny_run_dir), str(tmp_path / name), "--out", str(tmp_path / name.replace(".", "_"))]
        assert main([*argv, "--id-column", "doc_id", "--batch-size", "5", "--shard-docs", "8", "-q"]) == 0
    streamed = load_codes(tmp_path / "docs_parquet", with_ids=True)
    whole = load_codes(tmp_path / "docs_jsonl", with_ids=True)
    assert streamed.codes.shape == (34, 64) and (streamed.codes != whole.codes).nnz == 0
    np.testing.assert_array_equal(streamed.doc_ids, whole.doc_ids)
    np.testing.assert_array_equal(streamed.labels, whole.labels)
