"""Do the general recipes hold on any corpus? Run them unchanged on many datasets and tabulate the bars.

Every recipe runs on every dataset twice: with its whole training split, and with the training split cut to a
stratified sample of ``--train-docs`` documents (the reported split stays whole). No setting depends on the
dataset: the same overrides (if any) go to every run. Finished runs in ``--out`` are reused, so an
interrupted sweep resumes and a finished one only re-tabulates.

Usage:

    python benchmarks/generality.py [key=value ...] [--recipes recipes/tfidf_auto.yaml recipes/minilm_auto.yaml] \\
        [--train-docs 3000] [--out runs/generality] --data ../shared/data/imdb ../shared/data/sst2 ...

Writes ``OUT/generality.json`` (one row per run) and ``OUT/generality.md`` (the table, the machine, the command
and the bars of the "codes that hold on any corpus" issue with the mean and worst gaps).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from textsae.config.compose import load_recipe
from textsae.data.corpus import corpus_name
from textsae.errors import UserError
from textsae.markdown import markdown_table
from textsae.pipeline import Pipeline

DENSE_BARS = {"mean_gap": 1.0, "worst_gap": 2.0, "max_fvu": 0.6}
"""MiniLM codes at <= 128 B: mean gap to the dense embedding <= 1 point, none > 2 points, FVU < 0.6, above sign bits."""
SPARSE_BARS = {"mean_gap": 0.5, "worst_gap": 1.5, "max_fvu": 1.0}
"""TF-IDF codes at <= the source's bytes: mean gap <= 0.5 point, none > 1.5 points, FVU < 1."""
MAX_DEAD = 0.10


def run_one(recipe: Path, data: Path, out: Path, train_docs: int | None, overrides: list[str]) -> dict[str, Any] | None:
    """Run (or reuse) one recipe on one dataset; the row of the table, or None when the training split is
    already no larger than ``train_docs`` (the cut would repeat the whole-corpus run)."""
    name = corpus_name(data) + (f"_{train_docs // 1000}k" if train_docs else "")
    run_dir = out / recipe.stem / name
    settings = [f"data.path={data}", f"run.dir={run_dir}", "runtime.progress=false", *overrides]
    if train_docs:
        whole = Pipeline(load_recipe(recipe, [f"data.path={data}", *overrides])).corpus
        if len(whole.train.texts) <= train_docs:
            return None
        settings.append(f"data.max_train_docs={train_docs}")
    start = time.perf_counter()
    report = Pipeline(load_recipe(recipe, settings)).run()
    seconds = time.perf_counter() - start
    results = {rep: scores.to_json() for rep, scores in report.eval.items()}
    sae, dataset = report.sae.to_json(), report.dataset.to_json()
    row = {
        "recipe": recipe.stem,
        "dataset": name,
        "train_docs": dataset["train_docs"],
        "eval_split": dataset["eval_split"],
        "eval_docs": dataset["eval_docs"],
        "n_classes": dataset["n_classes"],
        **{f"{rep}_accuracy": scores["accuracy"] for rep, scores in results.items()},
        **{f"{rep}_bytes": scores["bytes_per_doc"] for rep, scores in results.items()},
        **{
            key: sae.get(key)
            for key in (
                "n_latents",
                "k",
                "fvu",
                "fvu_train",
                "dead_fraction",
                "top1_top2_median",
                "training_steps",
                "warnings",
            )
        },
        "seconds": seconds if seconds > 5 else None,  # a reused run says nothing about time
        "run_dir": str(run_dir),
    }
    row["gap"] = 100 * (row["source_accuracy"] - row["codes_accuracy"])
    return row


def bar_checks(rows: list[dict[str, Any]]) -> list[str]:
    """One line per recipe: the mean and worst gap to the source and whether each bar of the issue holds."""
    lines = []
    for recipe in sorted({r["recipe"] for r in rows}):
        mine = [r for r in rows if r["recipe"] == recipe]
        dense = "binary_accuracy" in mine[0]
        bars = DENSE_BARS if dense else SPARSE_BARS
        gaps = [r["gap"] for r in mine]
        checks = {
            f"mean gap {statistics.mean(gaps):+.2f} <= {bars['mean_gap']}": statistics.mean(gaps) <= bars["mean_gap"],
            f"worst gap {max(gaps):+.2f} <= {bars['worst_gap']}": max(gaps) <= bars["worst_gap"],
            f"FVU < {bars['max_fvu']} (worst {max(r['fvu'] for r in mine):.3f})": all(
                r["fvu"] < bars["max_fvu"] for r in mine
            ),
            f"dead <= {MAX_DEAD:.0%} (worst {max(r['dead_fraction'] for r in mine):.1%})": all(
                r["dead_fraction"] <= MAX_DEAD for r in mine
            ),
        }
        if dense:
            checks["codes above sign bits everywhere"] = all(r["codes_accuracy"] > r["binary_accuracy"] for r in mine)
            checks["codes <= 128 B"] = all(r["codes_bytes"] <= 128 for r in mine)
        else:
            checks["codes <= source bytes"] = all(r["codes_bytes"] <= r["source_bytes"] + 1e-9 for r in mine)
        lines.append(
            f"- **{recipe}** ({len(mine)} runs): "
            + "; ".join(f"{text}: {'met' if ok else 'NOT met'}" for text, ok in checks.items())
        )
    return lines


