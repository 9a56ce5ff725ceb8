"""The TopK decoder's sparse product, Σ_j c_bj · W_dec[j] over each row's active latents, by W_dec's size and device.

`embedding_bag` computes it by reading one whole row of W_dec (d_in floats) per active entry: with B·k entries of
a W_dec larger than the cache (20,000 terms × 1,024 latents = 82 MB) every read goes to memory, and its backward
(per-entry dot products for the code values, a scatter for W_dec) reads and writes those rows twice more. Four paths,
the first that applies:

- **textsae's native kernels** (float32 on CPU with the kernels built, W_dec larger than the cache, with rows
  longer than :data:`ROW_GATHER_MAX_COLUMNS` or read by many entries each): :func:`textsae.native.csr_mm` groups the
  entries by latent inside column blocks, each W_dec row slice read from memory once and in place, forward and both
  gradients; 4,096 latents × 30,000 terms forward + backward 344 against 1,239 ms for the torch blocks below
  (`python benchmarks/decoder_blocks.py --n-latents 4096 --d-in 30000 --blocks-mb 8`). With up to 4,096 latents,
  each read by many entries (:func:`panel_path`), :func:`textsae.native.panel_mm` and
  :func:`textsae.native.panel_mm_backward` instead: 64 columns at a time, W_dec's (forward) or the output gradient's
  (backward) panel copied into L2 and each sum gathered from there;
- **torch, in column blocks** (:func:`textsae.sae.cache_blocks.use_blocks`): `embedding_bag` on each column block of
  W_dec, ∂values as the sampled product (G_block · W_blockᵀ) at the active (row, latent) pairs (`sampled_addmm`),
  ∂W_dec as Cᵀ · G_block with C the codes as CSR; 272 against `embedding_bag`'s 447 ms at 1,024 latents × 20,000
  (`python benchmarks/decoder_blocks.py`), but torch copies every strided block before it reads it;
- **`embedding_bag` forward, native backward** (float32 on CPU with the kernels built, a cache-resident W_dec and
  :data:`CACHED_BACKWARD_MIN_WORK`, or a larger W_dec with short rows, :data:`ROW_GATHER_MAX_COLUMNS`):
  `embedding_bag`'s backward sorts the entries and scatters, but its forward sums each batch row from whole W_dec rows
  and beats :func:`textsae.native.csr_mm`'s there. Forward + backward at
  1,024 rows × k 32 × 4,096 latents × 384 (the Intel box, 2026-12-03; `python benchmarks/decoder_blocks.py --batch
  1024 --n-latents 4096 --d-in 384 --k 32 --blocks-mb 1 --repeats 30`): 8.7 ms, against 10.6 with the native
  forward too and 12.8 for `embedding_bag` alone;
- **`embedding_bag`**: everything else: GPUs, other dtypes, machines without the kernels (there also large decoders
  whose rows a batch reads only a few times each), and batches too small for the native backward's start-up
  (:data:`CACHED_BACKWARD_MIN_WORK`).

(Timings: 2 threads; unless said otherwise on this project's 2-core AVX2 CPU, batch 512, k 64.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from textsae import native
from textsae.sae.cache_blocks import blocked_embedding_bag, column_blocks, exceeds_cache, use_blocks
from textsae.sae.encoder import transpose_csr

__all__ = ["sparse_decode"]

CACHED_BACKWARD_MIN_WORK = 1 << 16
"""Multiply-adds (entries × d_in) from which a cache-resident W_dec's backward goes to the native kernel, whose
start-up (threads, the entries' grouping) costs more than `embedding_bag`'s backward on tiny batches. Forward +
backward, AMD box, 2 threads, scratch memory kept between calls (`python benchmarks/decoder_blocks.py --batch B
--n-latents L --d-in D --k K --blocks-mb 1 --repeats 30`, ``cached_ms`` against ``embedding_bag_ms``): 0.21 against
0.17 ms at 3,072 (64 latents × 24, batch 32, k 4); 0.22 against 0.19 at 32,768 (256 × 128, batch 32, k 8); 0.26
against 0.28 at 65,536 (1,024 × 128, batch 64, k 8); 0.47 against 0.82 at 393,216 (4,096 × 384, batch 32, k 32). A
larger weight moves the break-even lower (0.33 against 0.40 at 49,152 with 4,096 × 384), as `embedding_bag`'s
backward zero-fills a weight-sized gradient. Before the kernels kept their scratch memory it was near 1.5 M."""

ROW_GATHER_MAX_COLUMNS = 2048
"""A W_dec larger than the cache whose rows hold at most this many floats takes `embedding_bag`'s forward and the
native backward, as a cache-resident one does. Each batch row is then summed from whole W_dec rows in registers and
written once, where :func:`textsae.native.csr_mm` adds every entry into a (B × block) slab of the output in L3 and
pays off only when reading each long row once saves more. Forward + backward, the AMD box, 2 threads (`python
benchmarks/decoder_blocks.py --batch B --n-latents L --d-in D --k K --blocks-mb 8 --repeats 10`, ``cached_ms``
against ``native_ms``): 10.6 against 13.3 ms at 65,536 latents × 384 (batch 1,024, k 32); 11.6 against 13.7 at
24,576 × 768; 23.6 against 23.8 at 16,384 × 2,048 (batch 512, k 64); 39.6 against 33.3 at 8,192 × 4,096."""

PANEL_MIN_ENTRIES_PER_LATENT = 8
"""Average entries per latent from which a large W_dec's product and gradients go by panels (:func:`panel_path`). The
forward alone against :func:`textsae.native.csr_mm` (2 threads, the Intel box, 2026-12-03; `python
benchmarks/decoder_blocks.py --n-latents L --d-in D [--batch B --k K] --blocks-mb 8 --repeats 5 --forward-only`, ``native_ms`` over ``panel_ms``;
latents × terms, batch × k, entries per latent): 2.04× at 1,024 × 10,000 and 2.49× at × 20,000 (512 × 64, 32), 1.12× at
4,096 × 30,000 (512 × 64, 8), 1.44× at 1,024 × 30,000 (128 × 32, 4); but 0.88× at 4,096 × 30,000 with batch 256 (4) and
0.48× with 64 (1): with few entries a large panel's copy costs more than the gathers save. On the AMD box (L2 512 KB,
half the 4,096-latent scratch): 1.04–1.08× at 8, 1.43–1.84× at 16 (batch 1,024), 2.2× at 1,024 × 10,000 (32), and
0.90–1.00× at 4 (batch 256): the threshold holds there too. Forward + backward, both by panels against both by
:func:`textsae.native.csr_mm` (the same command without ``--forward-only``, AMD box): 1.31× at 4,096 × 30,000 (512 ×
64, 8), 0.93× with batch 256 (4), 2.21× at 1,024 × 10,000 (512 × 64, 32), 2.52× at 1,024 × 20,000 with batch 1,024
(64) and 3.45× with batch 4,096 (256)."""


def sparse_decode(indices: Tensor, values: Tensor, offsets: Tensor, weight: Tensor) -> Tensor:
    """``out[b] = Σ_{e in row b} values[e] · weight[indices[e]]``, rows given by ``offsets`` (``include_last_offset``).

    Args:
        indices: Latent of each active entry, grouped by row ``(nnz,)``.
        values: Code value of each entry ``(nnz,)``, in ``weight``'s dtype.
        offsets: Row starts and the end, ``(B + 1,)``.
        weight: W_dec ``(n_latents, d_in)``.

    Returns:
        ``(B, d_in)``, differentiable in ``values`` and ``weight``; the same values and gradients as
        ``F.embedding_bag(indices, weight, offsets, mode="sum", per_sample_weights=values, include_last_offset=True)``.
        Once differentiable; ``torch.func`` transforms need torch's kernels on CPU (``TEXTSAE_NATIVE=0``): the native
        kernels read the tensors' memory, which functorch's wrappers do not expose.
    """
    if exceeds_cache(weight) and native.applies(weight, values):
        if panel_path(weight, values):
            return _PanelDecode.apply(indices, values, offsets, weight)
        if weight.shape[1] <= ROW_GATHER_MAX_COLUMNS:
            return _GatherDecode.apply(indices, values, offsets, weight)
        return _NativeDecode.apply(indices, values, offsets, weight)
    if cached_native_backward(weight, values):
        return _GatherDecode.apply(indices, values, offsets, weight)
    if not use_blocks(weight, indices.numel()):
        return _embedding_bag(indices, values, offsets, weight)
    return _BlockedDecode.apply(indices, values, offsets, weight)


def _embedding_bag(indices: Tensor, values: Tensor, offsets: Tensor, weight: Tensor) -> Tensor:
    return F.embedding_bag(indices, weight, offsets, mode="sum", per_sample_weights=values, include_last_offset=True)


def cached_native_backward(weight: Tensor, values: Tensor) -> bool:
    """Whether a W_dec that stays in cache takes `embedding_bag`'s forward and the native backward: enough work for
    the native kernel's start-up to pay (:data:`CACHED_BACKWARD_MIN_WORK`). A function so that `benchmarks/step_ab.py`
    can switch it."""
    return (
        not exceeds_cache(weight)
        and values.numel() * weight.shape[1] >= CACHED_BACKWARD_MIN_WORK
        and native.applies(weight, values)
    )


def panel_path(weight: Tensor, values: Tensor) -> bool:
    """Whether a W_dec larger than the cache takes :func:`textsae.native.panel_mm` and its panel backward: at most
    :data:`textsae.native.PANEL_ROWS` latents, each read by :data:`PANEL_MIN_ENTRIES_PER_LATENT` entries or more on
    average. A function so that `benchmarks/step_ab.py` can switch it."""
    n_latents = weight.shape[0]
    return n_latents <= native.PANEL_ROWS and values.numel() >= PANEL_MIN_ENTRIES_PER_LATENT * n_latents


class _NativeDecode(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, indices: Tensor, values: Tensor, offsets: Tensor, weight: Tensor) -> Tensor:
        ctx.save_for_backward(indices, values, offsets, weight)
        return native.csr_mm(offsets, indices, values, weight)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        return _native_gradients(native.csr_mm_backward, ctx, grad_out)


def _native_gradients(
    kernel: Callable[..., tuple[Tensor | None, Tensor | None]], ctx: Any, grad_out: Tensor
) -> tuple[Tensor | None, ...]:
    """The decode's gradients by ``kernel`` (:func:`textsae.native.csr_mm_backward` or its panel twin)."""
    indices, values, offsets, weight = ctx.saved_tensors
    grad_values, grad_weight = kernel(
        offsets,
        indices,
        values,
        weight,
        grad_out,
        need_values=ctx.needs_input_grad[1],
        need_weight=ctx.needs_input_grad[3],
    )
    return None, grad_values, None, grad_weight


