"""BatchTopK SAE (Bussmann et al. 2024, "BatchTopK Sparse Autoencoders")."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from textsae.config.schema import SAEConfig
from textsae.sae.base import ActiveCodes
from textsae.sae.registry import register_sae
from textsae.sae.topk import AuxKMixin, TopKFamilyConfig

__all__ = ["BatchTopKConfig", "BatchTopKSAE"]

THRESHOLD_MOMENTUM = 0.99
"""EMA momentum of the inference threshold: θ ← 0.99 θ + 0.01 θ_batch."""


@dataclass
class BatchTopKConfig(TopKFamilyConfig):
    """``sae.architecture=batchtopk``: k latents per document on average over each training batch."""


@register_sae("batchtopk", config=BatchTopKConfig)
class BatchTopKSAE(AuxKMixin):
    """BatchTopK SAE: k active latents per row on average over the batch.

    Training (``forward`` in train mode), for a batch of B rows:

        z = ReLU(pre) where ReLU(pre) is among the B·k largest entries of the batch, else 0
        θ ← θ_batch on the first update, then θ ← 0.99 θ + 0.01 θ_batch (no gradient)
        θ_batch = smallest positive kept activation of the batch
        loss = recon + cfg.auxk_coefficient · auxk            (auxk: see AuxKMixin)
        loss += Σ_g recon(prefix m_g)                          (cfg.matryoshka_prefixes, see AuxKMixin)

    Inference (:meth:`encode`, and ``forward`` in eval mode): z = pre · [pre > θ], so each row's
    code depends on that row only. θ is the buffer ``threshold`` (0 until the first training
    batch, when inference codes are ReLU(pre)). The training decoder reads only the B·k active
    rows of W_dec.
    """

    cfg: BatchTopKConfig
    threshold: Tensor
    """Buffer ``()``: the inference threshold θ."""

    def __init__(self, d_in: int, cfg: SAEConfig) -> None:
        super().__init__(d_in, cfg)
        self.register_buffer("threshold", torch.zeros(()))

    def _activate(
        self, pre_acts: Tensor, *, train: bool, limit: Tensor | None = None, x_in: Tensor | None = None
    ) -> tuple[Tensor | None, ActiveCodes | None]:
        if not train:
            return pre_acts * (pre_acts > self.threshold), None
        n_rows, n_latents = pre_acts.shape
        flat = pre_acts.reshape(-1)  # (B·n_latents,)
        values, flat_idx = flat.topk(min(n_rows * self._k, flat.numel()), sorted=False)  # (B·k,) each
        values = values.relu()
        self._update_threshold(values.detach())
        # Row-major order groups the entries by row, as embedding_bag needs.
        flat_idx, order = flat_idx.sort()
        rows = flat_idx // n_latents  # (B·k,)
        offsets = torch.searchsorted(rows, torch.arange(n_rows + 1, device=rows.device))  # (B + 1,)
        return None, ActiveCodes(flat_idx - rows * n_latents, values[order], offsets)  # SAEOutput.codes densifies

    @torch.no_grad()
    def _update_threshold(self, kept: Tensor) -> None:
        """EMA of the smallest positive kept activation; skipped for a batch with none (no host sync)."""
        inf = torch.full((), float("inf"), dtype=kept.dtype, device=kept.device)
        batch_min = torch.where(kept > 0, kept, inf).min().to(self.threshold.dtype)
        first = self.threshold <= 0  # θ is 0 until the first update, and an EMA of positives after it
        updated = torch.where(
            first, batch_min, THRESHOLD_MOMENTUM * self.threshold + (1 - THRESHOLD_MOMENTUM) * batch_min
        )
        self.threshold.copy_(torch.where(torch.isfinite(batch_min), updated, self.threshold))
