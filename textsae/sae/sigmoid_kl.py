"""Sigmoid SAE with a KL target-sparsity penalty (the classic sparse autoencoder, Ng 2011)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from textsae.config.schema import SAEConfig
from textsae.sae import losses
from textsae.sae.base import ActiveCodes, SAEOutput, SparseAutoencoder
from textsae.sae.registry import register_sae

__all__ = ["SigmoidKLConfig", "SigmoidKLSAE"]


@dataclass
class SigmoidKLConfig(SAEConfig):
    """``sae.architecture=sigmoid_kl``: sigmoid latents pushed towards a target mean activation."""

    beta: float = 1.0
    """β, weight of the KL target-sparsity penalty."""
    rho: float = 0.05
    """ρ, target mean activation of every latent, in (0, 1)."""
    code_threshold: float = 0.5
    """A latent belongs to the sparse code when its sigmoid activation exceeds this."""

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.beta < 0:
            problems.append(f"sae.beta must be >= 0. Got {self.beta!r} instead.")
        if not 0.0 < self.rho < 1.0:
            problems.append(f"sae.rho must be in (0, 1). Got {self.rho!r} instead.")
        if not 0.0 < self.code_threshold < 1.0:
            problems.append(f"sae.code_threshold must be in (0, 1). Got {self.code_threshold!r} instead.")
        return problems


@register_sae("sigmoid_kl", config=SigmoidKLConfig)
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

    cfg: SigmoidKLConfig

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
