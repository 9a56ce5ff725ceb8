"""Base class of the SAE family: normalisation, encoder, decoder, losses, save/load.

Shapes: ``B`` rows (documents), ``d_in`` input dimensions, ``n_latents`` latents. An input ``x`` is
a dense ``(B, d_in)`` tensor or a torch sparse CSR tensor (TF-IDF); a sparse input is never
densified on the way through the encoder.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import json
import math
import os
from pathlib import Path
from typing import Any, NamedTuple, cast

import torch
from torch import Tensor

from textsae._io import atomic_save_safetensors, atomic_write_json, library_versions
from textsae.config.schema import SAEConfig, to_dict
from textsae.errors import ConfigError, UserError
from textsae.sae import losses
from textsae.sae.decoder import sparse_decode
from textsae.sae.encoder import encoder_pre_activations, gathered_pre_activations
from textsae.sae.neighbours import neighbourhood_means
from textsae.sae.selection import top_k

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "ActiveCodes", "LossOutput", "SAEOutput", "SparseAutoencoder"]

CONFIG_NAME = "config.json"
"""File holding architecture, ``d_in``, the SAE config and library versions."""
WEIGHTS_NAME = "model.safetensors"
"""File holding every parameter and buffer."""

INIT_SAMPLE_ROWS = 8192
"""Training rows that set the input scaling and b_dec (and at least this many for a data-initialised decoder)."""
NEIGHBOURHOOD_SAMPLE_FACTOR = 8
"""``decoder_init=neighbours``: sample rows per decoder row, among which each seed document's neighbours are found."""

BCE_INIT_CLAMP = 1e-5
"""For ``bce``, b_dec starts at logit(clamp(mean(x), BCE_INIT_CLAMP, 1 − BCE_INIT_CLAMP)); never-seen terms get logit(1e-5) ≈ −11.5."""


class ActiveCodes(NamedTuple):
    """Codes as a flat list of active entries, for a decoder that touches only active rows of W_dec."""

    indices: Tensor
    """Latent index of each active entry ``(N,)``, grouped by row."""
    values: Tensor
    """Activation of each entry ``(N,)``."""
    offsets: Tensor
    """Start of each row's entries, plus the end: ``(B + 1,)`` (CSR ``crow_indices`` layout)."""

    def to_dense(self, n_latents: int) -> Tensor:
        """The codes as a dense ``(B, n_latents)`` tensor, zeros where inactive; differentiable in ``values``."""
        n_rows = self.offsets.numel() - 1
        rows = torch.repeat_interleave(
            torch.arange(n_rows, device=self.indices.device), self.offsets.diff(), output_size=self.indices.numel()
        )
        dense = torch.zeros(n_rows, n_latents, dtype=self.values.dtype, device=self.values.device)
        return dense.index_put((rows, self.indices), self.values)


@dataclasses.dataclass(frozen=True, eq=False)
class SAEOutput:
    """What :meth:`SparseAutoencoder.forward` returns. Everything is in normalised (model) space."""

    x_in: Tensor
    """Normalised input as the model sees it: dense ``(B, d_in)``, or sparse CSR when the input was sparse."""
    x_hat: Tensor
    """Dense reconstruction ``(B, d_in)``; probabilities for ``bce``."""
    recon_logits: Tensor
    """Decoder output before the output non-linearity ``(B, d_in)``; for ``mse`` the same tensor as ``x_hat``."""
    dense_codes: Tensor | None
    """The codes as the architecture made them densely, or None when it made only :attr:`active` (see :attr:`codes`)."""
    pre_acts: Tensor
    """Encoder pre-activations ``(B, n_latents)``."""
    active: ActiveCodes | None = None
    """The codes as a flat list of active entries when the architecture makes them (TopK; BatchTopK in training), else None."""
    limit: Tensor | None = None
    """Most entries each row's code may have ``(B,)`` (``sae.adaptive_k=input_nnz``), else None."""

    def __post_init__(self) -> None:
        if self.dense_codes is None and self.active is None:
            raise ValueError("SAEOutput needs dense_codes or active codes.")

    @functools.cached_property
    def codes(self) -> Tensor:
        """Dense ``(B, n_latents)``, zeros where inactive: the activations the reconstruction used.

        A TopK-family SAE in training makes only :attr:`active`; the dense form is then built on first use (a label
        head reads it), so a training step that does not need it never fills a ``(B, n_latents)`` tensor.
        """
        if self.dense_codes is not None:
            return self.dense_codes
        assert self.active is not None  # __post_init__
        return self.active.to_dense(self.pre_acts.shape[1])

    def _replace(self, **changes: Any) -> SAEOutput:
        """A copy with ``changes`` applied (the NamedTuple spelling, kept for callers)."""
        return dataclasses.replace(self, **changes)


