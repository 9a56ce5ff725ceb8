"""One job per run directory: an OS file lock, released by the kernel when its holder exits or dies.

Two ``textsae run`` processes on one run directory would otherwise both write its stages, its ``metrics.jsonl``
and its report, and both exit 0. The lock is ``fcntl.flock`` on ``DIR/.lock``, which holds the holder's PID for the
message the second process prints. Where ``fcntl`` does not exist (Windows) no lock is taken.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from textsae._io import logger
from textsae.errors import UserError

__all__ = ["LOCK_NAME", "BusyError", "directory_lock", "group_lock"]

LOCK_NAME = ".lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]  # no fcntl module here: None turns the lock off


class BusyError(UserError):
    """Another process holds the lock of this directory."""


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        return "another process"
    return f"PID {text}" if text.isdigit() else "another process"


@contextlib.contextmanager
def directory_lock(directory: Path, *, what: str, wait: bool = False, poll_seconds: float = 1.0) -> Iterator[None]:
    """Hold ``directory``'s lock for the block (the directory is created when missing).

    Args:
        directory: The folder to lock (a run directory, an ``encode --out`` folder, a store entry being written).
        what: How the error names it, e.g. ``"run directory runs/x"``.
        wait: Wait for the holder to finish instead of failing.
        poll_seconds: How often a waiting process tries again.

    Raises:
        BusyError: The lock is held and ``wait`` is False; one line naming the holder's PID.
    """
    if fcntl is None:  # pragma: no cover
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    try:  # O_NOFOLLOW: a .lock planted as a symlink must not truncate the file it points at
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as error:
        raise UserError(
            f"{directory / LOCK_NAME} cannot be used as the lock of {what} ({error.strerror}); remove it if it is not a "
            "plain file (a link, a folder or a pipe), then run the command again."
        ) from None
    try:
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait:
                    raise BusyError(
                        f"{what} is in use by {_holder(fd)} (another textsae job); wait for it to finish, pass --wait "
                        "to wait here, or choose another directory."
                    ) from None
                if not told:
                    logger.info("Waiting for %s, which is writing %s", _holder(fd), what)
                    told = True
                time.sleep(poll_seconds)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # a finished directory keeps an empty lock file, the same after any run
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def group_lock(directory: Path, *, what: str, wait: bool = False) -> Iterator[None]:
    """:func:`directory_lock` for every rank of a ``torchrun`` job (all must enter): rank 0 holds the lock for the
    group while the others wait for it at a barrier; it is released after every rank has left the block normally. A
    busy lock raises on every rank. In one process, plain :func:`directory_lock`."""
    from textsae.distributed import barrier, on_main, world

    if not world().distributed:
        with directory_lock(directory, what=what, wait=wait):
            yield
        return
    with contextlib.ExitStack() as held:
        on_main(lambda: held.enter_context(directory_lock(directory, what=what, wait=wait)))
        yield
        barrier()
