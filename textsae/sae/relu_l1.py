"""ReLU SAE with an L1 activation penalty (Bricken et al. 2023, "Towards Monosemanticity")."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from textsae.config.schema import SAEConfig
from textsae.sae import losses
from textsae.sae.base import ActiveCodes, SAEOutput, SparseAutoencoder
from textsae.sae.registry import register_sae

__all__ = ["ReLUL1Config", "ReLUL1SAE"]


@dataclass
class ReLUL1Config(SAEConfig):
    """``sae.architecture=relu_l1``: ReLU codes with an L1 penalty."""

    l1: float = 1.0
    """λ, the L1 activation-penalty coefficient."""

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.l1 < 0:
            problems.append(f"sae.l1 must be >= 0. Got {self.l1!r} instead.")
        return problems


@register_sae("relu_l1", config=ReLUL1Config)
class ReLUL1SAE(SparseAutoencoder):
    """ReLU SAE trained with an L1 penalty on the codes.

        z = ReLU(pre)
        loss = recon + λ · mean_b ‖z_b‖₁          (λ = cfg.l1)

    recon = mean_b Σ_d (x − x̂)² (``mse``) or mean_b Σ_d BCE-with-logits (``bce``). With
    ``cfg.normalize_decoder`` the decoder rows have unit norm, so the penalty cannot be dodged by
    shrinking z and growing W_dec. Training and inference codes are the same.
    """

    cfg: ReLUL1Config

    def _activate(
        self, pre_acts: Tensor, *, train: bool, limit: Tensor | None = None, x_in: Tensor | None = None
    ) -> tuple[Tensor, ActiveCodes | None]:
        return pre_acts.relu(), None

    def _sparsity_penalty(self, out: SAEOutput) -> tuple[Tensor, float] | None:
        return losses.l1_penalty(out.codes), self.cfg.l1
