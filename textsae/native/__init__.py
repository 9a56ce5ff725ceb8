"""textsae's native CPU kernels: built once with the system's C compiler, loaded with ctypes, torch's ops otherwise.

Six kernels (``csr_mm.c`` and ``topk.c`` say how each is laid out; ``kernels.h`` holds what they share, and
``scratch.c`` their scratch memory, kept between calls):

- :func:`csr_mm` and its backward: sparse rows times a dense row-major matrix, the SAE decoder's product over each
  document's active latents and the sparse-input encoder's over each document's terms. torch has no CPU kernel that
  reads column blocks of a weight in place: `embedding_bag` reads whole weight rows, from memory for a weight larger
  than the cache, and blocking it in Python makes strided copies of every block first.
- :func:`csr_t_sparse_mm`: xᵀ·G for sparse x and G given as a few entries per row, the sparse-input encoder's
  weight gradient, each output row written once and its products added while it is in cache; and
  :func:`dense_t_sparse_mm`, the same product for dense x (the dense-input encoder's weight gradient), summed a tile of
  latents at a time and written straight into W_enc's layout, where torch forms Gᵀ·x and copies it transposed.
- :func:`topk`: the k largest entries of each row (the TopK SAE's active latents) from one scan for a bound and a
  second for the entries above it, where torch's CPU topk copies and partially sorts every entry of the row.
- :func:`decoder_adam_step`: the decoder's gradient projection, Adam step and renormalisation fused into one pass
  over each row, where torch makes three passes and each weight-sized tensor crosses memory about 16 times a step.
- :func:`encoder_adam_step`: the sparse-input encoder's Adam step with its gradient (xᵀ·G and the centring's
  rank-one term, as :func:`csr_t_sparse_mm` forms it) made a row at a time in cache and never stored, and the next
  forward's c·W_enc summed from the updated rows on the way (:func:`center_product` sums it to the same bits).

The library is compiled on first use into a cache folder (``$TEXTSAE_NATIVE_CACHE``, else
``$XDG_CACHE_HOME/textsae/native`` or ``~/.cache/textsae/native``), named by a hash of the sources, the compiler, its
flags and this CPU (it is built for the CPU it runs on), and written atomically, so processes that start together
(``torchrun``) can race safely. When there is no C compiler, or the build or the load fails, textsae says so once and
uses torch's kernels: results agree to float rounding. ``TEXTSAE_NATIVE=0`` or ``runtime.native_kernels: false``
turns the kernels off; ``CC`` picks the compiler.

Each kernel splits its work into one job per torch thread. Where torch runs on GNU OpenMP and the compiler links the
same runtime (GCC), the library is built with ``-fopenmp`` and its jobs run in torch's own thread pool
(:func:`shares_torch_threads`): the pool's workers spin for a while after every torch op, and threads of the kernels'
own would share the cores with them. Otherwise each call starts its threads; either way the same jobs give the same
bits.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import logging
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

__all__ = [
    "NativeError",
    "applies",
    "available",
    "center_product",
    "csr_mm",
    "csr_mm_backward",
    "csr_t_sparse_mm",
    "decoder_adam_step",
    "dense_t_sparse_mm",
    "encoder_adam_step",
    "panel_mm",
    "set_enabled",
    "shares_torch_threads",
    "topk",
    "topk_applies",
]

logger = logging.getLogger("textsae")

_FOLDER = Path(__file__).parent
_SOURCES = (_FOLDER / "csr_mm.c", _FOLDER / "topk.c", _FOLDER / "scratch.c")
_HEADERS = (_FOLDER / "kernels.h",)
_ABI = 10
_FLAGS = ("-O3", "-fno-math-errno", "-std=c11", "-fPIC", "-shared", "-pthread")
_OPENMP_FLAGS = ("-fopenmp",)
_OPENMP_RUNTIMES = ("libgomp", "libomp", "libiomp")
_CPU_FLAGS = ("-march=native",)  # tried first; dropped where the compiler does not know it
_ERRORS = {
    1: "offsets must start at 0, never decrease, and end at the number of entries",
    2: "an index is outside its range: [0, weight rows), or [0, n_cols) for G's entries",
    3: "out of memory",
    4: "the input holds a NaN",
}
SLAB_BYTES = 4 << 20
"""Bytes of the (batch × columns) slab of the output, or of its gradient, that each thread keeps in cache: the column
block is this over (4 · batch) columns, at least 64. At batch 512 that is 2,048 columns; forward + backward of the
decoder at 4,096 latents × 30,000 took 104 + 152 ms against 129 + 301 ms in 64-column blocks of the batch's rows, and
1,024 / 4,096 columns were within 10% (2 threads, this project's 2-core AVX2 CPU; an ad-hoc loop, not kept)."""

_allowed_by_environment = os.environ.get("TEXTSAE_NATIVE", "1").strip().lower() not in ("0", "false", "no", "off")
_enabled = _allowed_by_environment


class NativeError(ValueError):
    """The kernel refused its input (the message says what was wrong)."""


def set_enabled(enabled: bool) -> None:
    """Turn the native kernels on or off for this process (``runtime.native_kernels``); ``TEXTSAE_NATIVE=0`` in the
    environment keeps them off whatever this says."""
    global _enabled
    _enabled = bool(enabled) and _allowed_by_environment


def available() -> bool:
    """Whether the native kernels are on and built (building them now if needed)."""
    return _enabled and _library() is not None


_forked = False


def _in_forked_child() -> None:
    global _forked
    _forked = True


os.register_at_fork(after_in_child=_in_forked_child)


def _threads() -> int:
    """Threads for a kernel call: torch's intra-op threads, but one in a forked child of a process whose kernels run
    in torch's OpenMP pool, where GNU OpenMP's pool did not survive the fork and a parallel region never returns."""
    return 1 if _forked and shares_torch_threads() else torch.get_num_threads()


def shares_torch_threads() -> bool:
    """Whether the loaded kernels run in torch's own OpenMP thread pool (else in threads they start per call)."""
    lib = _library() if _enabled else None
    return lib is not None and lib.textsae_native_openmp_runtime() is not None


def applies(weight: Tensor, *others: Tensor) -> bool:
    """Whether :func:`csr_mm` serves this product: the kernels are available, and ``weight`` and ``others`` are
    float32 CPU tensors without autograd-only subclasses (any other dtype or device keeps torch's kernels)."""
    return (
        _enabled
        and weight.device.type == "cpu"
        and weight.dtype == torch.float32
        and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in others)
        and available()
    )


