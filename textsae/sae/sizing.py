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
from typing import Any

import numpy as np

from textsae.config.schema import SAEConfig
from textsae.rows import row_nnz

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
        """The shape of a training matrix (CSR, dense array, stored dense features or CSR shards) and of its labels."""
        n_docs, d_in = (int(v) for v in features.shape)  # type: ignore[attr-defined]  # every accepted matrix has one
        nnz = row_nnz(features)
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
    """``cfg`` with the sizes that say ``auto`` (``n_latents``, and where the architecture has them ``k``,
    ``adaptive_k`` and ``dense_latents``) replaced by the rule above. For an architecture without a fixed code
    length, ``n_latents=auto`` counts the entries a TopK code of the same source would have."""
    present = {f.name for f in dataclasses.fields(cfg)}
    changes: dict[str, Any] = {}  # field name → resolved value, of that field's type
    dense = 0
    if "dense_latents" in present:
        dense = shape.n_decisions if cfg.dense_latents == "auto" else cfg.dense_latents  # type: ignore[attr-defined]  # present, checked above
        changes["dense_latents"] = dense
    requested_k = getattr(cfg, "k", "auto")
    k = (SPARSE_K if shape.sparse else DENSE_K) if requested_k == "auto" else requested_k
    adaptive = getattr(cfg, "adaptive_k", "none")
    if adaptive == "auto":
        adaptive = "input_nnz" if shape.sparse else "none"
    if "adaptive_k" in present:
        changes["adaptive_k"] = adaptive
    n_latents = cfg.n_latents
    if n_latents == "auto":
        entries = float(k)
        if adaptive == "input_nnz" and shape.nnz_per_doc is not None and len(shape.nnz_per_doc):
            entries = float(np.minimum(np.maximum(shape.nnz_per_doc, dense), k).mean())
        wanted = min(shape.n_docs * entries / DOCS_PER_LATENT, MAX_DECODER_WEIGHTS / shape.d_in)
        n_latents = int(min(max(2 ** math.floor(math.log2(max(wanted, 1.0))), MIN_LATENTS), MAX_LATENTS))
    changes["n_latents"] = n_latents
    if "k" in present:
        changes["k"] = max(min(k, n_latents // 8), dense + 1) if requested_k == "auto" else k
    return dataclasses.replace(cfg, **changes)


def describe_sizes(requested: SAEConfig, resolved: SAEConfig, shape: DataShape) -> str:
    """One line on what ``auto`` became, for the log and the report."""
    parts = [
        f"{f.name}={getattr(resolved, f.name)}"
        for f in dataclasses.fields(requested)
        if getattr(requested, f.name) == "auto"
    ]
    source = f"{shape.n_docs} training documents, d_in={shape.d_in}"
    if shape.nnz_per_doc is not None and len(shape.nnz_per_doc):
        source += f", {float(shape.nnz_per_doc.mean()):.1f} source non-zeros per document"
    return f"sae {', '.join(parts)} (automatic, from {source})"
