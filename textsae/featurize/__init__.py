"""Featurizers: text in, one row of features per document out (see :mod:`textsae.featurize.base`)."""

from __future__ import annotations

from textsae.featurize.base import (
    CONFIG_NAME,
    Featurizer,
    build_featurizer,
    featurizer_class,
    load_featurizer,
)
from textsae.featurize.tfidf import TfidfFeaturizer

__all__ = ["CONFIG_NAME", "Featurizer", "TfidfFeaturizer", "build_featurizer", "featurizer_class", "load_featurizer"]
