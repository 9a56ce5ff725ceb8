"""TfidfFeaturizer against scikit-learn (the reference), and its contract: save/load, clone, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from textsae.config.schema import FeaturizerConfig
from textsae.errors import UserError
from textsae.featurize import (
    Featurizer,
    TfidfFeaturizer,
    build_featurizer,
    load_featurizer,
)
from textsae.featurize import tfidf as tfidf_module

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"

CORPUS = [
    "The movie was good, really GOOD. Good acting!",
    "A bad movie: bad plot, bad acting; the worst.",
    "Not good, not bad... just a movie, the end.",
    "Great film! The director's best film since 2009.",
    "the the the movie movie film",
    "Worst film ever? No: the plot was fine, acting fine.",
    "good good good good bad",
    "An okay movie with a great plot and great acting",
    "x y z",  # no token of two word characters: an empty row
]

TRICKY = [
    "Don't stop: it's rock’n’roll, l'été, O'Neil's",  # ASCII and U+2019 apostrophes
    "3.14 1,000,000 x2 42nd 2x 007 0x1F",  # digits
    "snake_case __init__ _a a_ __ _",  # underscores
    "café cafe\u0301 naïve nai\u0308ve Ångström",  # precomposed vs combining marks (Mn is not \\w)
    "日本語のテキスト 中文 한국어 ไทย",  # CJK, Hangul, Thai (with marks)
    "नमस्ते दुनिया العربية עִברִית",  # Devanagari, Arabic, Hebrew points
    "!!!...---??? a--b e-mail ab.cd ab/cd (ab)[cd]{ef}",  # punctuation runs
    "x² ½ ¾x Ⅻ ⅻ ①② x⁹y",  # No/Nl numerics are \\w in Python
    "ΟΔΟΣ ΣΑΣ İstanbul ǅemal ẞtraße ﬁne",  # final sigma, dotted I, titlecase, ligature
    "tab\there\nnew\u00a0nbsp\u2003em\u200bzw\u200djoin",  # whitespace and zero-width characters
    "emoji👍🏽good ok👌 ‿ab‿ ab\u203fcd",  # emoji, a non-underscore connector
    "back\x08space ctrl\x00nul \ud800lone surrogate",  # control characters and a lone surrogate
    "",  # an empty document
]


def sklearn_vectorizer(**params: object) -> TfidfVectorizer:
    """The sklearn estimator that TfidfFeaturizer(**params) must equal."""
    full = TfidfFeaturizer(**params).get_params()
    return TfidfVectorizer(
        lowercase=full["lowercase"],
        ngram_range=tuple(full["ngram_range"]),
        max_features=full["max_features"],
        min_df=full["min_df"],
        max_df=full["max_df"],
        sublinear_tf=full["sublinear_tf"],
        smooth_idf=full["smooth_idf"],
        norm=None if full["norm"] == "none" else full["norm"],
        use_idf=full["weighting"] == "tfidf",
        binary=full["weighting"] == "binary",
        dtype=np.float32,
    )


def assert_same(ours: TfidfFeaturizer, x_ours: sp.spmatrix, theirs: TfidfVectorizer, x_theirs: sp.spmatrix) -> None:
    assert ours.get_feature_names_out().tolist() == theirs.get_feature_names_out().tolist()
    assert ours.vocabulary_ == {term: int(col) for term, col in theirs.vocabulary_.items()}
    assert isinstance(x_ours, sp.csr_matrix) and x_ours.dtype == np.float32 and x_ours.has_sorted_indices
    assert_close(x_ours, x_theirs)
    if ours.weighting == "tfidf":
        assert ours.idf_.dtype == np.float32
        np.testing.assert_allclose(ours.idf_, theirs.idf_, rtol=0, atol=1e-6)
    else:
        assert ours.idf_ is None


def assert_close(x_ours: sp.spmatrix, x_theirs: sp.spmatrix, atol: float = 1e-6) -> None:
    """Same shape and every entry within ``atol`` (sparse, so large matrices stay cheap)."""
    assert x_ours.shape == x_theirs.shape
    diff = sp.csr_matrix(x_ours, dtype=np.float64) - sp.csr_matrix(x_theirs, dtype=np.float64)
    assert diff.nnz == 0 or np.abs(diff.data).max() <= atol


def fit_both(texts: list[str], **params: object) -> tuple[TfidfFeaturizer, sp.spmatrix, TfidfVectorizer, sp.spmatrix]:
    ours, theirs = TfidfFeaturizer(**params), sklearn_vectorizer(**params)
    return ours, ours.fit_transform(texts), theirs, theirs.fit_transform(texts)


# ----------------------------------------------------------------------------- equivalence


@pytest.mark.parametrize("weighting", ["tfidf", "counts", "binary"])
@pytest.mark.parametrize("ngram_range", [(1, 1), (1, 2), (2, 3)])
@pytest.mark.parametrize("norm", ["l2", "l1", "none"])
@pytest.mark.parametrize("sublinear_tf", [False, True])
def test_matches_sklearn(weighting: str, ngram_range: tuple[int, int], norm: str, sublinear_tf: bool) -> None:
    params = dict(
        weighting=weighting, ngram_range=ngram_range, norm=norm, sublinear_tf=sublinear_tf, min_df=1, max_features=None
    )
    ours, x_ours, theirs, x_theirs = fit_both(CORPUS, **params)
    assert_same(ours, x_ours, theirs, x_theirs)
    new = ["good movie, bad film", "unseen words only", "the the end"]
    assert_close(ours.transform(new), theirs.transform(new))


@pytest.mark.parametrize(
    "min_df, max_df", [(2, 1.0), (0.25, 0.75), (1, 3), (0, 5), (3, 0.9), (0.0, 1), (0.5, 1.0), (2, 2)]
)
@pytest.mark.parametrize("weighting", ["tfidf", "binary"])
def test_document_frequency_pruning_matches_sklearn(min_df: float, max_df: float, weighting: str) -> None:
    params = dict(weighting=weighting, ngram_range=(1, 2), min_df=min_df, max_df=max_df, max_features=None)
    if min_df == 0:  # sklearn only takes min_df >= 1 as an int; 0 and 1 prune nothing
        theirs = sklearn_vectorizer(**{**params, "min_df": 1})
        ours = TfidfFeaturizer(**params)
        assert_same(ours, ours.fit_transform(CORPUS), theirs, theirs.fit_transform(CORPUS))
        return
    assert_same(*fit_both(CORPUS, **params))


@pytest.mark.parametrize(
    "params", [dict(smooth_idf=False), dict(lowercase=False), dict(smooth_idf=False, sublinear_tf=True, norm="l1")]
)
def test_idf_and_case_options_match_sklearn(params: dict) -> None:
    ours, x_ours, theirs, x_theirs = fit_both(CORPUS, ngram_range=(1, 2), min_df=1, max_features=None, **params)
    assert_same(ours, x_ours, theirs, x_theirs)
    new = ["GOOD movie, Good film", "The Director's best"]
    assert_close(ours.transform(new), theirs.transform(new))


def test_counts_without_norm_equal_count_vectorizer() -> None:
    ours = TfidfFeaturizer(
        weighting="counts", ngram_range=(1, 2), min_df=1, max_features=None, sublinear_tf=False, norm="none"
    )
    theirs = CountVectorizer(ngram_range=(1, 2))
    x_ours, x_theirs = ours.fit_transform(CORPUS), theirs.fit_transform(CORPUS)
    assert ours.get_feature_names_out().tolist() == theirs.get_feature_names_out().tolist()
    np.testing.assert_array_equal(x_ours.toarray(), x_theirs.toarray())


def test_fit_transform_equals_fit_then_transform() -> None:
    featurizer = TfidfFeaturizer(ngram_range=(1, 3), min_df=1, max_features=12)
    x_once = featurizer.fit_transform(CORPUS)
    x_twice = featurizer.transform(CORPUS)
    assert (x_once != x_twice).nnz == 0
    assert featurizer.transform([]).shape == (0, featurizer.n_features)


def test_hand_checked_values() -> None:
    featurizer = TfidfFeaturizer(
        weighting="tfidf", ngram_range=(1, 1), min_df=1, max_features=None, sublinear_tf=False, norm="none"
    )
    x = featurizer.fit_transform(["aa bb", "aa aa"])
    # idf(aa) = ln(3/3) + 1 = 1, idf(bb) = ln(3/2) + 1; row 2 holds aa twice.
    assert featurizer.get_feature_names_out().tolist() == ["aa", "bb"]
    np.testing.assert_allclose(x.toarray(), [[1.0, np.log(1.5) + 1.0], [2.0, 0.0]], rtol=1e-6)


# ----------------------------------------------------------------------------- max_features


def test_max_features_keeps_most_frequent_terms_without_ties() -> None:
    # Totals: ee 5, dd 4, cc 3, bb 2, aa 1: no ties, so the kept set is fixed by the counts alone.
    texts = ["aa bb cc dd ee", "bb cc dd ee", "cc dd ee", "dd ee", "ee"]
    for weighting in ("tfidf", "counts", "binary"):
        ours, x_ours, theirs, x_theirs = fit_both(
            texts, weighting=weighting, ngram_range=(1, 1), min_df=1, max_features=3
        )
        assert ours.get_feature_names_out().tolist() == ["cc", "dd", "ee"]
        assert_same(ours, x_ours, theirs, x_theirs)


def test_max_features_ranks_binary_by_document_frequency() -> None:
    # aa: 1 document, 4 occurrences; bb, cc: 2 documents, 2 occurrences each.
    texts = ["aa aa aa aa bb", "bb cc", "cc"]
    assert TfidfFeaturizer(weighting="counts", ngram_range=(1, 1), min_df=1, max_features=1).fit(
        texts
    ).get_feature_names_out().tolist() == ["aa"]
    assert_same(*fit_both(texts, weighting="binary", ngram_range=(1, 1), min_df=1, max_features=2))


def test_max_features_breaks_ties_like_sklearn() -> None:
    # Many terms share each total, so the cut-off falls inside a tie; selection must still equal sklearn's.
    rng = np.random.default_rng(0)
    vocab = [f"w{i:02d}" for i in range(60)]
    texts = [" ".join(rng.choice(vocab, size=8)) for _ in range(40)]
    for max_features in (7, 25, 61):
        assert_same(*fit_both(texts, ngram_range=(1, 2), min_df=1, max_features=max_features))


# ----------------------------------------------------------------------------- tokenization


def test_tricky_tokens_match_python_re() -> None:
    pattern = re.compile(tfidf_module.TOKEN_PATTERN)
    for lowercase in (False, True):
        docs = [d.lower() if lowercase else d for d in TRICKY]
        tokens = tfidf_module._tokenize(TRICKY, lowercase=lowercase)
        got = [[] for _ in docs]
        for doc, word in zip(tokens.doc.tolist(), tokens.word.tolist(), strict=True):
            got[doc].append(tokens.words[word])
        assert got == [pattern.findall(d) for d in docs]


def test_tricky_corpus_matches_sklearn() -> None:
    assert_same(*fit_both(TRICKY, ngram_range=(1, 2), min_df=1, max_features=None))


def test_random_code_points_match_python_re() -> None:
    # Characters drawn across all of Unicode plus ASCII and separators; tokens must equal re's.
    rng = np.random.default_rng(1)
    pool = np.concatenate(
        [rng.integers(0, 0x110000, 3000), rng.integers(0x20, 0x7F, 3000), [0x20, 0x0A, 0x27, 0x5F, 0x2D] * 200]
    )
    pool = pool[(pool < 0xD800) | (pool > 0xDFFF)]
    docs = ["".join(map(chr, rng.choice(pool, size=int(rng.integers(0, 60))))) for _ in range(300)]
    fast = tfidf_module._tokenize_fast(docs)
    reference = tfidf_module._tokenize_reference(docs)
    assert fast is not None
    np.testing.assert_array_equal(fast.doc, reference.doc)
    assert [fast.words[w] for w in fast.word.tolist()] == [reference.words[w] for w in reference.word.tolist()]


def test_hash_collision_falls_back_to_exact_tokenizer(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = tfidf_module._run_hash

    def colliding(cp: np.ndarray, starts: np.ndarray, ends: np.ndarray, family: int) -> np.ndarray:
        out = real(cp, starts, ends, family)
        return np.zeros_like(out) if family == 0 else out  # every token gets the same first hash

    monkeypatch.setattr(tfidf_module, "_run_hash", colliding)
    assert tfidf_module._tokenize_fast(CORPUS) is None
    with caplog.at_level("WARNING", logger="textsae"):
        assert_same(*fit_both(CORPUS, ngram_range=(1, 2), min_df=1, max_features=None))
    assert "hash collision" in caplog.text


def test_bigrams_do_not_cross_documents_or_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tfidf_module, "_CHUNK_CHARS", 16)  # many tiny chunks, and documents longer than one
    texts = ["aa bb", "cc dd", "ee ff gg hh ii jj " * 5, "kk"] * 3
    ours, x_ours, theirs, x_theirs = fit_both(texts, ngram_range=(2, 2), min_df=1, max_features=None)
    assert "bb cc" not in ours.vocabulary_
    assert_same(ours, x_ours, theirs, x_theirs)


# ----------------------------------------------------------------------------- save / load


@pytest.mark.parametrize("weighting", ["tfidf", "counts"])
def test_save_load_round_trip(tmp_path: Path, weighting: str) -> None:
    featurizer = TfidfFeaturizer(weighting=weighting, ngram_range=(1, 2), min_df=1, max_features=20).fit(CORPUS)
    featurizer.save_pretrained(tmp_path / "feat")
    config = json.loads((tmp_path / "feat" / "config.json").read_text())
    assert config["kind"] == "tfidf" and config["params"]["ngram_range"] == [1, 2] and "numpy" in config["versions"]
    assert json.loads((tmp_path / "feat" / "vocab.json").read_text()) == featurizer.get_feature_names_out().tolist()
    assert (tmp_path / "feat" / "idf.safetensors").exists() == (weighting == "tfidf")
    assert not list((tmp_path / "feat").glob(".tmp-*"))
    for loaded in (TfidfFeaturizer.from_pretrained(tmp_path / "feat"), load_featurizer(tmp_path / "feat")):
        assert isinstance(loaded, TfidfFeaturizer) and loaded.get_params() == featurizer.get_params()
        assert loaded.vocabulary_ == featurizer.vocabulary_
        new = ["a good movie", "bad plot, great film", "nothing known"]
        assert (loaded.transform(new) != featurizer.transform(new)).nnz == 0


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda d: (d / "config.json").unlink(), r"config\.json: file is missing"),
        (lambda d: (d / "config.json").write_text("{not json"), r"config\.json: cannot be read as JSON"),
        (lambda d: (d / "vocab.json").unlink(), r"vocab\.json: file is missing"),
        (
            lambda d: (d / "vocab.json").write_text('["good", 3]'),
            r"vocab\.json: expected a non-empty JSON list of strings",
        ),
        (lambda d: (d / "vocab.json").write_text('["good", "bad-movie"]'), r"vocab\.json: term 1 \('bad-movie'\)"),
        (lambda d: (d / "idf.safetensors").write_bytes(b"garbage"), r"idf\.safetensors: cannot be read as safetensors"),
        (lambda d: (d / "idf.safetensors").unlink(), r"idf\.safetensors: file is missing"),
    ],
)
def test_load_names_the_bad_file(tmp_path: Path, damage, match: str) -> None:
    TfidfFeaturizer(ngram_range=(1, 2), min_df=1, max_features=None).fit(CORPUS).save_pretrained(tmp_path)
    damage(tmp_path)
    with pytest.raises(UserError, match=match):
        TfidfFeaturizer.from_pretrained(tmp_path)


def test_load_featurizer_rejects_unknown_kind_and_missing_dir(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"kind": "bagofwords", "params": {}}))
    with pytest.raises(
        UserError,
        match=r"unknown featurizer kind 'bagofwords'. Expected one of \['hidden_states', 'tfidf', 'vectors'\]",
    ):
        load_featurizer(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        load_featurizer(tmp_path / "nowhere")


# ----------------------------------------------------------------------------- sklearn contract


def test_clone_and_pipeline_with_logistic_regression() -> None:
    texts = [
        "good great fine film",
        "great good acting",
        "fine good plot",
        "bad awful film",
        "awful bad plot",
        "bad worst acting",
    ] * 3
    labels = [1, 1, 1, 0, 0, 0] * 3
    featurizer = TfidfFeaturizer(ngram_range=(1, 2), min_df=1)
    copy = clone(featurizer.fit(texts))
    assert copy.get_params() == featurizer.get_params() and not hasattr(copy, "vocabulary_")
    pipe = Pipeline([("features", copy), ("clf", LogisticRegression())]).fit(texts, labels)
    assert pipe.predict(["a good great film", "an awful bad film"]).tolist() == [1, 0]
    assert pipe.score(texts, labels) == 1.0


def test_config_builders_and_protocol() -> None:
    cfg = FeaturizerConfig(weighting="binary", ngram_range=(1, 3), min_df=1, max_features=None, norm="none")
    built = build_featurizer(cfg)
    assert isinstance(built, TfidfFeaturizer) and built.get_params() == TfidfFeaturizer.from_config(cfg).get_params()
    assert built.weighting == "binary" and built.ngram_range == (1, 3) and built.norm == "none"
    assert TfidfFeaturizer().get_params() == TfidfFeaturizer.from_config(FeaturizerConfig()).get_params()
    built.fit(CORPUS)
    assert isinstance(built, Featurizer) and built.n_features == len(built.vocabulary_) == built.n_features_


def test_bytes_and_numpy_strings_are_documents() -> None:
    as_str = TfidfFeaturizer(min_df=1).fit_transform(CORPUS)
    as_bytes = TfidfFeaturizer(min_df=1).fit_transform([t.encode("utf-8") for t in CORPUS])
    as_numpy = TfidfFeaturizer(min_df=1).fit_transform(np.array(CORPUS))
    assert (as_str != as_bytes).nnz == 0 and (as_str != as_numpy).nnz == 0


# ----------------------------------------------------------------------------- errors


def test_string_instead_of_list() -> None:
    with pytest.raises(UserError, match="Iterable over raw text documents expected, string object received"):
        TfidfFeaturizer().fit("just one document")
    fitted = TfidfFeaturizer(min_df=1).fit(CORPUS)
    with pytest.raises(UserError, match="Iterable over raw text documents expected, string object received"):
        fitted.transform("just one document")


def test_no_documents() -> None:
    with pytest.raises(UserError, match="no documents"):
        TfidfFeaturizer().fit([])


@pytest.mark.parametrize("min_df", [9, 1.0])  # 1.0 is a fraction: in every document, and one has no tokens
def test_everything_pruned(min_df: float) -> None:
    with pytest.raises(ValueError, match="After pruning, no terms remain"):
        sklearn_vectorizer(min_df=min_df).fit(CORPUS)
    with pytest.raises(UserError, match=r"After pruning, no terms remain\. Try a lower min_df or a higher max_df\."):
        TfidfFeaturizer(min_df=min_df).fit(CORPUS)


def test_no_tokens_at_all() -> None:
    with pytest.raises(UserError, match="Empty vocabulary"):
        TfidfFeaturizer(min_df=1).fit(["a b c", "!!", "x"])


def test_max_df_below_min_df() -> None:
    with pytest.raises(UserError, match=r"max_df=0\.1 corresponds to 0\.9 documents, fewer than min_df=2"):
        TfidfFeaturizer(min_df=2, max_df=0.1).fit(CORPUS)


def test_transform_before_fit() -> None:
    with pytest.raises(NotFittedError):
        TfidfFeaturizer().transform(CORPUS)
    with pytest.raises(NotFittedError):
        TfidfFeaturizer().save_pretrained("unused")


@pytest.mark.parametrize(
    "params, match",
    [
        (
            dict(weighting="tf"),
            r"The 'weighting' parameter of TfidfFeaturizer must be one of \['tfidf', 'counts', 'binary'\]\. Got 'tf' instead\.",
        ),
        (dict(norm="max"), r"The 'norm' parameter of TfidfFeaturizer must be one of"),
        (dict(ngram_range=(2, 1)), r"The 'ngram_range' parameter of TfidfFeaturizer must be a tuple \(min_n, max_n\)"),
        (dict(min_df=2.0), r"The 'min_df' parameter of TfidfFeaturizer must be an int >= 0 .* Got 2\.0 instead\."),
        (dict(max_df=0), r"The 'max_df' parameter of TfidfFeaturizer must be an int >= 1"),
        (
            dict(max_features=0),
            r"The 'max_features' parameter of TfidfFeaturizer must be an int >= 1 or None\. Got 0 instead\.",
        ),
        (dict(lowercase="yes"), r"The 'lowercase' parameter of TfidfFeaturizer must be a bool"),
    ],
)
def test_bad_parameters(params: dict, match: str) -> None:
    with pytest.raises(UserError, match=match):
        TfidfFeaturizer(**params).fit(CORPUS)


def test_missing_value_document() -> None:
    with pytest.raises(UserError, match=r"document 1 is NaN \(a missing value\)"):
        TfidfFeaturizer().fit(["good movie", float("nan")])


# ----------------------------------------------------------------------------- bench and real data


def test_bench_reports_agreement() -> None:
    from textsae.bench.tfidf import run_tfidf_bench

    result = run_tfidf_bench(CORPUS * 3, min_df=1, max_features=10)
    assert list(result.to_json()) == [  # the keys `bench tfidf --json` prints before the data, command and machine
        "n_docs",
        "n_features",
        "textsae_s",
        "sklearn_s",
        "speedup",
        "max_abs_diff",
        "vocab_overlap",
        "threads",
    ]
    assert result.n_docs == 27 and result.n_features == 10 and result.vocab_overlap == 1.0
    assert result.max_abs_diff < 1e-6
    assert result.speedup == pytest.approx(result.sklearn_s / result.textsae_s)


def test_bench_times_each_fit_and_keeps_the_fastest_repeat(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake clock that each fit_transform moves on by the next duration: the bench must report the fastest run of
    each side and their ratio (the real clock could only be checked for being positive)."""
    from types import SimpleNamespace

    from textsae.bench import tfidf as bench

    now = [0.0]
    durations = {"textsae": iter([3.0, 1.0, 2.0]), "sklearn": iter([8.0, 4.0, 6.0])}

    def timed(cls: type, side: str) -> None:
        real = cls.fit_transform

        def fit_transform(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            matrix = real(self, *args, **kwargs)
            now[0] += next(durations[side])
            return matrix

        monkeypatch.setattr(cls, "fit_transform", fit_transform)

    timed(TfidfFeaturizer, "textsae")
    timed(TfidfVectorizer, "sklearn")
    monkeypatch.setattr(bench, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    result = bench.run_tfidf_bench(CORPUS * 3, min_df=1, max_features=10, repeats=3)
    assert (result.textsae_s, result.sklearn_s, result.speedup) == (1.0, 4.0, 4.0)
    assert result.max_abs_diff < 1e-6 and result.vocab_overlap == 1.0


@pytest.mark.shared_data
def test_imdb_sample_matches_sklearn() -> None:
    path = DATA_DIR / "imdb" / "train.parquet"
    if not path.is_file():
        pytest.skip(f"shared data not found: {path}")
    import pandas as pd

    texts = pd.read_parquet(path, columns=["text"])["text"].tolist()
    train, held_out = texts[::12][:2000], texts[5::50][:300]  # both classes (rows are sorted by label)
    ours, x_ours, theirs, x_theirs = fit_both(
        train, ngram_range=(1, 2), min_df=3, max_features=20000, sublinear_tf=True
    )
    assert_same(ours, x_ours, theirs, x_theirs)
    assert_close(ours.transform(held_out), theirs.transform(held_out))
