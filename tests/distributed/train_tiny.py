"""Train a tiny SAE on fixed random features, one rank of a ``torchrun`` job (or one process), and save its weights.

``python train_tiny.py OUT_DIR [ARCHITECTURE] [KEY=VALUE ...]``: the SAE (``OUT_DIR/sae.safetensors``, rank 0 only),
the metrics log and the checkpoint go to ``OUT_DIR``; ``KEY=VALUE`` set TrainConfig, SAE or RuntimeConfig fields (ints, floats,
strings, null). ``TEXTSAE_TEST_KILL_RANK=R`` keeps the kill point (``TEXTSAE_TEST_KILL_AT``) on rank R only.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from safetensors.torch import save_file

from textsae._io import KILL_POINT_ENV
from textsae.config.schema import RuntimeConfig, SAEConfig, TrainConfig
from textsae.distributed import end_job, world
from textsae.sae import build_sae
from textsae.train.trainer import Trainer

N_ROWS, D_IN = 320, 40


def features() -> sp.csr_matrix:
    """Non-negative sparse rows (a fifth of the entries set), the same in every process."""
    rng = np.random.default_rng(0)
    dense = rng.random((N_ROWS, D_IN)) * (rng.random((N_ROWS, D_IN)) < 0.2)
    return sp.csr_matrix(dense.astype(np.float32))


def _value(text: str) -> object:
    if text == "null":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main(out: Path, architecture: str = "topk", *settings: str) -> None:
    kill_rank = os.environ.get("TEXTSAE_TEST_KILL_RANK")
    if kill_rank is not None and kill_rank != os.environ.get("RANK", "0"):
        os.environ.pop(KILL_POINT_ENV, None)
    values = {key: _value(value) for key, value in (item.split("=", 1) for item in settings)}
    train_keys = {f.name for f in dataclasses.fields(TrainConfig)}
    train = {"steps": 24, "batch_size": 32, "warmup_steps": 2, "checkpoint_every": 6, "log_every": 1, "lr": 1e-2}
    train.update({k: v for k, v in values.items() if k in train_keys})
    runtime_keys = {f.name for f in dataclasses.fields(RuntimeConfig)}
    runtime = {"device": "cpu", "progress": False, "threads": 1}
    runtime.update({k: v for k, v in values.items() if k in runtime_keys})
    sae_keys = {f.name for f in dataclasses.fields(SAEConfig.variant(architecture))}
    sae_values = {"n_latents": 48, "k": 4, "dead_after": 64, **{k: v for k, v in values.items() if k in sae_keys}}
    torch.manual_seed(0)
    sae = build_sae(
        SAEConfig(architecture=architecture, **{k: v for k, v in sae_values.items() if k in sae_keys}), D_IN
    )
    trainer = Trainer(
        sae,
        TrainConfig(**train),
        features(),
        checkpoint_path=out / "ckpt.safetensors",
        metrics_path=out / "metrics.jsonl",
        runtime=RuntimeConfig(**runtime),
    )
    summary = trainer.train()
    tensors = {name: t.detach().contiguous() for name, t in sae.state_dict().items()}
    save_file(tensors, str(out / f"sae-rank{world().rank}.safetensors"))
    if world().is_main:
        (out / "summary.txt").write_text(f"{summary.steps} {summary.resumed_from}\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), *sys.argv[2:])
    end_job(0)  # as `textsae` commands end under torchrun: no interpreter teardown after a gloo group
