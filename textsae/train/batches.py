"""Turning rows of a feature matrix into device tensors, and seeded input corruption."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

FeatureMatrix = sp.csr_matrix | np.ndarray


def check_finite(features: FeatureMatrix, what: str, *, first_row: int = 0) -> None:
    """Raise a :class:`~textsae.errors.UserError` naming the rows when ``features`` holds NaN or ±inf.

    Args:
        features: A CSR matrix, a dense array or stored features (anything sliceable by rows), ``(n_rows, d)``.
        what: What the rows are, for the message (e.g. ``"training features"``).
        first_row: Number of the first row of ``features`` in the whole matrix (for slices).
    """
    from textsae.errors import UserError

    if sp.issparse(features):
        bad_entries = np.flatnonzero(~np.isfinite(features.data))
        rows = np.unique(np.searchsorted(features.indptr, bad_entries, side="right") - 1)
    else:  # in blocks of rows, so a large (memory-mapped or stored) array needs no full-size temporary
        found = [np.zeros(0, dtype=np.int64)]
        for begin in range(0, features.shape[0], 16384):
            block = np.asarray(features[begin : begin + 16384])
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
    """Rows of a CSR matrix as a torch sparse CSR tensor (never densified), or of a dense array as a tensor."""
    if sp.issparse(features):
        block = features[rows]
        with warnings.catch_warnings():  # torch warns once that CSR support is "beta"; we rely only on stable parts
            warnings.simplefilter("ignore", UserWarning)
            tensor = torch.sparse_csr_tensor(
                torch.from_numpy(block.indptr.astype(np.int64)),
                torch.from_numpy(block.indices.astype(np.int64)),
                torch.from_numpy(block.data.astype(np.float32, copy=False)),
                size=block.shape,
            )
        return tensor.to(device)
    return torch.from_numpy(np.ascontiguousarray(features[rows], dtype=np.float32)).to(device)


def corrupt(x: torch.Tensor, kind: str, p: float, generator: torch.Generator) -> torch.Tensor:
    """Masking or Gaussian noise for a denoising SAE; sparse inputs stay sparse (noise only on non-zeros).

    ``mask`` zeroes each entry with probability ``p``; ``gaussian`` adds noise with standard deviation
    ``p`` times the root-mean-square of the (non-zero) entries.
    """
    if kind == "none" or p == 0.0:
        return x
    values = x.values() if x.layout == torch.sparse_csr else x
    if kind == "mask":
        keep = torch.rand(values.shape, generator=generator, device="cpu").to(values.device) >= p
        new_values = values * keep
    elif kind == "gaussian":
        rms = values.pow(2).mean().sqrt()
        noise = torch.randn(values.shape, generator=generator, device="cpu").to(values.device)
        new_values = values + p * rms * noise
    else:
        raise ValueError(f"The 'kind' parameter of corrupt must be 'none', 'mask' or 'gaussian' (train.corruption). Got {kind!r} instead.")
    if x.layout == torch.sparse_csr:
        return torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(), new_values, size=x.shape)
    return new_values


def drop_latents(codes: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Inverted dropout on a (B, n_latents) code: zero each entry with probability ``p``, scale the rest by 1/(1-p).

    The mask is drawn from ``generator`` (seeded per step), so a resumed run drops the same latents.
    """
    if p == 0.0:
        return codes
    keep = torch.rand(codes.shape, generator=generator, device="cpu").to(codes.device) >= p
    return codes * keep.to(codes.dtype) / (1.0 - p)


def epoch_permutation(n_rows: int, seed: int, epoch: int) -> np.ndarray:
    """Row order of one epoch; a pure function of (seed, epoch), so a resumed run sees the same batches."""
    return np.random.default_rng([seed, epoch]).permutation(n_rows)
