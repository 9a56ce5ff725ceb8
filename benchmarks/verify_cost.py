"""What verified loads cost: open a 1 GiB feature-store entry (every shard's SHA-256 checked against the manifest)
and hash a 1 GiB checkpoint's tensors, three times each, on this machine.

    python benchmarks/verify_cost.py [--gib 1] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from textsae.store.features import extract_to_store, open_features
from textsae.train.checkpoint import tensors_digest

WIDTH = 1024


class RandomRows:
    """Stand-in featurizer: seeded float32 rows, WIDTH wide."""

    def iter_chunks(
        self, docs: list[str], *, chunk_docs: int, start: int = 0
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for lo in range(start, len(docs), chunk_docs):
            n = min(chunk_docs, len(docs) - lo)
            yield np.random.default_rng(lo).standard_normal((n, WIDTH), dtype=np.float32), np.arange(lo, lo + n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=1.0, help="artefact size in GiB (default: 1)")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where to write the store entry")
    args = parser.parse_args()
    rows = int(args.gib * 2**30 / (4 * WIDTH))
    folder = Path(tempfile.mkdtemp(dir=args.dir))
    try:
        extract_to_store(RandomRows(), [f"d{i}" for i in range(rows)], folder / "entry", shard_docs=65536)
        for _ in range(3):
            start = time.perf_counter()
            open_features(folder / "entry")
            print(f"open_features, {args.gib:g} GiB entry, hashes checked: {time.perf_counter() - start:.2f} s")
    finally:
        shutil.rmtree(folder)
    tensors = {"W": torch.randn(rows, WIDTH)}
    for _ in range(3):
        start = time.perf_counter()
        tensors_digest(tensors)
        print(f"tensors_digest, {args.gib:g} GiB checkpoint: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
