"""More than one process: ``torch.distributed`` as ``torchrun`` sets it up, and the few collectives textsae uses.

textsae never starts processes itself. ``torchrun --nproc-per-node N -m textsae run RECIPE`` starts N copies of the
same command and gives each ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`setup` joins them into one process group (``gloo`` on CPU, ``nccl`` on CUDA, each rank on GPU
``LOCAL_RANK``). Without those variables, or with ``WORLD_SIZE=1``, every function here is the one-process case:
rank 0 of a world of 1, no communication, nothing to set up.

Every collective here must be called by every rank, in the same order (the rule of ``torch.distributed``).
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from textsae._io import logger
from textsae.errors import UserError

__all__ = [
    "World",
    "all_gather_objects",
    "all_reduce_",
    "barrier",
    "broadcast_object",
    "end_job",
    "on_main",
    "rank_slice",
    "setup",
    "world",
]

T = TypeVar("T")

_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class World:
    """Which process this is among how many."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes run files, reports and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process takes part."""
        return self.size > 1


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise UserError(f"Environment variable {name}={text!r} must be an integer (torchrun sets it).") from None


def world() -> World:
    """This process's place: from the joined process group, else from torchrun's environment, else rank 0 of 1."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0))
    return World(_env_int("RANK", 0), _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0))


def setup(device: str = "cpu") -> World:
    """Join torchrun's process group once (idempotent); returns this process's :class:`World`.

    ``device`` is the resolved device of the work (``cpu``, ``cuda``, ``cuda:N``): CUDA gets ``nccl`` and this rank's
    GPU ``LOCAL_RANK``; anything else ``gloo``. Ranks other than 0 log warnings and errors only.

    Raises:
        UserError: ``WORLD_SIZE`` > 1 but torch has no ``torch.distributed`` here, or the rendezvous variables are
            missing (start the command with ``torchrun``).
    """
    current = world()
    if not current.distributed or (dist.is_available() and dist.is_initialized()):
        return current
    if not dist.is_available():
        raise UserError("WORLD_SIZE > 1, but this torch build has no torch.distributed; run one process instead.")
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT", *_ENV) if not os.environ.get(name)]
    if missing:
        raise UserError(
            f"WORLD_SIZE={current.size} but {', '.join(missing)} is not set: start several processes with "
            "`torchrun --nproc-per-node N -m textsae ...`, which sets them."
        )
    cuda = str(device).startswith("cuda")
    if cuda:
        torch.cuda.set_device(current.local_rank)
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    # Left to interpreter shutdown, gloo's threads can outlive Python and abort the process (SIGABRT, "terminate
    # called without an active exception") after the work succeeded. No barrier here: a rank that failed must not
    # leave the others waiting for it.
    atexit.register(_leave_group)
    if current.rank != 0:
        logger.setLevel(logging.WARNING)
    return world()


def _leave_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def end_job(exit_code: int) -> None:
    """End a command that ran under torchrun: leave the process group, flush the output and exit with ``exit_code`` at
    once, without the interpreter's teardown; returns (doing nothing) when no group was joined.

    Everything the command wrote is complete by then (writes are atomic and closed). Tearing the interpreter down
    after a gloo group can still abort the process ("terminate called without an active exception") when a
    communication thread outlives it, turning a finished job into a failed one; skipping the teardown avoids that.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    dist.destroy_process_group()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)


def rank_device(device: str) -> str:
    """``device`` for this rank: plain ``cuda`` becomes ``cuda:LOCAL_RANK`` when several processes run."""
    current = world()
    if device == "cuda" and current.distributed:
        return f"cuda:{current.local_rank}"
    return device


def barrier() -> None:
    """Wait until every rank gets here (nothing in one process)."""
    if world().distributed:
        dist.barrier()


def all_reduce_(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """Reduce ``tensor`` in place over all ranks (``sum``, ``mean``, ``max`` or ``min``); every rank gets the same
    result. Returns ``tensor``."""
    if not world().distributed:
        return tensor
    ops = {"sum": dist.ReduceOp.SUM, "mean": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}
    dist.all_reduce(tensor, op=ops[op])
    if op == "mean":
        tensor.div_(world().size)
    return tensor


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` on every rank (a picklable value; ``obj`` on the other ranks is ignored)."""
    if not world().distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_objects(obj: T) -> list[T]:
    """Every rank's ``obj``, in rank order, on every rank."""
    current = world()
    if not current.distributed:
        return [obj]
    gathered: list[Any] = [None] * current.size
    dist.all_gather_object(gathered, obj)
    return gathered


def on_main(function: Callable[[], T]) -> T:
    """Run ``function`` on rank 0 only and hand its result to every rank.

    An exception on rank 0 is re-raised on every rank (as a :class:`UserError` there when it was one), so no rank is
    left waiting at the next collective.
    """
    current = world()
    if not current.distributed:
        return function()
    result: Any = None
    error: BaseException | None = None
    if current.is_main:
        try:
            result = function()
        except BaseException as caught:  # handed to the other ranks, then raised here too
            error = caught
    shared = broadcast_object((result, None if error is None else (isinstance(error, UserError), str(error))))
    if error is not None:
        raise error
    value, failure = shared
    if failure is not None:
        user_error, message = failure
        raise (UserError if user_error else RuntimeError)(f"rank 0 failed: {message}")
    return value


def rank_slice(n_items: int, *, align: int = 1, current: World | None = None) -> slice:
    """This rank's contiguous part of ``range(n_items)``: the parts are in rank order, cover every item once, and
    start at multiples of ``align`` (e.g. a shard size, so that each rank writes whole shards).

    Blocks of ``align`` items are shared out as evenly as possible, the first ranks taking one more block; a rank may
    get an empty slice when there are fewer blocks than ranks.
    """
    if align < 1:
        raise ValueError(f"align must be >= 1, got {align}")
    current = current or world()
    n_blocks = -(-n_items // align)
    per_rank, extra = divmod(n_blocks, current.size)
    first = current.rank * per_rank + min(current.rank, extra)
    count = per_rank + (1 if current.rank < extra else 0)
    return slice(min(first * align, n_items), min((first + count) * align, n_items))
