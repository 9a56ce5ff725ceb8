"""Anomaly scores: how badly a model trained on in-distribution documents reconstructs a document.

A document unlike the training documents should be reconstructed worse. Scores are computed for the
SAE (``decode(encode(x))``, in the SAE's normalised space) and, as a baseline, for LSA (projection
onto the top singular directions of the training matrix).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch

from textsae.rows import FeatureMatrix, rows_to_tensor
from textsae.runtime import autocast
from textsae.sae import SparseAutoencoder

__all__ = ["ERROR_KINDS", "ErrorKind", "lsa_errors", "reconstruction_errors"]

ErrorKind = Literal["squared", "relative", "support"]
ERROR_KINDS: tuple[ErrorKind, ...] = ("squared", "relative", "support")
"""``squared``: ‖x − x̂‖²; ``relative``: ‖x − x̂‖² / ‖x‖² (0 for an all-zero row); ``support``: Σ over the
document's own non-zero entries of (x_i − x̂_i)², i.e. the part of the document the model fails to
reproduce, ignoring what it adds on absent terms."""


def _check_kind(kind: str) -> None:
    if kind not in ERROR_KINDS:
        raise ValueError(f"The 'kind' parameter must be one of {list(ERROR_KINDS)}. Got {kind!r} instead.")


def _finish(errors: np.ndarray, norms: np.ndarray, support: np.ndarray, kind: str) -> np.ndarray:
    if kind == "relative":
        return np.divide(errors, norms, out=np.zeros_like(errors), where=norms > 0)
    return support if kind == "support" else errors


@torch.no_grad()
def reconstruction_errors(
    sae: SparseAutoencoder,
    features: FeatureMatrix,
    *,
    kind: ErrorKind = "squared",
    device: str | torch.device = "cpu",
    batch_size: int = 1024,
    bf16: bool = False,
) -> np.ndarray:
    """Per-document reconstruction error of ``decode(encode(x))``, in the SAE's normalised space.

    Args:
        sae: A trained SAE.
        features: ``(n_docs, d_in)`` CSR or dense features from the run's featurizer.
        kind: One of :data:`ERROR_KINDS`, computed on x' (the normalised input) and x̂'.
        device: Where the SAE runs.
        batch_size: Documents per forward pass.
        bf16: bf16 autocast (match what the SAE was trained with on GPU).

    Returns:
        ``(n_docs,)`` float64 scores; larger means less like the training documents.
    """
    _check_kind(kind)
    was_training = sae.training
    sae.eval().to(device)
    n_rows = features.shape[0]
    errors, norms, support = np.zeros(n_rows), np.zeros(n_rows), np.zeros(n_rows)
    precision = "bf16" if bf16 else "fp32"
    for begin in range(0, n_rows, batch_size):
        end = min(begin + batch_size, n_rows)
        x = rows_to_tensor(features, slice(begin, end), device)
        with autocast(device, precision):
            x_hat = sae.normalize(sae.decode(sae.encode(x)))  # (B, d_in), model space
        x_n = sae.normalize(x)
        x_dense = (x_n.to_dense() if x_n.layout == torch.sparse_csr else x_n).double()
        squared = (x_dense - x_hat.double()).pow(2)  # (B, d_in)
        errors[begin:end] = squared.sum(dim=1).cpu().numpy()
        support[begin:end] = (squared * (x_dense != 0)).sum(dim=1).cpu().numpy()
        norms[begin:end] = x_dense.pow(2).sum(dim=1).cpu().numpy()
    sae.train(was_training)
    return _finish(errors, norms, support, kind)


def lsa_errors(
    components: np.ndarray, features: FeatureMatrix, *, kind: ErrorKind = "squared", chunk_rows: int = 512
) -> np.ndarray:
    """Per-document error of projecting onto LSA directions: ‖x − x Vᵀ V‖² = ‖x‖² − ‖x Vᵀ‖².

    Args:
        components: ``(r, d_in)`` orthonormal rows V, e.g. ``TruncatedSVD(...).fit(X_train).components_``.
        features: ``(n_docs, d_in)`` CSR or dense features.
        kind: One of :data:`ERROR_KINDS`.
        chunk_rows: Rows reconstructed at once for ``support``.

    Returns:
        ``(n_docs,)`` float64 scores.
    """
    _check_kind(kind)
    components = np.asarray(components, dtype=np.float64)
    projected = np.asarray(features @ components.T, dtype=np.float64)  # (n_docs, r)
    csr = sp.csr_matrix(features, dtype=np.float64)
    csr.eliminate_zeros()
    norms = np.asarray(csr.multiply(csr).sum(axis=1), dtype=np.float64).ravel()
    errors = np.maximum(norms - (projected**2).sum(axis=1), 0.0)
    support = np.zeros(csr.shape[0])
    if kind == "support":  # x̂ only at the stored entries: (x V^T)[row] · V[:, col]
        for begin in range(0, csr.shape[0], chunk_rows):
            block = csr[begin : begin + chunk_rows]
            rows = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
            x_hat = np.einsum("nr,nr->n", projected[begin + rows], components.T[block.indices])  # (nnz,)
            support[begin : begin + block.shape[0]] = np.bincount(
                rows, (block.data - x_hat) ** 2, minlength=block.shape[0]
            )
    return _finish(errors, norms, support, kind)