def render(rows: list[dict[str, Any]], command: str) -> str:
    """The Markdown table of all runs, the bar checks, the machine and the command."""
    header = [
        "recipe",
        "dataset",
        "train",
        "eval",
        "source",
        "codes",
        "gap (pts)",
        "truncated",
        "binary",
        "B/doc codes/source",
        "n_latents",
        "FVU",
        "dead",
        "top1/top2",
        "steps",
        "time (s)",
    ]
    table = [
        [
            r["recipe"],
            r["dataset"],
            f"{r['train_docs']:,}",
            f"{r['eval_split']} {r['eval_docs']:,}",
            f"{r['source_accuracy']:.4f}",
            f"{r['codes_accuracy']:.4f}",
            f"{r['gap']:+.2f}",
            f"{r.get('truncated_accuracy', float('nan')):.4f}",
            f"{r['binary_accuracy']:.4f}" if "binary_accuracy" in r else "–",
            f"{r['codes_bytes']:.0f} / {r['source_bytes']:.0f}",
            str(r["n_latents"]),
            f"{r['fvu']:.3f}",
            f"{r['dead_fraction']:.1%}",
            f"{r['top1_top2_median']:.2f}",
            str(r["training_steps"]),
            f"{r['seconds']:.0f}" if r["seconds"] else "–",
        ]
        for r in rows
    ]
    warned = [f"- {r['recipe']} / {r['dataset']}: {w}" for r in rows for w in r["warnings"] or []]
    return "\n".join(
        [
            markdown_table(header, table),
            "",
            "Bars:",
            *bar_checks(rows),
            "",
            "Health warnings:" if warned else "No health warnings.",
            *warned,
            "",
            f"Machine: {platform.machine()}, {platform.processor() or platform.platform()}; command: `{command}`",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", nargs="+", type=Path, required=True, help="dataset folders or files (columns text, label)"
    )
    parser.add_argument(
        "--recipes", nargs="+", type=Path, default=[Path("recipes/tfidf_auto.yaml"), Path("recipes/minilm_auto.yaml")]
    )
    parser.add_argument(
        "--train-docs",
        type=int,
        default=3000,
        help="also run with the training split cut to this many documents (0: no)",
    )
    parser.add_argument("--cut-only", action="store_true", help="run only the cut training splits (a quick check)")
    parser.add_argument("--out", type=Path, default=Path("runs/generality"))
    parser.add_argument("overrides", nargs="*", help="key=value applied to every run (never per dataset)")
    args = parser.parse_args(argv)
    misplaced = [str(path) for path in args.data if "=" in path.name and not path.exists()]
    if misplaced:  # argparse hands everything after --data to it
        parser.error(f"--data got {misplaced}: put key=value overrides before --data")
    if args.cut_only and not args.train_docs:
        parser.error("--cut-only needs --train-docs N (> 0)")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("textsae: %(message)s"))
    logging.getLogger("textsae").addHandler(handler)
    logging.getLogger("textsae").setLevel(logging.INFO)
    rows = []
    for data in args.data:
        sizes = (
            (args.train_docs or None,) if args.cut_only else (args.train_docs or None, None)
        )  # the cut first: cheaper
        for train_docs in dict.fromkeys(sizes):
            for recipe in args.recipes:
                try:
                    row = run_one(recipe, data, args.out, train_docs, args.overrides)
                except UserError as error:
                    print(f"{recipe.stem} on {data}: {error}", file=sys.stderr)
                    return 2
                if row is not None:
                    rows.append(row)
                    print(render([row], "").splitlines()[2], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "generality.json").write_text(json.dumps(rows, indent=2))
    (args.out / "generality.md").write_text(render(rows, "python benchmarks/generality.py " + " ".join(sys.argv[1:])))
    print(render(rows, ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
