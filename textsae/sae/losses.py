"""Loss terms of the SAE family.

Every function that takes an input ``x`` accepts a dense ``(B, d_in)`` tensor or a torch sparse CSR
tensor. A sparse ``x`` is not densified (except as a target that itself needs a gradient, which no textsae loss
has): terms are computed from its non-zeros only, so a TF-IDF
batch with ~300 non-zeros per row out of 30,000 columns costs ~300 gathers per row. Sparse inputs
must be in canonical form (no repeated column inside a row), as ``scipy.sparse.csr_matrix.tocsr()``
produces after ``sum_duplicates()``.

Reductions run in at least float32 (``torch.promote_types(dtype, float32)``), which is what
``torch.autocast`` does for its own loss functions: bf16 sums over 30,000 columns lose too much.

FVU has one definition here, used by the loss output, the trainer's hold-out metric and every evaluation:
Σ_b ‖x_b − x̂_b‖² / Σ_b ‖x_b − x̄‖². When there is no variance to explain (fewer than two rows, or all rows
equal up to rounding: a total variance at most ``NO_VARIANCE_RTOL`` × max(Σ_b ‖x_b‖², 1)) it is ``nan``,
never ``inf`` or a huge number; the run's health check reports such an FVU as undefined.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from textsae.sae.decoder import sparse_decode
from textsae.sae.selection import top_k

__all__ = [
    "auxk_loss",
    "bce_with_logits_per_sample",
    "fvu",
    "fvu_from_sums",
    "kl_sparsity_penalty",
    "l1_penalty",
    "squared_error_per_sample",
    "total_variance",
    "variance_to_explain",
]

KL_CLAMP = 1e-6
"""ρ̂ is clamped to [KL_CLAMP, 1 − KL_CLAMP] so that KL(ρ‖ρ̂) stays finite for dead or saturated latents."""

NO_VARIANCE_RTOL = 1e-12
"""A total variance at most this fraction of max(Σ‖x_b‖², 1) is rounding noise: no variance to explain, FVU nan."""


def is_sparse_csr(x: Tensor) -> bool:
    """Whether ``x`` is a torch sparse CSR tensor."""
    return x.layout == torch.sparse_csr


def csr_parts(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Row indices, column indices and values of the non-zeros of a 2-D CSR tensor.

    Args:
        x: Sparse CSR tensor of shape ``(B, d)``.

    Returns:
        ``(rows, cols, values)``, each of shape ``(nnz,)``, in row-major order.
    """
    crow = x.crow_indices()  # (B + 1,)
    cols = x.col_indices()  # (nnz,)
    values = x.values()  # (nnz,)
    counts = crow[1:] - crow[:-1]  # (B,)
    rows = torch.arange(x.shape[0], device=crow.device, dtype=crow.dtype)
    # output_size avoids a device→host sync on GPU.
    rows = torch.repeat_interleave(rows, counts, output_size=values.numel())  # (nnz,)
    return rows, cols, values


