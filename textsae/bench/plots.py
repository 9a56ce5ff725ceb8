"""PNG plots of the quality bench (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textsae._io import atomic_path

if TYPE_CHECKING:
    from textsae.bench.quality_report import QualityReport, QualityRow

__all__ = ["ACCURACY_PLOT", "FVU_PLOT", "write_accuracy_plot", "write_plots"]

ACCURACY_PLOT = "accuracy_vs_bytes.png"
FVU_PLOT = "fvu_vs_l0.png"
_REFERENCE = {"fp32": "dense fp32", "tfidf": "TF-IDF (all entries)"}
"""Single-point families drawn as a marked reference point rather than a line."""
_LABELS = {
    "sae": "SAE codes (one Multi-TopK SAE, k varied)",
    "sae_per_k": "SAE codes (one SAE per k)",
    "tfidf_top": "TF-IDF, top-n entries",
    "lsa": "LSA (fp16)",
    "pca": "PCA (fp16)",
    "int8": "int8",
    "binary": "binary (sign bits)",
    "fp16": "fp16",
}
_COLORS = {
    "sae": "tab:red",
    "sae_per_k": "tab:orange",
    "tfidf_top": "tab:blue",
    "lsa": "tab:green",
    "pca": "tab:purple",
    "int8": "tab:brown",
    "binary": "tab:gray",
    "fp16": "tab:olive",
}
_STYLES = (("-", "*"), ("--", "X"), ("-.", "P"), (":", "D"))
"""Line style and reference-point marker of the first, second, ... source in one plot."""


def write_plots(report: QualityReport, out_dir: Path, *, metric: str = "logreg") -> list[str]:
    """Write ``accuracy_vs_bytes.png`` and ``fvu_vs_l0.png`` into ``out_dir``; returns their file names."""
    plt = _pyplot()
    rows = [row for row in report.rows if metric in row.scores]
    title = f"{report.dataset.name}: {report.source_kind} source"
    names = [
        write_accuracy_plot(rows, out_dir / ACCURACY_PLOT, title=title, budgets=report.bench["budgets"], metric=metric)
    ]
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=100)
    for family, points in _by_family(rows).items():
        points = [p for p in points if p.fvu is not None and p.l0 is not None and family not in _REFERENCE]
        if points:
            ax.plot(
                [p.l0 for p in points],
                [p.fvu for p in points],
                marker="o",
                markersize=4,
                color=_COLORS.get(family),
                label=_LABELS.get(family, family),
            )
    _log_x(ax)
    ax.set_xlabel("L0: stored entries per document (log scale)")
    ax.set_ylabel("FVU of the reconstruction (test)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    names.append(_save(fig, out_dir / FVU_PLOT))
    plt.close(fig)
    return names


def write_accuracy_plot(
    rows: Sequence[QualityRow], path: Path, *, title: str, budgets: Sequence[int], metric: str = "logreg"
) -> str:
    """Accuracy against bytes per document (log x), one line per family, dotted lines at the budgets.

    Rows that carry a ``source`` (combined reports, :mod:`textsae.bench.budgets`) get one line per
    source and family: the family keeps its colour, each source its own line style and reference marker.
    The single-point families (dense fp32, all of TF-IDF) are drawn as marked points. Returns the file name.
    """
    plt = _pyplot()
    sources = list(dict.fromkeys(row.source for row in rows))
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=100)
    for i, source in enumerate(sources):
        style, marker = _STYLES[i % len(_STYLES)]
        prefix = f"{source}: " if source is not None else ""
        for family, points in _by_family([row for row in rows if row.source == source]).items():
            xs = [p.bytes_per_doc for p in points]
            ys = [p.scores[metric].accuracy for p in points]
            if family in _REFERENCE:
                ax.scatter(
                    xs,
                    ys,
                    marker=marker,
                    s=220 if marker == "*" else 90,
                    color="black",
                    zorder=5,
                    label=prefix + _REFERENCE[family],
                )
            else:
                ax.plot(
                    xs,
                    ys,
                    linestyle=style,
                    marker="o",
                    markersize=4,
                    linewidth=2.5 if family == "sae" else 1.5,
                    color=_COLORS.get(family),
                    label=prefix + _LABELS.get(family, family),
                )
    for budget in budgets:
        ax.axvline(budget, color="grey", linestyle=":", linewidth=0.8)
    _log_x(ax)
    ax.set_xlabel("bytes per document (uncompressed, log scale; dotted: the budgets B)")
    ax.set_ylabel(f"test accuracy ({'LogisticRegression' if metric == 'logreg' else metric})")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if len(sources) > 1:  # too many lines to share the plot area with the legend
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    else:
        ax.legend(fontsize=8, loc="lower right")
    name = _save(fig, path)
    plt.close(fig)
    return name


def _pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (files only, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _log_x(ax: Any) -> None:
    """Log x axis with plain tick labels at 1, 2 and 5 times powers of ten."""
    import matplotlib.ticker

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _by_family(rows: Sequence[QualityRow]) -> dict[str, list[QualityRow]]:
    families: dict[str, list[QualityRow]] = {}
    for row in sorted(rows, key=lambda r: r.bytes_per_doc):
        families.setdefault(row.family, []).append(row)
    return families


def _save(fig: Any, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    return path.name
