"""TopK SAE (Gao et al. 2024, "Scaling and evaluating sparse autoencoders") and the shared AuxK loss."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal, cast

import torch
from torch import Tensor

from textsae.config.schema import SAEConfig
from textsae.errors import UserError
from textsae.sae import losses
from textsae.sae.base import ActiveCodes, LossOutput, SAEOutput, SparseAutoencoder
from textsae.sae.registry import register_sae
from textsae.sae.selection import top_k

__all__ = ["MULTI_TOPK_FACTOR", "MULTI_TOPK_WEIGHT", "AuxKMixin", "TopKConfig", "TopKFamilyConfig", "TopKSAE"]

MULTI_TOPK_FACTOR = 4
"""Multi-TopK: the second reconstruction uses ``MULTI_TOPK_FACTOR · k`` latents (capped at n_latents)."""
MULTI_TOPK_WEIGHT = 1 / 8
"""Multi-TopK: weight of the second reconstruction term, as in Gao et al. (2024)."""


@dataclass
class TopKFamilyConfig(SAEConfig):
    """Keys shared by the architectures that keep k latents per document (``topk``, ``batchtopk``)."""

    k: int | Literal["auto"] = 32
    """Active latents per document; with BatchTopK the batch average. ``auto``: 32 for a dense source (128 bytes per
    document), 64 for a sparse one (with ``adaptive_k``, each document at most its source non-zeros)."""
    auxk_coefficient: float = 0.03125
    """Weight of the AuxK loss that lets dead latents model the residual; 0 turns it off."""
    auxk_k: int | None = None
    """Latents used by AuxK; default ``min(d_in // 2, 2 * k)`` (its decode costs k_aux/k times the main decoder)."""
    matryoshka_prefixes: list[int] = field(default_factory=list)
    """Nested dictionary sizes m_1 < … < m_G < n_latents. Training adds, for each m, the reconstruction from the
    code's entries on latents 0 … m − 1 alone (Matryoshka SAE, Bussmann et al. 2025), so early latents carry what
    every document needs; empty (default) trains the whole dictionary only."""

    @property
    def code_k(self) -> int | None:
        return None if self.k == "auto" else int(self.k)

    def problems(self) -> list[str]:
        self.matryoshka_prefixes = list(self.matryoshka_prefixes)
        problems = super().problems()
        n_latents = None if self.n_latents == "auto" else self.n_latents
        k = None if self.k == "auto" else self.k
        if k is not None and not 1 <= k <= max(n_latents or k, 1):
            problems.append(
                f"sae.k must be auto or an int in [1, sae.n_latents={self.n_latents}]. Got {self.k!r} instead."
            )
        if self.auxk_coefficient < 0:
            problems.append(f"sae.auxk_coefficient must be >= 0. Got {self.auxk_coefficient!r} instead.")
        if self.auxk_k is not None and self.auxk_k < 1:
            problems.append(f"sae.auxk_k must be an int >= 1 or null. Got {self.auxk_k!r} instead.")
        prefixes = self.matryoshka_prefixes
        if prefixes and n_latents is None:
            problems.append("sae.matryoshka_prefixes needs a fixed sae.n_latents (an int, not auto).")
        elif (
            prefixes
            and n_latents is not None  # implied by the branch above; narrows the type
            and not (all(0 < m < n_latents for m in prefixes) and all(a < b for a, b in zip(prefixes, prefixes[1:])))
        ):
            problems.append(
                f"sae.matryoshka_prefixes must be increasing sizes in [1, sae.n_latents - 1 = {n_latents - 1}], "
                f"e.g. [{max(1, n_latents // 16)}, {max(1, n_latents // 4)}]. Got {prefixes!r} instead."
            )
        return problems


@dataclass
class TopKConfig(TopKFamilyConfig):
    """``sae.architecture=topk``: each document keeps its k largest latents."""

    adaptive_k: Literal["auto", "none", "input_nnz"] = "auto"
    """``input_nnz`` caps each document's code at its number of input non-zeros (the always-on ``dense_latents``
    included), so a code never takes more entries than the sparse vector it encodes; ``none`` gives every document k
    entries; ``auto`` = ``input_nnz`` when the source is sparse (TF-IDF), else ``none``."""
    multi_topk: bool = False
    """Train on recon(k) + recon(4k)/8 (Multi-TopK, Gao et al. 2024) so that one SAE can be read at other k
    (``encode.k``); default trains for k alone."""
    dense_latents: int | Literal["auto"] = 0
    """Latents 0 … m−1 are always active and signed (no ReLU, no TopK), and TopK picks the other k − m, so a code
    still has k entries. They give the code a few linear directions, which keep low-variance information a
    classifier needs (with ``train.label_loss_weight`` or ``train.dense_init=probe``); 0 is a plain TopK SAE.
    ``auto``: one per decision value of a classifier of the training labels (the number of classes, 1 for two
    classes), the size ``train.dense_init=probe`` needs; 0 without labels."""

    @property
    def always_on_latents(self) -> int:
        return 0 if self.dense_latents == "auto" else int(self.dense_latents)

    @property
    def has_always_on_latents(self) -> bool:
        return bool(self.dense_latents)

    def problems(self) -> list[str]:
        problems = super().problems()
        k = None if self.k == "auto" else self.k
        dense = None if self.dense_latents == "auto" else self.dense_latents
        if dense is not None and dense < 0:
            problems.append(f"sae.dense_latents must be auto or an int >= 0. Got {self.dense_latents!r} instead.")
        elif dense is not None and k is not None and k >= 1 and not dense < k:
            problems.append(
                f"sae.dense_latents must be auto or an int in [0, sae.k - 1 = {k - 1}]. Got {self.dense_latents!r} instead."
            )
        return problems


class AuxKMixin(SparseAutoencoder):
    """AuxK loss for the TopK family: dead latents are trained to model the reconstruction residual.

    With e = target − x̂ (x̂ detached), z_aux the ``k_aux`` largest pre-activations among dead
    latents (ReLU applied, others 0) and ê = z_aux @ W_dec (no b_dec):

        auxk = Σ_b ‖e_b − ê_b‖² / Σ_b ‖e_b − ē‖²,   total += cfg.auxk_coefficient · auxk

    ``k_aux`` = ``cfg.auxk_k`` or min(d_in // 2, 2k), and at most the number of dead latents. A
    sparse CSR target is densified to form e: x̂ is a dense ``(B, d_in)`` tensor anyway, so this
    doubles a cost already paid. For ``bce``, e is taken on probabilities (x̂ = sigmoid(logits)),
    a linear approximation of the residual.

    Also the Matryoshka loss of the TopK family (Bussmann et al. 2025, "Learning Multi-Level
    Features with Matryoshka Sparse Autoencoders"): with ``cfg.matryoshka_prefixes`` = m_1 < … < m_G,

        total += Σ_g recon(x̂_g),   x̂_g = decoding of the code's entries on latents 0 … m_g − 1

    The code itself (the top-k choice among all latents) is unchanged; each prefix must reconstruct
    the input on its own, so the first latents learn directions that every document needs and the
    later ones refine them.
    """

    cfg: TopKFamilyConfig

    @property
    def _k(self) -> int:
        """``cfg.k``, an int: a built SAE's sizes are resolved (:class:`SparseAutoencoder` refuses ``auto``)."""
        return cast(int, self.cfg.k)

    @property
    def k_aux(self) -> int:
        """Latents per row used by AuxK."""
        if self.cfg.auxk_k is not None:
            return min(self.cfg.auxk_k, self.n_latents)
        return max(1, min(self.d_in // 2, 2 * self._k, self.n_latents))

    def loss(self, out: SAEOutput, *, target: Tensor | None = None, dead_mask: Tensor | None = None) -> LossOutput:
        """As :meth:`SparseAutoencoder.loss`, plus Σ_g recon(prefix m_g) in ``total`` for ``cfg.matryoshka_prefixes``.

        ``reconstruction`` and ``fvu`` stay those of the whole code.
        """
        result = super().loss(out, target=target, dead_mask=dead_mask)
        if not self.cfg.matryoshka_prefixes:
            return result
        target = self._loss_target(out, target)
        nested = sum(
            self._reconstruction_loss(target, self._decode_prefix(out, m)) for m in self.cfg.matryoshka_prefixes
        )
        return result._replace(total=result.total + nested)

    def _decode_prefix(self, out: SAEOutput, n_prefix: int) -> Tensor:
        """Decoder logits ``(B, d_in)`` of the code's entries on latents 0 … n_prefix − 1 only."""
        if out.active is None:
            return out.codes[:, :n_prefix] @ self.W_dec[:n_prefix] + self.b_dec
        kept = torch.where(out.active.indices < n_prefix, out.active.values, torch.zeros_like(out.active.values))
        return self._decode_logits(None, out.active._replace(values=kept))

    def _auxk_penalty(self, out: SAEOutput, target: Tensor, dead_mask: Tensor | None) -> tuple[Tensor, float] | None:
        if dead_mask is None or self.cfg.auxk_coefficient == 0:
            return None
        weight = self.cfg.auxk_coefficient
        k_aux = self.k_aux
        if dead_mask.device.type == "cpu":
            # On CPU reading the dead count costs nothing, and the picks beyond it decode to zero:
            # skipping them (or the whole term when no latent is dead) gives the same loss and
            # gradients without the (B, k_aux) × d_in gather. On GPU auxk_loss stays sync-free.
            k_aux = min(k_aux, int(dead_mask.sum()))
            if k_aux == 0:
                return None
        dense_target = target.to_dense() if losses.is_sparse_csr(target) else target  # (B, d_in)
        residual = dense_target - out.x_hat.detach()  # (B, d_in)
        return losses.auxk_loss(out.pre_acts, residual, self.W_dec, dead_mask, k_aux), weight


@register_sae("topk", config=TopKConfig)
class TopKSAE(AuxKMixin):
    """TopK SAE: each row keeps its k largest pre-activations.

        z = ReLU(TopK_k(pre))        (k = cfg.k, the other n_latents − k entries are 0)
        loss = recon(k) + cfg.auxk_coefficient · auxk
        loss = recon(k) + recon(4k) / 8 + cfg.auxk_coefficient · auxk      (cfg.multi_topk)
        loss += Σ_g recon(prefix m_g)                                      (cfg.matryoshka_prefixes, see AuxKMixin)

    recon(k) = mean_b Σ_d (x − x̂_k)² (``mse``) or mean_b Σ_d BCE-with-logits (``bce``), x̂_k the
    decoding of the top-k code; auxk: see :class:`AuxKMixin`. The Multi-TopK term (Gao et al. 2024,
    "Scaling and evaluating sparse autoencoders", section 5.3) decodes the top-4k code of the same
    pre-activations, which teaches the dictionary to work at more than one k: the codes can then be
    read at another k with ``encode(x, k=...)`` (``encode.k`` in a recipe). Training and inference
    codes are the same at ``cfg.k``, and each row's code depends on that row only. The decoder
    reads only the B·k active rows of W_dec.

    With ``cfg.dense_latents`` = m > 0, latents 0 … m−1 are always in the code with their signed
    pre-activation, z_j = pre_j, and TopK picks k − m of the others: the code still has k entries
    (and k·4 bytes), of which m are a learned linear projection of the input, meant to carry
    directions every document needs (with the trainer's label-aware loss: class information with
    too little variance for the sparse latents). On SST-2 MiniLM embeddings m = 2 … 16 did not
    beat plain TopK beyond seed noise (docs/benchmarks.md).
    """

    cfg: TopKConfig

    @property
    def _dense_latents(self) -> int:
        """``cfg.dense_latents``, an int: a built SAE's sizes are resolved (:class:`SparseAutoencoder` refuses ``auto``)."""
        return cast(int, self.cfg.dense_latents)

    def __init__(self, d_in: int, cfg: SAEConfig) -> None:
        if isinstance(cfg, TopKConfig) and cfg.adaptive_k == "auto":
            # Resolved from the training data by build_sae(..., data); without data: no cap.
            cfg = dataclasses.replace(cfg, adaptive_k="none")
        super().__init__(d_in, cfg)

    def entry_limit(self, x: Tensor) -> Tensor | None:
        """With ``sae.adaptive_k=input_nnz`` a row's code has at most as many entries as the row has non-zeros, the
        always-on dense latents included: a document never takes more entries in its code than in its source. Dense
        and CSR input give the same limit."""
        if self.cfg.adaptive_k != "input_nnz":
            return None
        x = self._check_input(x, "x")
        return x.crow_indices().diff() if losses.is_sparse_csr(x) else (x != 0).sum(dim=1)

    def _activate(
        self, pre_acts: Tensor, *, train: bool, limit: Tensor | None = None, x_in: Tensor | None = None
    ) -> tuple[Tensor | None, ActiveCodes | None]:
        active = self._topk(pre_acts, self._k, limit, x_in=x_in if train and torch.is_grad_enabled() else None)
        # In training nothing needs the dense (B, n_latents) codes unless a label head reads SAEOutput.codes.
        return (None if train else active.to_dense(self.n_latents)), active

    def _activate_k(self, pre_acts: Tensor, k: int, limit: Tensor | None = None) -> Tensor:
        return self._topk(pre_acts, k, limit).to_dense(self.n_latents)

    def _topk(
        self, pre_acts: Tensor, k: int, limit: Tensor | None = None, *, x_in: Tensor | None = None
    ) -> ActiveCodes:
        """Codes with k entries per row: the ``cfg.dense_latents`` always-on latents (signed) and the k − m largest others (ReLU).

        With a per-row ``limit`` (B,), row b keeps at most limit_b entries: its min(k, limit_b) − m largest others,
        and when limit_b < m only the limit_b dense latents of largest magnitude. The :class:`ActiveCodes` list only
        the kept entries (the decoder reads that many rows of W_dec). With ``x_in`` (training), the kept values are
        gathered so that their gradient reaches the encoder through these k entries only.
        """
        n_rows, m = pre_acts.shape[0], self._dense_latents
        if x_in is None:
            values, indices = top_k(pre_acts[:, m:], k - m, sorted=limit is not None)  # (B, k − m) each
            dense_values = pre_acts[:, :m]
        else:
            with torch.no_grad():
                indices = top_k(pre_acts[:, m:], k - m, sorted=limit is not None)[1]  # (B, k − m)
            always = torch.arange(m, device=pre_acts.device).expand(n_rows, m)
            gathered = self.gather_pre_activations(pre_acts, x_in, torch.cat([always, indices + m], dim=1))
            dense_values, values = gathered[:, :m], gathered[:, m:]
        values = values.relu()
        keep = None
        if limit is not None:
            keep = torch.arange(k - m, device=pre_acts.device) < (limit - m).unsqueeze(1)  # (B, k − m)
            values = values * keep.to(values.dtype)
        if m:
            always_on = torch.arange(m, device=pre_acts.device).expand(n_rows, m)  # (B, m)
            if keep is not None and limit is not None:  # keep is set exactly when limit is
                rank = (
                    dense_values.abs().argsort(dim=1, descending=True, stable=True).argsort(dim=1)
                )  # (B, m): 0 = largest
                keep_dense = rank < limit.unsqueeze(1)
                dense_values = dense_values * keep_dense.to(dense_values.dtype)
                keep = torch.cat([keep_dense, keep], dim=1)
            indices = torch.cat([always_on, indices + m], dim=1)  # (B, k)
            values = torch.cat([dense_values, values], dim=1)  # (B, k)
        if keep is None:
            offsets = torch.arange(0, n_rows * k + 1, k, device=pre_acts.device)  # (B + 1,)
            return ActiveCodes(indices.reshape(-1), values.reshape(-1), offsets)
        offsets = torch.nn.functional.pad(
            keep.sum(dim=1).cumsum(dim=0), (1, 0)
        )  # (B + 1,); boolean masks keep row order
        return ActiveCodes(indices[keep], values[keep], offsets)

    @torch.no_grad()
    def set_dense_encoder(self, weights: Tensor, bias: Tensor) -> None:
        """Make the dense latents linear functions of the raw input: z_j = x · weights[j] + bias[j].

        Call after :meth:`init_from_data` (the input scaling and b_dec enter the encoder's weights and bias).

        Args:
            weights: ``(m, d_in)`` with m = ``cfg.dense_latents``.
            bias: ``(m,)``.

        Raises:
            UserError: If the shapes do not match the dense latents.
        """
        m = self._dense_latents
        if tuple(weights.shape) != (m, self.d_in) or tuple(bias.shape) != (m,):
            raise UserError(
                f"set_dense_encoder needs weights of shape ({m}, {self.d_in}) and bias of shape ({m},) for sae.dense_latents={m}. "
                f"Got {tuple(weights.shape)} and {tuple(bias.shape)} instead."
            )
        # pre_j = ((x − shift)·scale − c) · W_enc[:, j] + b_enc[j]; with W_enc[:, j] = w_j / scale this is
        # x·w_j − shift·w_j − c·W_enc[:, j] + b_enc[j], so b_enc[j] = b_j + shift·w_j + c·W_enc[:, j].
        columns = (weights.to(self.W_enc.dtype) / self.input_scale).T  # (d_in, m)
        # Re-fixed after every step: on CPU, unchanged columns are not rewritten, so W_enc's version, and the c·W_enc
        # the fused encoder step kept for the next forward, stay valid (on a GPU the comparison would wait for it).
        if self.W_enc.device.type != "cpu" or not torch.equal(self.W_enc[:, :m], columns):
            self.W_enc[:, :m] = columns
        self.b_enc[:m] = (
            bias.to(self.b_enc.dtype) + weights.to(self.b_enc.dtype) @ self.input_shift + self._input_center() @ columns
        )
        # Without this, a loss on the fixed latents would still move b_dec through the centring c, against reconstruction.
        self.fixed_columns = m

    def check_inference_k(self, k: int) -> int:
        """As :meth:`SparseAutoencoder.check_inference_k`; with dense latents k must also exceed their number."""
        k = super().check_inference_k(k)
        if k <= self._dense_latents:
            raise UserError(
                f"The inference 'k' of {type(self).__name__} must exceed sae.dense_latents={self.cfg.dense_latents}. Got {k!r} instead."
            )
        return k

    @property
    def multi_k(self) -> int:
        """Latents per row of the Multi-TopK term: ``min(MULTI_TOPK_FACTOR · k, n_latents)``."""
        return min(MULTI_TOPK_FACTOR * self._k, self.n_latents)

    def loss(self, out: SAEOutput, *, target: Tensor | None = None, dead_mask: Tensor | None = None) -> LossOutput:
        """As :meth:`SparseAutoencoder.loss`, plus ``recon(4k) / 8`` in ``total`` when ``cfg.multi_topk``.

        ``reconstruction`` and ``fvu`` stay those of the top-k code.
        """
        result = super().loss(out, target=target, dead_mask=dead_mask)
        if not self.cfg.multi_topk:
            return result
        target = self._loss_target(out, target)
        extra = self._reconstruction_loss(
            target, self._decode_logits(None, self._topk(out.pre_acts, self.multi_k, out.limit))
        )
        return result._replace(total=result.total + MULTI_TOPK_WEIGHT * extra)