class LossOutput(NamedTuple):
    """Loss terms (scalar tensors). ``sparsity`` and ``auxk`` are unweighted; ``total`` applies the weights.

    total = reconstruction + w_sparsity · sparsity + w_auxk · auxk, with each weight from the architecture's config
    (e.g. ``sae.l1``, ``sae.beta``, ``sae.auxk_coefficient``). Terms that do not apply are zero tensors.
    """

    total: Tensor
    """The quantity to minimise."""
    reconstruction: Tensor
    """mean_b Σ_d (x − x̂)² (``mse``) or mean_b Σ_d BCE (``bce``)."""
    sparsity: Tensor
    """The architecture's sparsity penalty (L1, KL, L0 …), before its coefficient."""
    auxk: Tensor
    """Normalised AuxK loss (TopK family), before its coefficient."""
    fvu: Tensor
    """Detached fraction of variance unexplained against the target, in normalised space."""


def _describe(x: Any) -> str:
    if isinstance(x, Tensor):
        return f"a {x.layout} tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    return f"an object of type {type(x).__name__}"


class SparseAutoencoder(torch.nn.Module, abc.ABC):
    """Sparse autoencoder base class.

    In normalised space x' = (x − shift) · scale (see :meth:`normalize`):

        pre = (x' − c) @ W_enc + b_enc,   c = b_dec (``mse``) or sigmoid(b_dec) (``bce``)
        z   = activation(pre)                         (one per architecture)
        x̂   = z @ W_dec + b_dec                       (``mse``)
        x̂   = sigmoid(z @ W_dec + b_dec)              (``bce``)

    For ``bce`` the decoder bias is a logit, so the encoder centres the input on its probability
    sigmoid(b_dec) rather than on the logit itself.

    Args:
        d_in: Input dimension.
        cfg: SAE configuration; ``cfg.architecture`` must be this class's registered name.

    Raises:
        UserError: If ``d_in`` < 1 or ``cfg.architecture`` names another architecture.
    """

    architecture: str = ""
    """Registered name, set by :func:`textsae.sae.registry.register_sae`."""
    config_class: type[SAEConfig] = SAEConfig
    """The architecture's config dataclass, set by :func:`textsae.sae.registry.register_sae`."""
    input_scale: Tensor
    """Buffer ``(d_in,)``: the scale of :meth:`normalize`."""
    input_shift: Tensor
    """Buffer ``(d_in,)``: the shift of :meth:`normalize`."""

    def __init__(self, d_in: int, cfg: SAEConfig) -> None:
        super().__init__()
        if isinstance(d_in, bool) or not isinstance(d_in, int) or d_in < 1:
            raise UserError(f"The 'd_in' parameter of {type(self).__name__} must be an int >= 1. Got {d_in!r} instead.")
        if cfg.architecture != self.architecture:
            raise UserError(
                f"{type(self).__name__} needs sae.architecture={self.architecture!r}. Got {cfg.architecture!r} instead; "
                "use textsae.sae.build_sae(cfg, d_in) to pick the class from the config."
            )
        if not isinstance(cfg, self.config_class):
            raise UserError(
                f"{type(self).__name__} needs a {self.config_class.__name__}. Got a {type(cfg).__name__} instead; "
                "build the config with SAEConfig(architecture=..., ...)."
            )
        if cfg.has_auto_sizes:
            auto = ", ".join(f"sae.{k}=auto" for k, v in to_dict(cfg).items() if v == "auto")
            raise UserError(
                f"{auto}: 'auto' sizes come from the training data; build the SAE with "
                "textsae.sae.build_sae(cfg, d_in, data=DataShape.of(features))."
            )
        self.d_in = d_in
        self.n_latents: int = cast(int, cfg.n_latents)  # not 'auto': refused just above
        self.cfg = cfg
        W_dec = torch.randn(self.n_latents, d_in)  # (n_latents, d_in)
        W_dec /= W_dec.norm(dim=1, keepdim=True).clamp_min(torch.finfo(W_dec.dtype).tiny)
        if cfg.tied_init:
            W_enc = W_dec.T.clone(memory_format=torch.contiguous_format)  # (d_in, n_latents)
        else:
            W_enc = torch.randn(d_in, self.n_latents)
            W_enc /= W_enc.norm(dim=0, keepdim=True).clamp_min(torch.finfo(W_enc.dtype).tiny)
        self.W_enc = torch.nn.Parameter(W_enc)
        self.b_enc = torch.nn.Parameter(torch.zeros(self.n_latents))
        self.W_dec = torch.nn.Parameter(W_dec)
        self.b_dec = torch.nn.Parameter(torch.zeros(d_in))
        self.register_buffer("input_scale", torch.ones(d_in))
        self.register_buffer("input_shift", torch.zeros(d_in))
        self.fixed_columns = 0
        """The first encoder columns that hold fixed functions of the input (TopK ``set_dense_encoder``): b_dec gets
        no gradient through them. Set for training only; not saved (inference needs no gradient)."""

    def extra_repr(self) -> str:
        return f"architecture={self.architecture!r}, d_in={self.d_in}, n_latents={self.n_latents}"

    # ----------------------------------------------------------------------------- input checks

    def _check_input(self, x: Any, name: str) -> Tensor:
        """Return ``x`` as a dense or sparse CSR ``(B, d_in)`` tensor, or raise a UserError."""
        ok = isinstance(x, Tensor) and x.dim() == 2 and x.shape[1] == self.d_in
        ok = ok and x.layout in (torch.strided, torch.sparse_csr, torch.sparse_coo)
        if not ok:
            raise UserError(
                f"The input {name!r} of {type(self).__name__} must be a dense or sparse CSR tensor of shape "
                f"(B, d_in={self.d_in}). Got {_describe(x)} instead."
            )
        if x.layout == torch.sparse_coo:
            x = x.to_sparse_csr()
        return x

    def _check_sparse_allowed(self) -> None:
        if self.cfg.input_scaling == "standardize":
            raise UserError(
                "sae.input_scaling=standardize subtracts a per-dimension mean, which would make sparse "
                "input dense. Use sae.input_scaling=mean_norm or none for sparse (TF-IDF) features."
            )

    # ---------------------------------------------------------------------------- normalisation

    def normalize(self, x: Tensor) -> Tensor:
        """Map raw input to model space: (x − input_shift) · input_scale.

        A sparse CSR input stays sparse: its values are multiplied by ``input_scale[col]`` (the
        shift must be zero). The result has the parameters' dtype.

        Args:
            x: Raw input, dense ``(B, d_in)`` or sparse CSR (or COO, converted to CSR).

        Returns:
            Normalised input with the layout of ``x`` (CSR for sparse input).

        Raises:
            UserError: If ``x`` has the wrong type or shape, or is sparse while ``input_scaling`` is
                ``standardize``.
        """
        x = self._check_input(x, "x")
        dtype = self.W_enc.dtype
        if not losses.is_sparse_csr(x):
            return ((x - self.input_shift) * self.input_scale).to(dtype)  # (B, d_in)
        self._check_sparse_allowed()
        cols = x.col_indices()
        values = (x.values() * self.input_scale[cols]).to(dtype)  # (nnz,)
        return torch.sparse_csr_tensor(
            x.crow_indices(), cols, values, size=x.shape, dtype=dtype, device=values.device, check_invariants=False
        )

    def denormalize(self, x_hat: Tensor) -> Tensor:
        """Map a dense reconstruction from model space back to raw space: x_hat / input_scale + input_shift.

        Args:
            x_hat: Dense ``(B, d_in)`` tensor in model space.

        Returns:
            Dense ``(B, d_in)`` tensor in raw space.
        """
        return x_hat / self.input_scale + self.input_shift

    @torch.no_grad()
    def init_from_data(self, x_sample: Tensor) -> None:
        """Set the input scaling from a data sample, then b_dec from the normalised sample.

        ``cfg.input_scaling``: ``mean_norm`` sets one scalar scale so that the mean row norm of the
        normalised sample is √d_in; ``standardize`` sets per-dimension mean and std (dense input
        only; constant dimensions keep scale 1); ``none`` keeps the identity. Then b_dec = mean of
        the normalised sample (``mse``) or logit(clamp(mean, ε, 1 − ε)) (``bce``).

        Args:
            x_sample: Raw rows, dense ``(N, d_in)`` or sparse CSR.

        Raises:
            UserError: If the sample is empty, all zeros under ``mean_norm``, or sparse under ``standardize``.
        """
        x = self._check_input(x_sample, "x_sample")
        n_rows = x.shape[0]
        if n_rows == 0:
            raise UserError(
                f"init_from_data of {type(self).__name__} needs at least one row in 'x_sample'. Got 0 rows."
            )
        sparse = losses.is_sparse_csr(x)
        if sparse:
            self._check_sparse_allowed()
        scaling = self.cfg.input_scaling
        self.input_shift.zero_()
        self.input_scale.fill_(1.0)
        if scaling == "mean_norm":
            mean_norm = float(self._row_norms(x).mean())
            if not mean_norm > 0 or not math.isfinite(mean_norm):
                raise UserError(
                    f"sae.input_scaling=mean_norm needs rows with a finite, non-zero norm. Got a mean row norm of {mean_norm} "
                    f"over {n_rows} rows of 'x_sample'."
                )
            self.input_scale.fill_(math.sqrt(self.d_in) / mean_norm)
        elif scaling == "standardize":
            dense = losses._acc(x)
            std = dense.std(dim=0, unbiased=False)  # (d_in,)
            self.input_shift.copy_(dense.mean(dim=0))
            self.input_scale.copy_(torch.where(std > 0, 1.0 / std, torch.ones_like(std)))
        mean_in = self._column_mean(self.normalize(x))  # (d_in,)
        if self.cfg.reconstruction == "bce":
            mean_in = torch.logit(mean_in.clamp(BCE_INIT_CLAMP, 1.0 - BCE_INIT_CLAMP))
        self.b_dec.copy_(mean_in)
        if self.cfg.decoder_init == "data":
            self._init_decoder_from_rows(x)
        elif self.cfg.decoder_init == "neighbours":
            directions = neighbourhood_means(self.normalize(x), self._input_center(), self.n_latents)
            self.W_dec.data.copy_(directions.to(self.W_dec.dtype))
            if self.cfg.tied_init:
                self.W_enc.data.copy_(self.W_dec.data.T)

    def init_sample_rows(self) -> int:
        """How many training rows :meth:`init_from_data` should see: at least ``INIT_SAMPLE_ROWS``, one per decoder
        row for ``decoder_init=data``, ``NEIGHBOURHOOD_SAMPLE_FACTOR`` per row for ``decoder_init=neighbours``."""
        per_latent = NEIGHBOURHOOD_SAMPLE_FACTOR if self.cfg.decoder_init == "neighbours" else 1
        return max(INIT_SAMPLE_ROWS, per_latent * self.n_latents)

    def _init_decoder_from_rows(self, x: Tensor, chunk_rows: int = 1024) -> None:
        """Decoder rows = unit-norm centred rows of the sample (random rows where the sample is smaller).

        Rows are densified ``chunk_rows`` at a time, so peak memory stays near the decoder's own size.
        """
        n_rows = min(x.shape[0], self.n_latents)
        chosen = torch.randperm(x.shape[0])[:n_rows]
        source = x.to_sparse_coo() if losses.is_sparse_csr(x) else x
        center = self._input_center()
        tiny = torch.finfo(self.W_dec.dtype).tiny
        for begin in range(0, n_rows, chunk_rows):
            index = chosen[begin : begin + chunk_rows]
            picked = source.index_select(0, index)
            rows = losses._acc(picked.to_dense() if picked.layout == torch.sparse_coo else picked)
            centred = self.normalize(rows) - center  # (chunk, d_in)
            norms = centred.norm(dim=1, keepdim=True)
            usable = norms.squeeze(1) > 0
            block = self.W_dec.data[begin : begin + len(index)]
            block[usable] = (centred / norms.clamp_min(tiny))[usable].to(self.W_dec.dtype)
        if self.cfg.tied_init:
            self.W_enc.data.copy_(self.W_dec.data.T)

    @staticmethod
    def _row_norms(x: Tensor) -> Tensor:
        """‖x_b‖₂ for each row ``(B,)``, dense or CSR."""
        if not losses.is_sparse_csr(x):
            return losses._acc(x).norm(dim=1)
        rows, _, values = losses.csr_parts(x)
        values = losses._acc(values)
        sq = torch.zeros(x.shape[0], dtype=values.dtype, device=values.device)
        return sq.index_add_(0, rows, values.square()).sqrt()

    @staticmethod
    def _column_mean(x: Tensor) -> Tensor:
        """Mean over rows ``(d,)``, dense or CSR."""
        if not losses.is_sparse_csr(x):
            return losses._acc(x).mean(dim=0)
        _, cols, values = losses.csr_parts(x)
        values = losses._acc(values)
        total = torch.zeros(x.shape[1], dtype=values.dtype, device=values.device)
        return total.index_add_(0, cols, values) / x.shape[0]

    # -------------------------------------------------------------------------- encoder/decoder

    def _input_center(self) -> Tensor:
        """c, subtracted from the input before the encoder ``(d_in,)``: b_dec, or sigmoid(b_dec) for ``bce``."""
        return torch.sigmoid(self.b_dec) if self.cfg.reconstruction == "bce" else self.b_dec

    def pre_activations(self, x_in: Tensor, *, training: bool = False) -> Tensor:
        """Encoder pre-activations (x_in − c) @ W_enc + b_enc for normalised input.

        Computed as x_in @ W_enc − c @ W_enc + b_enc, so the input is never densified or shifted: for sparse CSR
        ``x_in`` the product is an ``embedding_bag`` over the non-zeros (on CPU, 1 thread, torch 2.13, B=256,
        d_in=30,000, 300 nnz/row, 4,096 latents: 0.42 s forward + backward against 0.75-1.06 s for torch.sparse.mm).
        The backward multiplies only through the non-zeros of the gradient when a TopK-family loss leaves few
        (:mod:`textsae.sae.encoder`).

        Args:
            x_in: Normalised input, dense ``(B, d_in)`` or sparse CSR.
            training: A training step's forward, whose rows may round differently with their batch
                (:func:`~textsae.sae.encoder.encoder_pre_activations`); else each row's values depend on that row only.

        Returns:
            Dense ``(B, n_latents)``.
        """
        return encoder_pre_activations(
            x_in, self.W_enc, self.b_enc, self._input_center(), self.fixed_columns, training=training
        )

    def gather_pre_activations(self, pre_acts: Tensor, x_in: Tensor, indices: Tensor) -> Tensor:
        """``pre_acts.gather(1, indices)`` with the encoder gradient through those entries only (no dense ∂pre).

        Args:
            pre_acts: Output of :meth:`pre_activations` for ``x_in``.
            x_in: Normalised input.
            indices: ``(B, S)`` latents per row, distinct within a row.
        """
        return gathered_pre_activations(
            pre_acts, x_in, self.W_enc, self.b_enc, self._input_center(), indices, self.fixed_columns
        )

    def entry_limit(self, x: Tensor) -> Tensor | None:
        """Most code entries per row ``(B,)`` for raw input ``x``, or None when codes have no per-row limit.

        Architectures whose codes have a size limit per row (TopK's ``sae.adaptive_k=input_nnz``) override this.
        """
        return None

    @abc.abstractmethod
    def _activate(
        self, pre_acts: Tensor, *, train: bool, limit: Tensor | None = None, x_in: Tensor | None = None
    ) -> tuple[Tensor | None, ActiveCodes | None]:
        """Codes from pre-activations.

        Args:
            pre_acts: ``(B, n_latents)``.
            train: Training activation (True) or inference activation (False).
            limit: Most entries per row ``(B,)`` (see :meth:`entry_limit`); only TopK supports it.
            x_in: The normalised input ``pre_acts`` came from, in training; an architecture that keeps few entries
                may route their gradient through :func:`~textsae.sae.encoder.gathered_pre_activations`.

        Returns:
            Dense codes ``(B, n_latents)``, and the same codes as :class:`ActiveCodes` when they are
            sparse by construction (the decoder then reads only the active rows of W_dec), else None. In training
            (``train=True``) an architecture that returns :class:`ActiveCodes` may return None for the dense codes:
            :attr:`SAEOutput.codes` builds them when read. With ``train=False`` the dense codes are always returned.
        """

    def _decode_logits(self, codes: Tensor | None, active: ActiveCodes | None = None) -> Tensor:
        """Decoder output before the output non-linearity, in model space ``(B, d_in)``.

        With ``active`` (TopK family), a sum over the B·k active rows of W_dec
        (:func:`~textsae.sae.decoder.sparse_decode`) replaces the dense ``codes @ W_dec``: O(B·k·d_in) instead of
        O(B·n_latents·d_in). Both give the same values and gradients (tested).
        """
        if active is None:
            assert codes is not None  # one of the two is always given
            return codes @ self.W_dec + self.b_dec  # (B, d_in)
        recon = sparse_decode(active.indices, active.values.to(self.W_dec.dtype), active.offsets, self.W_dec)
        return recon + self.b_dec  # (B, d_in)

    def _output(self, recon_logits: Tensor) -> Tensor:
        return torch.sigmoid(recon_logits) if self.cfg.reconstruction == "bce" else recon_logits

    def forward(self, x: Tensor) -> SAEOutput:
        """Encode and reconstruct raw input.

        In training mode the architecture's training activation is used (for ``batchtopk``: top B·k
        over the batch, which also updates the threshold); in eval mode the inference activation,
        the same codes as :meth:`encode`.

        Args:
            x: Raw input, dense ``(B, d_in)`` or sparse CSR.

        Returns:
            :class:`SAEOutput`, in normalised space.

        Raises:
            UserError: If ``x`` has the wrong type or shape.
        """
        x_in = self.normalize(x)
        limit = self.entry_limit(x)
        pre_acts = self.pre_activations(x_in, training=self.training)  # (B, n_latents)
        codes, active = self._activate(pre_acts, train=self.training, limit=limit, x_in=x_in)
        recon_logits = self._decode_logits(codes, active)  # (B, d_in)
        return SAEOutput(x_in, self._output(recon_logits), recon_logits, codes, pre_acts, active, limit)

    def active_mask(self, codes: Tensor) -> Tensor:
        """Which entries of training-time ``codes`` belong to the sparse code (for L0 and dead-latent counts)."""
        return codes != 0

    def encode(self, x: Tensor, *, k: int | None = None) -> Tensor:
        """Inference sparse code of raw input; each row's code depends on that row only.

        Always inference semantics, also in training mode. Runs with autograd as the caller set it
        (wrap in ``torch.no_grad()`` for inference).

        Args:
            x: Raw input, dense ``(B, d_in)`` or sparse CSR.
            k: Keep at most this many active latents per row (the largest); ``None`` keeps the
                architecture's own code. A TopK SAE takes the k largest pre-activations, so k may
                exceed ``cfg.k`` (useful after Multi-TopK training); the others keep the k largest
                entries of their usual code.

        Returns:
            Dense codes ``(B, n_latents)``, zeros where inactive.

        Raises:
            UserError: If ``x`` has the wrong type or shape, or ``k`` is not in [1, n_latents].
        """
        limit = self.entry_limit(x)
        pre_acts = self.pre_activations(self.normalize(x))  # (B, n_latents)
        if k is None:
            return self._inference_codes(pre_acts, limit)
        return self._activate_k(pre_acts, self.check_inference_k(k), limit)

    def check_inference_k(self, k: int) -> int:
        """``k`` if it is a valid inference k (an int in [1, n_latents]), else a UserError."""
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.n_latents:
            raise UserError(
                f"The inference 'k' of {type(self).__name__} must be an int in [1, n_latents={self.n_latents}]. Got {k!r} instead."
            )
        return k

    def _inference_codes(self, pre_acts: Tensor, limit: Tensor | None) -> Tensor:
        """Dense inference codes ``(B, n_latents)`` (``_activate`` with ``train=False`` always makes them)."""
        codes, _ = self._activate(pre_acts, train=False, limit=limit)
        if codes is None:
            raise RuntimeError(f"{type(self).__name__}._activate(train=False) returned no dense codes.")
        return codes

    def _activate_k(self, pre_acts: Tensor, k: int, limit: Tensor | None = None) -> Tensor:
        """Inference codes with at most ``k`` active latents per row: the k largest of the usual code."""
        codes = self._inference_codes(pre_acts, limit)  # (B, n_latents)
        values, indices = top_k(codes, k)  # (B, k) each
        return torch.zeros_like(codes).scatter(1, indices, values)

    def decode(self, codes: Tensor) -> Tensor:
        """Raw-space reconstruction of codes: denormalize(x̂), with x̂ = sigmoid(logits) for ``bce``.

        Args:
            codes: Dense ``(B, n_latents)``, or sparse CSR (only its non-zeros are read).

        Returns:
            Dense ``(B, d_in)``.

        Raises:
            UserError: If ``codes`` has the wrong type or shape.
        """
        if not (isinstance(codes, Tensor) and codes.dim() == 2 and codes.shape[1] == self.n_latents):
            raise UserError(
                f"The input 'codes' of {type(self).__name__}.decode must be a dense or sparse CSR tensor of shape "
                f"(B, n_latents={self.n_latents}). Got {_describe(codes)} instead."
            )
        if codes.layout == torch.sparse_coo:
            codes = codes.to_sparse_csr()
        active = None
        if losses.is_sparse_csr(codes):
            active = ActiveCodes(codes.col_indices(), codes.values(), codes.crow_indices())
        elif not torch.is_autocast_enabled(codes.device.type):
            codes = codes.to(self.W_dec.dtype)
        return self.denormalize(self._output(self._decode_logits(codes, active)))

    # ------------------------------------------------------------------------------------ losses

    def _sparsity_penalty(self, out: SAEOutput) -> tuple[Tensor, float] | None:
        """Unweighted sparsity penalty and its weight, or None when the architecture has none."""
        return None

    def _auxk_penalty(self, out: SAEOutput, target: Tensor, dead_mask: Tensor | None) -> tuple[Tensor, float] | None:
        """Unweighted AuxK loss and its weight, or None when the architecture has none (or no latent is dead)."""
        return None

    def loss(self, out: SAEOutput, *, target: Tensor | None = None, dead_mask: Tensor | None = None) -> LossOutput:
        """Loss terms for a forward output.

        Args:
            out: Output of :meth:`forward`.
            target: What to reconstruct, in normalised space (dense or sparse CSR ``(B, d_in)``);
                defaults to ``out.x_in``. A denoising SAE passes ``sae.normalize(x_clean)``.
            dead_mask: Bool ``(n_latents,)``, True for dead latents (AuxK, TopK family).

        Returns:
            :class:`LossOutput`.

        Raises:
            ValueError: If ``target`` or ``dead_mask`` has the wrong shape.
        """
        target = self._loss_target(out, target)
        if tuple(target.shape) != tuple(out.x_hat.shape):
            raise ValueError(
                f"'target' must have the shape of x_hat {tuple(out.x_hat.shape)}. Got {tuple(target.shape)} instead."
            )
        if dead_mask is not None and (dead_mask.dtype != torch.bool or tuple(dead_mask.shape) != (self.n_latents,)):
            raise ValueError(
                f"'dead_mask' must be a bool tensor of shape ({self.n_latents},). "
                f"Got dtype {dead_mask.dtype} and shape {tuple(dead_mask.shape)} instead."
            )
        if self.cfg.reconstruction == "mse":  # the squared errors serve the loss and the FVU metric alike
            errors = losses.squared_error_per_sample(target, out.x_hat)  # (B,)
            reconstruction = errors.mean()
            fvu = errors.detach().sum() / losses.total_variance(target)
        else:
            reconstruction = self._reconstruction_loss(target, out.recon_logits)
            fvu = losses.fvu(target, out.x_hat)
        zero = torch.zeros((), dtype=reconstruction.dtype, device=reconstruction.device)
        total = reconstruction
        sparsity = auxk = zero
        penalty = self._sparsity_penalty(out)
        if penalty is not None:
            sparsity, weight = penalty
            total = total + weight * sparsity
        aux = self._auxk_penalty(out, target, dead_mask)
        if aux is not None:
            auxk, weight = aux
            total = total + weight * auxk
        return LossOutput(total, reconstruction, sparsity, auxk, fvu)

    @staticmethod
    def _loss_target(out: SAEOutput, target: Tensor | None) -> Tensor:
        """What :meth:`loss` reconstructs: ``target``, or the model's input ``out.x_in``; COO becomes CSR."""
        target = out.x_in if target is None else target
        return target.to_sparse_csr() if target.layout == torch.sparse_coo else target

    def _reconstruction_loss(self, target: Tensor, recon_logits: Tensor) -> Tensor:
        """mean_b Σ_d (x − x̂)² (``mse``) or mean_b Σ_d BCE (``bce``) of decoder logits against ``target``."""
        if self.cfg.reconstruction == "bce":
            return losses.bce_with_logits_per_sample(target, recon_logits).mean()
        return losses.squared_error_per_sample(target, self._output(recon_logits)).mean()

    # ------------------------------------------------------------------------ decoder constraints

    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        """Rescale every decoder row to unit L2 norm, in place; no-op when ``cfg.normalize_decoder`` is False."""
        if not self.cfg.normalize_decoder:
            return
        norms = self.W_dec.norm(dim=1, keepdim=True)  # (n_latents, 1)
        self.W_dec.div_(norms.clamp_min(torch.finfo(norms.dtype).tiny))

    @torch.no_grad()
    def remove_parallel_grad_(self) -> None:
        """Remove from each row of ``W_dec.grad`` its component along that row: g ← g − (⟨g, w⟩/‖w‖²) w.

        Call between ``backward()`` and the optimiser step so that the step keeps the row norms
        (to first order); :meth:`normalize_decoder_` after the step removes the rest. No-op when
        ``cfg.normalize_decoder`` is False or there is no gradient.
        """
        grad = self.W_dec.grad
        if not self.cfg.normalize_decoder or grad is None:
            return
        W = self.W_dec
        sq_norms = torch.linalg.vector_norm(W, dim=1).square().clamp_min(torch.finfo(W.dtype).tiny)  # (n_latents,)
        parallel = (_row_dots(grad, W) / sq_norms).unsqueeze(1)  # (n_latents, 1)
        grad.addcmul_(parallel, W, value=-1.0)

    # ---------------------------------------------------------------------------------- save/load

    def save_pretrained(self, directory: str | os.PathLike[str]) -> None:
        """Write ``config.json`` and ``model.safetensors`` (all parameters and buffers) into ``directory``.

        Both files are written atomically, weights first, so a reader sees old or new files, never
        a partial one.

        Args:
            directory: Output folder, created when missing.
        """
        directory = Path(directory)
        tensors = {name: t.detach().to("cpu").contiguous() for name, t in self.state_dict().items()}
        # One metadata key only: safetensors writes metadata in hash order, so two keys would give the same
        # weights different bytes from one process to the next. The architecture is in config.json.
        atomic_save_safetensors(directory / WEIGHTS_NAME, tensors, {"format": "pt"})
        config = {
            "architecture": self.architecture,
            "d_in": self.d_in,
            "sae": to_dict(self.cfg),
            "versions": library_versions(),
        }
        atomic_write_json(directory / CONFIG_NAME, config)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str]) -> SparseAutoencoder:
        """Load an SAE written by :meth:`save_pretrained`, as the subclass its config names.

        Args:
            directory: Folder holding ``config.json`` and ``model.safetensors``.

        Returns:
            The SAE on CPU, in eval mode.

        Raises:
            UserError: Naming the file, if a file is missing, unreadable, corrupt, from another
                program, or does not match the config (missing tensor, shape), or if the stored
                architecture is not a subclass of ``cls``.
        """
        from textsae.sae.registry import SAE_REGISTRY

        directory = Path(directory)
        config_path = directory / CONFIG_NAME
        d_in, cfg = _read_config(config_path)
        sae_cls = SAE_REGISTRY.get(cfg.architecture)
        if sae_cls is None:
            raise UserError(
                f"{config_path}: unknown SAE architecture {cfg.architecture!r}. Expected one of {sorted(SAE_REGISTRY)}."
            )
        if not issubclass(sae_cls, cls):
            raise UserError(
                f"{config_path} holds a {sae_cls.__name__} ({cfg.architecture!r}), which is not a {cls.__name__}."
            )
        sae = sae_cls(d_in, cfg)
        sae._load_weights(directory / WEIGHTS_NAME)
        return sae.eval()

    def _load_weights(self, path: Path) -> None:
        """Load and check a safetensors file against this model's state dict."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        if not path.is_file():
            raise UserError(f"{path}: weights file not found. Expected {WEIGHTS_NAME} written by save_pretrained.")
        try:
            state = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as err:
            raise UserError(f"{path}: not a readable safetensors file (corrupt or truncated?): {err}") from err
        expected = self.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise UserError(
                f"{path}: does not hold the tensors of a {type(self).__name__}. Missing {missing}, unexpected {unexpected}; "
                f"expected exactly {sorted(expected)}."
            )
        for name in expected:  # state-dict order: W_enc is reported before W_dec
            tensor, want = state[name], tuple(expected[name].shape)
            if tuple(tensor.shape) != want or not tensor.is_floating_point():
                raise UserError(
                    f"{path}: tensor {name!r} has shape {tuple(tensor.shape)} and dtype {tensor.dtype}; "
                    f"the config (d_in={self.d_in}, n_latents={self.n_latents}) expects a floating tensor of shape {want}."
                )
        self.load_state_dict(state)


def _row_dots(a: Tensor, b: Tensor, chunk_elements: int = 1 << 22) -> Tensor:
    """⟨a_i, b_i⟩ for every row ``(n,)``, in row blocks of about ``chunk_elements`` so no temporary is weight-sized.

    At 4,096 × 30,000 on one CPU thread the elementwise product and row sum took 85 ms against 183 ms for a batched
    (1 × d)·(d × 1) bmm, but a product as large as the weights costs fresh pages every step. The product buffer and the
    result are made once, before the loop: a small result allocated after each block's product used to take a sliver
    of the freed block, so the next block no longer fitted and the heap grew by one block per block (0.9 GB at
    8,192 × 30,000).
    """
    rows = max(1, min(a.shape[0], chunk_elements // max(1, a.shape[1])))
    out = torch.empty(a.shape[0], dtype=a.dtype, device=a.device)
    product = torch.empty(rows, a.shape[1], dtype=a.dtype, device=a.device)
    for start in range(0, a.shape[0], rows):
        stop = min(start + rows, a.shape[0])
        block = product[: stop - start]
        torch.mul(a[start:stop], b[start:stop], out=block)
        torch.sum(block, dim=1, out=out[start:stop])
    return out


def _read_config(path: Path) -> tuple[int, SAEConfig]:
    """``(d_in, cfg)`` from a config.json written by save_pretrained, or a UserError naming the file."""
    if not path.is_file():
        raise UserError(f"{path}: config file not found. Expected {CONFIG_NAME} written by save_pretrained.")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UserError(f"{path}: not a readable JSON file: {err}") from err
    keys = ("architecture", "d_in", "sae")
    if not isinstance(meta, dict) or any(key not in meta for key in keys) or not isinstance(meta["sae"], dict):
        raise UserError(
            f"{path}: expected a JSON object with keys {list(keys)} ('sae' an object), as written by save_pretrained."
        )
    d_in = meta["d_in"]
    if isinstance(d_in, bool) or not isinstance(d_in, int) or d_in < 1:
        raise UserError(f"{path}: 'd_in' must be an int >= 1. Got {d_in!r} instead.")
    from textsae.config.compose import build_section

    try:
        cfg = build_section(SAEConfig, meta["sae"], "sae")
    except ConfigError as err:
        raise UserError(f"{path}: invalid 'sae' section:\n{err}") from err
    if cfg.architecture != meta["architecture"]:
        raise UserError(
            f"{path}: 'architecture' is {meta['architecture']!r} but sae.architecture is {cfg.architecture!r}."
        )
    return d_in, cfg
