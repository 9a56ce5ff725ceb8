"""Health checks of a trained SAE: is it trained, alive, and are its latents shared by many documents?

Three signs that codes should not be trusted, each turned into one warning line that says what it means
and what to change:

* FVU on the reported split ≥ ``MAX_FVU`` (1): the SAE reconstructs worse than predicting the mean;
* more than ``MAX_DEAD_FRACTION`` (50%) of the latents never fire on the training split;
* the median over live latents of top-1 / top-2 activation (strongest training document against the
  second strongest) above ``MAX_TOP_RATIO`` (3): latents stand for single documents, not for features
  that documents share. A latent that fires on one document only counts as infinite.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

__all__ = ["MAX_DEAD_FRACTION", "MAX_FVU", "MAX_TOP_RATIO", "health_warnings", "top1_top2_ratio", "top1_top2_ratios"]

MAX_FVU = 1.0
"""FVU at or above this on the reported split: no better than the mean."""
MAX_DEAD_FRACTION = 0.5
"""More latents than this never active on the training split."""
MAX_TOP_RATIO = 3.0
"""Median top-1 / top-2 activation ratio above this: latents memorise single documents."""


def top1_top2_ratios(codes: sp.spmatrix) -> np.ndarray:
    """For each latent active on the training split: |strongest activation| / |second strongest|.

    Args:
        codes: ``(n_docs, n_latents)`` codes of the training documents.

    Returns:
        One ratio per live latent (latents with no activation are left out); ``inf`` for a latent active
        on one document only (or whose second activation is 0).
    """
    by_latent = sp.csc_matrix(codes)
    by_latent.eliminate_zeros()
    columns = (by_latent.data[by_latent.indptr[j] : by_latent.indptr[j + 1]] for j in range(by_latent.shape[1]))
    return np.asarray([top1_top2_ratio(values) for values in columns if values.size], dtype=np.float64)


def top1_top2_ratio(activations: np.ndarray) -> float:
    """|strongest| / |second strongest| of one latent's non-zero activations; ``inf`` with fewer than two."""
    values = np.abs(activations)
    if values.size < 2:
        return float("inf")
    second, first = np.partition(values, values.size - 2)[-2:]
    return float(first / second) if second > 0 else float("inf")


def health_warnings(*, fvu: float, dead_fraction: float, top_ratio_median: float, eval_split: str) -> list[str]:
    """One line per failed check, each saying what it means and what to change (empty when healthy)."""
    warnings = []
    if math.isnan(fvu):
        warnings.append(
            f"The FVU of the {eval_split} split is undefined: its documents' features are all alike (no variance to "
            "explain). Check the source features; identical or empty inputs give no usable codes."
        )
    elif not fvu < MAX_FVU:
        warnings.append(
            f"The SAE reconstructs the {eval_split} split worse than its mean (FVU {fvu:.3g} >= {MAX_FVU:g}): it is undertrained or its sizes "
            "do not fit the data. Use the automatic budget (train.epochs=null train.steps=null) or train longer, and sae.n_latents=auto "
            "(with sae.architecture=topk or batchtopk, also sae.k=auto)."
        )
    if dead_fraction > MAX_DEAD_FRACTION:
        warnings.append(
            f"{100 * dead_fraction:.0f}% of the latents never fire on the training split: the dictionary is too large for this corpus. "
            "Use sae.n_latents=auto (or a smaller sae.n_latents), or train longer."
        )
    if top_ratio_median > MAX_TOP_RATIO:
        warnings.append(
            f"Latents are tied to single documents (median top-1/top-2 activation ratio {top_ratio_median:.3g} > {MAX_TOP_RATIO:g}): they memorise "
            "training documents rather than features many documents share. Use sae.decoder_init=neighbours, sae.n_latents=auto, or train longer."
        )
    return warnings
