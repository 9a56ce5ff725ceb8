"""Sigmoid SAE with a KL target-sparsity penalty (the classic sparse autoencoder, Ng 2011)."""

from __future__ import annotations

import torch
from torch import Tensor

from textsae.sae import losses
from textsae.sae.base import ActiveCodes, SAEOutput, SparseAutoencoder
from textsae.sae.registry import register_sae

__all__ = ["SigmoidKLSAE"]


@register_sae("sigmoid_kl")
class SigmoidKLSAE(SparseAutoencoder):
    """Sigmoid SAE whose latents are pushed towards a target mean activation ρ.

    Training: a = sigmoid(pre) is used densely for the reconstruction, and

        ρ̂_j = mean_b a_bj
        loss = recon + β · Σ_j KL(ρ‖ρ̂_j)                          (β = cfg.beta, ρ = cfg.rho)
        KL(ρ‖ρ̂) = ρ log(ρ/ρ̂) + (1−ρ) log((1−ρ)/(1−ρ̂))           (ρ̂ clamped to [1e-6, 1 − 1e-6])

    Inference (:meth:`encode`, and ``forward`` in eval mode): the sparse code
    z = a · [a > cfg.code_threshold]. Training never saw this thresholding, so decode(encode(x))
    differs from the training reconstruction (and eval-mode FVU from train-mode FVU): the dropped
    activations below the threshold no longer contribute. The KL term is always computed on
    a = sigmoid(pre), in either mode.
    """

    def _activate(
        self, pre_acts: Tensor, *, train: bool, limit: Tensor | None = None, x_in: Tensor | None = None
    ) -> tuple[Tensor, ActiveCodes | None]:
        a = torch.sigmoid(pre_acts)  # (B, n_latents)
        if train:
            return a, None
        return a * (a > self.cfg.code_threshold), None

    def active_mask(self, codes: Tensor) -> Tensor:
        """A latent counts as active where its sigmoid activation exceeds ``cfg.code_threshold``."""
        return codes > self.cfg.code_threshold

    def _sparsity_penalty(self, out: SAEOutput) -> tuple[Tensor, float] | None:
        rho_hat = torch.sigmoid(out.pre_acts).mean(dim=0)  # (n_latents,)
        return losses.kl_sparsity_penalty(rho_hat, self.cfg.rho), self.cfg.beta
