"""``textsae score``: each document's reconstruction error under a trained run (an anomaly score)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from textsae.cli.main import add_model_trust_options, positive_int

SCORE_SUFFIXES = (".parquet", ".csv")


def add_parsers(subparsers: Any, common: argparse.ArgumentParser, formatter: type) -> None:
    """Add the ``score`` verb to ``subparsers`` (``common``: the shared ``--debug``/``--quiet`` options)."""
    parser = subparsers.add_parser(
        "score",
        help="score documents by their reconstruction error under a trained run (anomaly score)",
        description="Featurizes INPUT with the run's fitted featurizer and writes, per document, how badly the SAE\n"
        "reconstructs it, x̂ = decode(encode(x)) in the SAE's normalised space: documents unlike the training\n"
        "documents score higher. --kind support (the default): Σ (x_i − x̂_i)² over the document's own non-zero\n"
        "entries, the part of the document the SAE fails to reproduce; squared: ‖x − x̂‖²; relative: ‖x − x̂‖² / ‖x‖².\n"
        "Output columns: doc (0-based row of INPUT), score, and label when INPUT has labels.",
        parents=[common],
        formatter_class=formatter,
        epilog="examples:\n  textsae score runs/20newsgroups_anomaly/1a2b3c4d5e new_posts.parquet --out scores.parquet\n"
        "  textsae score RUN_DIR docs.csv --out scores.csv --kind squared",
    )
    parser.add_argument("run_dir", help="a run directory holding featurizer/ and sae/ (printed by `textsae run`)")
    parser.add_argument(
        "data", help="documents: a .parquet/.csv/.jsonl/.txt file, or a dataset folder (its reported split)"
    )
    parser.add_argument("--out", help="output .parquet or .csv file (default: RUN_DIR/scores/<INPUT name>.parquet)")
    parser.add_argument(
        "--kind",
        choices=["support", "squared", "relative"],
        default="support",
        help="error measure, see above (default: support)",
    )
    parser.add_argument("--text-column", default="text", help="column holding the text (default: text)")
    parser.add_argument(
        "--batch-size", type=positive_int, default=1024, help="documents featurized and scored at once (default: 1024)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda (default: auto)")
    add_model_trust_options(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Score ``args.data`` with the run in ``args.run_dir``; returns the exit code."""
    import numpy as np
    import pandas as pd

    from textsae._io import atomic_path, resolve_device
    from textsae.artifacts import load_featurizer_artifact, load_sae_artifact
    from textsae.codebook import verify_codebook_folder
    from textsae.data.corpus import load_split
    from textsae.errors import UserError
    from textsae.eval.anomaly import reconstruction_errors
    from textsae.featurize.vectors import VectorsFeaturizer
    from textsae.paths import RunPaths

    paths = RunPaths(Path(args.run_dir))
    verify_codebook_folder(paths.root)  # a codebook folder is checked whole; a run directory has nothing to check
    out = (
        Path(args.out)
        if args.out
        else paths.root / "scores" / f"{Path(args.data).name.split('.')[0] or 'input'}.parquet"
    )
    if out.suffix not in SCORE_SUFFIXES:
        raise UserError(f"--out must end in {' or '.join(SCORE_SUFFIXES)}. Got {str(out)!r} instead.")
    featurizer = load_featurizer_artifact(
        paths.featurizer, trust_remote_code=args.trust_remote_code, allow_pickle=args.allow_pickle
    )
    sae = load_sae_artifact(paths.sae)
    if featurizer.n_features != sae.d_in:
        raise UserError(
            f"{paths.root}: the featurizer produces {featurizer.n_features} features but the SAE expects d_in={sae.d_in}."
        )
    vector_column = featurizer.vector_column if isinstance(featurizer, VectorsFeaturizer) else None
    split = load_split(args.data, text_column=args.text_column, require_labels=False, vector_column=vector_column)
    inputs = split.vectors if split.vectors is not None else split.texts
    device = resolve_device(args.device)
    scores = np.concatenate(
        [
            reconstruction_errors(
                sae, featurizer.transform(inputs[begin : begin + args.batch_size]), kind=args.kind, device=device
            )
            for begin in range(0, len(split.texts), args.batch_size)
        ]
    )
    table = pd.DataFrame({"doc": np.arange(len(scores), dtype=np.int64), "score": scores})
    if split.labels is not None:
        table["label"] = split.labels
    with atomic_path(out) as tmp:
        table.to_parquet(tmp, index=False) if out.suffix == ".parquet" else table.to_csv(tmp, index=False)
    print(
        f"wrote {args.kind} reconstruction errors of {len(scores)} documents to {out} (mean {scores.mean():.4g}, max {scores.max():.4g})"
    )
    return 0
