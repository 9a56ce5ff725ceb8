"""What each latent of a trained run stands for: how often and how strongly it fires (a histogram), the class it
fires on most, its top terms and its top documents.

Frequencies and top documents come from the run's training codes (``codes/train``). Top terms
exist for bag-of-words featurizers only: each latent's decoder row, mapped back to the raw feature
space (the SAE stores an input scaling, so a raw-space weight is ``W_dec[j] / input_scale``), is
read through the featurizer's vocabulary. Highlighting is expressed as character spans with
weights, so a featurizer without a vocabulary (hidden states) can supply per-token weights instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import scipy.sparse as sp

from textsae._io import logger
from textsae.artifacts import is_complete, load_featurizer_artifact, load_sae_artifact
from textsae.config.compose import build_saved_config
from textsae.config.schema import RecipeConfig
from textsae.errors import UserError
from textsae.eval.health import top1_top2_ratio
from textsae.featurize.tfidf import TOKEN_PATTERN, TfidfConfig, TfidfFeaturizer
from textsae.paths import RunPaths
from textsae.store.codes import load_codes

__all__ = ["Inspection", "LabelAssociation", "LatentDoc", "LatentSummary", "Span", "inspect_run", "term_spans"]

_TOKEN_RE = re.compile(TOKEN_PATTERN)
HISTOGRAM_BINS = 12


@dataclass(frozen=True)
class Span:
    """A character range ``[start, end)`` of a document to highlight, with a weight in [0, 1]."""

    start: int
    end: int
    weight: float


@dataclass
class LatentDoc:
    """One of a latent's top-activating documents."""

    row: int
    """Row of the document in the training split."""
    activation: float
    """The latent's activation on it."""
    text: str
    spans: list[Span] = field(default_factory=list)
    """What to highlight: for bag-of-words, occurrences of the latent's top terms."""


@dataclass
class LatentSummary:
    """Everything the inspection page shows for one latent."""

    index: int
    frequency: float
    """Fraction of training documents on which the latent is active."""
    mean_activation: float
    """Mean activation over the documents where it is active."""
    terms: list[tuple[str, float]] = field(default_factory=list)
    """Top-weighted vocabulary terms with their raw-space decoder weights, largest first."""
    docs: list[LatentDoc] = field(default_factory=list)
    top_ratio: float = float("nan")
    """Strongest training activation over the second strongest (``inf``: active on one document); far above 1
    means the latent stands for one document rather than a feature several share."""
    histogram: list[int] = field(default_factory=list)
    """How many active documents fall in each of ``HISTOGRAM_BINS`` equal bins from 0 to the largest activation."""
    histogram_max: float = 0.0
    """The largest activation (the right edge of the last bin)."""
    label: LabelAssociation | None = None
    """The class the latent fires on most, relative to how common the class is; None without labels."""


@dataclass(frozen=True)
class LabelAssociation:
    """The class most over-represented among the documents a latent fires on."""

    name: str
    share: float
    """Fraction of the latent's documents in that class."""
    base_rate: float
    """Fraction of all training documents in that class."""

    @property
    def lift(self) -> float:
        """``share / base_rate``: 1 means the latent ignores the labels."""
        return self.share / self.base_rate


@dataclass
class Inspection:
    """The latents of one run, ordered by frequency (most frequent first); dead latents are only counted."""

    run_dir: Path
    recipe: str
    n_latents: int
    n_docs: int
    n_dead: int
    latents: list[LatentSummary]
    has_vocabulary: bool


