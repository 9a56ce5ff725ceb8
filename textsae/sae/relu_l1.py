"""ReLU SAE with an L1 activation penalty (Bricken et al. 2023, "Towards Monosemanticity")."""

from __future__ import annotations

from torch import Tensor

from textsae.sae import losses
from textsae.sae.base import ActiveCodes, SAEOutput, SparseAutoencoder
from textsae.sae.registry import register_sae

__all__ = ["ReLUL1SAE"]


@register_sae("relu_l1")
class ReLUL1SAE(SparseAutoencoder):
    """ReLU SAE trained with an L1 penalty on the codes.

        z = ReLU(pre)
        loss = recon + λ · mean_b ‖z_b‖₁          (λ = cfg.l1)

    recon = mean_b Σ_d (x − x̂)² (``mse``) or mean_b Σ_d BCE-with-logits (``bce``). With
    ``cfg.normalize_decoder`` the decoder rows have unit norm, so the penalty cannot be dodged by
    shrinking z and growing W_dec. Training and inference codes are the same.
    """

    def _activate(
        self, pre_acts: Tensor, *, train: bool, limit: Tensor | None = None, x_in: Tensor | None = None
    ) -> tuple[Tensor, ActiveCodes | None]:
        return pre_acts.relu(), None

    def _sparsity_penalty(self, out: SAEOutput) -> tuple[Tensor, float] | None:
        return losses.l1_penalty(out.codes), self.cfg.l1
