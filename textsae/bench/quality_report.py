"""``bench quality``'s ``report.json`` as typed records: its rows, byte-budget rows, compression rows and the report.

A row is one representation of the reported split: its family and name, stored size, reconstruction, encode speed,
parameters, then one :class:`ClassifierScores` per classifier under the classifier's name (``logreg``,
``linear_svc``), the stored files' size when written, the number of folds it is the mean of (``bench.cv_folds``) and,
in a combined ``bench budgets`` report, its source. Numbers are written as they are (no NaN to null), as the bench
always has.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from textsae.bench.machine import Machine
from textsae.results import JSONObject

__all__ = [
    "BestCell",
    "BudgetRow",
    "ClassifierScores",
    "CompressionRow",
    "MultiVsPerK",
    "QualityDataset",
    "QualityReport",
    "QualityRow",
    "QualitySAE",
]


def _object(data: Any, what: str) -> JSONObject:
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be a JSON object. Got {type(data).__name__} instead.")
    return data


def _fields(cls: type, data: Any, what: str, optional: tuple[str, ...] = ()) -> JSONObject:
    """The values of ``cls``'s fields in ``data`` (those in ``optional`` may be absent: ``None``)."""
    values = _object(data, what)
    names = [f.name for f in dataclasses.fields(cls)]
    missing = [name for name in names if name not in values and name not in optional]
    if missing:
        raise ValueError(f"{what} has no {', '.join(repr(name) for name in missing)}.")
    return {name: values.get(name) for name in names}


@dataclass(frozen=True)
class ClassifierScores:
    """One classifier's test scores on one representation (means over folds with ``bench.cv_folds``)."""

    accuracy: float
    macro_f1: float
    C: float
    cv_accuracy: float
    accuracy_std: float | None = None
    """Standard deviation of the accuracy over folds; only with ``bench.cv_folds``."""

    def to_json(self) -> JSONObject:
        """``{"accuracy", "macro_f1", "C", "cv_accuracy"[, "accuracy_std"]}``."""
        values = dataclasses.asdict(self)
        if self.accuracy_std is None:
            del values["accuracy_std"]
        return values

    @classmethod
    def from_json(cls, data: Any) -> ClassifierScores:
        """Inverse of :meth:`to_json`.

        Raises:
            ValueError: A score is missing.
        """
        return cls(**_fields(cls, data, "a classifier's scores", optional=("accuracy_std",)))


@dataclass(frozen=True)
class QualityRow:
    """One representation of the reported split, scored."""

    family: str
    name: str
    bytes_per_doc: float
    l0: float | None
    fvu: float | None
    cosine: float | None
    encode_docs_per_s: float | None
    params: JSONObject
    """The representation's own settings (e.g. ``{"k": 32}``, ``{"width": 64}``)."""
    scores: dict[str, ClassifierScores]
    """Per classifier name, in ``bench.classifiers`` order; written as keys of the row itself."""
    disk_bytes_per_doc: float | None = None
    n_folds: int | None = None
    source: str | None = None
    """The source label (``tfidf``, ``minilm``, ...) in a combined ``bench budgets`` report."""

    _FIXED: ClassVar[tuple[str, ...]] = (
        "family",
        "name",
        "bytes_per_doc",
        "l0",
        "fvu",
        "cosine",
        "encode_docs_per_s",
        "params",
    )
    _OPTIONAL: ClassVar[tuple[str, ...]] = ("disk_bytes_per_doc", "n_folds", "source")

    def to_json(self) -> JSONObject:
        """The row: the fixed keys, each classifier's scores under its name, then the optional keys that are set."""
        row: JSONObject = {name: getattr(self, name) for name in self._FIXED}
        row.update({classifier: scores.to_json() for classifier, scores in self.scores.items()})
        row.update({name: getattr(self, name) for name in self._OPTIONAL if getattr(self, name) is not None})
        return row

    @classmethod
    def from_json(cls, data: Any) -> QualityRow:
        """Inverse of :meth:`to_json`: every key that is not a field is a classifier's scores.

        Raises:
            ValueError: A fixed key is missing, or a classifier's scores are incomplete.
        """
        values = _object(data, "a quality report's row")
        missing = [name for name in cls._FIXED if name not in values]
        if missing:
            raise ValueError(f"a quality report's row has no {', '.join(repr(name) for name in missing)}.")
        known = set(cls._FIXED) | set(cls._OPTIONAL)
        return cls(
            family=values["family"],
            name=values["name"],
            bytes_per_doc=values["bytes_per_doc"],
            l0=values["l0"],
            fvu=values["fvu"],
            cosine=values["cosine"],
            encode_docs_per_s=values["encode_docs_per_s"],
            params=_object(values["params"], "a quality report row's params"),
            scores={key: ClassifierScores.from_json(value) for key, value in values.items() if key not in known},
            disk_bytes_per_doc=values.get("disk_bytes_per_doc"),
            n_folds=values.get("n_folds"),
            source=values.get("source"),
        )