def csr_mm(offsets: Tensor, indices: Tensor, values: Tensor, weight: Tensor) -> Tensor:
    """``out[b] = Σ_{e in row b} values[e] · weight[indices[e]]`` ``(B, d)``; no autograd of its own.

    Args:
        offsets: Row starts and the end ``(B + 1,)``, int64.
        indices: Weight row of each entry ``(nnz,)``, int64.
        values: Each entry's value ``(nnz,)``, float32.
        weight: ``(n_rows, d)`` float32.

    Raises:
        NativeError: If the offsets or indices are invalid.
    """
    lib = _require()
    offsets, indices, values, weight = _prepared(offsets, indices, values, weight)
    batch = offsets.numel() - 1
    out = torch.empty(batch, weight.shape[1], dtype=torch.float32)
    status = lib.textsae_csr_mm(
        *_operands(offsets, indices, values, weight),
        out.data_ptr(),
        _block(batch),
        _threads(),
    )
    _check(status)
    return out


def csr_mm_backward(
    offsets: Tensor,
    indices: Tensor,
    values: Tensor,
    weight: Tensor,
    grad_out: Tensor,
    *,
    need_values: bool = True,
    need_weight: bool = True,
    rank_one: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor | None, Tensor | None]:
    """The gradients of :func:`csr_mm`: ``∂values[e] = ⟨grad_out[b_e], weight[indices[e]]⟩`` and
    ``∂weight[j] = Σ_{e: indices[e] = j} values[e] · grad_out[b_e]``, each only when asked for.

    Args:
        rank_one: ``(u, r)``, float32 ``(n_rows,)`` and ``(d,)``: ∂weight starts from u ⊗ r instead of zero, in the
            same pass (the centred encoder's −c ⊗ Σ_b G_b).

    Returns:
        ``(grad_values, grad_weight)``, None where not asked for.
    """
    lib = _require()
    return _gradients(
        lib.textsae_csr_mm_backward,
        True,
        offsets,
        indices,
        values,
        weight,
        grad_out,
        need_values,
        need_weight,
        rank_one,
    )


def _gradients(
    kernel: Callable[..., int],
    blocked: bool,
    offsets: Tensor,
    indices: Tensor,
    values: Tensor,
    weight: Tensor,
    grad_out: Tensor,
    need_values: bool,
    need_weight: bool,
    rank_one: tuple[Tensor, Tensor] | None,
) -> tuple[Tensor | None, Tensor | None]:
    """Checks the operands of :func:`csr_mm_backward` or :func:`panel_mm_backward` and runs ``kernel`` on them
    (``blocked``: the kernel takes a column block size)."""
    offsets, indices, values, weight = _prepared(offsets, indices, values, weight)
    grad_out = grad_out.to(torch.float32).contiguous()
    batch = offsets.numel() - 1
    if grad_out.shape != (batch, weight.shape[1]):
        raise NativeError(f"grad_out must be ({batch}, {weight.shape[1]}). Got {tuple(grad_out.shape)} instead.")
    rows, columns = _rank_one(rank_one, *weight.shape)
    grad_values = torch.empty(values.shape, dtype=torch.float32) if need_values else None
    grad_weight = _gradient_buffer(weight.shape) if need_weight else None
    status = kernel(
        *_operands(offsets, indices, values, weight),
        grad_out.data_ptr(),
        None if rows is None else rows.data_ptr(),
        None if columns is None else columns.data_ptr(),
        None if grad_weight is None else grad_weight.data_ptr(),
        None if grad_values is None else grad_values.data_ptr(),
        *((_block(batch),) if blocked else ()),
        _threads(),
    )
    _check(status)
    return grad_values, grad_weight


PANEL_ROWS = 4096
"""The most weight rows :func:`panel_mm` takes: a 64-column panel of 4,096 rows is 1 MB, the L2 cache of one core on
current x86 server CPUs (smaller caches serve it from L3)."""


