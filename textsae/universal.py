"""A universal codebook: one SAE trained on the pooled train splits of several corpora, evaluated on each.

``train_data.paths`` lists dataset folders (or files). Their train features (hidden states, one
shared featurizer and feature store) are concatenated to train a single SAE in the run directory;
then every listed dataset, plus ``data.path`` when it is given (a dataset the SAE never saw), is
encoded and evaluated with that SAE in ``RUN_DIR/datasets/<name>/`` exactly as a single-corpus
run would be. ``RUN_DIR/report.json`` collects the per-dataset reports.

With the label-aware loss, each corpus's class ids are offset so that the joint head sees one
label space (``(corpus, class)`` pairs); a dataset evaluated but not trained on never contributes
labels.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from textsae._io import atomic_write_json, atomic_write_text, logger
from textsae.config.schema import RecipeConfig, TrainDataConfig
from textsae.data.corpus import corpus_name
from textsae.errors import UserError
from textsae.eval.report import format_eval_table
from textsae.paths import REPORT_JSON_NAME, REPORT_MD_NAME, RunPaths, run_paths
from textsae.pipeline import Features, Pipeline
from textsae.results import UniversalEntry, UniversalReport
from textsae.store.features import ShardedFeatures


class UniversalPipeline(Pipeline):
    """Trains one SAE on ``train_data.paths`` and evaluates it on each of them and on ``data.path``."""

    def __init__(self, config: RecipeConfig, paths: RunPaths | None = None) -> None:
        super().__init__(config, paths or run_paths(config))

    @cached_property
    def datasets(self) -> dict[str, Pipeline]:
        """One single-corpus pipeline per dataset, sharing this run's SAE; training corpora first."""
        sources = [Path(p) for p in self.config.train_data.paths]
        if self.config.data.path and Path(self.config.data.path).resolve() not in {p.resolve() for p in sources}:
            sources.append(Path(self.config.data.path))
        pipelines: dict[str, Pipeline] = {}
        for source in sources:
            name = corpus_name(source)
            while name in pipelines:
                name += "_"
            data = dataclasses.replace(self.config.data, path=str(source), name=None, bundled=None)
            config = dataclasses.replace(self.config, data=data, train_data=TrainDataConfig())
            pipelines[name] = Pipeline(config, RunPaths(self.paths.root / "datasets" / name, sae_dir=self.paths.sae))
        return pipelines

    @property
    def training_sets(self) -> list[Pipeline]:
        return list(self.datasets.values())[: len(self.config.train_data.paths)]

    def featurize(self) -> Features:
        """Features of every dataset (from the store); the training rows are the pooled train splits."""
        parts = []
        for pipeline in self.datasets.values():
            pipeline.prepare()
            features = pipeline.featurize()
            if pipeline in self.training_sets:
                parts.append(features)
        return Features(_concat([f.train for f in parts]), _concat([f.eval for f in parts]))

    def train_labels(self) -> np.ndarray:
        """Class ids of the pooled training rows, offset per corpus so that each ``(corpus, class)`` is one class.

        Raises:
            UserError: A training corpus has no labels.
        """
        labels, offset = [], 0
        for pipeline in self.training_sets:
            y = pipeline.corpus.train.labels
            if y is None:
                raise UserError(
                    f"The universal codebook pools the training corpora's labels; {pipeline.config.data.path} has none."
                )
            labels.append(y + offset)
            offset += int(y.max()) + 1
        return np.concatenate(labels)

    def run(self) -> UniversalReport:  # type: ignore[override]  # a summary of one report per dataset
        """Train the shared SAE, then encode and evaluate every dataset with it; write the summary report."""
        self.prepare()
        self.train(self.featurize())
        reports = {}
        for name, pipeline in self.datasets.items():
            logger.info("Evaluating the universal codebook on %s", name)
            reports[name] = pipeline.run()
        summary = UniversalReport(
            recipe=self.config.name,
            run_dir=str(self.paths.root),
            trained_on=tuple(p.config.data.path for p in self.training_sets),
            datasets={
                name: UniversalEntry.of(report, seen_in_training=self.datasets[name] in self.training_sets)
                for name, report in reports.items()
            },
        )
        atomic_write_json(self.paths.root / REPORT_JSON_NAME, summary.to_json())
        atomic_write_text(self.paths.root / REPORT_MD_NAME, render_summary(summary))
        return summary


def render_summary(summary: UniversalReport) -> str:
    """``report.md`` of a universal run: one results table per dataset."""
    lines = [
        f"# textsae universal codebook: {summary.recipe}",
        "",
        f"SAE trained on the train splits of: {', '.join(map(str, summary.trained_on))}",
        "",
    ]
    for name, entry in summary.datasets.items():
        seen = "seen in training" if entry.seen_in_training else "NOT seen in training"
        lines += [f"## {name} ({seen}; reported on {entry.dataset.eval_split})", "", format_eval_table(entry), ""]
    return "\n".join(lines)


def _concat(parts: list[Any]) -> ShardedFeatures:
    """Row-wise concatenation of stored features without reading them."""
    if not all(isinstance(p, ShardedFeatures) and p.rows is None for p in parts):
        raise TypeError("A universal codebook pools stored dense features (featurizer.kind=hidden_states).")
    shards = [shard for p in parts for shard in p.shards]
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in shards])]).astype(np.int64)
    return ShardedFeatures(shards, offsets)
