"""SparseCodeTransformer: the scikit-learn contract (fit/transform, clone, Pipeline) on a tiny corpus."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from textsae import SparseCodeTransformer
from textsae.errors import UserError

def make_texts(n_docs: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Short texts whose label is carried by one of two word sets."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n_docs)
    polar = ("great superb brilliant charming".split(), "awful dull tedious bland".split())
    neutral = "film plot actor scene story music cast ending".split()
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