def panel_mm(offsets: Tensor, indices: Tensor, values: Tensor, weight: Tensor) -> Tensor:
    """:func:`csr_mm`'s product by 64-column panels of the weight copied into L2 and gathered from there: faster
    than :func:`csr_mm` for a weight of few rows (up to :data:`PANEL_ROWS`) and many columns whose rows the batch
    reads many times each (the SAE decoder). The same result up to the order of float additions; no autograd.

    Raises:
        NativeError: If the offsets or indices are invalid, or the weight has more than :data:`PANEL_ROWS` rows.
    """
    lib = _require()
    offsets, indices, values, weight = _prepared(offsets, indices, values, weight)
    if weight.shape[0] > PANEL_ROWS:
        raise NativeError(f"panel_mm takes weights of up to {PANEL_ROWS:,} rows. Got {weight.shape[0]:,}.")
    out = torch.empty(offsets.numel() - 1, weight.shape[1], dtype=torch.float32)
    _check(lib.textsae_panel_mm(*_operands(offsets, indices, values, weight), out.data_ptr(), _threads()))
    return out


def panel_mm_backward(
    offsets: Tensor,
    indices: Tensor,
    values: Tensor,
    weight: Tensor,
    grad_out: Tensor,
    *,
    need_values: bool = True,
    need_weight: bool = True,
    rank_one: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor | None, Tensor | None]:
    """:func:`csr_mm_backward` by 64-column panels of ``grad_out`` copied into L2 (the gradients of :func:`panel_mm`).
    The same result up to the order of float additions; same arguments and errors."""
    lib = _require()
    return _gradients(
        lib.textsae_panel_mm_backward,
        False,
        offsets,
        indices,
        values,
        weight,
        grad_out,
        need_values,
        need_weight,
        rank_one,
    )


def csr_t_sparse_mm(
    offsets: Tensor,
    indices: Tensor,
    values: Tensor,
    n_rows: int,
    g_indices: Tensor,
    g_values: Tensor,
    n_cols: int,
    *,
    rank_one: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """``out[t] = u[t]·r + Σ_{e of term t} values[e] · G[b_e]`` ``(n_rows, n_cols)``: xᵀ·G for x given as
    (offsets, indices, values) rows over ``n_rows`` terms and G ``(B, n_cols)`` given by ``g_indices`` and
    ``g_values`` ``(B, S)``, S entries per row (a column may repeat: its values add).

    Args:
        rank_one: ``(u, r)``, float32 ``(n_rows,)`` and ``(n_cols,)``; zero when None.

    Raises:
        NativeError: If an index is outside its range or the offsets are invalid.
    """
    lib = _require()
    factors = _factors(offsets, indices, values, g_indices, g_values, n_rows, n_cols, rank_one)
    out = _gradient_buffer((n_rows, n_cols))
    _check(lib.textsae_csr_t_sparse_mm(*_pointers(factors, n_rows, n_cols), out.data_ptr(), _threads()))
    return out


def dense_t_sparse_mm(
    x: Tensor, g_indices: Tensor, g_values: Tensor, n_cols: int, *, rank_one: tuple[Tensor, Tensor] | None = None
) -> Tensor:
    """``out[:, j] = u·r[j] + Σ_{(b, s): g_indices[b, s] = j} g_values[b, s] · x[b]`` ``(d, n_cols)``: xᵀ·G for
    dense x ``(B, d)`` and G ``(B, n_cols)`` given by S entries per row (a column may repeat: its values add), written
    straight into a row-major ``(d, n_cols)`` layout (the dense-input encoder's weight gradient).

    Args:
        rank_one: ``(u, r)``, float32 ``(d,)`` and ``(n_cols,)``; zero when None.

    Raises:
        NativeError: If an index is outside ``[0, n_cols)`` or the shapes disagree.
    """
    lib = _require()
    if x.dim() != 2 or g_indices.shape != g_values.shape or g_indices.dim() != 2 or g_indices.shape[0] != x.shape[0]:
        raise NativeError(
            f"x must be (B, d) and g_indices, g_values both (B, S). Got {tuple(x.shape)}, {tuple(g_indices.shape)} "
            f"and {tuple(g_values.shape)} instead."
        )
    batch, d = x.shape
    x = x.to(torch.float32).contiguous()
    rows, columns = _rank_one(rank_one, d, n_cols)
    g_indices, g_values = g_indices.to(torch.int64).contiguous(), g_values.to(torch.float32).contiguous()
    out = _gradient_buffer((d, n_cols))
    status = lib.textsae_dense_t_sparse_mm(
        x.data_ptr(),
        batch,
        d,
        *_g_pointers(g_indices, g_values, n_cols, rows, columns),
        out.data_ptr(),
        _threads(),
    )
    _check(status)
    return out


def _factors(
    offsets: Tensor,
    indices: Tensor,
    values: Tensor,
    g_indices: Tensor,
    g_values: Tensor,
    n_rows: int,
    n_cols: int,
    rank_one: tuple[Tensor, Tensor] | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor | None, Tensor | None]:
    """The operands of xᵀ·G + u ⊗ r (:func:`csr_t_sparse_mm`, :func:`encoder_adam_step`), checked and made contiguous
    in the kernels' dtypes."""
    offsets, indices, values, _ = _prepared(offsets, indices, values, torch.empty(0, 0))
    batch = offsets.numel() - 1
    if g_indices.shape != g_values.shape or g_indices.dim() != 2 or g_indices.shape[0] != batch:
        raise NativeError(
            f"g_indices and g_values must both be ({batch}, S). Got {tuple(g_indices.shape)} and "
            f"{tuple(g_values.shape)} instead."
        )
    rows, columns = _rank_one(rank_one, n_rows, n_cols)
    g_indices, g_values = g_indices.to(torch.int64).contiguous(), g_values.to(torch.float32).contiguous()
    return offsets, indices, values, g_indices, g_values, rows, columns


def _pointers(
    factors: tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor | None, Tensor | None], n_rows: int, n_cols: int
) -> tuple[int | None, ...]:
    """The arguments both xᵀ·G kernels start with (``factors`` must outlive the call)."""
    offsets, indices, values, g_indices, g_values, rows, columns = factors
    return (
        offsets.data_ptr(),
        indices.data_ptr(),
        values.data_ptr(),
        offsets.numel() - 1,
        n_rows,
        *_g_pointers(g_indices, g_values, n_cols, rows, columns),
    )


