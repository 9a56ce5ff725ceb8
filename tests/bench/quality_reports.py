"""Quality reports built by hand, for the tests of the byte-budget table, ``bench budgets`` and the README block."""

from __future__ import annotations

from textsae.bench.machine import Machine
from textsae.bench.quality_report import ClassifierScores, QualityDataset, QualityReport, QualityRow, QualitySAE

PROTOCOL = "fit on train (400 documents), scored once on test (200 documents)"
MACHINE = Machine(machine="x86_64", cpu_count=2, python="3.11.9", torch="2.5.1", gpu=None)


def row(family: str, name: str, size: float, accuracy: float, **fields: object) -> QualityRow:
    """A row with only its logistic regression's accuracy known (the other scores made up from it)."""
    scores = {"logreg": ClassifierScores(accuracy=accuracy, macro_f1=accuracy, C=1.0, cv_accuracy=accuracy)}
    return QualityRow(family, name, size, None, None, None, None, {}, scores, **fields)  # type: ignore[arg-type]


def report(
    kind: str, rows: list[QualityRow], *, model: str | None = None, dataset: str = "imdb", protocol: str = PROTOCOL
) -> QualityReport:
    """A complete report as ``run_quality_bench`` writes it, of a TF-IDF (``kind="tfidf"``) or hidden-states source."""
    return QualityReport(
        recipe=f"{kind}_recipe",
        dataset=QualityDataset(name=dataset, source="local folder", n_classes=2),
        protocol=protocol,
        source_kind="sparse" if kind == "tfidf" else "dense",
        rows=tuple(rows),
        budgets=(),
        multi_vs_per_k=(),
        compression=(),
        sae=QualitySAE(
            n_latents=64, d_in=300, train_k=8, multi_topk=False, train_seconds=1.5, config={"architecture": "topk"}
        ),
        featurizer={"kind": kind, "model": model, "layers": [-1]},
        bench={"classifiers": ["logreg"], "budgets": [48, 96], "cv_folds": None},
        eval={"C_grid": [1.0], "cv_folds": 2},
        train={"label_loss_weight": 0.0},
        zstd=False,
        seconds=12.5,
        machine=MACHINE,
        command=f"textsae bench quality {kind}.yaml",
        out_dir="runs/bench",
        plots=("accuracy_vs_bytes.png", "fvu_vs_l0.png"),
    )
