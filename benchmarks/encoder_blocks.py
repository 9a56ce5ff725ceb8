"""The sparse-input encoder forward: `embedding_bag` over the whole W_enc against the cache-blocked product.

Usage:

    python benchmarks/encoder_blocks.py [--batch 512] [--n-latents 16384] [--d-in 10000] [--nnz 200] [--blocks-mb 8]

TF-IDF-like CSR rows (``--nnz`` distinct terms each, as `textsae bench train` makes them) and a random W_enc; one
warm-up, then the mean of 3 runs of x·W_enc through `embedding_bag` and through
`textsae.sae.cache_blocks.blocked_embedding_bag` at each block size. Prints one JSON line with the machine, torch's
threads, each time in milliseconds and the largest difference between the two products.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from textsae.bench.training import TrainShape, make_batch
from textsae.runtime import keep_freed_memory
from textsae.sae import cache_blocks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--n-latents", type=int, default=16_384)
    parser.add_argument("--d-in", type=int, default=10_000)
    parser.add_argument("--nnz", type=int, default=200)
    parser.add_argument("--blocks-mb", default="8", help="comma-separated block sizes in MB")
    args = parser.parse_args()
    keep_freed_memory()  # as the trainer does
    x = make_batch(TrainShape("sparse", args.d_in, args.n_latents, 1, args.batch, nnz=args.nnz), 0, torch.device("cpu"))
    terms, offsets, values = x.col_indices(), x.crow_indices(), x.values()
    weight = torch.randn(args.d_in, args.n_latents)

    def whole() -> torch.Tensor:
        return F.embedding_bag(terms, weight, offsets, mode="sum", per_sample_weights=values, include_last_offset=True)

    def milliseconds(product: Callable[[], torch.Tensor]) -> float:
        product()
        start = time.perf_counter()
        for _ in range(3):
            product()
        return round((time.perf_counter() - start) / 3 * 1000, 1)

    reference = whole()
    result: dict[str, object] = {"embedding_bag_ms": milliseconds(whole), "blocked_ms": {}, "max_abs_difference": 0.0}
    for mb in (float(part) for part in args.blocks_mb.split(",")):
        cache_blocks.BLOCK_BYTES = int(mb * 2**20)

        def blocked() -> torch.Tensor:
            return cache_blocks.blocked_embedding_bag(terms, weight, offsets, values)

        label = f"{mb:g} MB ({len(cache_blocks.column_blocks(weight))} blocks)"
        result["blocked_ms"][label] = milliseconds(blocked)  # type: ignore[index]
        result["max_abs_difference"] = max(
            float(result["max_abs_difference"]), float((blocked() - reference).abs().max())
        )  # type: ignore[arg-type]
    result.update(
        vars(args),
        uses_per_term=round(terms.numel() / args.d_in, 2),
        machine=platform.machine(),
        threads=torch.get_num_threads(),
        torch=torch.__version__,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