def _g_pointers(
    g_indices: Tensor, g_values: Tensor, n_cols: int, rows: Tensor | None, columns: Tensor | None
) -> tuple[int | None, ...]:
    """The arguments for G (S entries per row over ``n_cols`` columns) and the rank-one term u ⊗ r that every xᵀ·G
    kernel takes."""
    return (
        g_indices.data_ptr(),
        g_values.data_ptr(),
        g_indices.shape[1],
        n_cols,
        None if rows is None else rows.data_ptr(),
        None if columns is None else columns.data_ptr(),
    )


_kept: list[torch.UntypedStorage] = []  # at most one block: the latest size asked for
_kept_lock = threading.Lock()


def _gradient_buffer(shape: tuple[int, ...] | torch.Size) -> Tensor:
    """An uninitialised float32 tensor of ``shape`` for a weight's gradient, on memory kept for reuse by this module.

    A training step makes two weight-sized gradients (W_dec's, then W_enc's, of one size), and with the optimiser
    stepping inside backward the first is freed before the second is made. Taken from malloc's heap, each such block
    lands wherever the step's small temporaries left room, and the heap grows by a whole block whenever none is left:
    peak memory then varied from run to run (7.9-8.8 GiB at 30,000 × 8,192, against 7.0-7.2 with this). Here they
    share one kept block, handed out again only when nothing else holds it (no tensor uses its storage and no one else
    holds the storage object); otherwise a plain allocation is made, and a new size replaces the kept block. The
    returned tensor is the only reference to itself, so autograd adopts it as ``.grad`` instead of copying.
    """
    size = torch.Size(shape)
    use_count = getattr(torch._C, "_storage_Use_Count", None)  # private; without it, plain allocations
    with _kept_lock:
        same_size = bool(_kept) and _kept[0].nbytes() == size.numel() * 4
        if same_size and use_count is not None:
            kept = _kept[0]
            # Free when only _kept holds the storage: one C++ owner, and Python references from _kept, `kept` and
            # getrefcount's own argument.
            if use_count(kept._cdata) == 1 and sys.getrefcount(kept) <= 3:
                strides = [1] * len(size)
                for axis in range(len(size) - 2, -1, -1):
                    strides[axis] = strides[axis + 1] * size[axis + 1]
                return torch.empty(0, dtype=torch.float32).set_(kept, 0, size, strides)
        tensor = torch.empty(size, dtype=torch.float32)
        if not same_size and use_count is not None:
            _kept[:] = [tensor.untyped_storage()]
        return tensor


def _rank_one(rank_one: tuple[Tensor, Tensor] | None, n_rows: int, n_cols: int) -> tuple[Tensor | None, Tensor | None]:
    if rank_one is None:
        return None, None
    rows, columns = (t.to(torch.float32).contiguous() for t in rank_one)
    if rows.shape != (n_rows,) or columns.shape != (n_cols,):
        raise NativeError(
            f"rank_one must be ({n_rows},) and ({n_cols},). Got {tuple(rows.shape)} and {tuple(columns.shape)} instead."
        )
    return rows, columns


def decoder_adam_step(
    weight: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    step: int,
    project: bool,
    renormalise: bool,
) -> None:
    """One ``torch.optim.Adam`` step of ``weight`` (no weight decay, amsgrad or maximize), in place, with the decoder's
    constraint around it: ``grad`` first loses each row's component along that row (``project``, and ``grad`` keeps
    the projected gradient), and each row is rescaled to unit norm after the step (``renormalise``).

    Args:
        weight, grad, exp_avg, exp_avg_sq: ``(n_rows, d)`` contiguous float32 CPU tensors (Adam's moments as torch
            keeps them).
        step: This step's number, from 1 (the bias corrections use it).

    Raises:
        NativeError: If a tensor is not a contiguous float32 CPU tensor of ``weight``'s shape.
    """
    lib = _require()
    _check_adam_operands(weight, step, grad=grad, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq)
    lib.textsae_decoder_adam_step(
        weight.data_ptr(),
        grad.data_ptr(),
        exp_avg.data_ptr(),
        exp_avg_sq.data_ptr(),
        weight.shape[0],
        weight.shape[1],
        *_adam_scalars(lr, betas, eps, step),
        int(project),
        int(renormalise),
        _threads(),
    )


