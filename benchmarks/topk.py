"""Top-k of each row: textsae's native kernel (`textsae.native.topk`) against torch's CPU topk.

Usage:

    python benchmarks/topk.py [--rows 1024] [--cols 4096] [--k 32,512,1024] [--sorted] [--kernel-sort-max-k 64]
                              [--repeats 9]

Random normal rows; for each k one warm-up, then the median of ``--repeats`` calls of each side, the kernel with and
without its own sort (``--kernel-sort-max-k``: the largest k it sorts itself, as
:data:`textsae.native.TOPK_KERNEL_SORT_MAX_K`; above it torch sorts the kept entries). Whether
:func:`textsae.sae.selection.native_pays` sends that k to the kernel is printed beside it. Prints one JSON line per k
with the machine, torch's threads and the milliseconds of each side.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import torch

from textsae import native
from textsae.sae.selection import native_pays


def _median_ms(call: Callable[[], object], repeats: int) -> float:
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1e3, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--cols", type=int, default=4096)
    parser.add_argument("--k", default="32,512,1024", help="comma-separated k values")
    parser.add_argument("--sorted", action="store_true", help="values in descending order, as topk(sorted=True)")
    parser.add_argument("--kernel-sort-max-k", type=int, default=native.TOPK_KERNEL_SORT_MAX_K)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    if not native.available():
        raise SystemExit("textsae's native kernels could not be built here (no C compiler?)")
    native.TOPK_KERNEL_SORT_MAX_K = args.kernel_sort_max_k
    x = torch.randn(args.rows, args.cols, generator=torch.Generator().manual_seed(0))
    for k in (int(value) for value in args.k.split(",")):
        result = {
            "machine": platform.machine(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "shares_torch_threads": native.shares_torch_threads(),
            "rows": args.rows,
            "cols": args.cols,
            "k": k,
            "sorted": args.sorted,
            "kernel_sort_max_k": args.kernel_sort_max_k,
            "native_pays": native_pays(args.cols, k, sorted=args.sorted),
            "native_ms": _median_ms(lambda k=k: native.topk(x, k, sorted=args.sorted), args.repeats),
            "torch_ms": _median_ms(lambda k=k: x.topk(k, dim=1, sorted=args.sorted), args.repeats),
        }
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
