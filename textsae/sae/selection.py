"""The k largest entries of each row: the TopK family's choice of active latents."""

from __future__ import annotations

import torch
from torch import Tensor

from textsae import native

__all__ = ["native_pays", "top_k"]


def top_k(x: Tensor, k: int, *, sorted: bool = False) -> tuple[Tensor, Tensor]:
    """``x.topk(k, dim=1, sorted=sorted)`` for a 2-D ``x``: ``(values, indices)``, each ``(B, k)``.

    On CPU float32 it runs textsae's native kernel where that applies (:func:`textsae.native.topk_applies`) and k is
    a small part of the row (:func:`native_pays`): 3.1 against 12.3 ms for torch's at 1,024 × 4,096 with k 32
    (2 threads, `python benchmarks/topk.py`; in the training step `python benchmarks/step_ab.py --toggle topk`).
    There, among equal values the lower column is kept and an unsorted row comes in column order; torch leaves both
    open (its CPU kernel keeps the higher columns). A row with a NaN, any other dtype or device, and a build without
    AVX2 use torch's topk. The values carry ``x``'s gradient either way.
    """
    if native_pays(x.shape[-1], k, sorted=sorted) and native.topk_applies(x, k):
        with torch.no_grad():
            found = native.topk(x.detach(), k, sorted=sorted)
        if found is not None:
            values, indices = found
            if x.requires_grad and torch.is_grad_enabled():
                values = x.gather(1, indices)
            return values, indices
    return x.topk(k, dim=1, sorted=sorted)


def native_pays(n_cols: int, k: int, *, sorted: bool = False) -> bool:
    """Whether the native kernel beats torch's topk at picking k of ``n_cols``: its bound from k groups gathers about
    k·ln(k) candidates, so it wins while k is a small part of the row. At 4,096 columns, 256 rows, 2 threads
    (`python benchmarks/topk.py --rows 256 --k 512,1024 [--sorted]`) it took 4.2 against 6.8 ms at k 512 and 6.2
    against 7.7 at k 1,024 on an idle machine, but 15.9 against 14.4 at k 1,024 under load; sorted, the sort of the
    kept entries comes on top (8.8 against 10.1 ms at k 512 idle, 22 against 13.5 loaded). The rule keeps that
    margin. The TopK family's k, AuxK's and Multi-TopK's stay far below it."""
    return k * (16 if sorted else 8) <= n_cols
