"""The SAE encoder's affine map with a backward pass that follows the sparsity of its gradient.

    pre = x @ W_enc − c @ W_enc + b_enc        (x dense (B, d_in) or sparse CSR; c the input centre)
    ∂W_enc = xᵀ G − c ⊗ Σ_b G_b,  G = ∂loss/∂pre

A TopK-family loss reads only the k kept pre-activations of each row (plus the AuxK and Multi-TopK picks), so the
gradient G = ∂loss/∂pre is zero almost everywhere. Autograd would still form ∂W_enc = xᵀ G as a dense
d_in × B × n_latents product (and, for sparse x, zero-fill and scatter a dense d_in × n_latents tensor). This backward
looks at G once and multiplies through its non-zeros only when they are few:

- dense x: ∂W_enc = xᵀ G with G as CSR, B·nnz(G)/B·d_in multiply-adds instead of B·n_latents·d_in;
- sparse x: xᵀ G as xᵀ in CSR times G, added in place onto the rank-one term, instead of autograd's
  `embedding_bag` backward (which sorts the input's non-zeros and zero-fills a fresh dense gradient); when G comes as
  k entries per row (the TopK family's kept values) and the dictionary is wide, each product x_bt · G_bj is added at
  (t, j) instead: nnz(x)·k additions, not nnz(x)·n_latents multiply-adds (:data:`SCATTER_MIN_LATENTS_PER_ENTRY`).
  On CPU with :mod:`textsae.native` built and a W_enc larger than the cache, textsae's own kernels take both: the
  forward reads each term's row of W_enc once in place (:func:`textsae.native.csr_mm`), and ∂W_enc is written one term
  row at a time, from the rank-one term, with that row's nnz·k products added while it is in cache
  (:func:`textsae.native.csr_t_sparse_mm`); or, when a training loop steps inside backward and asked for it
  (:mod:`textsae.sae.deferred_gradient`), not written at all: its factors go to the optimiser step, which forms each
  row inside Adam's update and sums the next forward's c·W_enc on the way.

The centring adds −c ⊗ Σ_b G_b, a rank-one term over the latents that fired, written in one pass.
The result is the same gradient as autograd's to rounding (tested for every architecture). Architectures whose loss
reads every pre-activation (ReLU-L1, sigmoid-KL) take the dense path automatically.
"""

from __future__ import annotations

import functools
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from textsae import native
from textsae.sae import deferred_gradient
from textsae.sae.cache_blocks import blocked_embedding_bag, exceeds_cache, use_blocks

__all__ = [
    "SCATTER_MIN_LATENTS_PER_ENTRY",
    "SPARSE_GRAD_MAX_DENSITY",
    "encoder_pre_activations",
    "gathered_pre_activations",
]

# torch prints this once per process for the first CSR tensor; the backward builds one every step by design.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)

SPARSE_GRAD_MAX_DENSITY = 0.05
"""Largest fraction of non-zeros in ∂loss/∂pre for which the sparse backward is used (dense input). On this
project's 2-core AVX2 CPU (one thread, d_in 384, 4,096 latents, batch 1,024) xᵀG with G as CSR took 7.8 ms at 0.8%
density against 42 ms dense; a dense matmul wins again somewhere above a few percent."""

SCATTER_MIN_LATENTS_PER_ENTRY = 128
"""Sparse x, G as k entries per row, on CPU: ∂W_enc adds nnz(x)·k scattered products when n_latents ≥ this · k, else
multiplies xᵀ (CSR) by G densified, nnz(x)·n_latents multiply-adds. The whole training step on this project's 2-core
AVX2 CPU (`textsae bench train --input sparse --sides textsae`, batch 512, 200 non-zeros per row, k 64, two runs
each), scattered against densified: 16,384 latents × 10,000 terms 489 / 442 against 395 / 363 vec/s; 8,192 × 30,000
397 / 340 against 371 / 340; 4,096 × 30,000 527 / 453 against 616 / 547. The kernel alone looked better than that
(115 against 140-154 ms at 4,096 × 30,000 in a perf_counter loop, not kept): in the step, the scattered additions
compete with the rest for the cache. The two sides were switched by setting this constant in the bench's process."""
SCATTER_CHUNK_ENTRIES = 1 << 22
"""Most scattered products formed at once, over all threads (their positions and values take 12 bytes each)."""