def term_spans(text: str, term_weights: dict[str, float], *, lowercase: bool = True, max_n: int = 2) -> list[Span]:
    """Spans of ``text`` whose token n-grams (n ≤ ``max_n``) are keys of ``term_weights``.

    Tokens follow the TF-IDF featurizer (``TOKEN_PATTERN``, lower-cased when ``lowercase``); an
    n-gram match highlights every token it covers, each token keeping its largest weight.

    Args:
        text: The document.
        term_weights: Term (``"word"`` or ``"two words"``) → weight in [0, 1].
        lowercase: Compare lower-cased tokens.
        max_n: Longest n-gram to look up.

    Returns:
        One span per highlighted token, in reading order.
    """
    tokens = list(_TOKEN_RE.finditer(text))
    words = [t.group().lower() if lowercase else t.group() for t in tokens]
    weights = np.zeros(len(tokens))
    for n in range(1, max_n + 1):
        for i in range(len(tokens) - n + 1):
            weight = term_weights.get(" ".join(words[i : i + n]))
            if weight is not None:
                weights[i : i + n] = np.maximum(weights[i : i + n], weight)
    return [Span(tokens[i].start(), tokens[i].end(), float(weights[i])) for i in np.flatnonzero(weights > 0)]


def inspect_run(run_dir: str | Path, *, top_terms: int = 20, top_docs: int = 5) -> Inspection:
    """Summarise every live latent of a finished run.

    Args:
        run_dir: A run directory with ``config.yaml``, ``featurizer/``, ``sae/`` and ``codes/train``.
        top_terms: Terms per latent (bag-of-words featurizers only).
        top_docs: Top-activating training documents per latent (0 for none).

    Returns:
        The :class:`Inspection`.

    Raises:
        UserError: The run directory lacks the trained SAE or its training codes.
    """
    paths = RunPaths(Path(run_dir).resolve())
    if not paths.config.is_file():
        raise UserError(
            f"{paths.root} is not a run directory (no config.yaml); pass the folder that `textsae run` printed."
        )
    if not is_complete(paths.codes("train")):
        raise UserError(
            f"{paths.codes('train')} holds no finished training codes; run `textsae eval` on the recipe first."
        )
    config = _read_run_config(paths)
    sae = load_sae_artifact(paths.sae)
    codes = load_codes(paths.codes("train")).tocsc()  # (n_docs, n_latents); columns are latents
    n_docs = codes.shape[0]
    counts = np.diff(codes.indptr)
    sums = np.asarray(codes.sum(axis=0)).ravel()
    vocabulary = _vocabulary(paths)
    weights = (sae.W_dec.detach().double() / sae.input_scale.detach().double()).numpy()  # (n_latents, d_in), raw space
    texts, labels, label_names = _training_split(config, n_docs)
    texts = texts if top_docs > 0 else None
    base_rates = np.bincount(labels) / len(labels) if labels is not None else None
    alive = np.flatnonzero(counts > 0)
    order = alive[np.lexsort((alive, -counts[alive]))]
    latents = []
    tfidf = config.featurizer if isinstance(config.featurizer, TfidfConfig) else None
    for j in order:
        terms = _top_terms(weights[j], vocabulary, top_terms) if vocabulary is not None else []
        activations = codes.data[codes.indptr[j] : codes.indptr[j + 1]]
        histogram, top_activation = _histogram(activations)
        summary = LatentSummary(
            int(j),
            float(counts[j] / n_docs),
            float(sums[j] / counts[j]),
            terms,
            top_ratio=top1_top2_ratio(activations),
            histogram=histogram,
            histogram_max=top_activation,
        )
        if labels is not None and base_rates is not None:
            rows = codes.indices[codes.indptr[j] : codes.indptr[j + 1]]
            summary.label = _label_association(labels[rows], base_rates, label_names)
        if texts is not None:
            summary.docs = _top_docs(
                codes,
                int(j),
                texts,
                terms,
                top_docs,
                max_n=tfidf.ngram_range[1] if tfidf else 1,  # terms to highlight: only a TF-IDF run has them
                lowercase=tfidf.lowercase if tfidf else True,
            )
        latents.append(summary)
    return Inspection(
        paths.root, config.name, sae.n_latents, n_docs, int(sae.n_latents - len(alive)), latents, vocabulary is not None
    )


