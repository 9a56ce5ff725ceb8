"""A TopK SAE whose latents are split across the ``torchrun`` ranks (``runtime.shard_dictionary=latents``).

For a dictionary whose weights and Adam state do not fit one device (``n_latents × d_in`` × 4 bytes × 3, plus one
weight-sized gradient at a time): rank r of R holds latents ``[r·n/R, (r+1)·n/R)`` — those columns of W_enc and
entries of b_enc, those rows of W_dec, and the Adam moments of each — while b_dec and the input scaling are replicated.
Every rank reads the whole global batch (no data parallelism in this mode) and computes:

1. its pre-activations ``(B, n/R)`` and their local top-k (values and global indices);
2. all-gather of the R·k candidates per row, and the global top-k among them: the k largest values, ties going to the
   lower latent index (one process's ``torch.topk`` leaves the order of equal values unspecified, and a rank's local
   top-k may drop one of several values equal at its k-th place; float pre-activations are practically never equal);
3. each rank decodes only its own winning latents and the partial reconstructions are summed by
   :class:`_SumOverRanks` (forward all-reduce, backward identity), so every rank computes the same x̂ and the same loss
   and sends ∂loss/∂x̂ to its own W_dec rows and W_enc columns only;
4. the encoder's centring by b_dec goes through :class:`_CopyToRanks` (forward identity, backward all-reduce): each rank
   sees b_dec's gradient through its own latents only, and the all-reduce completes it (Megatron-LM's f/g pair), so
   b_dec gets the same full gradient, and the same Adam step, on every rank.

The decoder-norm constraint is per latent row (local); the dead-latent counters are per rank's own latents; the
loss, FVU and stopping decision are the same on every rank. Checkpoints gather every block to rank 0, which writes the
same file as unsharded training (a one-process resume of it works), and a resume splits it again; the trained SAE is
gathered into the full :class:`~textsae.sae.topk.TopKSAE` (on the CPU of every rank), so ``sae/``, encode and
inspection see no difference.

Supported: plain TopK, ``adaptive_k`` (per-row limits), Multi-TopK. Refused with one line naming the key: other
architectures, AuxK (``sae.auxk_coefficient`` > 0: it needs a second sharded top-k over the dead latents),
``sae.dense_latents``, ``sae.matryoshka_prefixes``, ``train.label_loss_weight``, a world of one process and an
``sae.n_latents`` not divisible by the number of ranks.

Why not FSDP2's ``fully_shard``: (a) the trainer steps each parameter inside backward
(:mod:`textsae.train.step_in_backward`) so that one gradient is alive at a time, while FSDP reduce-scatters gradients
in its own post-backward hooks and expects ``optimizer.step()`` afterwards on sharded DTensors; the decoder's
row-parallel-gradient removal and renormalisation need whole rows, which FSDP's flat dim-0 shards only give by
accident; (b) the loss and the decoder constraint read W_dec outside the module's forward, where FSDP has freed the
unsharded parameter again; (c) FSDP all-gathers the full weights for every forward and backward, so it saves the
optimizer state but not the weight-sized working memory, nor the ``(B, n_latents)`` activations, which splitting the
latents divides by R as well.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import torch
import torch.distributed as dist
from torch import Tensor

from textsae import distributed
from textsae.config.schema import TrainConfig
from textsae.errors import UserError
from textsae.sae import SparseAutoencoder
from textsae.sae.base import ActiveCodes
from textsae.sae.decoder import sparse_decode
from textsae.sae.encoder import encoder_pre_activations, gathered_pre_activations
from textsae.sae.topk import MULTI_TOPK_FACTOR, TopKConfig, TopKSAE

__all__ = ["LATENT_DIM", "ShardedTopKSAE", "check_shardable", "gather_full", "shard_tensors"]

LATENT_DIM = {"W_enc": 1, "b_enc": 0, "W_dec": 0}
"""The dimension along which each sharded parameter is split; every other tensor is replicated."""


def check_shardable(sae: SparseAutoencoder, train: TrainConfig, world: distributed.World) -> None:
    """Raise a UserError naming the key when ``runtime.shard_dictionary=latents`` cannot train ``sae`` here."""
    if not world.distributed:
        raise UserError(
            "runtime.shard_dictionary=latents splits the latents across processes: start the command with "
            "`torchrun --nproc-per-node N` (N >= 2), or set runtime.shard_dictionary=none for one process."
        )
    cfg = sae.cfg
    if not isinstance(sae, TopKSAE) or not isinstance(cfg, TopKConfig):
        raise UserError(
            f"runtime.shard_dictionary=latents supports sae.architecture=topk only. Got {cfg.architecture!r}; "
            "use topk or runtime.shard_dictionary=none."
        )
    unsupported = [
        ("sae.auxk_coefficient", cfg.auxk_coefficient, cfg.auxk_coefficient > 0, "0"),
        ("sae.dense_latents", cfg.dense_latents, cfg.dense_latents != 0, "0"),
        ("sae.matryoshka_prefixes", cfg.matryoshka_prefixes, bool(cfg.matryoshka_prefixes), "[]"),
        ("train.label_loss_weight", train.label_loss_weight, train.label_loss_weight > 0, "0"),
    ]
    for key, value, refused, allowed in unsupported:
        if refused:
            raise UserError(
                f"runtime.shard_dictionary=latents does not support {key}={value!r} yet: set {key}={allowed}, or "
                "runtime.shard_dictionary=none."
            )
    if sae.n_latents % world.size:
        raise UserError(
            f"runtime.shard_dictionary=latents needs sae.n_latents divisible by the {world.size} ranks. Got "
            f"{sae.n_latents}; use e.g. {sae.n_latents - sae.n_latents % world.size + world.size}."
        )


class _CopyToRanks(torch.autograd.Function):
    """Identity forward, all-reduce (sum) backward: a replicated tensor read by every rank's shard."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return distributed.all_reduce_(grad.contiguous().clone(), "sum")  # (d_in,): not autograd's own buffer


