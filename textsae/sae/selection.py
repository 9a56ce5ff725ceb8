"""The k largest entries of each row: the TopK family's choice of active latents."""

from __future__ import annotations

import torch
from torch import Tensor

from textsae import native

__all__ = ["top_k"]


def top_k(x: Tensor, k: int, *, sorted: bool = False) -> tuple[Tensor, Tensor]:
    """``x.topk(k, dim=1, sorted=sorted)`` for a 2-D ``x``: ``(values, indices)``, each ``(B, k)``.

    On CPU float32 it runs textsae's native kernel where that applies (:func:`textsae.native.topk_applies`): 2.8
    against 10-14 ms for torch's at 1,024 × 4,096 with k 32 (2 threads, a perf_counter loop, not kept; in the training
    step `python benchmarks/step_ab.py --toggle topk`). There, among equal values the lower column is kept and an
    unsorted row comes in column order; torch leaves both open. A row with a NaN, any other
    dtype or device, and a build without AVX2 use torch's topk. The values carry ``x``'s gradient either way.
    """
    if native.topk_applies(x, k):
        with torch.no_grad():
            found = native.topk(x.detach(), k, sorted=sorted)
        if found is not None:
            values, indices = found
            if x.requires_grad and torch.is_grad_enabled():
                values = x.gather(1, indices)
            return values, indices
    return x.topk(k, dim=1, sorted=sorted)
