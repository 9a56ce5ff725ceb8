"""How work runs, the code side of a recipe's ``runtime`` section: the precision policy, intra-op threads and how
the C allocator keeps freed memory.

Threads and the allocator setting are global to the process (as ``torch.set_num_threads`` is), so they are applied
by the entry points that run long CPU jobs (the trainer's ``setup``), never at import.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import platform
from pathlib import Path
from typing import Any

import torch

from textsae.errors import UserError

__all__ = ["autocast", "available_memory", "compute_dtype", "keep_freed_memory", "sae_uses_bf16", "set_threads"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
"""Values of ``runtime.precision``."""


def compute_dtype(precision: str, device: str) -> str:
    """The precision ``runtime.precision`` means on ``device``: ``auto`` is bf16 on CUDA and fp32 elsewhere (bf16 is
    several times slower than fp32 on CPUs without AMX or AVX-512 BF16, such as AVX2-only ones).

    Raises:
        UserError: If ``precision`` is not one of :data:`PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise UserError(f"runtime.precision must be one of {list(PRECISIONS)}. Got {precision!r} instead.")
    if precision == "auto":
        return "bf16" if str(device).startswith("cuda") else "fp32"
    return precision


def sae_uses_bf16(precision: str, device: str) -> bool:
    """Whether SAE training and encoding run under bf16 autocast on ``device`` (fp32 master weights). ``fp16`` is for
    hidden-state extraction; an SAE then runs in fp32 (fp16 would need loss scaling)."""
    return compute_dtype(precision, device) == "bf16"


def autocast(device: str | torch.device, dtype: str) -> contextlib.AbstractContextManager[Any]:
    """The autocast context for ``dtype`` (``bf16``, ``fp16``; ``fp32`` = none) on ``device``: the one place that
    turns a precision into a ``torch.autocast``."""
    torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(dtype)
    if torch_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch_dtype)


_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_TRIM_THRESHOLD_BYTES = 2**31 - 1  # glibc's largest; freed blocks below it stay in the heap
_kept = False


def set_threads(threads: int | str) -> int:
    """Set torch's intra-op thread count; ``"auto"`` keeps torch's default (one per physical core).

    Args:
        threads: An int >= 1, or ``"auto"``.

    Returns:
        The thread count now in effect.

    Raises:
        UserError: If ``threads`` is neither ``"auto"`` nor an int >= 1.
    """
    if threads == "auto":
        return torch.get_num_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise UserError(f"runtime.threads must be 'auto' or an int >= 1. Got {threads!r} instead.")
    torch.set_num_threads(threads)
    return threads


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of handing large blocks back to the kernel.

    By default glibc serves every block above 32 MiB with ``mmap`` and unmaps it when freed, so a training step that
    creates weight-sized tensors (a gradient, a densified batch) pays the kernel to map and zero fresh pages every
    step: at 30,000 × 4,096 floats, ``torch.zeros`` took 265 ms on this project's CPU, against 22 ms once freed
    blocks are reused (``mallopt(M_MMAP_MAX, 0)`` with the largest trim threshold). The cost is that memory freed by
    the process is not returned to the system until it exits, which suits a training process. PyTorch's CPU tuning
    guide reaches the same result by preloading jemalloc or tcmalloc.

    Returns:
        True when the setting is in effect (glibc on Linux), False elsewhere (nothing changes).
    """
    global _kept
    if _kept:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _kept = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False
    return _kept


def available_memory(device: str) -> int | None:
    """Bytes free for a new allocation on ``device`` (CUDA: free device memory; CPU: Linux's MemAvailable, or less
    when an address-space limit such as ``ulimit -v`` leaves less), or None when the system does not say."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    free = _proc_number(Path("/proc/meminfo"), "MemAvailable:")
    room = _address_space_left()
    if free is None or room is None:
        return free if room is None else room
    return min(free, room)


def _proc_number(path: Path, key: str) -> int | None:
    """A ``key: N kB`` line of a /proc file, in bytes."""
    try:
        for line in path.read_text(encoding="ascii").splitlines():
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _address_space_left() -> int | None:
    """What ``RLIMIT_AS`` (``ulimit -v``) leaves above this process's current virtual size, or None without a limit."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit == resource.RLIM_INFINITY:
        return None
    used = _proc_number(Path("/proc/self/status"), "VmSize:")
    return None if used is None else max(limit - used, 0)