def encoder_adam_step(
    offsets: Tensor,
    indices: Tensor,
    values: Tensor,
    g_indices: Tensor,
    g_values: Tensor,
    weight: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    step: int,
    rank_one: tuple[Tensor, Tensor] | None = None,
    base: Tensor | None = None,
    center: Tensor | None = None,
    first_column: int = 0,
) -> Tensor | None:
    """One ``torch.optim.Adam`` step of the sparse-input encoder's ``weight`` ``(n_rows, n_cols)`` (no weight decay,
    amsgrad or maximize), in place, with its gradient ``base + u ⊗ r + xᵀ·G`` formed a row at a time and never stored:
    x given as (offsets, indices, values) rows over the ``n_rows`` terms, G by ``g_indices`` and ``g_values``
    ``(B, S)`` as for :func:`csr_t_sparse_mm`.

    Args:
        rank_one: ``(u, r)``, float32 ``(n_rows,)`` and ``(n_cols,)``; zero when None.
        base: The gradient's other contributions ``(n_rows, n_cols)``, or None for none.
        center: ``(n_rows,)``: also return ``center · weight`` ``(n_cols,)`` of the updated weight.
        step: This step's number, from 1.
        first_column: Columns before it (fixed latents) and their moments are left as they are.

    Returns:
        ``center · weight`` after the step, or None without ``center``.

    Raises:
        NativeError: If a tensor has the wrong shape, dtype or device, an index is outside its range, or the offsets are
            invalid (the weight is then unchanged).
    """
    lib = _require()
    _check_adam_operands(weight, step, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq, base=base)
    n_rows, n_cols = weight.shape
    if not 0 <= first_column <= n_cols:
        raise NativeError(f"first_column must be in [0, {n_cols}]. Got {first_column} instead.")
    factors = _factors(offsets, indices, values, g_indices, g_values, n_rows, n_cols, rank_one)
    center_values, product = None, None
    if center is not None:
        center_values = center.detach().to(torch.float32).contiguous()
        if center_values.shape != (n_rows,):
            raise NativeError(f"center must be ({n_rows},). Got {tuple(center_values.shape)} instead.")
        product = torch.empty(n_cols, dtype=torch.float32)
    status = lib.textsae_encoder_adam_step(
        *_pointers(factors, n_rows, n_cols),
        None if base is None else base.data_ptr(),
        weight.data_ptr(),
        exp_avg.data_ptr(),
        exp_avg_sq.data_ptr(),
        *_adam_scalars(lr, betas, eps, step),
        first_column,
        None if center_values is None else center_values.data_ptr(),
        None if product is None else product.data_ptr(),
        _threads(),
    )
    _check(status)
    return product


def center_product(center: Tensor, weight: Tensor) -> Tensor:
    """``center · weight`` ``(n_cols,)`` for ``weight`` ``(n_rows, n_cols)``, summed exactly as
    :func:`encoder_adam_step` sums it (the same bits for the same thread count).

    Raises:
        NativeError: If the tensors are not float32 CPU tensors of matching shapes.
    """
    lib = _require()
    center = center.detach().contiguous()
    if weight.dim() != 2 or not _plain_float32(weight) or center.shape != (weight.shape[0],):
        raise NativeError(
            f"weight must be a contiguous 2-D float32 CPU tensor and center its rows' length. Got {weight.dtype} "
            f"{tuple(weight.shape)} on {weight.device} and {tuple(center.shape)} instead."
        )
    if not _plain_float32(center):
        raise NativeError(f"center must be a float32 CPU tensor. Got {center.dtype} on {center.device} instead.")
    out = torch.empty(weight.shape[1], dtype=torch.float32)
    _check(
        lib.textsae_center_product(
            center.data_ptr(),
            weight.data_ptr(),
            weight.shape[0],
            weight.shape[1],
            out.data_ptr(),
            _threads(),
        )
    )
    return out


TOPK_MAX_COLUMNS = (1 << 31) - 1 - 8
"""Longest row :func:`topk` takes (it keeps column numbers as 32-bit integers)."""
TOPK_KERNEL_SORT_MAX_K = 64
"""Largest k that :func:`topk` sorts inside the kernel (an insertion sort, quadratic in k); torch sorts larger k: at
k 1,024 of 16,384 columns, 1,024 rows, 200 ms with the kernel's sort against 94 with torch's (`python
benchmarks/topk.py --cols 16384 --k 1024 --sorted [--kernel-sort-max-k 100000]`)."""
TOPK_ENTRIES_PER_THREAD = 1 << 16
"""Entries of the input per thread below which :func:`topk` uses fewer threads (starting a thread of the kernels' own
costs about as much as scanning this many)."""