class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) forward, identity backward: the ranks' partial sums make one tensor that every rank then uses
    alike, so each rank's gradient of it is already the whole one."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        return distributed.all_reduce_(tensor.contiguous().clone(), "sum")

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad


def _all_gather(tensor: Tensor, size: int) -> Tensor:
    """Every rank's ``tensor`` stacked in rank order ``(size, *tensor.shape)``."""
    out = torch.empty((size, *tensor.shape), dtype=tensor.dtype, device=tensor.device)
    dist.all_gather(list(out.unbind(0)), tensor.contiguous())
    return out


class ShardedTopKSAE(TopKSAE):
    """This rank's block of a TopK SAE's latents; forward, encode, decode and loss are collectives over the ranks.

    ``n_latents`` is the block's size; ``cfg`` is the whole SAE's config (``cfg.n_latents`` the total).
    Build it with :meth:`from_full`.
    """

    def __init__(self, d_in: int, cfg: TopKConfig, world: distributed.World) -> None:
        total = int(cast(int, cfg.n_latents))
        local = total // world.size
        # the block alone (no whole-size weights); the checked config's k and prefixes must fit the block
        super().__init__(d_in, dataclasses.replace(cfg, n_latents=local, k=min(cast(int, cfg.k), local)))
        self.cfg = cfg
        self.world = world
        self.n_latents_total = total
        self.offset = world.rank * local

    @classmethod
    @torch.no_grad()
    def from_full(cls, full: TopKSAE, world: distributed.World) -> ShardedTopKSAE:
        """This rank's block of ``full`` (initialised), on ``full``'s device."""
        shard = cls(full.d_in, full.cfg, world)
        shard.load_state_dict(shard_tensors(full.state_dict(), shard))
        return shard

    @property
    def block(self) -> slice:
        """This rank's latents among all of them."""
        return slice(self.offset, self.offset + self.n_latents)

    @property
    def multi_k(self) -> int:
        return min(MULTI_TOPK_FACTOR * self._k, self.n_latents_total)

    def check_inference_k(self, k: int) -> int:
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.n_latents_total:
            raise UserError(
                f"The inference 'k' of a sharded TopK SAE must be an int in [1, sae.n_latents={self.n_latents_total}]. "
                f"Got {k!r} instead."
            )
        return k

    def pre_activations(self, x_in: Tensor, *, training: bool = False) -> Tensor:
        center = _CopyToRanks.apply(self._input_center())
        return encoder_pre_activations(x_in, self.W_enc, self.b_enc, center, self.fixed_columns, training=training)

    def gather_pre_activations(self, pre_acts: Tensor, x_in: Tensor, indices: Tensor) -> Tensor:
        center = _CopyToRanks.apply(self._input_center())
        return gathered_pre_activations(pre_acts, x_in, self.W_enc, self.b_enc, center, indices, self.fixed_columns)

    def _topk(
        self, pre_acts: Tensor, k: int, limit: Tensor | None = None, *, x_in: Tensor | None = None
    ) -> ActiveCodes:
        """The global top-k of each row, as this rank's part: the codes of its own latents that won."""
        n_rows, size = pre_acts.shape[0], self.world.size
        per_rank = min(k, self.n_latents)
        with torch.no_grad():
            values, indices = pre_acts.detach().topk(per_rank, dim=1)  # (B, per_rank) each, local indices
            all_values = _all_gather(values.float(), size).permute(1, 0, 2).reshape(n_rows, -1)  # (B, R·per_rank)
            all_indices = _all_gather(indices + self.offset, size).permute(1, 0, 2).reshape(n_rows, -1)
            by_latent = all_indices.argsort(dim=1)  # ties then go to the lower latent index
            ranked = all_values.gather(1, by_latent).sort(dim=1, descending=True, stable=True).indices[:, :k]
            chosen = by_latent.gather(1, ranked)  # (B, k) candidate positions, largest first
            keep = torch.ones_like(chosen, dtype=torch.bool)
            if limit is not None:
                keep = torch.arange(k, device=chosen.device) < limit.unsqueeze(1)
            won = torch.zeros_like(all_values, dtype=torch.bool).scatter_(1, chosen, keep)
            mine = won[:, self.world.rank * per_rank : (self.world.rank + 1) * per_rank]  # (B, per_rank)
        # training: the gradient reaches the encoder through these entries only
        picked = pre_acts.gather(1, indices) if x_in is None else self.gather_pre_activations(pre_acts, x_in, indices)
        picked = picked.relu() * mine.to(picked.dtype)
        offsets = torch.nn.functional.pad(mine.sum(dim=1).cumsum(dim=0), (1, 0))
        return ActiveCodes(indices[mine], picked[mine], offsets)

    def _decode_logits(self, codes: Tensor | None, active: ActiveCodes | None = None) -> Tensor:
        if active is None:
            assert codes is not None  # one of the two is always given
            partial = codes @ self.W_dec
        else:
            partial = sparse_decode(active.indices, active.values.to(self.W_dec.dtype), active.offsets, self.W_dec)
        return _SumOverRanks.apply(partial) + self.b_dec


