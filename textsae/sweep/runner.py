"""Run a sweep: every grid point through the pipeline, scored on a validation split carved from train.

Points that share their data and featurizer settings share one featurization: it is computed once
in ``SWEEP_DIR/features-<hash>/`` and hard-linked (copied where links are impossible) into each
point's run directory, which therefore stays a complete run that ``textsae inspect``/``encode``
accept. Every point is scored on a stratified ``val_fraction`` of the training split, held out
before anything is fitted; the recipe's reported split is never loaded into the pipeline's
evaluation. Finished points are reused when the same sweep is run again.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import numpy as np

from textsae._io import logger, stable_hash
from textsae.artifacts import is_complete
from textsae.config.compose import dump_yaml, load_recipe
from textsae.config.schema import RecipeConfig, to_dict
from textsae.data.corpus import Corpus, Split, load_corpus, stratified_split, take
from textsae.errors import ConfigError, UserError
from textsae.locks import directory_lock
from textsae.paths import RunPaths, config_hash
from textsae.pipeline import Pipeline
from textsae.results import Report
from textsae.store.manifest import MANIFEST_NAME
from textsae.sweep.grid import GridPoint, expand_grid, parse_grid

__all__ = ["METRICS", "best_point", "point_metrics", "run_sweep", "validation_corpus"]

METRICS = {"accuracy": max, "macro_f1": max, "fvu": min}
"""Selection metrics and whether larger (``max``) or smaller (``min``) is better."""


def validation_corpus(corpus: Corpus, fraction: float, seed: int) -> Corpus:
    """``corpus`` with its reported split replaced by a stratified ``fraction`` of its training split."""
    labels = cast(np.ndarray, corpus.train.labels)  # a sweep's corpus has labels (_sweepable checks)
    train_rows, val_rows = stratified_split(labels, fraction, seed)
    val = take(corpus.train, val_rows)
    return Corpus(
        name=corpus.name,
        train=take(corpus.train, train_rows),
        eval=Split("validation", val.texts, val.labels, label_names=val.label_names),
        label_names=corpus.label_names,
        source=f"{corpus.source}; sweep validation split: {fraction:g} of train held out (stratified, seed {seed})",
    )


def _sweepable(config: RecipeConfig) -> Corpus:
    """The corpus of a sweep, refused in one line where the sweep cannot work (it scores labelled text)."""
    if config.featurizer.vector_column is not None:
        raise UserError(
            "textsae sweep reads texts, not own vectors (featurizer.kind=vectors); run each setting with `textsae run`."
        )
    corpus = load_corpus(config.data)
    if corpus.train.labels is None:
        raise UserError(
            f"textsae sweep holds out a stratified validation split and scores each point by a classifier; {corpus.name} "
            "has no labels. Run each setting with `textsae run` and compare the FVU in their reports."
        )
    return corpus


def point_metrics(report: Report) -> dict[str, float]:
    """The numbers a sweep compares, from one point's report."""
    codes, sae = report.eval["codes"], report.sae
    return {
        "accuracy": codes.accuracy,
        "macro_f1": codes.macro_f1,
        "bytes_per_doc": codes.bytes_per_doc,
        "fvu": sae.fvu,
        "l0": sae.l0,
        "dead_fraction": sae.dead_fraction,
    }


def best_point(points: Sequence[dict[str, Any]], metric: str) -> dict[str, Any]:
    """The point with the best ``metric``; ties go to fewer bytes/doc, then to the earlier point."""
    sign = -1.0 if METRICS[metric] is max else 1.0
    return min(points, key=lambda p: (sign * p["metrics"][metric], p["metrics"]["bytes_per_doc"], p["index"]))


