"""Seconds per SAE training step on TF-IDF-like sparse input (synthetic CSR rows, no data needed).

Usage:

    python benchmarks/train_step.py [--d-in 30000] [--n-latents 4096] [--batch 512] [--nnz 300]
                                    [--k 64] [--label-loss-weight 1] [--steps 5] [--device cpu]
                                    [--reuse-memory true|false]

Builds a TopK SAE (data-initialised decoder, AuxK on) and a :class:`~textsae.train.trainer.Trainer`
on random CSR rows with ``--nnz`` non-zeros each (20 Newsgroups TF-IDF rows have ~150-300 at 30k
terms), runs one warm-up step, then times ``--steps`` steps, and prints one JSON line with the
machine, the torch version, the settings and the median seconds per step. Measures what a recipe's
training loop pays per step: forward, loss, backward, decoder-gradient projection, Adam, decoder
renormalisation.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import scipy.sparse as sp
import torch

from textsae.config.schema import RuntimeConfig, SAEConfig, TrainConfig
from textsae.sae import build_sae
from textsae.train.trainer import Trainer


def random_csr(n_rows: int, d_in: int, nnz: int, seed: int = 0) -> sp.csr_matrix:
    """``n_rows`` rows with ``nnz`` distinct random columns each, positive values, L2-normalised like TF-IDF."""
    rng = np.random.default_rng(seed)
    cols = np.concatenate([rng.choice(d_in, nnz, replace=False) for _ in range(n_rows)])
    values = rng.random(n_rows * nnz).astype(np.float32)
    matrix = sp.csr_matrix((values, (np.repeat(np.arange(n_rows), nnz), cols)), shape=(n_rows, d_in))
    norms = np.sqrt(matrix.multiply(matrix).sum(axis=1)).A1
    return sp.csr_matrix(sp.diags(1.0 / norms) @ matrix, dtype=np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--d-in", type=int, default=30_000)
    parser.add_argument("--n-latents", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--nnz", type=int, default=300)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--label-loss-weight", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reuse-memory", choices=["true", "false"], default="true", help="runtime.reuse_memory")
    args = parser.parse_args()

    n_rows = max(4 * args.batch, args.n_latents)
    features = random_csr(n_rows, args.d_in, args.nnz)
    labels = np.random.default_rng(1).integers(0, 20, n_rows)
    sae = build_sae(SAEConfig(architecture="topk", n_latents=args.n_latents, k=args.k, decoder_init="data"), args.d_in)
    train_cfg = TrainConfig(epochs=1, batch_size=args.batch, label_loss_weight=args.label_loss_weight)
    runtime = RuntimeConfig(device=args.device, progress=False, reuse_memory=args.reuse_memory == "true")
    trainer = Trainer(sae, train_cfg, features, labels=labels, runtime=runtime)
    trainer.setup()
    seconds = []
    for step in range(args.steps + 1):
        start = time.perf_counter()
        trainer.train_step()
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        trainer.step += 1
        if step:  # step 0 warms up allocators and kernels
            seconds.append(time.perf_counter() - start)
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                "cpus": os.cpu_count(),
                "torch_threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "device": str(trainer.device),
                **{key: value for key, value in vars(args).items() if key != "device"},
                "seconds_per_step_median": round(statistics.median(seconds), 3),
                "seconds_per_step": [round(s, 3) for s in seconds],
            }
        )
    )


if __name__ == "__main__":
    main()
