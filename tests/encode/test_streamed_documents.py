"""`textsae encode` streams Parquet, JSON Lines and CSV files through `textsae.data.stream`: the index pass finds the
documents, ids, labels, dropped rows and texts fingerprint `load_split` finds reading the file whole, the streamed
texts are its texts in any order of reading, errors name rows (or lines) of the whole file, and the codes are those of
the same documents read whole (a JSON copy, which does not stream)."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_texts
from textsae.cli.encode import _texts_fingerprint
from textsae.cli.main import main
from textsae.data.corpus import load_split
from textsae.data.stream import index_file
from textsae.errors import UserError
from textsae.store.codes import load_codes


def _frame(n_docs: int = 40) -> pd.DataFrame:
    texts, labels = make_texts(n_docs, seed=5)
    frame = pd.DataFrame(
        {"text": texts, "label": np.where(labels == 1, "pos", "neg"), "doc_id": 1000 + np.arange(n_docs)}
    )
    frame.loc[[3, 8, 9, 10, 11, 30], "text"] = ["", None, "  ", "", "\t", None]  # rows 8-11 fill a batch of 4
    return frame


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path, row_group_size=12)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv"])
def test_the_index_and_the_streamed_texts_match_load_split(tmp_path: Path, suffix: str) -> None:
    path = _write(_frame(), tmp_path / f"docs{suffix}")
    whole = load_split(path, id_column="doc_id")
    indexed = index_file(path, id_column="doc_id", batch_docs=4)
    streamed = load_split(path, id_column="doc_id", streaming=True)
    assert len(indexed.texts) == len(whole.texts) == len(streamed) == 34
    for ids in (indexed.doc_ids, streamed.doc_ids):
        assert ids is not None and ids.dtype.kind == whole.doc_ids.dtype.kind == ("U" if suffix == ".csv" else "i")
        np.testing.assert_array_equal(ids, whole.doc_ids)
    np.testing.assert_array_equal(streamed.labels, whole.labels)  # names in sorted order: neg 0, pos 1
    np.testing.assert_array_equal(indexed.dropped, [3, 8, 9, 10, 11, 30])
    np.testing.assert_array_equal(streamed.dropped, whole.dropped)
    assert indexed.texts_sha256 == streamed.texts_sha256 == _texts_fingerprint(whole.texts)
    texts = indexed.texts
    assert texts[5:30] == whole.texts[5:30] and texts[:3] == whole.texts[:3]  # backwards: the file is read again
    assert [texts[i] for i in range(34)] == whole.texts  # in order, one document at a time: one pass continued
    assert texts[33] == whole.texts[33] and texts[-34] == whole.texts[0] and list(texts) == whole.texts


def test_slices_in_order_continue_one_pass_that_is_never_pickled(tmp_path: Path) -> None:
    path = _write(_frame(), tmp_path / "docs.jsonl")
    whole = load_split(path).texts
    texts = index_file(path, batch_docs=4).texts
    texts[0:3]  # a pass over the file is open ...
    copy = pickle.loads(pickle.dumps(texts))  # ... and stays behind (a rank gets the index, not an open file)
    assert copy[3:6] == texts[3:6] == whole[3:6]
    passes: list[int] = []
    read = texts.reader.read

    def counted(rows: np.ndarray, offsets: np.ndarray | None) -> Iterator[str]:
        passes.append(int(rows[0]))
        return read(rows, offsets)

    texts.reader.read = counted  # type: ignore[method-assign]
    chunks = [texts[a : a + 5] for a in range(0, 34, 5)]
    assert [t for chunk in chunks for t in chunk] == whole and passes == [0]
    assert texts[10:12] == whole[10:12] and passes == [0, int(texts.rows[10])]  # elsewhere: a new pass


@pytest.mark.parametrize(("suffix", "where"), [(".parquet", "row"), (".jsonl", "line"), (".csv", "line")])
def test_errors_name_rows_of_the_whole_file(tmp_path: Path, suffix: str, where: str) -> None:
    line = 1 if suffix == ".csv" else 0  # the CSV header is line 1: data row N is on line N + 1
    blank = _write(_frame().iloc[12:].reset_index(drop=True), tmp_path / f"blank{suffix}")  # row 19 is blank
    with pytest.raises(UserError, match=rf"empty or whitespace-only in 1 row: {where} {19 + line}\. Fix"):
        index_file(blank, empty_text="error", batch_docs=4)
    frame = _frame()
    frame.loc[33, "doc_id"] = 1001  # the id of row 2, nine batches of 4 earlier
    twice = _write(frame, tmp_path / f"twice{suffix}")
    message = (
        rf"id '?1001'? in column 'doc_id' is used by {where} {2 + line} and {where} {34 + line}; ids must be unique"
    )
    with pytest.raises(UserError, match=message):
        index_file(twice, id_column="doc_id", batch_docs=4)
    with pytest.raises(UserError, match=message):  # one batch: the in-batch check names the same rows
        index_file(twice, id_column="doc_id")
    with pytest.raises(UserError, match=r"has no id column 'doc_ids' \(--id-column\)"):
        index_file(twice, id_column="doc_ids", batch_docs=4)


def test_ids_are_text_when_any_batch_holds_text(tmp_path: Path) -> None:
    frame = _frame()
    frame["doc_id"] = frame["doc_id"].astype(object)
    frame.loc[25, "doc_id"] = "x25"  # one text id, in the seventh batch of 4
    path = _write(frame, tmp_path / "mixed.jsonl")
    indexed = index_file(path, id_column="doc_id", batch_docs=4)
    whole = load_split(path, id_column="doc_id")
    assert indexed.doc_ids is not None and indexed.doc_ids.dtype.kind == "U"
    np.testing.assert_array_equal(indexed.doc_ids, whole.doc_ids)
    frame.loc[26, "doc_id"] = None  # a kept row without an id
    with pytest.raises(UserError, match=r"id column 'doc_id' is missing in 1 row: line 27"):
        index_file(_write(frame, tmp_path / "gap.jsonl"), id_column="doc_id", batch_docs=4)


def test_streamed_codes_equal_the_codes_of_the_file_read_whole(tiny_run_dir: Path, tmp_path: Path) -> None:
    frame = _frame()
    frame.to_parquet(tmp_path / "docs.parquet", row_group_size=7)
    frame.to_json(tmp_path / "docs.jsonl", orient="records", lines=True)
    frame.to_json(tmp_path / "docs.json", orient="records")  # .json is read whole
    for name in ("docs.parquet", "docs.jsonl", "docs.json"):
        argv = ["encode", str(tiny_run_dir), str(tmp_path / name), "--out", str(tmp_path / name.replace(".", "_"))]
        assert main([*argv, "--id-column", "doc_id", "--batch-size", "5", "--shard-docs", "8", "-q"]) == 0
    whole = load_codes(tmp_path / "docs_json", with_ids=True)
    assert whole.codes.shape == (34, 64)
    for name in ("docs_parquet", "docs_jsonl"):
        streamed = load_codes(tmp_path / name, with_ids=True)
        assert (streamed.codes != whole.codes).nnz == 0
        np.testing.assert_array_equal(streamed.doc_ids, whole.doc_ids)
        np.testing.assert_array_equal(streamed.labels, whole.labels)
