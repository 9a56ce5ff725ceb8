"""Write a synthetic two-class corpus of any size as Parquet, in bounded memory (for the scale benchmark).

Words are drawn from a Zipfian vocabulary (``--vocab`` types, exponent ``--zipf``); documents have about
``--tokens`` words (Poisson). Each class owns ``--signal-words`` words of middle frequency, and about
``--signal-share`` of a document's words are drawn from its class's words instead: a linear classifier of TF-IDF
learns the labels, but not perfectly. Documents are made and written ``--chunk`` at a time, so memory does not grow
with ``--docs``; the same arguments give the same files.

    python benchmarks/synthetic_corpus.py OUT_DIR --docs 1000000   # OUT_DIR/train.parquet, OUT_DIR/test.parquet
"""

from __future__ import annotations

import argparse
import string
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

LETTERS = np.array(list(string.ascii_lowercase))


def vocabulary(size: int) -> np.ndarray:
    """``size`` distinct lowercase words of 3 or more letters (word i spells i + 676 in base 26)."""
    words = []
    for i in range(size):
        n, letters = i + 26 * 26, []
        while n:
            n, digit = divmod(n, 26)
            letters.append(LETTERS[digit])
        words.append("".join(reversed(letters)))
    return np.array(words, dtype=object)


def write_split(
    path: Path, n_docs: int, args: argparse.Namespace, words: np.ndarray, seed: int
) -> tuple[float, np.ndarray]:
    """Write ``n_docs`` documents to ``path``; returns the seconds taken and the class counts."""
    start = time.perf_counter()
    ranks = np.arange(1, len(words) + 1, dtype=np.float64)
    cdf = np.cumsum(ranks**-args.zipf)
    cdf /= cdf[-1]
    middle = len(words) // 20  # signal words start at rank vocab/20: neither stop words nor hapaxes
    signal = np.arange(middle, middle + 2 * args.signal_words).reshape(2, args.signal_words)
    rng = np.random.default_rng(seed)
    schema = pa.schema([("text", pa.string()), ("label", pa.int64())])
    counts = np.zeros(2, dtype=np.int64)
    with pq.ParquetWriter(path, schema) as writer:
        for begin in range(0, n_docs, args.chunk):
            size = min(args.chunk, n_docs - begin)
            labels = rng.integers(0, 2, size=size)
            lengths = np.maximum(rng.poisson(args.tokens, size=size), 5)
            tokens = np.searchsorted(cdf, rng.random(int(lengths.sum())))
            owner = np.repeat(np.arange(size), lengths)
            swap = rng.random(len(tokens)) < args.signal_share
            tokens[swap] = signal[labels[owner[swap]], rng.integers(0, args.signal_words, size=int(swap.sum()))]
            ends = np.cumsum(lengths)
            strings = words[tokens]
            texts = [" ".join(strings[end - length : end]) for end, length in zip(ends, lengths, strict=True)]
            writer.write_table(pa.table({"text": texts, "label": labels.astype(np.int64)}, schema=schema))
            counts += np.bincount(labels, minlength=2)
    return time.perf_counter() - start, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder for train.parquet and test.parquet")
    parser.add_argument("--docs", type=int, default=100_000, help="training documents (default 100,000)")
    parser.add_argument("--test-docs", type=int, default=None, help="test documents (default docs / 10)")
    parser.add_argument("--vocab", type=int, default=50_000, help="word types (default 50,000)")
    parser.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent of word frequencies (default 1.1)")
    parser.add_argument("--tokens", type=float, default=100.0, help="mean words per document (default 100)")
    parser.add_argument("--signal-words", type=int, default=100, help="words owned by each class (default 100)")
    parser.add_argument("--signal-share", type=float, default=0.03, help="share of class words (default 0.03)")
    parser.add_argument("--chunk", type=int, default=20_000, help="documents made and written at once")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    words = vocabulary(args.vocab)
    test_docs = args.test_docs if args.test_docs is not None else max(args.docs // 10, 1)
    for name, n_docs, seed in (("train", args.docs, [args.seed, 0]), ("test", test_docs, [args.seed, 1])):
        seconds, counts = write_split(args.out / f"{name}.parquet", n_docs, args, words, seed)
        print(
            f"{name}: {n_docs:,} documents (classes {counts.tolist()}) in {seconds:.1f} s -> {args.out / name}.parquet"
        )


if __name__ == "__main__":
    main()
