"""The output lock of a torchrun group: rank 0 holds it for every rank, so another job holding it stops every rank with
the one-line busy message naming that job's PID, and a free lock is taken once and released after the group is done."""

from __future__ import annotations

import os
from pathlib import Path

from tests.distributed.launch import torchrun
from textsae.locks import LOCK_NAME, directory_lock

SCRIPT = """
import os, sys
from pathlib import Path
from textsae.distributed import setup, world
from textsae.errors import UserError
from textsae.locks import group_lock
setup("cpu")
out = Path(sys.argv[1])
try:
    with group_lock(out, what=f"--out folder {out}"):
        holder = (out / ".lock").read_text()
        (out / f"rank{world().rank}.txt").write_text(holder)
except UserError as error:
    (out / f"rank{world().rank}.txt").write_text(f"refused: {error}")
"""


def _run(tmp_path: Path, out: Path) -> list[str]:
    script = tmp_path / "lock.py"
    script.write_text(SCRIPT)
    torchrun(2, [str(script), str(out)])
    return [(out / f"rank{rank}.txt").read_text() for rank in range(2)]


def test_rank_0_holds_the_lock_for_the_group(tmp_path: Path) -> None:
    out = tmp_path / "codes"
    with directory_lock(out, what="a test"):
        busy = _run(tmp_path, out)
    assert all(text.startswith("refused: ") and f"in use by PID {os.getpid()}" in text for text in busy)
    free = _run(tmp_path, out)
    assert free[0] == free[1] and free[0].isdigit() and free[0] != str(os.getpid())  # rank 0's PID, seen by both
    assert (out / LOCK_NAME).read_text() == ""  # released when the group left the block
