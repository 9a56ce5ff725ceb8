"""Peak memory per rank of training a large TopK SAE with ``runtime.shard_dictionary=latents`` against one process.

    python benchmarks/sharded_dictionary_memory.py [--d-in 30000] [--latents 8192] [--steps 3]
    torchrun --nproc-per-node 2 benchmarks/sharded_dictionary_memory.py --shard [--d-in 30000] [--latents 8192]

Random sparse TF-IDF-like rows (``--nnz`` non-zeros each, values in [0, 1)) so that the weights, not the data,
dominate. Each rank reports its peak RSS (``getrusage``: ``/usr/bin/time -v`` on ``torchrun`` shows the launcher's
largest child, not every rank), its RSS before training, and the seconds per step; rank 0 prints one line per rank.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import scipy.sparse as sp
import torch

from textsae.config.schema import RuntimeConfig, SAEConfig, TrainConfig
from textsae.distributed import all_gather_objects, setup
from textsae.sae import build_sae
from textsae.train.trainer import Trainer


def _rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        line = next(line for line in handle if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-in", type=int, default=30_000)
    parser.add_argument("--latents", type=int, default=8192)
    parser.add_argument("--rows", type=int, default=2048)
    parser.add_argument("--nnz", type=int, default=100)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--shard", action="store_true", help="runtime.shard_dictionary=latents (under torchrun)")
    args = parser.parse_args()
    world = setup("cpu")
    rng = np.random.default_rng(0)
    cols = rng.integers(0, args.d_in, size=(args.rows, args.nnz))
    features = sp.csr_matrix(
        (
            rng.random(args.rows * args.nnz, dtype=np.float32),
            cols.reshape(-1),
            np.arange(0, args.rows * args.nnz + 1, args.nnz),
        ),
        shape=(args.rows, args.d_in),
    )
    features.sum_duplicates()
    torch.manual_seed(0)
    sae = build_sae(SAEConfig(n_latents=args.latents, k=64, auxk_coefficient=0.0), args.d_in)
    runtime = RuntimeConfig(
        device="cpu", progress=False, threads=1, shard_dictionary="latents" if args.shard else "none"
    )
    trainer = Trainer(
        sae, TrainConfig(steps=args.steps, batch_size=args.batch, warmup_steps=1), features, runtime=runtime
    )
    before = _rss_mib()
    start = time.perf_counter()
    trainer.train()
    seconds = (time.perf_counter() - start) / args.steps
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reports = all_gather_objects((world.rank, before, peak, seconds))
    if world.is_main:
        mode = f"sharded over {world.size} ranks" if args.shard else f"{world.size} process(es), unsharded"
        for rank, rss, top, step in reports:
            print(
                f"{args.d_in} x {args.latents} ({mode}), rank {rank}: RSS before training {rss:,.0f} MiB, "
                f"peak {top:,.0f} MiB, {step:.2f} s/step (incl. setup), OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
            )


if __name__ == "__main__":
    main()
