"""``textsae bench budgets``: quality reports of one dataset from several sources, in one byte-budget table.

One ``textsae bench quality`` report covers one source (TF-IDF, or one model's hidden states). This
module puts several reports of the **same dataset and split** side by side: every row is labelled
with its source, the SAE codes of all sources compete as one column (``sae``: the best code of either
source within the budget), and every other family competes per source (``tfidf/lsa``,
``minilm/binary``, ...). ``sae_wins`` is then "the best SAE code with <= B bytes/doc, from either
source, is at least as accurate as the best point of every other family and source within B".

Source labels come from each report's featurizer settings: ``tfidf`` for ``kind: tfidf``; for
``kind: hidden_states``, ``minilm`` when ``featurizer.model`` is unset (the bundled all-MiniLM-L6-v2),
else the last component of the model folder or hub id (``.../bert-base-uncased`` -> ``bert-base-uncased``).
A label that two reports share gets ``-2``, ``-3``, ... in the order the reports were given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from textsae._io import atomic_write_json, atomic_write_text, read_json_checked
from textsae.bench.plots import ACCURACY_PLOT, write_accuracy_plot
from textsae.bench.quality import (
    QUALITY_DIR,
    SAE_FAMILIES,
    budget_table,
    format_budget_table,
)
from textsae.bench.quality_report import BudgetRow, QualityDataset, QualityReport, QualityRow
from textsae.errors import UserError
from textsae.results import JSONObject

__all__ = [
    "BudgetsReport",
    "SourceInfo",
    "combine_reports",
    "load_quality_report",
    "render_budgets_report",
    "source_label",
    "write_budgets_report",
]

REPORT = "report.json"
_EXPECTED = "a report.json written by `textsae bench quality`"


@dataclass(frozen=True)
class SourceInfo:
    """One quality report combined: its label, file, recipe, featurizer and SAE, in words."""

    label: str
    report: str
    """The report file."""
    recipe: str
    featurizer: str
    source_kind: str
    sae: str

    def to_json(self) -> JSONObject:
        """The entry of ``sources``, in field order."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class BudgetsReport:
    """``bench budgets``'s ``report.json``: the labelled rows of every report and the either-source budget table."""

    dataset: QualityDataset
    protocol: str
    metric: str
    budget_bytes: tuple[int, ...]
    sources: tuple[SourceInfo, ...]
    rows: tuple[QualityRow, ...]
    """Every row of every report, with ``source`` set and its name prefixed ``<source>/``."""
    budgets: tuple[BudgetRow, ...]
    command: str
    out_dir: str | None = None
    """Where it was written; set by :func:`write_budgets_report`."""
    plots: tuple[str, ...] | None = None
    """The plot's file name in ``out_dir``; set by :func:`write_budgets_report`."""

    def to_json(self) -> JSONObject:
        """What ``report.json`` holds (``out_dir`` and ``plots`` once written)."""
        values: JSONObject = {
            "dataset": self.dataset.to_json(),
            "protocol": self.protocol,
            "metric": self.metric,
            "budget_bytes": list(self.budget_bytes),
            "sources": [source.to_json() for source in self.sources],
            "rows": [row.to_json() for row in self.rows],
            "budgets": [row.to_json() for row in self.budgets],
            "command": self.command,
        }
        if self.out_dir is not None:
            values["out_dir"] = self.out_dir
        if self.plots is not None:
            values["plots"] = list(self.plots)
        return values


def load_quality_report(path: str | Path) -> tuple[Path, QualityReport]:
    """Read a quality report from ``path``: the ``report.json`` itself, the folder holding it (``--out``
    of ``bench quality``) or a run directory (``RUN_DIR/bench/quality/report.json``).

    Returns:
        The report file's path and the report.

    Raises:
        UserError: No report at any of those places, or a JSON file that is not a quality report.
    """
    path = Path(path)
    candidates = [path] if path.is_file() else [path / REPORT, path / QUALITY_DIR / REPORT]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise UserError(
            f"{path}: no quality report; expected {' or '.join(str(c) for c in candidates)} (run `textsae bench quality RECIPE` first)."
        )
    report = read_json_checked(found, _EXPECTED)
    missing = [
        key
        for key in ("dataset", "protocol", "featurizer", "rows", "bench")
        if not isinstance(report, dict) or key not in report
    ]
    if missing:
        raise UserError(
            f"{found}: not a `textsae bench quality` report (no {', '.join(missing)}). Expected {_EXPECTED}."
        )
    try:
        return found, QualityReport.from_json(report)
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(
            f"{found}: not a complete `textsae bench quality` report ({error}). Expected {_EXPECTED}."
        ) from None


def source_label(report: QualityReport) -> str:
    """``tfidf``, ``minilm`` (hidden states of the bundled model) or the model folder's / hub id's last component."""
    featurizer = report.featurizer
    if featurizer.get("kind", "tfidf") == "tfidf":
        return "tfidf"
    model = featurizer.get("model")
    return "minilm" if not model else Path(str(model).rstrip("/\\")).name or str(model)