class _EncoderFunction(torch.autograd.Function):
    """pre = x·W − c·W + b with a backward that multiplies through the non-zeros of ∂pre only when they are few."""

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        weight: Tensor,
        bias: Tensor,
        center: Tensor,
        fixed_columns: int,
        training: bool,
    ) -> Tensor:
        with torch.autocast(weight.device.type, enabled=False):  # a vector: kept in the weights' precision
            product = deferred_gradient.take_center_product(weight, center)  # summed by the last encoder step
            if product is None and exceeds_cache(weight) and native.applies(weight, center):
                product = native.center_product(center, weight)  # summed as that step sums it, to the bit
            if product is not None:
                shift = bias.to(weight.dtype) - product
            else:
                shift = torch.addmv(bias.to(weight.dtype), weight.T, center.to(weight.dtype), alpha=-1.0)  # b − c·W
        if x.layout == torch.sparse_csr:
            terms, offsets, values = x.col_indices(), x.crow_indices(), x.values().to(weight.dtype)
            if exceeds_cache(weight) and native.applies(weight, values):
                pre = native.csr_mm(offsets, terms, values, weight)
            elif use_blocks(weight, terms.numel()):
                pre = blocked_embedding_bag(terms, weight, offsets, values)
            else:
                pre = F.embedding_bag(
                    terms, weight, offsets, mode="sum", per_sample_weights=values, include_last_offset=True
                )
            pre = pre.add_(shift)  # (B, n_latents)
        else:
            # (B, n_latents); autocast applies to the matmul as to any. In training the bias goes into the matmul,
            # which saves a pass over the result (1-3.5% of `textsae bench train`'s dense step on a 2-core AVX2 CPU,
            # `benchmarks/step_ab.py --toggle bias-in-matmul`); not when encoding: with it folded in, a one-row batch
            # can round differently from the same row in a larger batch, and a document's code must not depend on its
            # batch (tested at small shapes; at larger ones MKL's own x @ W can differ in the last bits).
            pre = torch.addmm(shift, x, weight) if training else (x @ weight).add_(shift)
        ctx.save_for_backward(x, weight, center)
        ctx.fixed_columns = fixed_columns
        return pre

    @staticmethod
    def backward(ctx: Any, grad_pre: Tensor) -> tuple[Tensor | None, ...]:
        x, weight, center = ctx.saved_tensors
        # On CPU the backward runs in the caller's thread, so a backward() called inside autocast would run these
        # products in bf16, which the CPU's sparse kernels lack; they follow the dtypes given here instead.
        with torch.autocast(weight.device.type, enabled=False):
            return _EncoderFunction._backward(ctx, grad_pre, x, weight, center)

    @staticmethod
    def _backward(ctx: Any, grad_pre: Tensor, x: Tensor, weight: Tensor, center: Tensor) -> tuple[Tensor | None, ...]:
        need_weight, need_bias, need_center = ctx.needs_input_grad[1], ctx.needs_input_grad[2], ctx.needs_input_grad[3]
        grad_weight = grad_bias = grad_center = None
        column_sums = grad_pre.sum(dim=0)  # (n_latents,)
        if need_bias:
            grad_bias = column_sums
        if need_center:
            grad_center = _center_gradient(weight, column_sums.to(weight.dtype), ctx.fixed_columns)
        if need_weight:
            grad_weight = _weight_gradient(x, grad_pre, weight, center.to(weight.dtype), column_sums.to(weight.dtype))
        return None, grad_weight, grad_bias, grad_center, None, None


