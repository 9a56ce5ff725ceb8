"""Anomaly benchmark: detect held-out topics by reconstruction error, SAE against LSA.

Protocol (20 Newsgroups): the in-distribution groups are those with even label ids. The featurizer,
the SAE and the LSA baseline are fitted on the training documents of those groups only; every test
document of every group is scored, and AUROC measures how well the score separates the test
documents of the held-out (odd) groups from those of the training groups. Then the roles swap
(train on odd, detect even), and the two AUROCs are averaged. Test labels are used only for AUROC.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.metrics import roc_auc_score

from textsae._io import logger
from textsae.bench.machine import Machine
from textsae.config.schema import RecipeConfig
from textsae.data.corpus import Corpus, load_corpus
from textsae.errors import UserError
from textsae.eval.anomaly import ERROR_KINDS, lsa_errors, reconstruction_errors
from textsae.featurize.base import build_featurizer
from textsae.markdown import markdown_table
from textsae.results import JSONObject
from textsae.train.orchestrate import train_sae

__all__ = [
    "HALVES",
    "AnomalyHalf",
    "AnomalyProvenance",
    "AnomalyResult",
    "AnomalyScores",
    "format_anomaly_table",
    "run_anomaly_bench",
]

HALVES = (("even", 0), ("odd", 1))
"""Name and label-id parity of the in-distribution groups of each half."""


@dataclass(frozen=True)
class AnomalyScores:
    """AUROC per error kind (:data:`~textsae.eval.anomaly.ERROR_KINDS`): of the SAE, and of LSA at each width."""

    sae: dict[str, float]
    lsa: dict[str, dict[str, float]]
    """Per LSA width (as a string: JSON keys), per error kind."""

    def to_json(self) -> JSONObject:
        """``{"sae": {kind: auroc}, "lsa": {width: {kind: auroc}}}``."""
        return {"sae": self.sae, "lsa": self.lsa}


@dataclass(frozen=True)
class AnomalyHalf:
    """One half of the protocol: which groups were in distribution, the sizes, the AUROCs and the time taken."""

    in_distribution: str
    train_docs: int
    test_docs: int
    held_out_test_docs: int
    scores: AnomalyScores
    seconds: float

    def to_json(self) -> JSONObject:
        """The half, its scores' ``sae`` and ``lsa`` between the sizes and ``seconds``."""
        return {
            "in_distribution": self.in_distribution,
            "train_docs": self.train_docs,
            "test_docs": self.test_docs,
            "held_out_test_docs": self.held_out_test_docs,
            **self.scores.to_json(),
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class AnomalyProvenance:
    """What ``textsae bench anomaly`` adds to a result: the recipe, its overrides, the command line and the machine."""

    recipe: str
    overrides: tuple[str, ...]
    command: str
    machine: Machine

    def to_json(self) -> JSONObject:
        """``{"recipe", "overrides", "command", <machine facts>}``."""
        return {
            "recipe": self.recipe,
            "overrides": list(self.overrides),
            "command": self.command,
            **self.machine.to_json(),
        }


@dataclass(frozen=True)
class AnomalyResult:
    """Both halves of the anomaly benchmark and their mean."""

    dataset: str
    source: str
    halves: tuple[AnomalyHalf, ...]
    mean: AnomalyScores
    provenance: AnomalyProvenance | None = None

    def to_json(self) -> JSONObject:
        """What ``--out`` writes."""
        values = {
            "dataset": self.dataset,
            "source": self.source,
            "halves": [half.to_json() for half in self.halves],
            "mean": self.mean.to_json(),
        }
        return {**values, **(self.provenance.to_json() if self.provenance else {})}


def run_anomaly_bench(
    config: RecipeConfig, *, lsa_widths: Sequence[int] = (32, 64, 128, 256), device: str = "cpu"
) -> AnomalyResult:
    """Both halves of the protocol with the featurizer, SAE and training settings of ``config``.

    Args:
        config: A recipe; its ``data`` must be a corpus with at least 4 classes (both halves need
            two groups each); ``data.max_docs`` subsamples each split.
        lsa_widths: Numbers of LSA components tried as baselines.
        device: Where the SAE trains and scores.

    Returns:
        Each half's sizes and AUROCs (SAE, and LSA per width; per error kind of :data:`ERROR_KINDS`) and their
        mean.

    Raises:
        UserError: The corpus is unlabeled or has fewer than 4 classes, or the recipe trains with labels (this
            benchmark has none).
    """
    if config.train.dense_init == "probe" or config.train.label_loss_weight > 0:
        raise UserError(
            "The anomaly benchmark trains the SAE without labels (the held-out groups must stay unseen): set "
            "train.dense_init=learned train.label_loss_weight=0 sae.dense_latents=0, or use recipes/20newsgroups_anomaly.yaml."
        )
    corpus = load_corpus(config.data)
    train_labels, eval_labels = corpus.train.labels, corpus.eval.labels
    if train_labels is None or eval_labels is None:
        raise UserError(
            f"The anomaly benchmark needs a labelled corpus (its groups are label ids); {corpus.name} has none."
        )
    n_classes = int(max(train_labels.max(), eval_labels.max())) + 1
    if n_classes < 4:
        raise UserError(
            f"The anomaly benchmark needs a corpus with >= 4 classes (even and odd ids); {corpus.name} has {n_classes}."
        )
    halves = [
        _half(config, corpus, train_labels, eval_labels, name, parity, lsa_widths, device) for name, parity in HALVES
    ]
    mean = AnomalyScores(
        sae={kind: float(np.mean([h.scores.sae[kind] for h in halves])) for kind in ERROR_KINDS},
        lsa={
            str(w): {kind: float(np.mean([h.scores.lsa[str(w)][kind] for h in halves])) for kind in ERROR_KINDS}
            for w in lsa_widths
        },
    )
    return AnomalyResult(corpus.name, corpus.source, tuple(halves), mean)


def format_anomaly_table(result: AnomalyResult) -> str:
    """The AUROC table as Markdown: one row per model and error kind, one column per half, and their mean."""
    halves = result.halves
    header = (
        ["model", "error"]
        + [f"train {h.in_distribution.split()[0]} ids ({h.train_docs} docs)" for h in halves]
        + ["mean"]
    )
    rows = []
    for kind in result.mean.sae:
        rows.append(["SAE", kind] + [f"{h.scores.sae[kind]:.4f}" for h in halves] + [f"{result.mean.sae[kind]:.4f}"])
        for width, mean in result.mean.lsa.items():
            rows.append(
                [f"LSA {width}", kind] + [f"{h.scores.lsa[width][kind]:.4f}" for h in halves] + [f"{mean[kind]:.4f}"]
            )
    lines = [markdown_table(header, rows)]
    lines.append(
        f"\nAUROC for the held-out groups' test documents; {halves[0].test_docs} test documents per half; dataset {result.dataset}."
    )
    if result.provenance is not None:
        run = result.provenance
        lines.append(
            f"machine: {run.machine.machine}, {run.machine.cpu_count} cores, torch {run.machine.torch}; command: {run.command}"
        )
    return "\n".join(lines)


def _half(
    config: RecipeConfig,
    corpus: Corpus,
    train_labels: np.ndarray,
    eval_labels: np.ndarray,
    name: str,
    parity: int,
    lsa_widths: Sequence[int],
    device: str,
) -> AnomalyHalf:
    """One half of the protocol; ``train_labels`` and ``eval_labels`` are ``corpus``'s (checked to be present)."""
    start = time.perf_counter()
    in_train: np.ndarray = train_labels % 2 == parity
    train_texts = [text for text, keep in zip(corpus.train.texts, in_train) if keep]
    held_out: np.ndarray = eval_labels % 2 != parity  # (n_test,) True for documents of groups never trained on
    featurizer = build_featurizer(config.featurizer)
    x_train = featurizer.fit_transform(train_texts)
    x_test = featurizer.transform(corpus.eval.texts)

    sae, _ = train_sae(config.sae, config.train, x_train, runtime=config.runtime, holdout=False)
    sae_scores: dict[str, float] = {
        kind: _auroc(held_out, reconstruction_errors(sae, x_test, kind=kind, device=device)) for kind in ERROR_KINDS
    }
    lsa_scores: dict[str, dict[str, float]] = {}
    for width in lsa_widths:
        svd = TruncatedSVD(n_components=min(width, x_train.shape[1] - 1), random_state=config.train.seed).fit(x_train)
        lsa_scores[str(width)] = {
            kind: _auroc(held_out, lsa_errors(svd.components_, x_test, kind=kind)) for kind in ERROR_KINDS
        }
    result = AnomalyHalf(
        in_distribution=f"{name} label ids",
        train_docs=int(in_train.sum()),
        test_docs=len(held_out),
        held_out_test_docs=int(held_out.sum()),
        scores=AnomalyScores(sae_scores, lsa_scores),
        seconds=round(time.perf_counter() - start, 1),
    )
    logger.info("Anomaly half %s: SAE %s, LSA %s (%.0f s)", name, sae_scores, lsa_scores, result.seconds)
    return result


def _auroc(is_anomaly: np.ndarray, scores: np.ndarray) -> float:
    return float(roc_auc_score(is_anomaly.astype(int), scores))
