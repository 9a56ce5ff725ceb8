"""``report.json`` of a run, and of a universal codebook, as typed records.

A run's report::

    {"recipe": "imdb_tfidf_topk", "run_dir": "runs/...",
     "dataset": {"name": "imdb", "source": ..., "train_docs": 25000, "eval_split": "test", "eval_docs": 25000,
                 "n_classes": 2},
     "eval": {"source":    {"accuracy": .., "macro_f1": .., "C": .., "cv_accuracy": .., "n_train": .., "n_test": ..,
                            "fit_seconds": .., "bytes_per_doc": .., "index_bytes": ..},
              "codes":     {..., "disk_bytes_per_doc": ..},
              "truncated": {..., "entries_per_doc": ..}},
     "sae": {"architecture": .., "n_latents": .., ..., "fvu": .., "l0": .., "dead_fraction": .., ..., "warnings": [..]},
     "notes": [..],
     "config": {...resolved recipe...}}

NaN and infinities are written as null in a run's report (:meth:`Report.to_json`) and read back as NaN. A
universal codebook's summary (:class:`UniversalReport`) writes its numbers as they are, as it always has.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from textsae.results._json import JSONObject, json_safe, nan_if_null, read_object

__all__ = [
    "ClassifierResult",
    "DatasetInfo",
    "Report",
    "RepresentationResult",
    "SAEStats",
    "StoredSize",
    "UniversalEntry",
    "UniversalReport",
]


@dataclass(frozen=True)
class DatasetInfo:
    """The corpus a run was trained and scored on."""

    name: str
    source: str
    """One human line saying where it came from."""
    train_docs: int
    eval_split: str
    """The reported split: ``test``, or ``validation`` when the corpus has no test split."""
    eval_docs: int
    n_classes: int
    """0 for a corpus without labels."""
    train_docs_evaluated: int | None = None
    """Training documents the classifiers and reconstruction statistics used when ``eval.max_docs`` subsampled them;
    ``None``: all of them."""
    eval_docs_evaluated: int | None = None
    """The same for the reported split."""

    def to_json(self) -> JSONObject:
        """The ``dataset`` object of ``report.json`` (the ``*_evaluated`` counts only when documents were left out)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {key: value for key, value in values.items() if value is not None or key in _REQUIRED}

    @classmethod
    def from_json(cls, data: Any) -> DatasetInfo:
        """Inverse of :meth:`to_json`.

        Raises:
            ValueError: ``data`` is not such an object.
        """
        values = read_object(data, "the report's dataset", _REQUIRED)
        return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values})


_REQUIRED = ("name", "source", "train_docs", "eval_split", "eval_docs", "n_classes")
"""The dataset keys every report has (the others came later and may be missing)."""


@dataclass(frozen=True)
class StoredSize:
    """How large one representation is when stored: bytes per document, and how they were counted."""

    bytes_per_doc: float
    index_bytes: int | None = None
    """Bytes of each stored entry's index (sparse forms)."""
    dtype: str | None = None
    """What each value is stored as (dense forms: ``float32``, ``sign bits``)."""
    entries_per_doc: int | None = None
    """Entries kept per document (the truncated source)."""


@dataclass(frozen=True)
class ClassifierResult:
    """Test-split scores of one representation, and how the classifier was chosen."""

    accuracy: float
    """Accuracy on the test split."""
    macro_f1: float
    """F1 averaged over classes with equal weight, on the test split."""
    C: float
    """Inverse regularisation strength chosen by cross-validation on train."""
    cv_accuracy: float
    """Mean cross-validated accuracy of the chosen ``C`` (training split only)."""
    n_train: int
    """Training documents."""
    n_test: int
    """Test documents."""
    fit_seconds: float
    """Wall time of choosing ``C`` (all folds × grid) plus the final refit; prediction excluded."""