class _GatheredEncoderFunction(torch.autograd.Function):
    """pre[b, indices[b, s]] for chosen latents, with the gradient of x·W − c·W + b through those entries only.

    The forward reads the already computed pre-activations; the backward builds ∂pre as CSR straight from the indices,
    so no dense (B × n_latents) gradient is formed or scanned.
    """

    @staticmethod
    def forward(
        ctx: Any,
        pre: Tensor,
        x: Tensor,
        weight: Tensor,
        bias: Tensor,
        center: Tensor,
        indices: Tensor,
        fixed_columns: int,
    ) -> Tensor:
        ctx.save_for_backward(x, weight, center, indices)
        ctx.fixed_columns = fixed_columns
        ctx.receiver = deferred_gradient.receiver_for(weight)
        return pre.gather(1, indices)

    @staticmethod
    def backward(ctx: Any, grad_values: Tensor) -> tuple[Tensor | None, ...]:
        x, weight, center, indices = ctx.saved_tensors
        with torch.autocast(weight.device.type, enabled=False):  # as in _EncoderFunction.backward
            return _GatheredEncoderFunction._backward(ctx, grad_values, x, weight, center, indices)

    @staticmethod
    def _backward(
        ctx: Any, grad_values: Tensor, x: Tensor, weight: Tensor, center: Tensor, indices: Tensor
    ) -> tuple[Tensor | None, ...]:
        n_rows, per_row = indices.shape
        n_latents = weight.shape[1]
        dtype = weight.dtype
        grad_values = grad_values.to(dtype)
        column_sums = torch.zeros(n_latents, dtype=dtype, device=weight.device)
        column_sums.index_add_(0, indices.reshape(-1), grad_values.reshape(-1))
        grad_weight = grad_bias = grad_center = None
        if ctx.needs_input_grad[3]:
            grad_bias = column_sums
        if ctx.needs_input_grad[4]:
            grad_center = _center_gradient(weight, column_sums, ctx.fixed_columns)
        if ctx.needs_input_grad[2] and x.layout == torch.sparse_csr:
            if exceeds_cache(weight) and native.applies(weight, grad_values):
                factors = deferred_gradient.SparseEncoderGradient(
                    x.crow_indices(),
                    x.col_indices(),
                    x.values().to(dtype),
                    indices,
                    grad_values,
                    center.to(dtype).neg(),
                    column_sums,
                    weight.shape[0],
                    n_latents,
                )
                if ctx.receiver is not None and deferred_gradient.will_accumulate(weight):
                    ctx.receiver(factors)  # the optimiser step forms the gradient itself; none reaches .grad
                else:  # also for autograd.grad(...) or backward(inputs=...) that leave W_enc out: no step then
                    grad_weight = factors.materialise()
            elif weight.device.type == "cpu" and n_latents >= SCATTER_MIN_LATENTS_PER_ENTRY * per_row:
                grad_weight = _scattered_weight_gradient(x, indices, grad_values, center.to(dtype), column_sums)
            else:
                g_dense = torch.zeros(n_rows, n_latents, dtype=dtype, device=weight.device)
                g_dense.scatter_(1, indices, grad_values)
                grad_weight = _sparse_input_weight_gradient(x, g_dense, weight, center.to(dtype), column_sums)
        elif ctx.needs_input_grad[2] and native_dense_gradient(weight, x, grad_values):
            # xᵀG written straight into W_enc's layout through the kept entries: 3.3 against 9.6 ms for the CSR
            # product below and its transposing copy (B 1,024, d_in 384, 4,096 latents, k 32, 2 threads; a
            # perf_counter loop, not kept). Whole step: `textsae bench train --input dense`.
            grad_weight = native.dense_t_sparse_mm(
                x, indices, grad_values, n_latents, rank_one=(center.to(dtype).neg(), column_sums)
            )
        elif ctx.needs_input_grad[2]:
            # Gᵀ as CSR, its rows the latents: Gᵀ·x is a CSR × dense product (5.0 ms with the transposing copy,
            # against 12.7 ms for x dense × G CSR on this project's CPU, 2 threads, B 1,024, d_in 384, 4,096 latents,
            # k 32; a perf_counter loop over the two products, not kept). Whole step: `textsae bench train --input dense`.
            flat = indices.reshape(-1)
            order = flat.argsort(stable=True)  # entries grouped by latent; stable keeps the sum order fixed
            crow = torch.zeros(n_latents + 1, dtype=torch.int64, device=indices.device)
            crow[1:] = torch.bincount(flat, minlength=n_latents).cumsum(0)
            g_t = torch.sparse_csr_tensor(
                crow,
                torch.div(order, per_row, rounding_mode="floor"),  # each entry's row of the batch
                grad_values.reshape(-1)[order],
                size=(n_latents, n_rows),
                check_invariants=False,
            )
            grad_weight = _weight_gradient_from_transposed(x, g_t, center.to(dtype), column_sums)
        return None, None, grad_weight, grad_bias, grad_center, None, None


def native_dense_gradient(weight: Tensor, x: Tensor, grad_values: Tensor) -> bool:
    """Whether the dense-input encoder's weight gradient goes through :func:`textsae.native.dense_t_sparse_mm` (a
    function so that `benchmarks/step_ab.py` can switch it)."""
    return native.applies(weight, x, grad_values)


