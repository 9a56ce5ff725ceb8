"""Reconstruction quality of an SAE's inference codes: FVU and L0."""

from __future__ import annotations

import torch

from textsae.rows import FeatureMatrix, rows_to_tensor
from textsae.runtime import autocast
from textsae.sae.base import SparseAutoencoder
from textsae.sae.losses import fvu_from_sums


@torch.no_grad()
def reconstruction_metrics(
    sae: SparseAutoencoder,
    features: FeatureMatrix,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 1024,
    bf16: bool = False,
    k: int | None = None,
) -> dict[str, float]:
    """FVU and mean L0 of ``decode(encode(x, k=k))`` over ``features``, measured in the SAE's normalised space.

    FVU = Σ‖x − x̂‖² / Σ‖x − x̄‖², x̄ the mean over all rows; 0 is perfect, 1 is no better than the mean.
    ``k``: inference k (see :meth:`SparseAutoencoder.encode`); ``None`` keeps the SAE's own code.
    """
    was_training = sae.training
    sae.eval()
    n_rows = features.shape[0]
    error_sum = square_sum = l0_sum = 0.0
    column_sum: torch.Tensor | None = None
    precision = "bf16" if bf16 else "fp32"
    for begin in range(0, n_rows, batch_size):
        x = rows_to_tensor(features, slice(begin, min(begin + batch_size, n_rows)), device)
        with autocast(device, precision):
            codes = sae.encode(x, k=k)
            x_hat = sae.normalize(sae.decode(codes))
        x_n = sae.normalize(x)
        x_dense = (x_n.to_dense() if x_n.layout == torch.sparse_csr else x_n).double()
        error_sum += float((x_dense - x_hat.double()).pow(2).sum())
        column_sum = x_dense.sum(0) if column_sum is None else column_sum + x_dense.sum(0)
        square_sum += float(x_dense.pow(2).sum())
        l0_sum += float((codes != 0).sum())
    sae.train(was_training)
    if column_sum is None:
        return {"fvu": float("nan"), "l0": float("nan")}
    return {"fvu": fvu_from_sums(error_sum, square_sum, float(column_sum.pow(2).sum()), n_rows), "l0": l0_sum / n_rows}
