"""Forward + backward of the TopK decoder's sparse product: `embedding_bag`, torch's cache blocks, textsae's native kernel.

Usage:

    python benchmarks/decoder_blocks.py [--batch 512] [--n-latents 1024] [--d-in 20000] [--k 64] [--blocks-mb 2,8,32]
                                        [--repeats 3] [--forward-only]

Random W_dec, k distinct latents per row and a random output gradient; one warm-up, then the mean of ``--repeats`` (3) runs of
forward + backward (∂values and ∂W_dec, each side allocating its gradients as autograd does; with ``--forward-only`` the
forward alone) for `embedding_bag`, for torch's column blocks (`textsae.sae.decoder`) at each block size, for the
native kernel (`textsae.native.csr_mm`, null when it cannot be built), for `embedding_bag`'s forward with the native
backward, the path of a cache-resident W_dec (`cached_ms`, null likewise), and for the panel forward and backward
(`panel_ms`, `textsae.native.panel_mm` and `panel_mm_backward`; null likewise or above 4,096 latents). Prints one
JSON line with the machine, torch's threads and the milliseconds of each.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
import torch.nn.functional as F

from textsae import native
from textsae.runtime import keep_freed_memory
from textsae.sae import cache_blocks, decoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--n-latents", type=int, default=1024)
    parser.add_argument("--d-in", type=int, default=20_000)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--blocks-mb", default="2,8,32", help="comma-separated block sizes in MB")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side (more for small shapes)")
    parser.add_argument("--forward-only", action="store_true", help="time the forward alone")
    args = parser.parse_args()
    keep_freed_memory()  # as the trainer does: every side's weight-sized gradient reuses freed memory
    weight = (torch.randn(args.n_latents, args.d_in) / 100).requires_grad_()
    indices = torch.stack([torch.randperm(args.n_latents)[: args.k] for _ in range(args.batch)]).reshape(-1)
    values = torch.rand(args.batch * args.k).requires_grad_()
    offsets = torch.arange(0, args.batch * args.k + 1, args.k)
    grad = torch.randn(args.batch, args.d_in)

    def embedding_bag(i, v, o, w):  # type: ignore[no-untyped-def]
        return F.embedding_bag(i, w, o, mode="sum", per_sample_weights=v, include_last_offset=True)

    def milliseconds(decode) -> float:  # type: ignore[no-untyped-def]
        def once() -> None:
            weight.grad = values.grad = None
            if args.forward_only:
                with torch.no_grad():
                    decode(indices, values, offsets, weight)
            else:
                decode(indices, values, offsets, weight).backward(grad)

        once()
        start = time.perf_counter()
        for _ in range(args.repeats):
            once()
        return round((time.perf_counter() - start) / args.repeats * 1000, 3)

    result = {"embedding_bag_ms": milliseconds(embedding_bag), "blocked_ms": {}}
    for mb in (int(part) for part in args.blocks_mb.split(",")):
        cache_blocks.BLOCK_BYTES = mb << 20
        result["blocked_ms"][f"{mb} MB ({len(cache_blocks.column_blocks(weight))} blocks)"] = milliseconds(
            decoder._BlockedDecode.apply
        )
    result["native_ms"] = milliseconds(decoder._NativeDecode.apply) if native.available() else None
    result["cached_ms"] = milliseconds(decoder._GatherDecode.apply) if native.available() else None
    panel = native.available() and args.n_latents <= native.PANEL_ROWS
    result["panel_ms"] = milliseconds(decoder._PanelDecode.apply) if panel else None
    result.update(vars(args), machine=platform.machine(), threads=torch.get_num_threads(), torch=torch.__version__)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
