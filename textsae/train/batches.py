"""Seeded batch order, input corruption and latent dropout for training."""

from __future__ import annotations

import numpy as np
import torch


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
        raise ValueError(
            f"The 'kind' parameter of corrupt must be 'none', 'mask' or 'gaussian' (train.corruption). Got {kind!r} instead."
        )
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
