"""Data-aware decoder initialisation whose latents start shared by several documents.

Starting each decoder row at one training document (``sae.decoder_init=data``) ties that latent to the
document: with a tied encoder it fires on its own document several times more strongly than on any
other, and short CPU runs never undo it (on the quickstart corpus, 86% of the live latents kept a
top-1/top-2 activation ratio above 3). ``sae.decoder_init=neighbours`` starts each row at the mean
direction of a random document and its ``NEIGHBOURS − 1`` nearest neighbours instead: still a direction
the data has, but one that a group of documents shares, so the latent fires on all of them about equally.

A sparse (CSR) sample is never densified: similarities to the centred rows are taken as
``x @ Wᵀ − c @ Wᵀ``, and a neighbourhood's sum as the sum of its CSR rows minus its weight times ``c``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from textsae.sae import losses

__all__ = ["NEIGHBOURS", "neighbourhood_means"]

NEIGHBOURS = 8
"""Documents averaged per decoder row: a random seed document and its 7 nearest neighbours."""


def neighbourhood_means(
    x: Tensor, center: Tensor, n_directions: int, *, neighbours: int = NEIGHBOURS, chunk_rows: int = 4096
) -> Tensor:
    """Unit directions, each the normalised mean of a random row's direction and those of its nearest neighbours.

    A row's direction is u_i = (x_i − c) / ‖x_i − c‖; "nearest" is by cosine, among all rows of ``x``
    (the seed itself included). Seeds are drawn with torch's global RNG; rows equal to ``center`` are
    never used.

    Args:
        x: Sample rows, dense ``(N, d)`` or sparse CSR, in the SAE's normalised space.
        center: ``(d,)``, subtracted from every row (the SAE's input centre).
        n_directions: Number of directions; beyond the number of usable rows the rest are random unit vectors.
        neighbours: Rows averaged per direction, the seed included.
        chunk_rows: Rows per block when computing similarities (bounds the ``(rows, n_directions)`` temporary).

    Returns:
        ``(n_directions, d)`` float32 tensor with unit rows, on ``x``'s device (computed on CPU with the CPU
        generator, so a GPU run starts from the same directions as a CPU run).
    """
    if x.device.type != "cpu":
        return neighbourhood_means(
            x.cpu(), center.cpu(), n_directions, neighbours=neighbours, chunk_rows=chunk_rows
        ).to(x.device)
    center = losses._acc(center).float()
    norms = _centred_norms(x, center)  # (N,)
    inv_norms = 1.0 / norms.clamp_min(torch.finfo(torch.float32).tiny)
    usable = torch.nonzero(norms > 0).squeeze(1)
    out = _unit_rows(torch.randn(n_directions, x.shape[1]))
    n_seeded = min(n_directions, len(usable))
    if n_seeded == 0:
        return out
    seeds = usable[torch.randperm(len(usable))[:n_seeded]]
    seed_directions = (_dense(_select_rows(x, seeds)) - center) * inv_norms[seeds, None]  # (n, d) unit rows
    members = _nearest_rows(
        x, seed_directions, center, norms, inv_norms, min(neighbours, len(usable)), chunk_rows
    )  # (n, m)
    flat = members.reshape(-1)
    owner = torch.arange(n_seeded).repeat_interleave(members.shape[1])
    out[:n_seeded] = _unit_rows(_group_sums(_select_rows(x, flat), owner, inv_norms[flat], center, n_seeded))
    return out


def _nearest_rows(
    x: Tensor, directions: Tensor, center: Tensor, norms: Tensor, inv_norms: Tensor, m: int, chunk_rows: int
) -> Tensor:
    """For each direction, the ``m`` rows of ``x`` whose centred directions are most similar to it ``(n, m)``."""
    n = directions.shape[0]
    offset = center @ directions.T  # (n,)
    best_values = torch.full((0, n), float("-inf"))
    best_rows = torch.zeros((0, n), dtype=torch.long)
    for begin in range(0, x.shape[0], chunk_rows):
        end = min(begin + chunk_rows, x.shape[0])
        cosine = (_row_block(x, begin, end) @ directions.T - offset) * inv_norms[begin:end, None]  # (chunk, n)
        cosine[norms[begin:end] == 0] = float("-inf")
        values = torch.cat([best_values, cosine])
        rows = torch.cat([best_rows, torch.arange(begin, end).unsqueeze(1).expand(-1, n)])
        best_values, pick = values.topk(min(m, len(values)), dim=0)  # (m, n)
        best_rows = rows.gather(0, pick)
    return best_rows.T


def _centred_norms(x: Tensor, center: Tensor) -> Tensor:
    """‖x_i − c‖ for each row ``(N,)``, without densifying a sparse ``x``."""
    if not losses.is_sparse_csr(x):
        return (_dense(x) - center).norm(dim=1)
    rows, cols, values = losses.csr_parts(x)
    values = losses._acc(values).float()
    sq = torch.zeros(x.shape[0]).index_add_(0, rows, values.square() - 2.0 * values * center[cols])
    return (sq + center.square().sum()).clamp_min(0.0).sqrt()


def _group_sums(x: Tensor, group: Tensor, weights: Tensor, center: Tensor, n_groups: int) -> Tensor:
    """Σ_{i in group j} w_i (x_i − c) for every group ``(n_groups, d)``; ``group`` gives each row's group."""
    mass = torch.zeros(n_groups).index_add_(0, group, weights)  # (n_groups,)
    d = x.shape[1]
    if losses.is_sparse_csr(x):
        rows, cols, values = losses.csr_parts(x)
        flat = torch.zeros(n_groups * d).index_add_(
            0, group[rows] * d + cols, losses._acc(values).float() * weights[rows]
        )
        sums = flat.view(n_groups, d)
    else:
        sums = torch.zeros(n_groups, d).index_add_(0, group, _dense(x) * weights[:, None])
    return sums - mass[:, None] * center


def _row_block(x: Tensor, begin: int, end: int) -> Tensor:
    """Rows begin … end − 1 of ``x`` as float32 (CSR stays CSR)."""
    if not losses.is_sparse_csr(x):
        return _dense(x[begin:end])
    crow = x.crow_indices()
    lo, hi = int(crow[begin]), int(crow[end])
    return torch.sparse_csr_tensor(
        crow[begin : end + 1] - lo,
        x.col_indices()[lo:hi],
        losses._acc(x.values()[lo:hi]).float(),
        size=(end - begin, x.shape[1]),
    )


def _select_rows(x: Tensor, index: Tensor) -> Tensor:
    """Rows ``index`` of ``x`` (repeats allowed), keeping a CSR input sparse."""
    if not losses.is_sparse_csr(x):
        return x.index_select(0, index)
    crow, cols, values = x.crow_indices(), x.col_indices(), x.values()
    starts, counts = crow[index], crow[index + 1] - crow[index]
    new_crow = torch.zeros(len(index) + 1, dtype=crow.dtype)
    new_crow[1:] = counts.cumsum(0)
    gather = torch.repeat_interleave(starts - new_crow[:-1], counts) + torch.arange(int(new_crow[-1]), dtype=crow.dtype)
    return torch.sparse_csr_tensor(new_crow, cols[gather], values[gather], size=(len(index), x.shape[1]))


def _dense(x: Tensor) -> Tensor:
    """``x`` as a dense float32 tensor (at least float32; CSR is densified: use on small row sets only)."""
    return losses._acc(x.to_dense() if losses.is_sparse_csr(x) else x).float()


def _unit_rows(w: Tensor) -> Tensor:
    return w / w.norm(dim=1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny)
