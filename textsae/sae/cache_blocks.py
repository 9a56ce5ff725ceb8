"""Cache blocking for the SAE's sparse products on CPU in torch: a weight read one block of columns at a time.

Where :mod:`textsae.native` is built, its kernels take these products for float32 weights that :func:`exceeds_cache`
(they read the blocks in place; torch copies each strided block first); the torch blocks here serve the rest.

`embedding_bag` sums, for each entry of a sparse operand, one whole row of a dense weight. When the weight is larger
than the cache, every row read goes to memory, however often the batch uses that row. Done one block of columns at a
time (:data:`BLOCK_BYTES` of the weight), the block stays in cache while every entry that uses one of its rows reads
it, so the weight comes from memory about once per pass. That pays off only when rows are used several times in a
batch (:data:`MIN_ROW_REUSE`); with rows used once or twice the extra passes over the entries cost more than they save.

Measured on this project's 2-core AVX2 CPU (2 threads, batch 512, k 64, 200 non-zeros per row, 2026-12-02), forward +
backward of the TopK decoder (`python benchmarks/decoder_blocks.py --n-latents N --d-in D`): 1,024 latents × 20,000
(32 entries per latent) blocked 252 ms against `embedding_bag`'s 392; 4,096 × 30,000 (8 per latent) 569 against 551;
16,384 × 10,000 (2) 541 against 218. The sparse-input encoder forward (`python benchmarks/encoder_blocks.py [--n-latents
4096 --d-in 30000]`, 8 MB blocks): 16,384 latents × 10,000 terms (each term used 10 times) 209-322 ms blocked against
344-382 in four runs; 4,096 × 30,000 (3.4 times) 124-210 against 78-92.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["BLOCK_BYTES", "MIN_ROW_REUSE", "blocked_embedding_bag", "column_blocks", "exceeds_cache", "use_blocks"]

BLOCK_BYTES = 8 << 20
"""Bytes of the weight per column block (and the weight size above which, twice over, blocks are considered)."""
MIN_BLOCK_COLUMNS = 128
MIN_ROW_REUSE = 8
"""Blocks are used when the batch reads each row of the weight at least this many times on average."""


def exceeds_cache(weight: Tensor) -> bool:
    """Whether ``weight`` is a CPU tensor larger than twice :data:`BLOCK_BYTES`: too large to stay in cache."""
    return weight.device.type == "cpu" and weight.numel() * weight.element_size() > 2 * BLOCK_BYTES


def use_blocks(weight: Tensor, n_entries: int) -> bool:
    """Whether a sparse product reading ``n_entries`` rows of ``weight`` should go block by block: on CPU, for a
    weight that :func:`exceeds_cache`, whose rows the batch reads :data:`MIN_ROW_REUSE` times or more."""
    return exceeds_cache(weight) and n_entries >= MIN_ROW_REUSE * weight.shape[0]


def column_blocks(weight: Tensor) -> list[slice]:
    """Column ranges of ``weight`` ``(rows, columns)`` holding about :data:`BLOCK_BYTES` each."""
    n_rows, n_columns = weight.shape
    width = max(MIN_BLOCK_COLUMNS, BLOCK_BYTES // (n_rows * weight.element_size()))
    return [slice(start, min(start + width, n_columns)) for start in range(0, n_columns, width)]


def blocked_embedding_bag(indices: Tensor, weight: Tensor, offsets: Tensor, per_sample_weights: Tensor) -> Tensor:
    """``F.embedding_bag(indices, weight, offsets, mode="sum", per_sample_weights=..., include_last_offset=True)``
    computed one column block of ``weight`` at a time ``(len(offsets) − 1, columns)``; no autograd of its own."""
    out = torch.empty(offsets.numel() - 1, weight.shape[1], dtype=weight.dtype, device=weight.device)
    for block in column_blocks(weight):
        out[:, block] = F.embedding_bag(
            indices,
            weight[:, block],
            offsets,
            mode="sum",
            per_sample_weights=per_sample_weights,
            include_last_offset=True,
        )
    return out
