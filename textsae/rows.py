"""Rows of a feature matrix (CSR or dense) as device tensors, and the finiteness check every stage runs on them.

Below ``sae/``, ``train/``, ``eval/`` and ``encode``: all of them read feature rows this way.
"""

from __future__ import annotations

import warnings
from typing import TypeAlias, TypeGuard

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["FeatureMatrix", "check_finite", "is_sparse", "row_nnz", "rows_to_tensor"]

FeatureMatrix: TypeAlias = sp.csr_matrix | np.ndarray


def is_sparse(x: object) -> TypeGuard[sp.spmatrix | sp.sparray]:
    """``scipy.sparse.issparse(x)``, typed so that a type checker takes ``x`` for a scipy sparse matrix when True."""
    return sp.issparse(x)


def row_nnz(features: object) -> np.ndarray | None:
    """Stored values of each row of a sparse matrix (CSR in memory, or stored CSR shards with ``row_nnz()``), else None."""
    if is_sparse(features):
        return np.diff(sp.csr_matrix(features).indptr)
    method = getattr(features, "row_nnz", None)
    return np.asarray(method()) if callable(method) else None


def check_finite(features: FeatureMatrix, what: str, *, first_row: int = 0) -> None:
    """Raise a :class:`~textsae.errors.UserError` naming the rows when ``features`` holds NaN or ±inf.

    Args:
        features: A CSR matrix, a dense array or stored features (anything sliceable by rows into a CSR matrix or an
            array), ``(n_rows, d)``.
        what: What the rows are, for the message (e.g. ``"training features"``).
        first_row: Number of the first row of ``features`` in the whole matrix (for slices).
    """
    from textsae.errors import UserError

    if is_sparse(features):
        bad_entries = np.flatnonzero(~np.isfinite(features.data))
        rows = np.unique(np.searchsorted(features.indptr, bad_entries, side="right") - 1)
    else:  # in blocks of rows, so large stored features (dense or CSR shards) need no full-size temporary
        found = [np.zeros(0, dtype=np.int64)]
        for begin in range(0, features.shape[0], 16384):
            block = features[begin : begin + 16384]
            if is_sparse(block):
                bad = np.flatnonzero(~np.isfinite(block.data))
                found.append(begin + np.unique(np.searchsorted(block.indptr, bad, side="right") - 1))
                continue
            block = np.asarray(block)
            found.append(begin + np.flatnonzero(~np.isfinite(block).reshape(len(block), -1).all(axis=1)))
        rows = np.concatenate(found)
    if rows.size == 0:
        return
    shown = ", ".join(str(int(r) + first_row) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
    raise UserError(
        f"The {what} hold NaN or inf values in {len(rows)} row(s) (rows {shown}, counted from 0). Features must be finite: "
        "re-create them (delete the run's features/ folder and re-run), or check the featurizer's input and precision."
    )


def rows_to_tensor(features: FeatureMatrix, rows: np.ndarray | slice, device: str | torch.device) -> torch.Tensor:
    """Rows of a CSR matrix as a torch sparse CSR tensor (never densified), or of a dense array as a tensor.

    Stored features work alike: CSR shards give CSR rows, stored dense rows an array.
    """
    block = features[rows]
    if is_sparse(block):
        with warnings.catch_warnings():  # torch warns once that CSR support is "beta"; we rely only on stable parts
            warnings.simplefilter("ignore", UserWarning)
            tensor = torch.sparse_csr_tensor(
                torch.from_numpy(block.indptr.astype(np.int64)),
                torch.from_numpy(block.indices.astype(np.int64)),
                torch.from_numpy(block.data.astype(np.float32, copy=False)),
                size=block.shape,
            )
        return tensor.to(device)
    return torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32)).to(device)