def shard_tensors(
    full: dict[str, Tensor], shard: ShardedTopKSAE, names: dict[str, str] | None = None
) -> dict[str, Tensor]:
    """This rank's blocks of whole-SAE tensors (contiguous copies; replicated ones as they are).

    ``names`` maps a key of ``full`` to the parameter it belongs to when the key is not the parameter's own name
    (optimizer moments); tensors whose shape is not that parameter's are replicated (Adam's step counts).
    """
    out = {}
    for key, tensor in full.items():
        name = (names or {}).get(key, key)
        dim = LATENT_DIM.get(name)
        if dim is None or tensor.dim() <= dim or tensor.shape[dim] != shard.n_latents_total:
            out[key] = tensor
        else:
            out[key] = tensor.narrow(dim, shard.offset, shard.n_latents).contiguous()
    return out


def gather_full(
    local: dict[str, Tensor], shard: ShardedTopKSAE, names: dict[str, str] | None = None, *, everywhere: bool
) -> dict[str, Tensor]:
    """The whole-SAE tensors from every rank's blocks, on the CPU (the inverse of :func:`shard_tensors`).

    A collective: one block at a time is broadcast from its rank, so a device never holds more than one extra block.
    With ``everywhere`` every rank gets the whole tensors, else rank 0 alone (the others get ``{}``).
    """
    out: dict[str, Tensor] = {}
    keep = everywhere or shard.world.is_main
    for key, tensor in local.items():
        name = (names or {}).get(key, key)
        dim = LATENT_DIM.get(name)
        if dim is None or tensor.dim() <= dim or tensor.shape[dim] != shard.n_latents:
            if keep:
                out[key] = tensor.detach().to("cpu")
            continue
        shape = list(tensor.shape)
        shape[dim] *= shard.world.size
        whole = torch.empty(shape, dtype=tensor.dtype) if keep else None  # filled block by block: no second copy
        for rank in range(shard.world.size):
            block = tensor.detach().contiguous() if rank == shard.world.rank else torch.empty_like(tensor)
            dist.broadcast(block, src=rank)
            if whole is not None:
                whole.narrow(dim, rank * shard.n_latents, shard.n_latents).copy_(block)
        if whole is not None:
            out[key] = whole
    return out