def gathered_pre_activations(
    pre: Tensor, x: Tensor, weight: Tensor, bias: Tensor, center: Tensor, indices: Tensor, fixed_columns: int = 0
) -> Tensor:
    """``pre.gather(1, indices)`` whose gradient reaches W_enc, b_enc and the centre through those entries only.

    Args:
        pre: The pre-activations already computed from the same ``x`` and weights ``(B, n_latents)``.
        x: Normalised input, dense or sparse CSR.
        weight: W_enc ``(d_in, n_latents)``.
        bias: b_enc.
        center: c.
        indices: ``(B, S)`` latents per row, distinct within a row.
        fixed_columns: As for :func:`encoder_pre_activations`.
    """
    return _GatheredEncoderFunction.apply(pre.detach(), x, weight, bias, center, indices, fixed_columns)


def _center_gradient(weight: Tensor, column_sums: Tensor, fixed_columns: int) -> Tensor:
    """∂loss/∂c = −W · Σ_b G_b ``(d_in,)``; the fixed columns send none (see ``TopKSAE.set_dense_encoder``)."""
    return -(weight[:, fixed_columns:] @ column_sums[fixed_columns:])


def _weight_gradient(x: Tensor, grad_pre: Tensor, weight: Tensor, center: Tensor, column_sums: Tensor) -> Tensor:
    """xᵀ G − c ⊗ Σ_b G_b as a dense ``(d_in, n_latents)`` tensor, written in one pass over its memory.

    Dense x: through the non-zeros of G when they are few (dense × CSR, then the rank-one term added in place), else
    a dense matmul. Sparse x: CSR × dense G (:func:`_sparse_input_weight_gradient`).
    """
    dtype = center.dtype
    if x.layout == torch.sparse_csr:
        return _sparse_input_weight_gradient(x, grad_pre.to(dtype), weight, center, column_sums)
    if int(torch.count_nonzero(grad_pre)) > SPARSE_GRAD_MAX_DENSITY * grad_pre.numel():
        return (x.to(grad_pre.dtype).T @ grad_pre).to(dtype).addr_(center, column_sums, alpha=-1.0)
    return _weight_gradient_csr(x, grad_pre.to(dtype).to_sparse_csr(), center, column_sums)


def _weight_gradient_csr(x: Tensor, g: Tensor, center: Tensor, column_sums: Tensor) -> Tensor:
    """xᵀ G − c ⊗ Σ_b G_b for dense x and G given as CSR ``(B, n_latents)``: a dense × CSR product."""
    return (x.to(center.dtype).T @ g).addr_(center, column_sums, alpha=-1.0)  # dense (d_in, B) @ CSR (B, n_latents)


def _weight_gradient_from_transposed(x: Tensor, g_t: Tensor, center: Tensor, column_sums: Tensor) -> Tensor:
    """xᵀ G − c ⊗ Σ_b G_b for dense x and Gᵀ given as CSR ``(n_latents, B)``: (Gᵀ x − Σ_b G_b ⊗ c)ᵀ, a CSR × dense
    product, then one transposing copy into W_enc's ``(d_in, n_latents)`` layout."""
    grad_t = (g_t @ x.to(center.dtype)).addr_(column_sums, center, alpha=-1.0)  # (n_latents, d_in)
    return grad_t.T.contiguous()


def _sparse_input_weight_gradient(x: Tensor, g: Tensor, weight: Tensor, center: Tensor, column_sums: Tensor) -> Tensor:
    """xᵀ G − c ⊗ Σ_b G_b for CSR x and dense G ``(B, n_latents)``: xᵀ as CSR times dense G, nnz(x)·n_latents
    multiply-adds (the forward's own cost), added in place onto the rank-one term. Starting from −c ⊗ Σ_b G_b saves the
    product's zero fill and a second pass for the rank-one term: 101-106 against 151-157 ms at 30,000 × 4,096 (batch
    512, 200 non-zeros per row, 2 threads; a perf_counter loop, not kept). Whole step: `textsae bench train --input
    sparse`.

    Not a CSR × CSR product through G's non-zeros: torch's CPU CSR × CSR matmul (2.13, MKL) does not free its output
    (about 45 MB a step at 20,000 terms × 1,024 latents; a 1,000-step run grew to 24 GB and was killed).
    """
    if exceeds_cache(weight) and native.applies(weight, g):
        _, grad = native.csr_mm_backward(
            x.crow_indices(),
            x.col_indices(),
            x.values().to(center.dtype),
            weight,
            g,
            need_values=False,
            rank_one=(center.neg(), column_sums),
        )
        assert grad is not None
        return grad
    grad = torch.empty(center.numel(), column_sums.numel(), dtype=center.dtype, device=center.device)
    torch.mul(center.unsqueeze(1), column_sums.neg(), out=grad)
    return grad.addmm_(transpose_csr(x).to(center.dtype), g)  # (d_in, n_latents) += xᵀ (CSR) · G (dense)