def combine_reports(
    reports: Sequence[tuple[Path, QualityReport]], budgets: Sequence[int], *, metric: str = "logreg", command: str = ""
) -> BudgetsReport:
    """The combined report: labelled rows of every report and the either-source byte-budget table.

    Args:
        reports: ``(path, report)`` pairs from :func:`load_quality_report`; at least one.
        budgets: The budgets B in bytes per document.
        metric: ``logreg`` or ``linear_svc``: whose test accuracy is compared.
        command: The command line, recorded in the report.

    Returns:
        The combined report: ``sources`` (label, file, featurizer and SAE of each report), ``rows`` (every row
        with ``source`` set and its ``name`` prefixed ``<source>/``) and ``budgets`` (the table of
        :func:`~textsae.bench.quality.budget_table` with the SAE codes of all sources as one family and every other
        family per source).

    Raises:
        UserError: Reports of different datasets or splits (the message names both files), or a
            report that did not score ``metric``.
    """
    first_path, first = reports[0]
    for path, report in reports:
        if _dataset_key(report) != _dataset_key(first):
            raise UserError(
                f"{first_path} and {path} are not of the same dataset and split: {first.dataset.name!r} ({first.protocol}) vs "
                f"{report.dataset.name!r} ({report.protocol}); combine reports run on the same data settings."
            )
        if metric not in report.bench.get("classifiers", []):
            raise UserError(
                f"{path}: the report has no {metric} accuracy (its bench.classifiers: {report.bench.get('classifiers')}); choose --metric from those."
            )
    labels = _unique([source_label(report) for _, report in reports])
    rows = [
        dataclasses.replace(row, source=label, name=f"{label}/{row.name}")
        for label, (_, report) in zip(labels, reports)
        for row in report.rows
    ]
    return BudgetsReport(
        dataset=first.dataset,
        protocol=first.protocol,
        metric=metric,
        budget_bytes=tuple(budgets),
        sources=tuple(_describe(label, path, report) for label, (path, report) in zip(labels, reports)),
        rows=tuple(rows),
        budgets=tuple(budget_table(rows, budgets, metric=metric, family_key=_either_source_family)),
        command=command,
    )


def write_budgets_report(combined: BudgetsReport, out_dir: str | Path) -> BudgetsReport:
    """Write ``accuracy_vs_bytes.png``, ``report.json`` and ``report.md`` into ``out_dir`` (each atomically).

    Returns:
        ``combined`` with ``out_dir`` and ``plots`` set.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = f"{combined.dataset.name}: " + " vs ".join(source.label for source in combined.sources)
    rows = [row for row in combined.rows if combined.metric in row.scores]
    plot = write_accuracy_plot(
        rows, out_dir / ACCURACY_PLOT, title=title, budgets=combined.budget_bytes, metric=combined.metric
    )
    combined = dataclasses.replace(combined, out_dir=str(out_dir), plots=(plot,))
    atomic_write_json(out_dir / REPORT, combined.to_json())
    atomic_write_text(out_dir / "report.md", render_budgets_report(combined))
    return combined


def render_budgets_report(combined: BudgetsReport) -> str:
    """``report.md``: the sources, the either-source byte-budget table and the plot."""
    wins = [entry.budget for entry in combined.budgets if entry.sae_wins]
    lines = [
        f"# Byte budgets: {combined.dataset.name}, " + " and ".join(source.label for source in combined.sources),
        "",
        f"- Protocol (the same in every report): {combined.protocol}.",
        f"- Accuracy: test accuracy of {combined.metric}. bytes/doc: stored entries per document, uncompressed, as in `bench quality`.",
        "- The SAE column is the best SAE code of either source within the budget; every other family competes per source.",
        f"- SAE code ≥ every other family and source at {len(wins)} of {len(combined.budgets)} budgets"
        + (f" ({', '.join(map(str, wins))} B)." if wins else "."),
        f"- Command: `{combined.command}`.",
        "",
        "## Sources",
        "",
    ]
    lines.extend(
        f"- **{source.label}**: {source.featurizer} ({source.source_kind}), SAE {source.sae}; recipe {source.recipe}; report `{source.report}`."
        for source in combined.sources
    )
    lines += ["", "## Best point within each budget", "", format_budget_table(combined.budgets), "", "## Plot", ""]
    lines += [f"![{name}]({name})" for name in combined.plots or ()]
    return "\n".join(lines) + "\n"


def _dataset_key(report: QualityReport) -> tuple[str, str]:
    """Dataset name and protocol; the protocol names the train/eval splits and their document counts (or the CV folds)."""
    return report.dataset.name, report.protocol


def _either_source_family(row: QualityRow) -> str:
    return "sae" if row.family in SAE_FAMILIES else f"{row.source}/{row.family}"


def _unique(labels: list[str]) -> list[str]:
    out: list[str] = []
    for label in labels:
        candidate, n = label, 1
        while candidate in out:
            n += 1
            candidate = f"{label}-{n}"
        out.append(candidate)
    return out


def _describe(label: str, path: Path, report: QualityReport) -> SourceInfo:
    featurizer = report.featurizer
    kind = featurizer.get("kind", "tfidf")
    what = (
        kind
        if kind == "tfidf"
        else f"hidden_states of {featurizer.get('model') or 'all-MiniLM-L6-v2 (bundled)'}, layers {featurizer.get('layers')}"
    )
    sae = report.sae
    sae_text = f"{sae.config.get('architecture', '?')}, {sae.n_latents} latents, trained at k = {sae.train_k}"
    return SourceInfo(label, str(path), report.recipe, what, report.source_kind, sae_text)
