"""SparseCodeTransformer: the scikit-learn contract (fit/transform, clone, Pipeline) on a tiny corpus."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from textsae import SparseCodeTransformer
from textsae.errors import UserError
from textsae.featurize.tfidf import TfidfFeaturizer


def make_texts(n_docs: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Short texts whose label is carried by one of two word sets."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n_docs)
    polar = (["great", "superb", "brilliant", "charming"], ["awful", "dull", "tedious", "bland"])
    neutral = ["film", "plot", "actor", "scene", "story", "music", "cast", "ending"]
    texts = [" ".join([*rng.choice(neutral, size=6), *rng.choice(polar[label], size=2)]) for label in labels]
    return texts, labels


_SETTINGS = {
    "featurizer": {"ngram_range": [1, 1], "min_df": 1},
    "sae": {"n_latents": 32, "k": 4},
    "train": {"steps": 30, "batch_size": 32, "warmup_steps": 2},
    "device": "cpu",
}


def test_fit_transform_clone_and_pipeline() -> None:
    texts, labels = make_texts(160, seed=3)
    model = SparseCodeTransformer(**_SETTINGS)
    codes = model.fit(texts).transform(texts[:7])
    assert sp.isspmatrix_csr(codes) and codes.shape == (7, 32) and codes.dtype == np.float32
    assert codes.getnnz(axis=1).max() <= 4
    assert model.get_feature_names_out()[:2].tolist() == ["latent0", "latent1"]
    assert model.transform([]).shape == (0, 32)

    copy = clone(model)
    assert copy.get_params() == model.get_params() and not hasattr(copy, "sae_")

    pipeline = make_pipeline(SparseCodeTransformer(**_SETTINGS), LogisticRegression(max_iter=500)).fit(texts, labels)
    assert pipeline.score(texts, labels) > 0.7  # the sentiment words are easy to find


def test_a_lone_string_is_refused() -> None:
    with pytest.raises(UserError, match="string object received"):
        SparseCodeTransformer(**_SETTINGS).fit("one document")
    with pytest.raises(ValueError, match="string object received"):  # scikit-learn's convention for bad input
        SparseCodeTransformer(**_SETTINGS).fit("one document")


def test_auto_sizes_and_probe_latents_fit_from_the_texts_and_labels() -> None:
    texts, labels = make_texts(200, seed=4)
    settings = {
        **_SETTINGS,
        "sae": {"n_latents": "auto", "k": "auto", "dense_latents": "auto", "decoder_init": "neighbours"},
        "train": {**_SETTINGS["train"], "dense_init": "probe"},
    }
    model = SparseCodeTransformer(**settings).fit(texts, labels)
    assert (
        model.sae_.cfg.dense_latents == 1 and model.sae_.cfg.adaptive_k == "input_nnz"
    )  # two classes: one decision value
    codes = model.transform(texts).toarray()
    assert ((codes[:, 0] > 0) == (labels == 1)).mean() > 0.9  # the always-on latent is the classifier's decision value
    with pytest.raises(UserError, match="needs labels"):
        SparseCodeTransformer(**settings).fit(texts)


def test_documents_without_text_get_empty_codes_in_place() -> None:
    import logging

    texts, _ = make_texts(160, seed=4)
    model = SparseCodeTransformer(**_SETTINGS).fit(texts)
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("textsae").addHandler(handler)  # the CLI may have stopped propagation to the root logger
    try:
        codes = model.transform([texts[0], "", "   ", texts[1]])
    finally:
        logging.getLogger("textsae").removeHandler(handler)
    said = [r.getMessage() for r in records if "have no words" in r.getMessage()]
    assert said == ["2 of 4 texts have no words (first: position 1); their codes are empty rows."]
    assert codes.shape == (4, 32)
    assert codes.getnnz(axis=1).tolist()[1:3] == [0, 0]
    assert codes[0].nnz > 0 and codes[3].nnz > 0
    assert (codes[[0, 3]] != model.transform([texts[0], texts[1]])).nnz == 0  # the others are unchanged


@parametrize_with_checks([SparseCodeTransformer(**_SETTINGS), TfidfFeaturizer(min_df=1)])
def test_scikit_learn_checks(estimator: object, check: object) -> None:
    """sklearn's own checks. Both declare string input (like sklearn's text vectorizers), for which sklearn runs only
    the API checks that need no numeric array (today: cloning); the tests above cover the text-specific contract."""
    check(estimator)  # type: ignore[operator]


def test_set_output_pandas_keeps_the_codes_sparse_and_the_index() -> None:
    import pandas as pd
    import sklearn

    texts, labels = make_texts(120, seed=3)
    series = pd.Series(texts, index=range(1000, 1120))
    model = SparseCodeTransformer(**_SETTINGS).fit(series)
    frame = model.set_output(transform="pandas").transform(series[:5])
    assert frame.index.tolist() == list(range(1000, 1005)) and list(frame.columns[:2]) == ["latent0", "latent1"]
    assert isinstance(frame.dtypes.iloc[0], pd.SparseDtype) and frame.shape == (5, 32)
    np.testing.assert_array_equal(
        frame.sparse.to_coo().toarray(), model.set_output(transform="default").transform(series[:5]).toarray()
    )
    assert clone(model.set_output(transform="pandas"))._sklearn_output_config == {"transform": "pandas"}
    with sklearn.config_context(transform_output="pandas"):  # the global setting too, through a Pipeline
        pipeline = make_pipeline(SparseCodeTransformer(**_SETTINGS), LogisticRegression()).fit(series, labels)
        assert isinstance(pipeline[0].transform(series[:3]), pd.DataFrame) and pipeline.score(series, labels) > 0.5
    with pytest.raises(UserError, match="polars has no sparse columns"):
        model.set_output(transform="polars")
