"""Turning rows of a feature matrix into device tensors, and seeded input corruption."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

FeatureMatrix = sp.csr_matrix | np.ndarray


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


def epoch_permutation(n_rows: int, seed: int, epoch: int) -> np.ndarray:
    """Row order of one epoch; a pure function of (seed, epoch), so a resumed run sees the same batches."""
    return np.random.default_rng([seed, epoch]).permutation(n_rows)