class _PanelDecode(torch.autograd.Function):
    """:func:`textsae.native.panel_mm` and its gradients by :func:`textsae.native.panel_mm_backward`: for a W_dec
    larger than the cache with few latents, each read by many entries (:func:`panel_path`)."""

    @staticmethod
    def forward(ctx: Any, indices: Tensor, values: Tensor, offsets: Tensor, weight: Tensor) -> Tensor:
        ctx.save_for_backward(indices, values, offsets, weight)
        return native.panel_mm(offsets, indices, values, weight)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        return _native_gradients(native.panel_mm_backward, ctx, grad_out)


class _GatherDecode(_NativeDecode):
    """`embedding_bag`'s forward, :class:`_NativeDecode`'s backward: for a W_dec that stays in cache, or one whose
    rows are short (:data:`ROW_GATHER_MAX_COLUMNS`)."""

    @staticmethod
    def forward(ctx: Any, indices: Tensor, values: Tensor, offsets: Tensor, weight: Tensor) -> Tensor:
        ctx.save_for_backward(indices, values, offsets, weight)
        return _embedding_bag(indices, values, offsets, weight)


class _BlockedDecode(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, indices: Tensor, values: Tensor, offsets: Tensor, weight: Tensor) -> Tensor:
        out = blocked_embedding_bag(indices, weight, offsets, values)
        ctx.save_for_backward(indices, values, offsets, weight)
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        indices, values, offsets, weight = ctx.saved_tensors
        need_values, need_weight = ctx.needs_input_grad[1], ctx.needs_input_grad[3]
        grad_out = grad_out.to(weight.dtype).contiguous()
        codes, order = _codes_csr(indices, values, offsets, weight.shape[0])
        blocks = column_blocks(weight)
        grad_values = grad_weight = None
        if need_values:
            dots = torch.zeros(indices.numel(), dtype=weight.dtype, device=weight.device)
            for block in blocks:
                sampled = torch.sparse.sampled_addmm(codes, grad_out[:, block], weight[:, block].T, beta=0.0)
                dots += sampled.values()
            grad_values = torch.empty_like(dots).index_copy_(0, order, dots)  # back to the caller's entry order
        if need_weight:
            codes_t = transpose_csr(codes)  # (n_latents, B)
            grad_weight = torch.empty_like(weight)
            for block in blocks:
                grad_weight[:, block] = torch.sparse.mm(codes_t, grad_out[:, block])
        return None, grad_values, None, grad_weight


def _codes_csr(indices: Tensor, values: Tensor, offsets: Tensor, n_latents: int) -> tuple[Tensor, Tensor]:
    """The entries as a CSR ``(B, n_latents)`` with each row's columns in order, and each CSR slot's entry index."""
    rows = torch.repeat_interleave(
        torch.arange(offsets.numel() - 1, device=indices.device), offsets.diff(), output_size=indices.numel()
    )
    order = torch.argsort(rows * n_latents + indices)  # within a row by latent; rows stay grouped
    csr = torch.sparse_csr_tensor(
        offsets, indices[order], values[order], size=(offsets.numel() - 1, n_latents), check_invariants=False
    )
    return csr, order
