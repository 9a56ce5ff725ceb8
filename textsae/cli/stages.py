"""``textsae run | featurize | train | eval``: a recipe's stages."""

from __future__ import annotations

import argparse
from typing import Any

from textsae.config.compose import load_recipe

_RECIPE_HELP = "recipe YAML file (see `textsae ls`)"
_OVERRIDE_HELP = "config overrides key=value (e.g. sae.k=64 data.path=../shared/data/imdb); ~key resets a key"

_STAGES = {
    "run": (
        "run every stage: featurize, train, encode, evaluate",
        "Runs a recipe end to end and prints the table of codes vs source accuracy.\n"
        "Finished stages in the run directory are reused; an interrupted run resumes.",
    ),
    "featurize": (
        "fit the featurizer and cache the source features",
        "Fits the recipe's featurizer on the training split and stores both splits' features.",
    ),
    "train": (
        "train the SAE (featurizing first if needed)",
        "Trains the recipe's SAE, resuming from the last checkpoint after an interruption.",
    ),
    "eval": (
        "encode both splits and evaluate codes vs source",
        "Writes codes for the training and reported splits, then report.json and report.md.",
    ),
}


def add_parsers(subparsers: Any, common: argparse.ArgumentParser, formatter: type) -> None:
    """Add the ``run``, ``featurize``, ``train`` and ``eval`` verbs to ``subparsers`` (``common``: the shared ``--debug``/``--quiet`` options)."""
    for name, (summary, description) in _STAGES.items():
        parser = subparsers.add_parser(
            name,
            help=summary,
            description=description,
            parents=[common],
            formatter_class=formatter,
            epilog=f"example:\n  textsae {name} recipes/quickstart.yaml train.epochs=2 run.dir=runs/try",
        )
        parser.add_argument("recipe", help=_RECIPE_HELP)
        parser.add_argument("overrides", nargs="*", help=_OVERRIDE_HELP)
        parser.add_argument(
            "--wait",
            action="store_true",
            help="if another job is using the run directory, wait for it (default: exit 2)",
        )
        parser.set_defaults(handler=_handler(name))


def _handler(stage: str) -> Any:
    def handle(args: argparse.Namespace) -> int:
        from textsae import distributed
        from textsae._io import resolve_device
        from textsae.errors import UserError
        from textsae.locks import group_lock
        from textsae.pipeline import Pipeline
        from textsae.universal import UniversalPipeline

        config = load_recipe(args.recipe, args.overrides)
        if args.quiet:
            config.runtime.progress = False
        universal = bool(config.train_data.paths)
        current = distributed.setup(resolve_device(config.runtime.device))  # torchrun: join the ranks first
        if current.distributed and universal:
            raise UserError("A universal codebook (train_data.paths) trains in one process; start it without torchrun.")
        pipeline = UniversalPipeline(config) if universal else Pipeline(config)
        root = pipeline.paths.root
        with group_lock(root, what=f"run directory {root}", wait=args.wait):  # torchrun: rank 0 holds it for the job
            return _run_stage(stage, pipeline, universal)

    return handle


def _run_stage(stage: str, pipeline: Any, universal: bool) -> int:
    """Prepare the run directory, run ``stage`` and print its outcome (the caller holds the run directory's lock)."""
    from textsae.distributed import world
    from textsae.eval.report import format_eval_table
    from textsae.universal import render_summary

    pipeline.prepare()
    show = print if world().is_main else _quiet  # under torchrun rank 0 alone reports
    show(f"run directory: {pipeline.paths.root}")
    if universal and stage in ("run", "eval"):
        print(render_summary(pipeline.run()))
        print(f"report: {pipeline.paths.report_md}")
        return 0
    if stage == "featurize":
        features = pipeline.featurize()  # rank-aware under torchrun: every rank takes part
        show(f"features: train {features.train.shape}, eval {features.eval.shape} in {pipeline.paths.features}")
    elif stage == "train":
        pipeline.train()
        show(f"trained SAE: {pipeline.paths.sae}")
    else:
        report = pipeline.run() if stage == "run" else pipeline.evaluate()
        show(format_eval_table(report))
        show(f"report: {pipeline.paths.report_md}")
    return 0


def _quiet(*_: object) -> None:
    """``print`` on ranks other than 0."""