@dataclass(frozen=True)
class CompressionRow:
    """Bytes per document of one stored form of the reported split: raw, gzip -9 and zstd -19."""

    what: str
    name: str
    bytes_per_doc: float | None
    gzip_bytes_per_doc: float | None
    zstd_bytes_per_doc: float | None
    """``None`` when zstandard is not installed."""
    accuracy: float | None
    """The logistic regression's accuracy on that form, when it was scored."""

    def to_json(self) -> JSONObject:
        """The row, in field order."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> CompressionRow:
        """Inverse of :meth:`to_json`.

        Raises:
            ValueError: A key is missing.
        """
        return cls(**_fields(cls, data, "a compression row"))


@dataclass(frozen=True)
class BestCell:
    """The most accurate row of one family within a byte budget."""

    name: str
    accuracy: float
    bytes_per_doc: float
    source: str | None = None
    """The row's source, in a combined ``bench budgets`` report."""

    def to_json(self) -> JSONObject:
        """``{"name", "accuracy", "bytes_per_doc"[, "source"]}``."""
        values = dataclasses.asdict(self)
        if self.source is None:
            del values["source"]
        return values

    @classmethod
    def from_json(cls, data: Any) -> BestCell:
        """Inverse of :meth:`to_json`.

        Raises:
            ValueError: A key is missing.
        """
        return cls(**_fields(cls, data, "a budget table's cell", optional=("source",)))


@dataclass(frozen=True)
class BudgetRow:
    """One byte budget B: the best point of each family with at most B bytes per document, and whether the best SAE
    code is at least as accurate as all of them."""

    budget: int
    best: dict[str, BestCell]
    """Per family column (``sae`` for every SAE family)."""
    sae_wins: bool | None
    """``None`` when no SAE code fits in the budget."""

    def to_json(self) -> JSONObject:
        """``{"budget", "best": {family: cell}, "sae_wins"}``."""
        return {
            "budget": self.budget,
            "best": {family: cell.to_json() for family, cell in self.best.items()},
            "sae_wins": self.sae_wins,
        }

    @classmethod
    def from_json(cls, data: Any) -> BudgetRow:
        """Inverse of :meth:`to_json`.

        Raises:
            ValueError: A key is missing.
        """
        values = _fields(cls, data, "a budget row")
        best = _object(values["best"], "a budget row's best")
        return cls(
            values["budget"], {family: BestCell.from_json(cell) for family, cell in best.items()}, values["sae_wins"]
        )


@dataclass(frozen=True)
class MultiVsPerK:
    """One Multi-TopK SAE read at k against an SAE trained at k."""

    k: int
    multi_accuracy: float | None
    per_k_accuracy: float | None
    multi_fvu: float | None
    per_k_fvu: float | None

    def to_json(self) -> JSONObject:
        """The entry, in field order."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> MultiVsPerK:
        """Inverse of :meth:`to_json`.

        Raises:
            ValueError: A key is missing.
        """
        return cls(**_fields(cls, data, "a multi_vs_per_k entry"))


@dataclass(frozen=True)
class QualityDataset:
    """The corpus of a quality report."""

    name: str
    source: str
    n_classes: int

    def to_json(self) -> JSONObject:
        """``{"name", "source", "n_classes"}``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> QualityDataset:
        """Inverse of :meth:`to_json`.

        Raises:
            ValueError: A key is missing.
        """
        return cls(**_fields(cls, data, "a quality report's dataset"))


