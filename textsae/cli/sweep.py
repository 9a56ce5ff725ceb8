"""``textsae sweep``: a grid over config keys, scored on a validation split, with Pareto plots."""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(subparsers: Any, common: argparse.ArgumentParser, formatter: type) -> None:
    """Add the ``sweep`` verb to ``subparsers`` (``common``: the shared ``--debug``/``--quiet`` options)."""
    parser = subparsers.add_parser(
        "sweep",
        help="run a grid of configs (key=[a,b,c] axes), scored on a validation split",
        description="Runs the recipe once per combination of the bracketed-list overrides (key names as `textsae show`\n"
        "prints them; for a list-valued key such as featurizer.ngram_range an axis is a list of lists).\n"
        "Points that share data and featurizer settings featurize once. Each point is scored on a stratified\n"
        "share of the training split held out before fitting (--val-fraction), never on the reported split.\n"
        "Unless eval.representations is given, only the codes are evaluated. Writes sweep.json, sweep.md and\n"
        "pareto.png (accuracy vs bytes/doc, FVU vs L0) into the sweep directory and prints the best point's\n"
        "resolved config. Re-running the same sweep reuses finished points.",
        parents=[common],
        formatter_class=formatter,
        epilog="examples:\n  textsae sweep recipes/quickstart.yaml sae.k=[8,32,128] sae.n_latents=[1024,4096]\n"
        "  textsae sweep recipes/imdb_tfidf_topk.yaml data.path=../shared/data/imdb sae.k=[16,64] train.lr=[3e-4,1e-3] --out runs/imdb_sweep",
    )
    parser.add_argument("recipe", help="recipe YAML file (see `textsae ls`)")
    parser.add_argument("overrides", nargs="*", help="key=[a,b,...] grid axes and key=value fixed overrides")
    parser.add_argument("--out", help="sweep directory (default: <run.root>/<recipe name>/sweep-<hash>)")
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="share of the training split held out for scoring (default: 0.2)",
    )
    parser.add_argument(
        "--metric",
        choices=["accuracy", "macro_f1", "fvu"],
        default="accuracy",
        help="how the best point is chosen (default: accuracy)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Run the sweep; returns the exit code."""
    from pathlib import Path

    from textsae.sweep import run_sweep, write_sweep_outputs
    from textsae.sweep.report import SWEEP_MD_NAME

    overrides = list(args.overrides) + (["runtime.progress=false"] if args.quiet else [])
    result = run_sweep(args.recipe, overrides, out_dir=args.out, val_fraction=args.val_fraction, metric=args.metric)
    folder = write_sweep_outputs(result)
    best = result["best"]
    m = best["metrics"]
    print(f"sweep of {len(result['points'])} points: {folder / SWEEP_MD_NAME}")
    print(
        f"best by validation {args.metric}: point {best['index']} ({' '.join(f'{k}={v}' for k, v in best['assignments'].items()) or 'no axes'})"
    )
    print(
        f"  accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}, {m['bytes_per_doc']:.1f} bytes/doc, FVU {m['fvu']:.4f}, L0 {m['l0']:.1f}"
    )
    print(f"  run directory: {Path(best['run_dir'])}")
    print("resolved config of the best point:")
    print(best["config"], end="")
    return 0
