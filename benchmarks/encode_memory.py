"""Peak memory of `textsae encode` against corpus size: a synthetic corpus (Zipfian vocabulary, ~100 tokens a
document, two classes) is written as Parquet files of several sizes; encode each with one trained TF-IDF run under
`/usr/bin/time -v` and compare the peaks (they should not grow with the number of documents).

    python benchmarks/encode_memory.py corpus DIR --docs 50000 200000   # DIR/train.parquet, test.parquet, docs-N.parquet
    textsae run recipe.yaml run.dir=DIR/run ...                        # train on DIR (see the report for the recipe)
    /usr/bin/time -v textsae encode DIR/run DIR/docs-50000.parquet --out DIR/codes-50000 -q
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

VOCABULARY = 50_000
TOKENS = 100
ROWS_PER_GROUP = 20_000


def documents(n_docs: int, seed: int) -> tuple[list[str], np.ndarray]:
    """``n_docs`` documents of about ``TOKENS`` words drawn from a Zipf(1.1) vocabulary; the label moves a few
    hundred words' frequency (class 1 draws them more often)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n_docs)
    lengths = rng.integers(TOKENS // 2, TOKENS * 3 // 2, size=n_docs)
    ranks = (rng.zipf(1.1, size=int(lengths.sum())) - 1) % VOCABULARY
    starts = np.concatenate([[0], np.cumsum(lengths)])
    texts = []
    for i, label in enumerate(labels):
        words = ranks[starts[i] : starts[i + 1]]
        if label == 1:
            words = np.where(words % 97 == 0, words + 1, words)  # class 1 avoids a set of words
        texts.append(" ".join(f"w{w}" for w in words))
    return texts, labels.astype(np.int64)


def write(path: Path, n_docs: int, seed: int) -> None:
    """A Parquet file of ``n_docs`` documents (text, label), written in row groups so it is never whole in memory."""
    writer = None
    for lo in range(0, n_docs, ROWS_PER_GROUP):
        texts, labels = documents(min(ROWS_PER_GROUP, n_docs - lo), seed * 1_000_003 + lo)
        table = pa.table({"text": texts, "label": labels})
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    if writer is not None:
        writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["corpus"])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--train-docs", type=int, default=5_000)
    parser.add_argument("--docs", type=int, nargs="+", default=[50_000, 200_000])
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    write(args.dir / "train.parquet", args.train_docs, seed=1)
    write(args.dir / "test.parquet", args.train_docs // 5, seed=2)
    for n_docs in args.docs:
        write(args.dir / f"docs-{n_docs}.parquet", n_docs, seed=3)
        print(f"wrote {args.dir / f'docs-{n_docs}.parquet'}")


if __name__ == "__main__":
    main()