@dataclass(frozen=True)
class QualitySAE:
    """The SAE a quality report read its codes from (the first fold's, with ``bench.cv_folds``)."""

    n_latents: int
    d_in: int
    train_k: int | None
    multi_topk: bool
    train_seconds: float | None
    """``None`` when a trained SAE was reused."""
    config: JSONObject = field(default_factory=dict)
    """The recipe's ``sae`` section."""

    def to_json(self) -> JSONObject:
        """The facts, then ``config``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> QualitySAE:
        """Inverse of :meth:`to_json`.

        Raises:
            ValueError: A key is missing.
        """
        return cls(**_fields(cls, data, "a quality report's sae"))


@dataclass(frozen=True)
class QualityReport:
    """``RUN_DIR/bench/quality/report.json``: every representation of one corpus at its stored size."""

    recipe: str
    dataset: QualityDataset
    protocol: str
    """How the corpus was split (names the splits and their sizes, or the CV folds)."""
    source_kind: str
    """``sparse`` (TF-IDF) or ``dense`` (hidden states, vectors)."""
    rows: tuple[QualityRow, ...]
    budgets: tuple[BudgetRow, ...]
    multi_vs_per_k: tuple[MultiVsPerK, ...]
    compression: tuple[CompressionRow, ...]
    sae: QualitySAE
    featurizer: JSONObject
    bench: JSONObject
    eval: JSONObject
    train: JSONObject
    """The recipe's ``featurizer``, ``bench``, ``eval`` and ``train`` sections."""
    zstd: bool
    """Whether zstandard was installed (the compression table's zstd column)."""
    seconds: float
    machine: Machine
    command: str
    out_dir: str
    plots: tuple[str, ...] = ()
    """File names of the plots in ``out_dir``."""

    def to_json(self) -> JSONObject:
        """What ``report.json`` holds."""
        return {
            "recipe": self.recipe,
            "dataset": self.dataset.to_json(),
            "protocol": self.protocol,
            "source_kind": self.source_kind,
            "rows": [row.to_json() for row in self.rows],
            "budgets": [row.to_json() for row in self.budgets],
            "multi_vs_per_k": [item.to_json() for item in self.multi_vs_per_k],
            "compression": [row.to_json() for row in self.compression],
            "sae": self.sae.to_json(),
            "featurizer": self.featurizer,
            "bench": self.bench,
            "eval": self.eval,
            "train": self.train,
            "zstd": self.zstd,
            "seconds": self.seconds,
            "machine": self.machine.to_json(),
            "command": self.command,
            "out_dir": self.out_dir,
            "plots": list(self.plots),
        }

    @classmethod
    def from_json(cls, data: Any) -> QualityReport:
        """A report read back from ``report.json``.

        Raises:
            ValueError: ``data`` is not a complete quality report (the message names what is missing).
            KeyError: The machine facts are incomplete.
        """
        values = _fields(cls, data, "a quality report", optional=("plots",))
        return cls(
            recipe=values["recipe"],
            dataset=QualityDataset.from_json(values["dataset"]),
            protocol=values["protocol"],
            source_kind=values["source_kind"],
            rows=tuple(QualityRow.from_json(row) for row in values["rows"]),
            budgets=tuple(BudgetRow.from_json(row) for row in values["budgets"]),
            multi_vs_per_k=tuple(MultiVsPerK.from_json(item) for item in values["multi_vs_per_k"]),
            compression=tuple(CompressionRow.from_json(row) for row in values["compression"]),
            sae=QualitySAE.from_json(values["sae"]),
            featurizer=_object(values["featurizer"], "a quality report's featurizer"),
            bench=_object(values["bench"], "a quality report's bench"),
            eval=_object(values["eval"], "a quality report's eval"),
            train=_object(values["train"], "a quality report's train"),
            zstd=values["zstd"],
            seconds=values["seconds"],
            machine=Machine.from_json(_object(values["machine"], "a quality report's machine")),
            command=values["command"],
            out_dir=values["out_dir"],
            plots=tuple(values["plots"] or ()),
        )