@dataclass(frozen=True)
class RepresentationResult(ClassifierResult):
    """The classifier's scores on one representation, and that representation's size."""

    bytes_per_doc: float
    index_bytes: int | None = None
    dtype: str | None = None
    entries_per_doc: int | None = None
    disk_bytes_per_doc: float | None = None
    """The stored files' size per document (the codes only)."""

    _OPTIONAL: ClassVar[tuple[str, ...]] = ("index_bytes", "dtype", "entries_per_doc", "disk_bytes_per_doc")

    def to_json(self) -> JSONObject:
        """One entry of ``eval``: the scores, then the size keys this representation has (the unset ones are left
        out, not written as null)."""
        values = dataclasses.asdict(self)
        return {key: value for key, value in values.items() if value is not None or key not in self._OPTIONAL}

    @classmethod
    def from_json(cls, data: Any) -> RepresentationResult:
        """Inverse of :meth:`to_json` (null read as NaN in the scores).

        Raises:
            ValueError: ``data`` lacks a score or ``bytes_per_doc``.
        """
        required = [f.name for f in dataclasses.fields(cls) if f.name not in cls._OPTIONAL]
        values = read_object(data, "a representation's result", required)
        return cls(
            accuracy=nan_if_null(values["accuracy"]),
            macro_f1=nan_if_null(values["macro_f1"]),
            C=nan_if_null(values["C"]),
            cv_accuracy=nan_if_null(values["cv_accuracy"]),
            n_train=values["n_train"],
            n_test=values["n_test"],
            fit_seconds=nan_if_null(values["fit_seconds"]),
            bytes_per_doc=nan_if_null(values["bytes_per_doc"]),
            index_bytes=values.get("index_bytes"),
            dtype=values.get("dtype"),
            entries_per_doc=values.get("entries_per_doc"),
            disk_bytes_per_doc=values.get("disk_bytes_per_doc"),
        )


