"""Sweep outputs: ``sweep.json`` (everything), ``sweep.md`` (the table and the best point) and ``pareto.png``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textsae._io import atomic_path, atomic_write_json, atomic_write_text
from textsae.markdown import markdown_table

__all__ = [
    "PARETO_PNG_NAME",
    "SWEEP_JSON_NAME",
    "SWEEP_MD_NAME",
    "pareto_front",
    "render_sweep_md",
    "write_sweep_outputs",
]

SWEEP_JSON_NAME = "sweep.json"
SWEEP_MD_NAME = "sweep.md"
PARETO_PNG_NAME = "pareto.png"


def pareto_front(costs: Sequence[float], values: Sequence[float], *, maximize: bool = True) -> list[int]:
    """Indices of the points no other point beats: lower-or-equal cost and better-or-equal value, one strictly.

    Args:
        costs: What should be small (bytes/doc, L0).
        values: What should be large (``maximize``, e.g. accuracy) or small (e.g. FVU).
        maximize: Whether larger values are better.

    Returns:
        Front indices ordered by cost.
    """
    c = np.asarray(costs, dtype=float)
    v = np.asarray(values, dtype=float) * (1.0 if maximize else -1.0)
    front = [i for i in range(len(c)) if not np.any((c <= c[i]) & (v >= v[i]) & ((c < c[i]) | (v > v[i])))]
    return sorted(front, key=lambda i: (c[i], -v[i]))


def render_sweep_md(result: dict[str, Any]) -> str:
    """The Markdown of ``sweep.md``."""
    keys = list(result["axes"])
    columns = ["point", *keys, "accuracy", "macro-F1", "bytes/doc", "FVU", "L0", "dead"]
    best = result["best"]["index"]
    lines = [
        f"# textsae sweep: {Path(result['recipe']).stem}",
        "",
        f"Scored on the validation split: {result['validation']}. Best by {result['metric']}: point {best}.",
        f"Fixed overrides: {' '.join(result['fixed']) or 'none'}",
        "",
    ]
    rows = []
    for point in result["points"]:
        m = point["metrics"]
        cells = [f"**{point['index']}**" if point["index"] == best else str(point["index"])]
        cells += [json.dumps(point["assignments"][key]) for key in keys]
        cells += [
            f"{m['accuracy']:.4f}",
            f"{m['macro_f1']:.4f}",
            f"{m['bytes_per_doc']:.1f}",
            f"{m['fvu']:.4f}",
            f"{m['l0']:.1f}",
            f"{m['dead_fraction']:.3f}",
        ]
        rows.append(cells)
    lines += [
        markdown_table(columns, rows),
        "",
        f"![Pareto fronts]({PARETO_PNG_NAME})",
        "",
        "## Best point: resolved config",
        "",
        "```yaml",
        result["best"]["config"].rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [p["metrics"] for p in result["points"]]
    panels = (
        ("bytes_per_doc", "accuracy", True, "bytes/doc (uncompressed)", "validation accuracy (codes)"),
        ("l0", "fvu", False, "L0 (active latents per document)", "FVU"),
    )
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (x_key, y_key, maximize, x_label, y_label) in zip(axes, panels):
        xs, ys = [m[x_key] for m in metrics], [m[y_key] for m in metrics]
        front = pareto_front(xs, ys, maximize=maximize)
        ax.scatter(xs, ys, color="#9aa9c2", label="grid point")
        ax.plot([xs[i] for i in front], [ys[i] for i in front], "o-", color="#c2412d", label="Pareto front")
        best = result["best"]["index"]
        ax.scatter(
            [xs[best]], [ys[best]], marker="*", s=220, color="#f2b705", edgecolor="black", zorder=3, label="best"
        )
        for i, point in enumerate(result["points"]):
            ax.annotate(str(point["index"]), (xs[i], ys[i]), textcoords="offset points", xytext=(4, 4), fontsize=8)
        if min(xs) > 0 and max(xs) / min(xs) > 8:
            ax.set_xscale("log")
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"sweep of {', '.join(result['axes']) or 'one point'} (numbers: point index)", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write_sweep_outputs(result: dict[str, Any]) -> Path:
    """Write ``sweep.json``, ``sweep.md`` and ``pareto.png`` into ``result["sweep_dir"]``, each atomically; returns that folder."""
    folder = Path(result["sweep_dir"])
    atomic_write_json(folder / SWEEP_JSON_NAME, result)
    _plot(result, folder / PARETO_PNG_NAME)
    atomic_write_text(folder / SWEEP_MD_NAME, render_sweep_md(result))
    return folder
