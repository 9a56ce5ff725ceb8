"""``textsae export`` and ``textsae push``: a trained run as a codebook folder, on the hub, or in another library's
format."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from textsae.cli.main import add_model_trust_options


def add_parsers(subparsers: Any, common: argparse.ArgumentParser, formatter: type) -> None:
    """Add the ``export`` and ``push`` verbs to ``subparsers`` (``common``: the shared ``--debug``/``--quiet`` options)."""
    parser = subparsers.add_parser(
        "export",
        help="write a trained run as a shareable codebook folder or a sentence-transformers SparseEncoder",
        description="--to codebook writes the run as a codebook folder in the Hugging Face Hub layout (README.md model card,\n"
        "featurizer/, sae/, config.yaml, report.json, manifests): textsae.from_pretrained(OUT) and `textsae encode OUT ...`\n"
        "read it, and `textsae push OUT ORG/NAME` uploads it.\n\n"
        "--to sparsify / --to saelens write the TopK SAE in EleutherAI sparsify's (SparseCoder.load_from_disk) or\n"
        "SAELens' (SAE.load_from_disk) layout, its input normalisation folded into the weights: the same codes from\n"
        "the run's pooled hidden states. Hidden-states runs only.\n\n"
        "--to sentence-transformers writes the run's transformer, pooling and TopK SAE as one SparseEncoder folder:\n"
        "SparseEncoder(OUT).encode(texts) then gives the run's codes (the same active latents; values equal to float\n"
        "rounding). Only hidden-states runs with a TopK SAE export; a TF-IDF run is refused (its bag-of-words input\n"
        "has no sentence-transformers module). An SAE with always-on dense latents (recipes/minilm_auto.yaml) exports\n"
        "with textsae's module class: load that folder where textsae is installed, with SparseEncoder's\n"
        "trust_remote_code set to True; without dense latents it needs sentence-transformers only.",
        parents=[common],
        formatter_class=formatter,
        epilog="examples:\n  textsae export runs/quickstart/1a2b3c4d5e --to codebook --out my-codebook\n"
        "  textsae export runs/minilm_auto/1a2b3c4d5e --to sentence-transformers --out minilm-sae\n"
        "  textsae export runs/minilm_auto/1a2b3c4d5e --to sparsify --out minilm-sparsify\n"
        "  python -c \"from sentence_transformers import SparseEncoder; print(SparseEncoder('minilm-sae').encode(['hi']))\"",
    )
    parser.add_argument("run_dir", help="a run directory holding featurizer/ and sae/ (printed by `textsae run`)")
    parser.add_argument(
        "--to",
        choices=["codebook", "sentence-transformers", "sparsify", "saelens"],
        required=True,
        help="the target format",
    )
    parser.add_argument("--out", required=True, help="output folder (must not exist, or be empty)")
    add_model_trust_options(parser)
    parser.set_defaults(handler=handle)
    add_push_parser(subparsers, common, formatter)


def handle(args: argparse.Namespace) -> int:
    """Export ``args.run_dir`` to ``args.out`` in the format ``args.to``; returns the exit code."""
    import importlib.util

    from textsae.artifacts import load_featurizer_artifact, load_sae_artifact
    from textsae.codebook import verify_codebook_folder
    from textsae.errors import UserError
    from textsae.paths import RunPaths

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out} exists and is not an empty folder; choose a new folder for the export.")
    if args.to == "codebook":
        from textsae.codebook import Codebook

        codebook = Codebook.load(args.run_dir, trust_remote_code=args.trust_remote_code, allow_pickle=args.allow_pickle)
        codebook.save_pretrained(out)
        print(
            f"wrote a codebook to {out}; load it with textsae.from_pretrained({str(out)!r}) or share it with `textsae push`"
        )
        return 0
    if args.to in ("sparsify", "saelens"):
        return _export_library(args, out)
    if importlib.util.find_spec("sentence_transformers") is None:
        raise UserError("Exporting to sentence-transformers needs it installed: pip install sentence-transformers")
    paths = RunPaths(Path(args.run_dir))
    verify_codebook_folder(paths.root)
    featurizer = load_featurizer_artifact(
        paths.featurizer, trust_remote_code=args.trust_remote_code, allow_pickle=args.allow_pickle
    )
    sae = load_sae_artifact(paths.sae)
    from textsae.export.sentence_transformers import export_sentence_transformers

    export_sentence_transformers(featurizer, sae, out)  # type: ignore[arg-type]  # any featurizer: the export refuses one that is not hidden_states
    how = f"SparseEncoder({str(out)!r})"
    if sae.cfg.always_on_latents:  # the folder names textsae's module class, which sentence-transformers must import
        how += " with trust_remote_code set to True and textsae installed"
    print(f"wrote a sentence-transformers SparseEncoder to {out}; load it with {how}")
    return 0


def _export_library(args: argparse.Namespace, out: Path) -> int:
    from textsae.artifacts import load_featurizer_artifact, load_sae_artifact
    from textsae.codebook import verify_codebook_folder
    from textsae.errors import UserError
    from textsae.export.sae_libraries import export_sae_library
    from textsae.featurize.hidden_states import HiddenStatesFeaturizer
    from textsae.model_card import BUNDLED_MODEL_HUB_ID
    from textsae.paths import RunPaths

    paths = RunPaths(Path(args.run_dir))
    verify_codebook_folder(paths.root)
    featurizer = load_featurizer_artifact(
        paths.featurizer, trust_remote_code=args.trust_remote_code, allow_pickle=args.allow_pickle
    )
    if not isinstance(featurizer, HiddenStatesFeaturizer):
        raise UserError(
            f"Only hidden-states runs export to {args.to}: this run's SAE reads {type(featurizer).__name__} vectors, which "
            f"{args.to} never computes. Share it as a codebook instead (--to codebook)."
        )
    sae = load_sae_artifact(paths.sae)
    export_sae_library(sae, out, args.to, model_name=featurizer.model or BUNDLED_MODEL_HUB_ID)
    print(f"wrote the SAE in {args.to}'s layout to {out} (cfg.json + weights)")
    return 0


def add_push_parser(subparsers: Any, common: argparse.ArgumentParser, formatter: type) -> None:
    """Add the ``push`` verb: upload a run or codebook folder to the Hugging Face Hub."""
    parser = subparsers.add_parser(
        "push",
        help="upload a run or codebook folder to the Hugging Face Hub as a codebook",
        description="Saves FOLDER (a run directory or a codebook folder) as a codebook with its model card and uploads it to\n"
        "the hub model repository REPO_ID (created if missing; log in first with `hf auth login` or set HF_TOKEN).\n"
        "Others then load it with textsae.from_pretrained(REPO_ID). Offline, it stops within 5 s saying so.",
        parents=[common],
        formatter_class=formatter,
        epilog="example:\n  textsae push runs/quickstart/1a2b3c4d5e me/movie-reviews-codebook --private",
    )
    parser.add_argument("folder", help="a run directory or a codebook folder (`textsae export --to codebook`)")
    parser.add_argument("repo_id", help="the hub model repository, ORG/NAME")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--revision", help="branch to push to (default: main)")
    add_model_trust_options(parser)
    parser.set_defaults(handler=handle_push)


def handle_push(args: argparse.Namespace) -> int:
    """Upload ``args.folder`` to ``args.repo_id``; returns the exit code."""
    from textsae.codebook import Codebook

    codebook = Codebook.load(args.folder, trust_remote_code=args.trust_remote_code, allow_pickle=args.allow_pickle)
    url = codebook.push_to_hub(args.repo_id, private=args.private, revision=args.revision)
    print(f"pushed the codebook to {args.repo_id}: {url}")
    return 0