@dataclass(frozen=True)
class SAEStats:
    """The trained SAE in a run's report: sizes, reconstruction and health on both splits, and how it trained."""

    architecture: str
    n_latents: int
    d_in: int
    k: int | None
    """Entries per code (``encode.k``, else the architecture's); ``None`` for an architecture without a fixed k."""
    adaptive_k: str | None
    fvu: float
    l0: float
    dead_fraction: float
    fvu_train: float
    l0_train: float
    top1_top2_median: float
    top1_top2_above_3: float
    labels_shaped_codes: bool
    training_steps: int | None
    training_budget: str | None
    warnings: tuple[str, ...]

    _NUMBERS: ClassVar[tuple[str, ...]] = (
        "fvu",
        "l0",
        "dead_fraction",
        "fvu_train",
        "l0_train",
        "top1_top2_median",
        "top1_top2_above_3",
    )

    def to_json(self) -> JSONObject:
        """The ``sae`` object, numbers as they are (a run's report turns NaN into null as a whole)."""
        values = dataclasses.asdict(self)
        values["warnings"] = list(self.warnings)
        return values

    @classmethod
    def from_json(cls, data: Any) -> SAEStats:
        """Inverse of :meth:`to_json` (null read as NaN in the measured numbers).

        Raises:
            ValueError: ``data`` lacks one of the keys.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        values = read_object(data, "the report's sae", names)
        kwargs = {name: nan_if_null(values[name]) if name in cls._NUMBERS else values[name] for name in names}
        kwargs["warnings"] = tuple(values["warnings"])
        return cls(**kwargs)


def _results_from_json(data: Any) -> dict[str, RepresentationResult]:
    results = read_object(data, "the report's eval", ())
    return {name: RepresentationResult.from_json(value) for name, value in results.items()}


@dataclass(frozen=True)
class Report:
    """A run's ``report.json``: the corpus, every representation's scores, the SAE, notes and the resolved recipe."""

    recipe: str
    run_dir: str
    dataset: DatasetInfo
    eval: dict[str, RepresentationResult]
    """Per representation (``source``, ``codes``, ``truncated``, ``binary``), in the order evaluated; empty for a
    corpus without labels."""
    sae: SAEStats
    notes: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> JSONObject:
        """What ``report.json`` holds (NaN and infinities as null)."""
        return json_safe(
            {
                "recipe": self.recipe,
                "run_dir": self.run_dir,
                "dataset": self.dataset.to_json(),
                "eval": {name: result.to_json() for name, result in self.eval.items()},
                "sae": self.sae.to_json(),
                "notes": list(self.notes),
                "config": self.config,
            }
        )

    @classmethod
    def from_json(cls, data: Any) -> Report:
        """A report read back from ``report.json`` (null numbers become NaN).

        Raises:
            ValueError: ``data`` is not a run's report.
        """
        values = read_object(data, "a run's report", ("recipe", "run_dir", "dataset", "eval", "sae", "notes", "config"))
        return cls(
            recipe=values["recipe"],
            run_dir=values["run_dir"],
            dataset=DatasetInfo.from_json(values["dataset"]),
            eval=_results_from_json(values["eval"]),
            sae=SAEStats.from_json(values["sae"]),
            notes=tuple(values["notes"]),
            config=values["config"],
        )


@dataclass(frozen=True)
class UniversalEntry:
    """One dataset of a universal codebook: its single-corpus report's results, and whether the SAE trained on it."""

    dataset: DatasetInfo
    eval: dict[str, RepresentationResult]
    sae: SAEStats
    seen_in_training: bool

    @classmethod
    def of(cls, report: Report, *, seen_in_training: bool) -> UniversalEntry:
        """The entry of a dataset evaluated with ``report``."""
        return cls(report.dataset, report.eval, report.sae, seen_in_training)

    def to_json(self) -> JSONObject:
        """One value of the summary's ``datasets``."""
        return {
            "dataset": self.dataset.to_json(),
            "eval": {name: result.to_json() for name, result in self.eval.items()},
            "sae": self.sae.to_json(),
            "seen_in_training": self.seen_in_training,
        }

    @classmethod
    def from_json(cls, data: Any) -> UniversalEntry:
        """Inverse of :meth:`to_json`.

        Raises:
            ValueError: ``data`` is not such an entry.
        """
        values = read_object(data, "a universal codebook's dataset", ("dataset", "eval", "sae", "seen_in_training"))
        return cls(
            DatasetInfo.from_json(values["dataset"]),
            _results_from_json(values["eval"]),
            SAEStats.from_json(values["sae"]),
            values["seen_in_training"],
        )


@dataclass(frozen=True)
class UniversalReport:
    """``report.json`` of a universal codebook: the training corpora and each dataset's results."""

    recipe: str
    run_dir: str
    trained_on: tuple[str | None, ...]
    """The ``train_data.paths`` the SAE was trained on."""
    datasets: dict[str, UniversalEntry]
    """Per dataset name: the training corpora first, then ``data.path`` when given."""

    def to_json(self) -> JSONObject:
        """What the summary ``report.json`` holds (numbers as they are)."""
        return {
            "recipe": self.recipe,
            "run_dir": self.run_dir,
            "trained_on": list(self.trained_on),
            "datasets": {name: entry.to_json() for name, entry in self.datasets.items()},
        }

    @classmethod
    def from_json(cls, data: Any) -> UniversalReport:
        """Inverse of :meth:`to_json`.

        Raises:
            ValueError: ``data`` is not a universal codebook's summary.
        """
        values = read_object(data, "a universal codebook's report", ("recipe", "run_dir", "trained_on", "datasets"))
        datasets = read_object(values["datasets"], "a universal codebook's datasets", ())
        return cls(
            values["recipe"],
            values["run_dir"],
            tuple(values["trained_on"]),
            {name: UniversalEntry.from_json(entry) for name, entry in datasets.items()},
        )
