"""Start N ranks of a Python snippet or a ``textsae`` command the way users do: ``torchrun`` (``torch.distributed.run``)
on CPU with the ``gloo`` backend, each rank with one intra-op thread (2 ranks on 2 cores)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

TIMEOUT_S = 300


def torchrun(
    nproc: int,
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = TIMEOUT_S,
) -> subprocess.CompletedProcess[str]:
    """``python -m torch.distributed.run --nproc-per-node NPROC ARGS`` (ARGS: ``-m textsae run ...`` or a script path).

    Raises:
        AssertionError: ``check`` and a nonzero exit; the message holds the output's tail.
    """
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={nproc}",
        "--standalone",  # its rendezvous binds a free port itself: no race with other jobs for a port picked here
        *args,
    ]
    full_env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]),
        **(env or {}),
    }
    result = subprocess.run(command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, (
            f"torchrun exited {result.returncode}:\n{(result.stdout + result.stderr)[-4000:]}"
        )
    return result
