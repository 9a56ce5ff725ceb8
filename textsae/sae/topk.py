"""TopK SAE (Gao et al. 2024, "Scaling and evaluating sparse autoencoders") and the shared AuxK loss."""

from __future__ import annotations

import torch
from torch import Tensor

from textsae.sae import losses
from textsae.sae.base import ActiveCodes, SAEOutput, SparseAutoencoder
from textsae.sae.registry import register_sae

__all__ = ["AuxKMixin", "TopKSAE"]


class AuxKMixin(SparseAutoencoder):
    """AuxK loss for the TopK family: dead latents are trained to model the reconstruction residual.

    With e = target − x̂ (x̂ detached), z_aux the ``k_aux`` largest pre-activations among dead
    latents (ReLU applied, others 0) and ê = z_aux @ W_dec (no b_dec):

        auxk = Σ_b ‖e_b − ê_b‖² / Σ_b ‖e_b − ē‖²,   total += cfg.auxk_coefficient · auxk

    ``k_aux`` = ``cfg.auxk_k`` or min(d_in // 2, 2k), and at most the number of dead latents. A
    sparse CSR target is densified to form e: x̂ is a dense ``(B, d_in)`` tensor anyway, so this
    doubles a cost already paid. For ``bce``, e is taken on probabilities (x̂ = sigmoid(logits)),
    a linear approximation of the residual.
    """

    @property
    def k_aux(self) -> int:
        """Latents per row used by AuxK."""
        if self.cfg.auxk_k is not None:
            return min(self.cfg.auxk_k, self.n_latents)
        return max(1, min(self.d_in // 2, 2 * self.cfg.k, self.n_latents))

    def _auxk_penalty(self, out: SAEOutput, target: Tensor, dead_mask: Tensor | None) -> Tensor | None:
        if dead_mask is None or self.cfg.auxk_coefficient == 0:
            return None
        dense_target = target.to_dense() if losses.is_sparse_csr(target) else target  # (B, d_in)
        residual = dense_target - out.x_hat.detach()  # (B, d_in)
        return losses.auxk_loss(out.pre_acts, residual, self.W_dec, dead_mask, self.k_aux)


@register_sae("topk")
class TopKSAE(AuxKMixin):
    """TopK SAE: each row keeps its k largest pre-activations.

        z = ReLU(TopK_k(pre))        (k = cfg.k, the other n_latents − k entries are 0)
        loss = recon + cfg.auxk_coefficient · auxk

    recon = mean_b Σ_d (x − x̂)² (``mse``) or mean_b Σ_d BCE-with-logits (``bce``); auxk: see
    :class:`AuxKMixin`. Training and inference codes are the same, and each row's code depends on
    that row only. The decoder reads only the B·k active rows of W_dec.
    """

    def _activate(self, pre_acts: Tensor, *, train: bool) -> tuple[Tensor, ActiveCodes | None]:
        n_rows, k = pre_acts.shape[0], self.cfg.k
        values, indices = pre_acts.topk(k, dim=1, sorted=False)  # (B, k) each
        values = values.relu()
        codes = torch.zeros_like(pre_acts).scatter(1, indices, values)  # (B, n_latents)
        offsets = torch.arange(0, n_rows * k + 1, k, device=pre_acts.device)  # (B + 1,)
        return codes, ActiveCodes(indices.reshape(-1), values.reshape(-1), offsets)
