"""JumpReLU SAE with an L0 penalty (Rajamanoharan et al. 2024, "Jumping Ahead: Improving Reconstruction Fidelity
with JumpReLU Sparse Autoencoders")."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from textsae.config.schema import SAEConfig
from textsae.sae.base import ActiveCodes, SAEOutput, SparseAutoencoder
from textsae.sae.losses import is_sparse_csr
from textsae.sae.registry import register_sae
from textsae.sae.sizing import DENSE_K, SPARSE_K

__all__ = ["JumpReLUConfig", "JumpReLUSAE", "jump_relu", "step"]

FALLBACK_THRESHOLD = 0.1
"""θ before :meth:`JumpReLUSAE.init_from_data` sets the ``auto`` thresholds from the data."""
MIN_THRESHOLD = 1e-3
"""Smallest initial threshold (a latent that is never positive on the sample still starts above 0)."""


@dataclass
class JumpReLUConfig(SAEConfig):
    """``sae.architecture=jumprelu``: each latent fires above its own learned threshold; training penalises L0."""

    l0: float = 1.0
    """λ, the weight of the L0 penalty: each active latent of a document costs as much as λ squared units of
    reconstruction error in the normalised space (where a mean document has squared norm d_in)."""
    threshold_init: float | Literal["auto"] = "auto"
    """Initial threshold θ of the latents, in the normalised space. ``auto``: each latent's own, from the training
    rows, so that it starts firing on the share of documents a TopK code of ``k=auto`` entries would give it (32
    entries per document for a dense source, 64 for a sparse one, over ``n_latents``); the L0 penalty then trades
    from there. The thresholds are trained in log space, so Adam moves each by at most about a factor e^lr per step:
    a fixed start (a number) stays near itself in short runs (on 8,000 TF-IDF reviews, 400 steps from 0.1: L0 734)."""
    bandwidth: float = 0.1
    """ε, the width of the rectangle window whose pseudo-derivative trains the thresholds: only pre-activations within
    ε/2 of a threshold move it."""

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.l0 < 0:
            problems.append(f"sae.l0 must be >= 0. Got {self.l0!r} instead.")
        if self.threshold_init != "auto" and not self.threshold_init > 0:
            problems.append(f"sae.threshold_init must be > 0. Got {self.threshold_init!r} instead.")
        if not self.bandwidth > 0:
            problems.append(f"sae.bandwidth must be > 0. Got {self.bandwidth!r} instead.")
        return problems


def _window(pre_acts: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
    """The rectangle kernel K((z − θ)/ε): 1 where |z − θ| < ε/2, else 0 ``(B, n_latents)``."""
    return ((pre_acts - threshold).abs() < bandwidth / 2).to(pre_acts.dtype)


class _JumpReLU(torch.autograd.Function):
    """z · H(z − θ); ∂/∂z = H(z − θ), ∂/∂θ = −(θ/ε) · K((z − θ)/ε) (the straight-through estimate)."""

    @staticmethod
    def forward(ctx: Any, pre_acts: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(pre_acts, threshold)
        ctx.bandwidth = bandwidth
        return pre_acts * (pre_acts > threshold).to(pre_acts.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        pre_acts, threshold = ctx.saved_tensors
        grad_pre = grad * (pre_acts > threshold).to(grad.dtype)
        window = _window(pre_acts, threshold, ctx.bandwidth)
        grad_threshold = -(threshold / ctx.bandwidth) * (grad * window).sum(dim=0)
        return grad_pre, grad_threshold, None


class _Step(torch.autograd.Function):
    """H(z − θ); no gradient to z, ∂/∂θ = −(1/ε) · K((z − θ)/ε) (the straight-through estimate)."""

    @staticmethod
    def forward(ctx: Any, pre_acts: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(pre_acts, threshold)
        ctx.bandwidth = bandwidth
        return (pre_acts > threshold).to(pre_acts.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        pre_acts, threshold = ctx.saved_tensors
        window = _window(pre_acts, threshold, ctx.bandwidth)
        return torch.zeros_like(pre_acts), -(grad * window).sum(dim=0) / ctx.bandwidth, None


def jump_relu(pre_acts: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
    """JumpReLU_θ(z) = z · H(z − θ) with the straight-through gradient for θ; ``pre_acts`` ``(B, n)``, ``threshold``
    ``(n,)``."""
    return _JumpReLU.apply(pre_acts, threshold, bandwidth)


def step(pre_acts: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
    """H(z − θ) with the straight-through gradient for θ (and none for z): the L0 count, made trainable."""
    return _Step.apply(pre_acts, threshold, bandwidth)


@register_sae("jumprelu", config=JumpReLUConfig)
class JumpReLUSAE(SparseAutoencoder):
    """JumpReLU SAE: latent j is active when its pre-activation exceeds a learned threshold θ_j.

        z = JumpReLU_θ(pre) = pre · H(pre − θ),   θ = exp(log_threshold)   (one per latent, kept positive)
        loss = recon + λ · mean_b Σ_j H(pre_bj − θ_j)                      (λ = cfg.l0)

    The step H has no useful gradient, so θ is trained through straight-through estimates with a rectangle kernel of
    width ε (``cfg.bandwidth``): ∂z/∂θ = −(θ/ε)·K((pre − θ)/ε) and ∂H/∂θ = −(1/ε)·K((pre − θ)/ε), where K is 1 within
    ε/2 of the threshold. The encoder and decoder get the exact gradients of the reconstruction; the L0 term reaches
    them only through θ. Unlike an L1 penalty, L0 does not shrink the active values. Training and inference codes are
    the same, and each row's code depends on that row only.
    """

    cfg: JumpReLUConfig

    def __init__(self, d_in: int, cfg: SAEConfig) -> None:
        super().__init__(d_in, cfg)
        start = FALLBACK_THRESHOLD if self.cfg.threshold_init == "auto" else self.cfg.threshold_init
        self.log_threshold = torch.nn.Parameter(torch.full((self.n_latents,), math.log(start)))

    @torch.no_grad()
    def init_from_data(self, x_sample: Tensor) -> None:
        """As :meth:`SparseAutoencoder.init_from_data`; with ``threshold_init=auto`` each threshold then becomes the
        pre-activation that latent exceeds on a fraction k/n_latents of the sample (k = ``DENSE_K`` or ``SPARSE_K``)."""
        super().init_from_data(x_sample)
        if self.cfg.threshold_init != "auto":
            return
        target = SPARSE_K if is_sparse_csr(x_sample) else DENSE_K
        pre_acts = self.pre_activations(self.normalize(x_sample))  # (n, n_latents)
        n_rows = pre_acts.shape[0]
        above = max(1, round(min(1.0, target / self.n_latents) * n_rows))  # rows each latent should fire on
        theta = pre_acts.kthvalue(max(1, n_rows - above), dim=0).values  # (n_latents,)
        self.log_threshold.copy_(theta.clamp_min(MIN_THRESHOLD).log())

    @property
    def threshold(self) -> Tensor:
        """θ ``(n_latents,)``: each latent's threshold in the normalised space."""
        return self.log_threshold.exp()

    def _activate(
        self, pre_acts: Tensor, *, train: bool, limit: Tensor | None = None, x_in: Tensor | None = None
    ) -> tuple[Tensor, ActiveCodes | None]:
        return jump_relu(pre_acts, self.threshold.to(pre_acts.dtype), self.cfg.bandwidth), None

    def _sparsity_penalty(self, out: SAEOutput) -> tuple[Tensor, float] | None:
        # In fp32 under autocast too: a bf16 sum miscounts beyond 256 active latents.
        active = step(out.pre_acts.float(), self.threshold, self.cfg.bandwidth)  # (B, n_latents)
        return active.sum(dim=1).mean(), self.cfg.l0