def run_sweep(
    recipe: str | os.PathLike[str],
    overrides: Sequence[str],
    *,
    out_dir: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.2,
    metric: str = "accuracy",
) -> dict[str, Any]:
    """Run every point of the grid that ``overrides`` describe (see :func:`~textsae.sweep.grid.parse_grid`).

    Args:
        recipe: Recipe YAML file.
        overrides: Fixed ``key=value`` overrides and ``key=[a,b,..]`` axes.
        out_dir: Sweep directory; default ``<run.root>/<recipe name>/sweep-<hash>``.
        val_fraction: Share of the training split held out to score the points.
        metric: Selection metric, a key of :data:`METRICS`.

    Returns:
        ``{"sweep_dir", "recipe", "axes", "fixed", "metric", "validation", "points": [{"index",
        "assignments", "run_dir", "metrics"}], "best": {... plus "config" (resolved YAML)}}``.

    Raises:
        ConfigError: Bad overrides or axis values (every point is validated before anything runs),
            a metric that is unknown, or ``eval.representations`` without ``codes``.
    """
    if metric not in METRICS:
        raise ConfigError(f"--metric must be one of {sorted(METRICS)}. Got {metric!r} instead.")
    if not 0.0 < val_fraction < 0.5:
        raise ConfigError(f"--val-fraction must be in (0, 0.5). Got {val_fraction!r} instead.")
    fixed, axes = parse_grid(overrides)
    if not any(item.startswith("eval.representations") for item in overrides):
        fixed.append("eval.representations=[codes]")  # the source is the same at every point: skip it
    points = expand_grid(axes)
    # With the first point's values: a fixed key may belong to the architecture or featurizer an axis picks.
    base = load_recipe(recipe, [*fixed, *points[0].overrides])
    grid_hash = stable_hash([fixed, [[a.key, a.values] for a in axes], val_fraction], 10)
    sweep_dir = Path(out_dir) if out_dir else Path(base.run.root) / base.name / f"sweep-{grid_hash}"
    sweep_dir = sweep_dir.resolve()
    configs = _point_configs(recipe, fixed, points, sweep_dir, val_fraction)
    with directory_lock(sweep_dir, what=f"sweep folder {sweep_dir}"):  # one sweep writes its points at a time
        corpora: dict[str, Corpus] = {}
        results = []
        for point, config in zip(points, configs):
            data_key = stable_hash([to_dict(config.data), val_fraction], 10)
            if data_key not in corpora:
                corpora[data_key] = validation_corpus(_sweepable(config), val_fraction, config.data.seed)
            shared = _shared_features(config, corpora[data_key], sweep_dir, data_key)
            logger.info("Sweep point %d/%d: %s", point.index + 1, len(points), point.label or "(no axes)")
            paths = RunPaths(Path(cast(str, config.run.dir)))  # set by _point_configs
            for name in ("featurizer", "features"):
                if not is_complete(paths.root / name):
                    _link_tree(shared / name, paths.root / name)
            pipeline = Pipeline(config, paths)
            pipeline.corpus = corpora[data_key]  # the validation corpus, never the reported split
            pipeline.prepare()
            report = pipeline.run()
            results.append(
                {
                    "index": point.index,
                    "assignments": point.assignments,
                    "run_dir": str(paths.root),
                    "metrics": point_metrics(report),
                }
            )
    best = best_point(results, metric)
    return {
        "sweep_dir": str(sweep_dir),
        "recipe": str(Path(recipe).resolve()),
        "axes": {axis.key: list(axis.values) for axis in axes},
        "fixed": fixed,
        "metric": metric,
        "validation": f"stratified {val_fraction:g} of the training split, held out before fitting (seed data.seed); the reported split is not used",
        "points": results,
        "best": {**best, "config": dump_yaml(configs[best["index"]])},
    }


def _point_configs(
    recipe: str | os.PathLike[str], fixed: list[str], points: list[GridPoint], sweep_dir: Path, val_fraction: float
) -> list[RecipeConfig]:
    """Validated configs, each with its run directory ``point-NNN-<hash of config and validation split>``.

    The hash keeps a re-used ``--out`` from resuming a point that was trained with other settings.
    """
    configs: list[RecipeConfig] = []
    problems: list[str] = []
    for point in points:
        try:
            config = load_recipe(recipe, [*fixed, *point.overrides, "~run.dir"])
            config.run.dir = str(
                sweep_dir / f"point-{point.index:03d}-{stable_hash([config_hash(config), val_fraction], 8)}"
            )
            configs.append(config)
        except ConfigError as error:
            problems.extend(f"sweep point {point.label}: {line}" for line in error.problems)
    if problems:
        raise ConfigError(sorted(set(problems), key=problems.index))
    if "codes" not in configs[0].eval.representations:
        raise ConfigError("A sweep scores the codes: eval.representations must include codes.")
    return configs


def _shared_features(config: RecipeConfig, corpus: Corpus, sweep_dir: Path, data_key: str) -> Path:
    """Featurize once per (data, featurizer) setting into ``sweep_dir/features-<hash>``."""
    shared = sweep_dir / f"features-{stable_hash([data_key, to_dict(config.featurizer)], 10)}"
    if not (is_complete(shared / "featurizer") and is_complete(shared / "features")):
        pipeline = Pipeline(replace(config, run=replace(config.run, dir=str(shared))), RunPaths(shared))
        pipeline.corpus = corpus
        pipeline.featurize()
    return shared


def _link_tree(source: Path, target: Path) -> None:
    """Hard-link (else copy) the files of an artefact folder, its manifest last so it completes the folder."""
    target.mkdir(parents=True, exist_ok=True)
    (target / MANIFEST_NAME).unlink(missing_ok=True)
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):  # e.g. features/train/: CSR shards
        _link_tree(folder, target / folder.name)
    files = sorted((p for p in source.iterdir() if p.is_file()), key=lambda p: p.name == MANIFEST_NAME)
    for path in files:
        destination = target / path.name
        destination.unlink(missing_ok=True)
        try:
            os.link(path, destination)
        except OSError:
            shutil.copy2(path, destination)