def _read_run_config(paths: RunPaths) -> RecipeConfig:
    import yaml

    from textsae.config.safe_yaml import load_yaml

    try:
        tree = load_yaml(paths.config.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(
            f"{paths.config}: cannot be read as YAML ({exc}). Expected the resolved config a run saves."
        ) from exc
    return build_saved_config(tree)


def _vocabulary(paths: RunPaths) -> np.ndarray | None:
    """Column names of a bag-of-words featurizer (one with a ``vocabulary_``), else ``None``."""
    featurizer = load_featurizer_artifact(paths.featurizer)
    if getattr(featurizer, "vocabulary_", None) is None:
        return None
    vectorizer = cast(TfidfFeaturizer, featurizer)  # the bag-of-words featurizer, the one with a vocabulary_
    return np.asarray(vectorizer.get_feature_names_out(), dtype=object)


def _top_terms(row: np.ndarray, vocabulary: np.ndarray, n: int) -> list[tuple[str, float]]:
    """The ``n`` terms with the largest positive weight in one decoder row."""
    n = min(n, len(row))
    top = np.argpartition(-row, n - 1)[:n] if n else np.array([], dtype=int)
    top = top[np.argsort(-row[top], kind="stable")]
    return [(str(vocabulary[i]), float(row[i])) for i in top if row[i] > 0]


def _training_split(config: RecipeConfig, n_docs: int) -> tuple[list[str] | None, np.ndarray | None, list[str] | None]:
    """The run's training documents, labels and class names (same order as its codes), or Nones with a warning when
    the corpus is unavailable or no longer matches the codes."""
    from textsae.data.corpus import load_corpus

    try:
        corpus = load_corpus(config.data)
    except UserError as error:
        logger.warning(
            "Top documents and label association left out: the run's corpus cannot be loaded (%s)",
            str(error).splitlines()[0],
        )
        return None, None, None
    train = corpus.train
    if len(train.texts) != n_docs:
        logger.warning(
            "Top documents and label association left out: the corpus now has %d training documents but the codes have %d.",
            len(train.texts),
            n_docs,
        )
        return None, None, None
    labels = np.asarray(train.labels, dtype=np.int64) if train.labels is not None and len(train.labels) else None
    return list(train.texts), labels, corpus.label_names


def _histogram(activations: np.ndarray) -> tuple[list[int], float]:
    top = float(activations.max()) if activations.size else 0.0
    if top <= 0:
        return [int(activations.size)] + [0] * (HISTOGRAM_BINS - 1), top
    counts, _ = np.histogram(activations, bins=HISTOGRAM_BINS, range=(0.0, top))
    return counts.astype(int).tolist(), top


def _label_association(fired: np.ndarray, base_rates: np.ndarray, names: list[str] | None) -> LabelAssociation | None:
    """The class whose share among ``fired`` (the labels of the documents a latent is active on) most exceeds its
    base rate."""
    if not fired.size:
        return None
    share = np.bincount(fired, minlength=len(base_rates)) / fired.size
    lift = np.divide(share, base_rates, out=np.zeros_like(share), where=base_rates > 0)
    best = int(np.argmax(lift))
    name = names[best] if names is not None and best < len(names) else str(best)
    return LabelAssociation(name, float(share[best]), float(base_rates[best]))


def _top_docs(
    codes: sp.csc_matrix,
    j: int,
    texts: Sequence[str],
    terms: list[tuple[str, float]],
    n: int,
    *,
    max_n: int,
    lowercase: bool,
) -> list[LatentDoc]:
    rows = codes.indices[codes.indptr[j] : codes.indptr[j + 1]]
    values = codes.data[codes.indptr[j] : codes.indptr[j + 1]].astype(np.float64)
    best = np.lexsort((rows, -values))[:n]
    top_weight = terms[0][1] if terms else 1.0
    term_weights = {term: weight / top_weight for term, weight in terms}
    return [
        LatentDoc(
            int(rows[i]),
            float(values[i]),
            texts[rows[i]],
            term_spans(texts[rows[i]], term_weights, lowercase=lowercase, max_n=max_n),
        )
        for i in best
    ]
