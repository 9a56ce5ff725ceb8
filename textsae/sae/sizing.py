"""``sae.n_latents=auto`` and ``sae.k=auto``: dictionary size and code length from the training data.

The rule (documented in the README and ``textsae show``):

* **k** — a dense source (hidden states): ``DENSE_K`` = 32 entries, 128 bytes per document. A sparse
  source (TF-IDF): ``SPARSE_K`` = 64.
* **adaptive_k** (``auto``, the default) — for a sparse source and a TopK SAE, each document's code is capped
  at its own number of source non-zeros (``input_nnz``), so no code takes more bytes than the vector it
  encodes; otherwise ``none``.
* **n_latents** — each latent should be active on about ``DOCS_PER_LATENT`` training documents: with
  ``e`` the mean number of code entries per document (k, or for a sparse source the mean of
  min(k, non-zeros) over the training documents), ``n_latents = n_docs · e / DOCS_PER_LATENT``,
  but at most ``MAX_DECODER_WEIGHTS / d_in``, rounded down to a power of two and clipped to
  [``MIN_LATENTS``, ``MAX_LATENTS``]. A small corpus gets a small dictionary whose latents are shared by
  many documents; a large one, or a wide input, stops where a CPU step stays well under a second (set
  ``sae.n_latents`` explicitly for more, e.g. on a GPU).

k is also kept at most ``n_latents / 8``, and above ``sae.dense_latents``. ``dense_latents=auto`` is one per decision
value of a classifier of the training labels (the number of classes, 1 for two; 0 without labels).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from textsae.config.schema import SAEConfig

__all__ = [
    "DENSE_K",
    "DOCS_PER_LATENT",
    "MAX_DECODER_WEIGHTS",
    "MAX_LATENTS",
    "MIN_LATENTS",
    "SPARSE_K",
    "DataShape",
    "describe_sizes",
    "resolve_sizes",
]

DENSE_K = 32
"""``k=auto`` for a dense source: 32 entries (128 bytes per document at 4 bytes per entry)."""
SPARSE_K = 64
"""``k=auto`` for a sparse source: at most 64 entries, and never more than the document's source non-zeros."""
DOCS_PER_LATENT = 64
"""``n_latents=auto``: training documents each latent should be active on, on average."""
MIN_LATENTS = 64
"""Smallest automatic dictionary."""
MAX_LATENTS = 4096
"""Largest automatic dictionary."""
MAX_DECODER_WEIGHTS = 2**25
"""Automatic dictionaries keep n_latents · d_in at most this (33.5M: 4,096 latents up to 8,192 input dimensions,
2,048 up to 16,384, 1,024 up to 32,768). A training step reads and writes every weight several times, so its time
grows with this product: at 10,000 TF-IDF terms × 2,048 latents a step takes about 0.4 s on 2 CPU cores."""


@dataclass(frozen=True)
class DataShape:
    """What the automatic sizes depend on: the SAE's training rows."""

    n_docs: int
    """Training documents."""
    d_in: int
    """Input dimension."""
    nnz_per_doc: np.ndarray | None = None
    """Sparse source: non-zeros of each training document; ``None`` for a dense source."""
    n_classes: int | None = None
    """Classes among the training labels; ``None`` without labels."""

    @classmethod
    def of(cls, features: object, labels: np.ndarray | None = None) -> DataShape:
        """The shape of a training matrix (CSR, dense array or stored dense features) and of its labels."""
        n_docs, d_in = (int(v) for v in features.shape)  # type: ignore[attr-defined]
        nnz = np.diff(features.indptr) if sp.issparse(features) else None  # type: ignore[attr-defined]
        n_classes = None if labels is None else int(np.unique(labels).size)
        return cls(n_docs, d_in, nnz, n_classes)

    @property
    def n_decisions(self) -> int:
        """Decision values of a linear classifier of the labels: 1 for two classes, else one per class; 0 without labels."""
        if not self.n_classes:
            return 0
        return 1 if self.n_classes == 2 else self.n_classes

    @property
    def sparse(self) -> bool:
        return self.nnz_per_doc is not None


def resolve_sizes(cfg: SAEConfig, shape: DataShape) -> SAEConfig:
    """``cfg`` with ``n_latents``, ``k``, ``adaptive_k`` and ``dense_latents`` that say ``auto`` replaced by the rule above."""
    dense = shape.n_decisions if cfg.dense_latents == "auto" else cfg.dense_latents
    cfg = dataclasses.replace(cfg, dense_latents=dense)
    k = cfg.k
    if k == "auto":
        k = SPARSE_K if shape.sparse else DENSE_K
    adaptive = cfg.adaptive_k
    if adaptive == "auto":
        adaptive = "input_nnz" if shape.sparse and cfg.architecture == "topk" else "none"
    capped = adaptive == "input_nnz"
    n_latents = cfg.n_latents
    if n_latents == "auto":
        entries = float(k)
        if capped and shape.nnz_per_doc is not None and len(shape.nnz_per_doc):
            entries = float(np.minimum(np.maximum(shape.nnz_per_doc, cfg.dense_latents), k).mean())
        wanted = min(shape.n_docs * entries / DOCS_PER_LATENT, MAX_DECODER_WEIGHTS / shape.d_in)
        n_latents = int(min(max(2 ** math.floor(math.log2(max(wanted, 1.0))), MIN_LATENTS), MAX_LATENTS))
    if cfg.k == "auto":
        k = max(min(k, n_latents // 8), cfg.dense_latents + 1)
    return dataclasses.replace(cfg, n_latents=n_latents, k=k, adaptive_k=adaptive)


def describe_sizes(requested: SAEConfig, resolved: SAEConfig, shape: DataShape) -> str:
    """One line on what ``auto`` became, for the log and the report."""
    parts = []
    if requested.n_latents == "auto":
        parts.append(f"n_latents={resolved.n_latents}")
    if requested.k == "auto":
        parts.append(f"k={resolved.k}")
    if requested.adaptive_k == "auto":
        parts.append(f"adaptive_k={resolved.adaptive_k}")
    if requested.dense_latents == "auto":
        parts.append(f"dense_latents={resolved.dense_latents}")
    source = f"{shape.n_docs} training documents, d_in={shape.d_in}"
    if shape.nnz_per_doc is not None and len(shape.nnz_per_doc):
        source += f", {float(shape.nnz_per_doc.mean()):.1f} source non-zeros per document"
    return f"sae {', '.join(parts)} (automatic, from {source})"
