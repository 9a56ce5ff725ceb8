"""TF-IDF featurizer speed and agreement: :class:`~textsae.featurize.tfidf.TfidfFeaturizer` vs scikit-learn."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np
import scipy.sparse as sp

from textsae._io import logger
from textsae.bench.machine import BenchProvenance
from textsae.errors import UserError
from textsae.results import JSONObject

__all__ = ["TfidfBenchResult", "run_tfidf_bench"]


class _SharedSettings(TypedDict):
    """The settings both implementations take from :func:`run_tfidf_bench`'s arguments."""

    ngram_range: tuple[int, int]
    min_df: float
    max_features: int | None
    sublinear_tf: bool


@dataclass(frozen=True)
class TfidfBenchResult:
    """``bench tfidf``'s result: both implementations' best times and how far their outputs agree."""

    n_docs: int
    n_features: int
    """textsae's vocabulary size."""
    textsae_s: float
    sklearn_s: float
    speedup: float
    """``sklearn_s / textsae_s``."""
    max_abs_diff: float
    """Largest absolute difference between the two matrices over the terms both kept."""
    vocab_overlap: float
    """``|common| / |union|`` of the two vocabularies (1.0 = identical)."""
    threads: int
    """Threads textsae's featurizer uses (1: it is single-threaded NumPy)."""
    provenance: BenchProvenance | None = None
    """The data, command line and machine, added by ``textsae bench tfidf``."""

    def to_json(self) -> JSONObject:
        """The result as ``--json`` prints it."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "provenance"}
        return {**values, **(self.provenance.to_json() if self.provenance else {})}


def run_tfidf_bench(
    texts: list[str],
    *,
    ngram_range: tuple[int, int] = (1, 2),
    min_df: float = 2,
    max_features: int | None = 30000,
    sublinear_tf: bool = True,
    repeats: int = 1,
) -> TfidfBenchResult:
    """Time ``fit_transform`` of textsae's TF-IDF and of scikit-learn's ``TfidfVectorizer`` on ``texts``.

    Both get the same settings: the arguments here, plus lower-casing, ``max_df=1.0``, smooth idf,
    L2 norm and float32 output. Each timing is the best wall-clock time of ``repeats`` runs,
    each with a fresh estimator. Nothing is printed (the CLI prints).

    Args:
        texts: Documents to fit on.
        ngram_range: ``(min_n, max_n)``.
        min_df: Minimum document frequency (int count or float fraction).
        max_features: Keep at most this many terms; ``None`` keeps all.
        sublinear_tf: Use ``1 + ln tf``.
        repeats: Runs per implementation; the fastest counts.

    Returns:
        The times (seconds), the speed-up and the agreement (columns matched by term); see
        :class:`TfidfBenchResult`.

    Raises:
        UserError: ``texts`` is empty or ``repeats < 1``.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    from textsae.featurize.tfidf import TfidfFeaturizer

    if not texts:
        raise UserError("run_tfidf_bench got no documents. Expected a non-empty list of str.")
    if repeats < 1:
        raise UserError(f"The 'repeats' parameter of run_tfidf_bench must be an int >= 1. Got {repeats!r} instead.")
    min_n, max_n = ngram_range  # a list works too
    settings: _SharedSettings = {
        "ngram_range": (min_n, max_n),
        "min_df": min_df,
        "max_features": max_features,
        "sublinear_tf": sublinear_tf,
    }
    ours, ours_x, ours_s = _best_of(
        repeats,
        lambda: TfidfFeaturizer(weighting="tfidf", lowercase=True, max_df=1.0, smooth_idf=True, norm="l2", **settings),
        texts,
    )
    theirs, theirs_x, theirs_s = _best_of(repeats, lambda: TfidfVectorizer(dtype=np.float32, **settings), texts)
    max_abs_diff, overlap = _compare(ours.vocabulary_, ours_x, theirs.vocabulary_, theirs_x)
    result = TfidfBenchResult(
        n_docs=len(texts),
        n_features=int(ours.n_features_),
        textsae_s=ours_s,
        sklearn_s=theirs_s,
        speedup=theirs_s / ours_s if ours_s > 0 else float("inf"),
        max_abs_diff=max_abs_diff,
        vocab_overlap=overlap,
        threads=1,
    )
    logger.info("tfidf bench: %s", result.to_json())
    return result


def _best_of(repeats: int, make: Callable[[], Any], texts: list[str]) -> tuple[Any, sp.csr_matrix, float]:
    """Fresh estimator per run; the fitted estimator and matrix of the last run and the best time."""
    best = float("inf")
    estimator = matrix = None
    for _ in range(repeats):
        estimator = make()
        start = time.perf_counter()
        matrix = estimator.fit_transform(texts)
        best = min(best, time.perf_counter() - start)
    return estimator, sp.csr_matrix(matrix), best


def _compare(
    vocab_a: dict[str, int], x_a: sp.csr_matrix, vocab_b: dict[str, int], x_b: sp.csr_matrix
) -> tuple[float, float]:
    """(max |a - b| over the common terms, |common| / |union|)."""
    common = sorted(vocab_a.keys() & vocab_b.keys())
    union = len(vocab_a.keys() | vocab_b.keys())
    if not common:
        return float("nan"), 0.0
    cols_a = np.fromiter((vocab_a[t] for t in common), dtype=np.int64, count=len(common))
    cols_b = np.fromiter((vocab_b[t] for t in common), dtype=np.int64, count=len(common))
    diff = (x_a[:, cols_a].astype(np.float64) - x_b[:, cols_b].astype(np.float64)).tocsr()
    max_abs_diff = float(np.abs(diff.data).max()) if diff.nnz else 0.0
    return max_abs_diff, len(common) / union
