"""``textsae export``: a trained run in another library's format."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from textsae.cli.main import add_model_trust_options


def add_parsers(subparsers: Any, common: argparse.ArgumentParser, formatter: type) -> None:
    """Add the ``export`` verb to ``subparsers`` (``common``: the shared ``--debug``/``--quiet`` options)."""
    parser = subparsers.add_parser(
        "export",
        help="write a trained hidden-states TopK run as a sentence-transformers SparseEncoder",
        description="Writes the run's transformer, pooling and TopK SAE as one sentence-transformers SparseEncoder folder:\n"
        "SparseEncoder(OUT).encode(texts) then gives the run's codes (the same active latents; values equal to float\n"
        "rounding). Only hidden-states runs with a TopK SAE export; a TF-IDF run is refused (its bag-of-words input\n"
        "has no sentence-transformers module). An SAE with always-on dense latents (recipes/minilm_auto.yaml) exports\n"
        "with textsae's module class: load that folder where textsae is installed, with SparseEncoder's\n"
        "trust_remote_code set to True; without dense latents it needs sentence-transformers only.",
        parents=[common],
        formatter_class=formatter,
        epilog="examples:\n  textsae export runs/minilm_auto/1a2b3c4d5e --to sentence-transformers --out minilm-sae\n"
        "  python -c \"from sentence_transformers import SparseEncoder; print(SparseEncoder('minilm-sae').encode(['hi']))\"",
    )
    parser.add_argument("run_dir", help="a run directory holding featurizer/ and sae/ (printed by `textsae run`)")
    parser.add_argument("--to", choices=["sentence-transformers"], required=True, help="the target format")
    parser.add_argument("--out", required=True, help="output folder (must not exist, or be empty)")
    add_model_trust_options(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Export ``args.run_dir`` to ``args.out``; returns the exit code."""
    import importlib.util

    from textsae.artifacts import load_featurizer_artifact, load_sae_artifact
    from textsae.errors import UserError
    from textsae.paths import RunPaths

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out} exists and is not an empty folder; choose a new folder for the export.")
    if importlib.util.find_spec("sentence_transformers") is None:
        raise UserError("Exporting to sentence-transformers needs it installed: pip install sentence-transformers")
    paths = RunPaths(Path(args.run_dir))
    featurizer = load_featurizer_artifact(
        paths.featurizer, trust_remote_code=args.trust_remote_code, allow_pickle=args.allow_pickle
    )
    sae = load_sae_artifact(paths.sae)
    from textsae.export.sentence_transformers import export_sentence_transformers

    export_sentence_transformers(featurizer, sae, out)  # type: ignore[arg-type]
    how = f"SparseEncoder({str(out)!r})"
    if (
        sae.cfg.dense_latents
    ):  # the folder names textsae's module class, which sentence-transformers must be told to import
        how += " with trust_remote_code set to True and textsae installed"
    print(f"wrote a sentence-transformers SparseEncoder to {out}; load it with {how}")
    return 0
