"""Will the training run fit? An estimate of memory and disk, checked before any weight is allocated.

Memory while training (fp32): parameters P = 4·(2·d_in·n_latents + n_latents + d_in) bytes; Adam's two moments 2P;
one weight-sized gradient at a time (the optimiser steps inside backward); per batch a few (B × n_latents) and
(B × d_in) temporaries. Disk: a checkpoint holds the parameters and the moments (3P) and is written beside the previous
one before replacing it (6P at the peak), and the saved SAE adds P.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from textsae.config.schema import SAEConfig, TrainConfig
from textsae.errors import UserError
from textsae.runtime import available_memory

__all__ = ["Footprint", "check_fits", "estimate"]

GIB = 1 << 30
_BATCH_TEMPORARIES = 6
"""(B × n_latents) and (B × d_in) tensors alive at once in a step: pre-activations, codes, their gradients, x̂, error."""


@dataclasses.dataclass(frozen=True)
class Footprint:
    """Bytes a training run needs."""

    parameters: int
    optimizer: int
    gradient: int
    batch: int
    disk: int

    @property
    def memory(self) -> int:
        return self.parameters + self.optimizer + self.gradient + self.batch


def estimate(sae: SAEConfig, d_in: int, train: TrainConfig, *, shards: int = 1) -> Footprint:
    """The footprint of training an SAE of resolved sizes ``sae`` on ``d_in`` inputs with ``train``'s batch.

    ``shards``: the latents are split across that many ranks (``runtime.shard_dictionary=latents``); memory is one
    rank's (its block of latents, the whole batch), disk the whole SAE's (rank 0 writes whole checkpoints).
    """
    n = int(sae.n_latents)
    local = -(-n // shards)
    weight = 4 * d_in * local
    parameters = 2 * weight + 4 * (local + d_in)
    batch = 4 * train.batch_size * (local + d_in) * _BATCH_TEMPORARIES
    whole = 4 * (2 * d_in * n + n + d_in)
    return Footprint(parameters, 2 * parameters, weight, batch, disk=7 * whole)


def check_fits(footprint: Footprint, *, device: str, run_dir: Path | None, n_latents: int, d_in: int) -> None:
    """Raise a UserError, one line naming the estimate and what to change, when the run cannot fit.

    Memory is checked against what the device has free now; disk (checkpoints and the saved SAE) against the free
    space of ``run_dir``'s file system when checkpoints are written there.
    """
    free = available_memory(device)
    if free is not None and footprint.memory > free:
        raise UserError(
            f"Training this SAE ({d_in:,} inputs × {n_latents:,} latents) needs about {footprint.memory / GIB:.1f} GiB "
            f"of memory on {device} (weights {footprint.parameters / GIB:.1f}, Adam state {footprint.optimizer / GIB:.1f}, "
            f"one gradient {footprint.gradient / GIB:.1f}, batch {footprint.batch / GIB:.1f}) but {free / GIB:.1f} GiB "
            "is free: set a smaller sae.n_latents, fewer input features (featurizer.max_features) or train.batch_size."
        )
    if run_dir is None:
        return
    existing = next((p for p in (run_dir, *run_dir.parents) if p.exists()), None)
    if existing is None:
        return
    disk_free = shutil.disk_usage(existing).free
    if footprint.disk > disk_free:
        raise UserError(
            f"Training this SAE writes checkpoints and the trained weights of about {footprint.disk / GIB:.1f} GiB into "
            f"{run_dir}, but its file system has {disk_free / GIB:.1f} GiB free: free space, choose another run.dir, "
            "or set a smaller sae.n_latents."
        )
