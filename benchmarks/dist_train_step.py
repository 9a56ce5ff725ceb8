"""Training throughput of one process against N ``torchrun`` ranks (data parallelism) on the same global batch.

Usage:

    OMP_NUM_THREADS=2 python benchmarks/dist_train_step.py --threads 2 [--dense] [--d-in 10000] ...
    torchrun --nproc-per-node 2 benchmarks/dist_train_step.py --threads 1 [--dense] ...

Builds a TopK SAE and a :class:`~textsae.train.trainer.Trainer` on synthetic rows: TF-IDF-like CSR rows with
``--nnz`` non-zeros (default), or Gaussian dense rows (``--dense``, hidden-state-like). Runs one warm-up step, times
``--steps`` steps (each rank takes its part of the ``--batch`` global batch; gradients are all-reduced), and prints
one JSON line from rank 0: world size, threads per rank, the shape, the median seconds per step and documents per
second of the global batch.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import random_csr

from textsae.config.schema import RuntimeConfig, SAEConfig, TrainConfig
from textsae.distributed import barrier, world
from textsae.sae import build_sae
from textsae.train.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dense", action="store_true", help="Gaussian dense rows instead of sparse TF-IDF-like rows")
    parser.add_argument("--d-in", type=int, default=10_000)
    parser.add_argument("--n-latents", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=512, help="global batch (train.batch_size)")
    parser.add_argument("--nnz", type=int, default=100)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per process")
    args = parser.parse_args()

    n_rows = 4 * args.batch
    if args.dense:
        features = np.random.default_rng(0).standard_normal((n_rows, args.d_in)).astype(np.float32)
    else:
        features = random_csr(n_rows, args.d_in, args.nnz)
    torch.manual_seed(0)
    sae = build_sae(SAEConfig(architecture="topk", n_latents=args.n_latents, k=args.k), args.d_in)
    runtime = RuntimeConfig(device="cpu", progress=False, threads=args.threads)
    trainer = Trainer(sae, TrainConfig(epochs=1, batch_size=args.batch), features, runtime=runtime)
    trainer.setup()
    seconds = []
    for step in range(args.steps + 1):
        barrier()
        start = time.perf_counter()
        trainer.train_step()
        trainer.step += 1
        if step:  # step 0 warms up allocators
            seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    if world().is_main:
        print(
            json.dumps(
                {
                    "world_size": world().size,
                    "threads_per_rank": torch.get_num_threads(),
                    "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                    "input": "dense" if args.dense else f"csr nnz={args.nnz}",
                    **{key: value for key, value in vars(args).items() if key not in ("dense", "nnz", "threads")},
                    "seconds_per_step_median": round(median, 4),
                    "docs_per_second": round(args.batch / median),
                }
            )
        )


if __name__ == "__main__":
    main()