def topk_applies(x: Tensor, k: int) -> bool:
    """Whether :func:`topk` serves ``x.topk(k, dim=1)``: the kernels are available and built with AVX2 (without it
    torch's topk is faster), x is a 2-D float32 CPU tensor with contiguous rows, and 1 ≤ k ≤ its row length."""
    return (
        _enabled
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and x.dim() == 2
        and 1 <= k <= x.shape[1] <= TOPK_MAX_COLUMNS
        and (x.stride(1) == 1 or x.shape[1] == 1)
        and x.shape[0] > 0
        and available()
        and bool(_require().textsae_topk_vectorised())
    )


def topk(x: Tensor, k: int, *, sorted: bool = False) -> tuple[Tensor, Tensor] | None:
    """The k largest entries of each row of x: ``(values, indices)``, each ``(B, k)``, as ``x.topk(k, dim=1)``.

    Among equal values the lower column is kept. Unsorted, each row's entries come in column order; sorted, in
    descending order of value (equal values by column). No autograd: gather the values from ``x`` for a gradient.
    Returns None when a row holds a NaN (torch.topk orders NaN above every number; use it then). Check
    :func:`topk_applies` first.
    """
    lib = _require()
    if not topk_applies(x, k):
        raise ValueError(f"native topk does not serve a {x.dtype} {tuple(x.shape)} tensor on {x.device} with k={k}")
    n_rows, n_cols = x.shape
    values = torch.empty(n_rows, k, dtype=torch.float32)
    indices = torch.empty(n_rows, k, dtype=torch.int64)
    threads = max(1, min(_threads(), x.numel() // TOPK_ENTRIES_PER_THREAD))
    sort_in_kernel = sorted and k <= TOPK_KERNEL_SORT_MAX_K
    status = lib.textsae_topk(
        x.data_ptr(),
        n_rows,
        n_cols,
        x.stride(0),
        k,
        int(sort_in_kernel),
        values.data_ptr(),
        indices.data_ptr(),
        threads,
    )
    if status == 4:
        return None
    _check(status)
    if sorted and not sort_in_kernel:  # rows come in column order: a stable sort keeps equal values by column
        values, order = values.sort(dim=1, descending=True, stable=True)
        indices = indices.gather(1, order)
    return values, indices


def _adam_scalars(lr: float, betas: tuple[float, float], eps: float, step: int) -> tuple[float, ...]:
    """The Adam kernels' scalars, computed in double as torch computes them: step size lr / (1 − β1^t), 1 − β1, β2,
    1 − β2, eps, √(1 − β2^t)."""
    beta1, beta2 = betas
    return lr / (1 - beta1**step), 1 - beta1, beta2, 1 - beta2, eps, (1 - beta2**step) ** 0.5


def _check_adam_operands(weight: Tensor, step: int, **others: Tensor | None) -> None:
    """``weight`` and the ``others`` given are contiguous 2-D float32 CPU tensors of one shape, and ``step`` ≥ 1."""
    for name, tensor in {"weight": weight, **others}.items():
        if tensor is not None and (tensor.dim() != 2 or tensor.shape != weight.shape or not _plain_float32(tensor)):
            raise NativeError(
                f"{name} must be a contiguous 2-D float32 CPU tensor of shape {tuple(weight.shape)}. Got "
                f"{tensor.dtype} {tuple(tensor.shape)} on {tensor.device} instead."
            )
    if step < 1:
        raise NativeError(f"step must be >= 1. Got {step} instead.")


def _plain_float32(tensor: Tensor) -> bool:
    return tensor.device.type == "cpu" and tensor.dtype == torch.float32 and tensor.is_contiguous()


def _prepared(
    offsets: Tensor, indices: Tensor, values: Tensor, weight: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    if offsets.dim() != 1 or offsets.numel() < 1:
        raise NativeError(f"offsets must be 1-D with at least one element. Got shape {tuple(offsets.shape)} instead.")
    if indices.shape != values.shape or indices.dim() != 1:
        raise NativeError(
            f"indices and values must be 1-D and of one length. Got {tuple(indices.shape)} and "
            f"{tuple(values.shape)} instead."
        )
    if weight.dim() != 2:
        raise NativeError(f"weight must be 2-D. Got shape {tuple(weight.shape)} instead.")
    for name, tensor in (("weight", weight), ("values", values), ("offsets", offsets), ("indices", indices)):
        if tensor.device.type != "cpu":
            raise NativeError(f"{name} must be a CPU tensor. Got one on {tensor.device} instead.")
    if weight.dtype != torch.float32 or values.dtype != torch.float32:
        raise NativeError(f"weight and values must be float32. Got {weight.dtype} and {values.dtype} instead.")
    offsets = offsets.to(torch.int64).contiguous()
    if int(offsets[-1]) != indices.numel():
        raise NativeError(f"offsets must end at the number of entries ({indices.numel()}). Got {int(offsets[-1])}.")
    return offsets, indices.to(torch.int64).contiguous(), values.contiguous(), weight.contiguous()


def _operands(offsets: Tensor, indices: Tensor, values: Tensor, weight: Tensor) -> tuple[int, ...]:
    """The arguments both csr_mm kernels start with: offsets, indices, values, batch, n_rows, weight, d."""
    return (
        offsets.data_ptr(),
        indices.data_ptr(),
        values.data_ptr(),
        offsets.numel() - 1,
        weight.shape[0],
        weight.data_ptr(),
        weight.shape[1],
    )


def _block(batch: int) -> int:
    return max(64, SLAB_BYTES // (4 * max(batch, 1)) // 64 * 64)


def _check(status: int) -> None:
    if status:
        raise NativeError(f"textsae's native kernel refused its input: {_ERRORS.get(status, f'error {status}')}.")


def _require() -> ctypes.CDLL:
    lib = _library() if _enabled else None
    if lib is None:
        raise RuntimeError("textsae's native kernels are not available here; check textsae.native.available() first.")
    return lib


@functools.cache
def _library() -> ctypes.CDLL | None:
    """The compiled library, built now if this CPU and compiler have none cached; None (said once) when it cannot be.

    The build that runs its jobs in torch's OpenMP pool comes first: after each torch op the pool's workers spin for
    a while, so threads of the kernels' own would share the cores with them (in a dense training step on 2 cores the
    top-k took 5.9 ms so, 3.1 ms in the pool: `python benchmarks/step_ab.py --toggle torch-threads --input dense
    --d-in 384 --n-latents 4096 --k 32 --batch 1024 --phases`). Where that build cannot be made or would bring a second OpenMP runtime into
    the process, the kernels start threads of their own."""
    try:
        lib = _load_in_torch_threads() or _load(_build())
    except (OSError, subprocess.SubprocessError, _NoCompiler) as error:
        logger.warning(
            "textsae: the native CPU kernels could not be built (%s); using torch's kernels, which are slower for "
            "large sparse products. Install a C compiler (gcc or clang, or set CC), or set TEXTSAE_NATIVE=0 to "
            "silence this.",
            str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__,
        )
        return None
    logger.debug(
        "textsae's native kernels run in %s",
        "torch's OpenMP threads" if lib.textsae_native_openmp_runtime() is not None else "threads of their own",
    )
    return lib


def _load_in_torch_threads() -> ctypes.CDLL | None:
    """The OpenMP build, if it is bound to the OpenMP runtime shipped in torch's package and maps no other; None
    otherwise. Other packages may have loaded runtimes of their own (scikit-learn's wheels carry a libgomp too)."""
    before = _openmp_runtimes()
    if not torch.backends.openmp.is_available() or not before:
        return None
    try:
        path = _build(openmp=True)
        lib = _load(path)
    except (OSError, subprocess.SubprocessError) as error:
        logger.debug("textsae: no OpenMP build of the native kernels (%s); they start threads of their own", error)
        return None
    runtime = _mapped_file(lib.textsae_native_openmp_runtime())
    added = (_openmp_runtimes() or set()) - before
    if added or runtime is None or not runtime.resolve().is_relative_to(_torch_folder()):
        # e.g. clang's libomp, or a system libgomp where torch's carries another name. What it mapped stays mapped
        # (a library cannot be unloaded) but idle; the marker spares later processes the load.
        logger.debug(
            "textsae: the OpenMP build of the native kernels %s; they start threads of their own",
            f"mapped another OpenMP runtime ({', '.join(sorted(added))})" if added else f"is bound to {runtime}",
        )
        _remember_openmp_failure(path)
        return None
    return lib


def _remember_openmp_failure(library: Path) -> None:
    """Marks the OpenMP build of ``library``'s sources as unusable, so later processes do not try it again."""
    with contextlib.suppress(OSError):
        os.close(os.open(library.with_suffix(".failed"), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))


def _proc_maps() -> list[tuple[int, int, str]] | None:
    """This process's file mappings as (start, end, path); None where /proc/self/maps cannot say."""
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    maps = []
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith("/"):
            start, end = fields[0].split("-")
            maps.append((int(start, 16), int(end, 16), fields[5]))
    return maps


def _openmp_runtimes() -> set[str] | None:
    """The OpenMP runtime files mapped into this process; None where /proc/self/maps cannot say."""
    maps = _proc_maps()
    return None if maps is None else {path for _, _, path in maps if Path(path).name.startswith(_OPENMP_RUNTIMES)}


def _mapped_file(address: int | None) -> Path | None:
    """The file mapped at ``address`` in this process, if any."""
    if not address:
        return None
    for start, end, path in _proc_maps() or ():
        if start <= address < end:
            return Path(path)
    return None


def _torch_folder() -> Path:
    return Path(torch.__file__).resolve().parent


def _load(path: Path) -> ctypes.CDLL:
    """Loads a built library, checks its ABI and declares its functions' argument types."""
    lib = ctypes.CDLL(str(path))
    if lib.textsae_native_abi() != _ABI:
        raise OSError(f"{path} has ABI {lib.textsae_native_abi()}, not {_ABI}")
    p, n, i = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    lib.textsae_native_openmp_runtime.argtypes = []
    lib.textsae_native_openmp_runtime.restype = p
    lib.textsae_csr_mm.argtypes = [p, p, p, n, n, p, n, p, n, i]
    lib.textsae_csr_mm.restype = i
    lib.textsae_csr_mm_backward.argtypes = [p, p, p, n, n, p, n, p, p, p, p, p, n, i]
    lib.textsae_csr_mm_backward.restype = i
    f = ctypes.c_float
    lib.textsae_panel_mm.argtypes = [p, p, p, n, n, p, n, p, i]
    lib.textsae_panel_mm.restype = i
    lib.textsae_panel_mm_backward.argtypes = [p, p, p, n, n, p, n, p, p, p, p, p, i]
    lib.textsae_panel_mm_backward.restype = i
    lib.textsae_decoder_adam_step.argtypes = [p, p, p, p, n, n, f, f, f, f, f, f, i, i, i]
    lib.textsae_decoder_adam_step.restype = i
    lib.textsae_csr_t_sparse_mm.argtypes = [p, p, p, n, n, p, p, n, n, p, p, p, i]
    lib.textsae_csr_t_sparse_mm.restype = i
    lib.textsae_encoder_adam_step.argtypes = [p, p, p, n, n, p, p, n, n, p, p, p, p, p, p, f, f, f, f, f, f, n, p, p, i]
    lib.textsae_encoder_adam_step.restype = i
    lib.textsae_center_product.argtypes = [p, p, n, n, p, i]
    lib.textsae_center_product.restype = i
    lib.textsae_dense_t_sparse_mm.argtypes = [p, n, n, p, p, n, n, p, p, p, i]
    lib.textsae_dense_t_sparse_mm.restype = i
    lib.textsae_topk.argtypes = [p, n, n, n, n, i, p, p, i]
    lib.textsae_topk.restype = i
    lib.textsae_topk_vectorised.argtypes = []
    lib.textsae_topk_vectorised.restype = i
    return lib


class _NoCompiler(Exception):
    pass


def _compiler() -> list[str]:
    """The compiler command: ``$CC`` (which may carry arguments, e.g. ``ccache gcc``) when set, else cc, gcc, clang."""
    if os.environ.get("CC", "").strip():
        command = shlex.split(os.environ["CC"])
        found = shutil.which(command[0])
        if found is None:
            raise _NoCompiler(f"CC={os.environ['CC']!r} names no program on PATH")
        return [found, *command[1:]]
    for candidate in ("cc", "gcc", "clang"):
        found = shutil.which(candidate)
        if found:
            return [found]
    raise _NoCompiler("no C compiler found (tried $CC, cc, gcc, clang)")


def _cache_folder() -> Path:
    if os.environ.get("TEXTSAE_NATIVE_CACHE"):
        return Path(os.environ["TEXTSAE_NATIVE_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "textsae" / "native"


def _cpu_fingerprint() -> str:
    """What ``-march=native`` depends on: the CPU's model and feature flags (Linux), else what platform says."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        wanted = [line for line in lines if line.split(":")[0].strip() in ("model name", "flags", "Features")]
        return "\n".join(sorted(set(wanted)))
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


def _check_trusted(path: Path) -> None:
    """Refuse to load a cached library that another user could have written (it runs inside this process)."""
    info = path.stat()
    if (hasattr(os, "getuid") and info.st_uid != os.getuid()) or info.st_mode & 0o022:
        raise OSError(f"{path} is not owned by this user or is writable by others; remove it to rebuild")


def _build(*, openmp: bool = False) -> Path:
    """The library's path, compiled now unless cached; ``openmp``: the build whose jobs run in OpenMP's threads."""
    compiler = _compiler()
    sources = [path.read_bytes() for path in (*_SOURCES, *_HEADERS)]
    flags = (*_FLAGS, *(_OPENMP_FLAGS if openmp else ()))
    key = hashlib.sha256(
        b"\0".join([*sources, " ".join(compiler).encode(), " ".join(flags).encode(), _cpu_fingerprint().encode()])
    )
    folder = _cache_folder()
    target = folder / f"kernels-{key.hexdigest()[:20]}.so"
    failed = target.with_suffix(".failed")  # an OpenMP build that failed or did not bind to torch's runtime
    if openmp and failed.exists():
        raise OSError(f"an earlier OpenMP build failed or did not share torch's runtime ({failed})")
    if target.is_file():
        _check_trusted(target)
        return target
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        handle, scratch = tempfile.mkstemp(dir=folder, prefix=".build-", suffix=".so")
    except OSError:  # a cache folder we cannot write: build for this process only
        folder = Path(tempfile.mkdtemp(prefix="textsae-native-"))
        target = folder / target.name
        handle, scratch = tempfile.mkstemp(dir=folder, prefix=".build-", suffix=".so")
    os.close(handle)
    errors = []
    refused = False
    try:
        for extra in (_CPU_FLAGS, ()):
            command = [*compiler, *flags, *extra, *map(str, _SOURCES), "-o", scratch]
            done = subprocess.run(command, capture_output=True, timeout=120, check=False)
            if done.returncode == 0:
                os.replace(scratch, target)
                logger.info("Built textsae's native CPU kernels: %s", target)
                return target
            errors.append(done.stderr.decode(errors="replace").strip() or f"exit status {done.returncode}")
            refused = done.returncode > 0  # not killed by a signal: the compiler ran and said no
    finally:
        Path(scratch).unlink(missing_ok=True)
    if openmp and refused:
        _remember_openmp_failure(target)
    raise OSError(f"{' '.join(compiler)} failed: {errors[-1]}")