def _scattered_weight_gradient(
    x: Tensor, indices: Tensor, values: Tensor, center: Tensor, column_sums: Tensor
) -> Tensor:
    """xᵀ G − c ⊗ Σ_b G_b for CSR x ``(B, d_in)`` and G given as its entries: row b holds ``values[b, s]`` at latent
    ``indices[b, s]``.

    The result starts as −c ⊗ Σ_b G_b (one write pass) and each product x_bt · G_bj is added at (t, j), term by term,
    in parts of whole terms: parts never share a row of the result, so they run on torch's threads side by side, and
    each part adds in a fixed order (the same result on every run).
    """
    d_in, n_latents = center.numel(), column_sums.numel()
    per_row = indices.shape[1]
    grad = torch.empty(d_in, n_latents, dtype=center.dtype, device=center.device)
    torch.mul(center.unsqueeze(1), column_sums.neg(), out=grad)
    x_t = transpose_csr(x)  # (d_in, B): the non-zeros grouped by term
    crow, rows, x_values = x_t.crow_indices(), x_t.col_indices(), x_t.values().to(center.dtype)
    nnz = rows.numel()
    if nnz == 0:
        return grad
    terms = torch.repeat_interleave(torch.arange(d_in, device=crow.device), crow.diff(), output_size=nnz)
    flat = grad.view(-1)

    def add(start: int, end: int) -> None:
        batch_rows = rows[start:end]
        positions = (terms[start:end] * n_latents).unsqueeze(1) + indices[batch_rows]  # (P, k)
        products = x_values[start:end].unsqueeze(1) * values[batch_rows]  # (P, k)
        flat.index_add_(0, positions.view(-1), products.view(-1))

    threads = torch.get_num_threads()
    n_parts = max(threads, -(-nnz * per_row * threads // SCATTER_CHUNK_ENTRIES))  # ≤ the chunk in flight
    targets = torch.linspace(0, nnz, n_parts + 1, device=crow.device).to(crow.dtype)
    bounds = sorted({int(b) for b in crow[torch.searchsorted(crow, targets)].tolist()} | {0, nnz})
    parts = list(zip(bounds, bounds[1:]))
    if threads == 1 or len(parts) == 1:
        for start, end in parts:
            add(start, end)
    else:
        list(_scatter_pool(threads).map(lambda part: add(*part), parts))
    return grad


@functools.cache
def _scatter_pool(threads: int) -> ThreadPoolExecutor:
    """Workers for the parts of :func:`_scattered_weight_gradient` (torch releases the GIL inside each addition)."""
    return ThreadPoolExecutor(threads, thread_name_prefix="textsae-scatter")


os.register_at_fork(after_in_child=_scatter_pool.cache_clear)  # a forked child has none of its parent's threads


def transpose_csr(x: Tensor) -> Tensor:
    """xᵀ as a CSR tensor (values and all): the CSC form of x read as CSR."""
    csc = x.to_sparse_csc()
    return torch.sparse_csr_tensor(
        csc.ccol_indices(), csc.row_indices(), csc.values(), size=(x.shape[1], x.shape[0]), check_invariants=False
    )


def encoder_pre_activations(
    x: Tensor, weight: Tensor, bias: Tensor, center: Tensor, fixed_columns: int = 0, *, training: bool = False
) -> Tensor:
    """Encoder pre-activations ``(B, n_latents)`` = x·W − c·W + b, with the sparsity-following backward.

    Args:
        x: Normalised input, dense ``(B, d_in)`` or sparse CSR (never densified).
        weight: W_enc ``(d_in, n_latents)``.
        bias: b_enc ``(n_latents,)``.
        center: c ``(d_in,)``, subtracted from the input (b_dec, or sigmoid(b_dec) for ``bce``).
        fixed_columns: The first columns that hold fixed functions of the input: c gets no gradient through them.
        training: A training step's forward: dense x may then round each row differently with the batch (the bias
            added inside the matmul, a pass over the result fewer); otherwise a row's pre-activations do not depend
            on the rows beside it.
    """
    return _EncoderFunction.apply(x, weight, bias, center, fixed_columns, training)