def _acc(t: Tensor) -> Tensor:
    """``t`` in its accumulation dtype: at least float32, float64 stays float64."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def squared_error_per_sample(x: Tensor, y: Tensor) -> Tensor:
    """Σ_d (x_bd − y_bd)² for each row b.

    One dense temporary in the forward, the residual y − x (for a sparse ``x``: a copy of y with x's non-zeros
    subtracted at their positions, so ``x`` is only read at its non-zeros and each term is the same as the dense
    formula's, with no cancellation), and one in the backward, the gradient 2 (y − x) (plus its cast when y is bf16
    or fp16). Before, the sparse path squared y, gathered and scattered the non-zeros, and its backward built three
    more (B × d) tensors: at 512 rows × 30,000 terms that is six 59 MB temporaries a step instead of two. No textsae
    loss differentiates twice, and this one does not support it: its gradient is not itself differentiable.

    Args:
        x: Target, dense ``(B, d)`` or sparse CSR ``(B, d)``.
        y: Dense prediction ``(B, d)``.

    Returns:
        Tensor of shape ``(B,)``, in the accumulation dtype of x and y together (at least float32).
    """
    if x.requires_grad:  # a target that is itself trained (never in textsae's losses): the plain formula
        return _squared_error_differentiable(x, y)
    return _SquaredError.apply(y, x)


class _SquaredError(torch.autograd.Function):
    """Σ_d (y_bd − x_bd)² per row from the one residual tensor; the gradient reaches y only."""

    @staticmethod
    def forward(ctx: Any, y: Tensor, x: Tensor) -> Tensor:
        dtype = torch.promote_types(_acc(y).dtype, x.dtype)
        residual = torch.empty(y.shape, dtype=dtype, device=y.device)
        residual.copy_(y)
        if is_sparse_csr(x):
            rows, cols, values = csr_parts(x)
            flat = rows.long() * x.shape[1] + cols  # int64: B · d can pass 2³¹ with int32 CSR indices
            residual.view(-1).index_add_(0, flat, values.to(dtype), alpha=-1)
        else:
            residual.sub_(x)
        ctx.save_for_backward(residual)
        ctx.y_dtype = y.dtype
        return torch.linalg.vector_norm(residual, dim=1).square()  # no (B, d) temporary

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None]:
        (residual,) = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None
        return (residual * (2 * grad).unsqueeze(1)).to(ctx.y_dtype), None


def _squared_error_differentiable(x: Tensor, y: Tensor) -> Tensor:
    """:func:`squared_error_per_sample` by autograd through every op, for a target ``x`` that needs a gradient."""
    dense = x.to_dense() if is_sparse_csr(x) else x
    return (_acc(dense) - _acc(y)).square().sum(dim=1)


def bce_with_logits_per_sample(x: Tensor, logits: Tensor) -> Tensor:
    """Σ_d BCE(sigmoid(logits_bd), x_bd) for each row b, from logits (numerically stable).

    BCE(σ(l), x) = softplus(l) − x·l. For a sparse ``x`` the per-element terms off its non-zeros
    are those of target 0, and only the non-zero entries are gathered.

    Args:
        x: Target in [0, 1], dense ``(B, d)`` or sparse CSR ``(B, d)``.
        logits: Dense decoder output before the sigmoid, ``(B, d)``.

    Returns:
        Tensor of shape ``(B,)``.
    """
    logits = _acc(logits)
    if not is_sparse_csr(x):
        return F.binary_cross_entropy_with_logits(logits, _acc(x), reduction="none").sum(dim=1)
    rows, cols, values = csr_parts(x)
    zero = torch.zeros((), dtype=logits.dtype, device=logits.device).expand_as(logits)
    off_nz = F.binary_cross_entropy_with_logits(logits, zero, reduction="none")  # (B, d)
    at_nz = F.binary_cross_entropy_with_logits(logits[rows, cols], _acc(values), reduction="none")  # (nnz,)
    return off_nz.index_put((rows, cols), at_nz).sum(dim=1)


def fvu(x: Tensor, y: Tensor) -> Tensor:
    """Fraction of variance unexplained: Σ_b ‖x_b − y_b‖² / Σ_b ‖x_b − x̄‖², x̄ the batch mean of x.

    0 for a perfect reconstruction, 1 for predicting the batch mean. ``nan`` when there is no variance
    to explain (see :func:`variance_to_explain`), e.g. for a batch of one row. For a sparse ``x`` the
    denominator is Σ‖x_b‖² − B‖x̄‖², exact up to rounding unless the rows are nearly identical.

    Args:
        x: Target, dense ``(B, d)`` or sparse CSR ``(B, d)``.
        y: Dense prediction ``(B, d)``.

    Returns:
        Detached scalar tensor.
    """
    with torch.no_grad():
        return squared_error_per_sample(x, y).sum() / total_variance(x)


def fvu_from_sums(error: float, square_sum: float, column_sum_sq: float, n_rows: int) -> float:
    """FVU of a whole matrix from sums gathered in row chunks: Σ‖x − x̂‖² / (Σ‖x‖² − ‖Σ_b x_b‖² / n).

    Args:
        error: Σ_b ‖x_b − x̂_b‖².
        square_sum: Σ_b ‖x_b‖².
        column_sum_sq: ‖Σ_b x_b‖², the squared norm of the column sums.
        n_rows: Number of rows.

    Returns:
        The FVU; ``nan`` when there is no variance to explain (no rows, or all rows numerically equal), as
        :func:`fvu` gives for a batch.
    """
    total = square_sum - column_sum_sq / n_rows if n_rows else 0.0
    error_t, total_t, square_t = (torch.tensor(v, dtype=torch.float64) for v in (error, total, square_sum))
    return float(error_t / variance_to_explain(total_t, square_t))  # float64: the same quotient as Python's floats


def variance_to_explain(variance: Tensor, square_sum: Tensor) -> Tensor:
    """The FVU denominator: ``variance`` (Σ_b ‖x_b − x̄‖²), or ``nan`` when it is no more than rounding noise.

    The one rule for an FVU without variance: ``variance`` ≤ ``NO_VARIANCE_RTOL`` × max(``square_sum``, 1) gives
    ``nan`` (fewer than two rows, or every row equal up to rounding), so the FVU divided by it is ``nan`` too.
    No device→host sync.

    Args:
        variance: Σ_b ‖x_b − x̄‖², a scalar tensor.
        square_sum: Σ_b ‖x_b‖², the scale the rounding noise is measured against, a scalar tensor.

    Returns:
        Scalar tensor of ``variance``'s dtype.
    """
    return variance.masked_fill(variance <= NO_VARIANCE_RTOL * square_sum.clamp_min(1.0), float("nan"))


def total_variance(x: Tensor) -> Tensor:
    """Σ_b ‖x_b − x̄‖², x̄ the batch mean, as the denominator of :func:`fvu` (detached scalar).

    ``nan`` when there is no variance to explain (:func:`variance_to_explain`), so that every FVU divided by it is
    ``nan`` then. For a sparse ``x`` it is Σ‖x_b‖² − B‖x̄‖², exact up to rounding unless the rows are nearly identical.
    """
    with torch.no_grad():
        if not is_sparse_csr(x):
            x = _acc(x)
            return variance_to_explain((x - x.mean(dim=0)).square().sum(), x.square().sum())
        _, cols, values = csr_parts(x)
        values = _acc(values)
        n_rows = x.shape[0]
        col_mean = torch.zeros(x.shape[1], dtype=values.dtype, device=values.device)
        col_mean = col_mean.index_add_(0, cols, values) / n_rows  # (d,)
        square_sum = values.square().sum()
        return variance_to_explain((square_sum - n_rows * col_mean.square().sum()).clamp_min(0.0), square_sum)


def l1_penalty(codes: Tensor) -> Tensor:
    """mean_b ‖z_b‖₁, the L1 activation penalty.

    Args:
        codes: Dense codes ``(B, n_latents)``.

    Returns:
        Scalar tensor.
    """
    return _acc(codes).abs().sum(dim=1).mean()


def kl_sparsity_penalty(mean_activation: Tensor, rho: float) -> Tensor:
    """Σ_j KL(ρ‖ρ̂_j) with KL(ρ‖ρ̂) = ρ log(ρ/ρ̂) + (1−ρ) log((1−ρ)/(1−ρ̂)).

    ρ̂ is clamped to ``[KL_CLAMP, 1 − KL_CLAMP]``: a latent whose mean activation is exactly 0 or 1
    gets a large finite penalty and a finite gradient instead of inf/nan.

    Args:
        mean_activation: ρ̂, mean activation of each latent over the batch, shape ``(n_latents,)``.
        rho: ρ, target mean activation in (0, 1).

    Returns:
        Scalar tensor.
    """
    rho_hat = _acc(mean_activation).clamp(KL_CLAMP, 1.0 - KL_CLAMP)  # (n_latents,)
    kl = rho * torch.log(rho / rho_hat) + (1.0 - rho) * torch.log((1.0 - rho) / (1.0 - rho_hat))
    return kl.sum()


def auxk_loss(pre_acts: Tensor, residual: Tensor, W_dec: Tensor, dead_mask: Tensor, k_aux: int) -> Tensor:
    """Normalised AuxK loss (Gao et al. 2024): dead latents learn to model the residual.

    z_aux keeps, per row, the ``k_aux`` largest pre-activations among dead latents (ReLU applied);
    ê = z_aux @ W_dec (no b_dec); loss = Σ_b ‖e_b − ê_b‖² / Σ_b ‖e_b − ē‖², with e the residual
    and ē its batch mean. 0 when no latent is dead.

    No device→host sync: alive latents are masked with −inf, so when fewer than ``k_aux`` latents
    are dead the extra picks are −inf, which ReLU turns into 0 (they decode to nothing and get no
    gradient); the "no dead latent" case is selected with ``torch.where``.

    Args:
        pre_acts: Encoder pre-activations ``(B, n_latents)``.
        residual: e = target − x̂ with x̂ detached, dense ``(B, d_in)``.
        W_dec: Decoder weights ``(n_latents, d_in)``.
        dead_mask: Bool ``(n_latents,)``, True for dead latents.
        k_aux: Latents per row used to model the residual (capped at ``n_latents``).

    Returns:
        Scalar tensor.
    """
    k_aux = max(1, min(k_aux, pre_acts.shape[1]))
    masked = pre_acts.masked_fill(~dead_mask, float("-inf"))  # (B, n_latents)
    values, indices = top_k(masked, k_aux)  # (B, k_aux) each
    values = values.relu().to(W_dec.dtype)
    offsets = torch.arange(0, indices.numel() + 1, k_aux, device=indices.device)
    e_hat = sparse_decode(indices.reshape(-1), values.reshape(-1), offsets, W_dec)  # (B, d_in)
    e = _acc(residual)
    unexplained = (e - _acc(e_hat)).square().sum()
    # The denominator holds no parameter (e is built from a detached x̂); clamping it keeps the
    # where() below free of 0/0 in the unused branch (a batch of one row).
    total = (e - e.mean(dim=0)).square().sum().clamp_min(torch.finfo(e.dtype).tiny)
    loss = unexplained / total
    return torch.where(dead_mask.any(), loss, torch.zeros_like(loss))
