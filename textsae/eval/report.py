"""``report.json`` (everything, for machines) and ``report.md`` (the table, for people).

The report is a :class:`~textsae.results.Report` (see :mod:`textsae.results.run_report` for its JSON).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Literal

from textsae._io import atomic_write_json, atomic_write_text
from textsae.markdown import markdown_table
from textsae.paths import REPORT_JSON_NAME, REPORT_MD_NAME
from textsae.results import Report, UniversalEntry

__all__ = ["BYTES_NOTE", "REPORT_JSON_NAME", "REPORT_MD_NAME", "format_eval_table", "render_report", "write_report"]


BYTES_NOTE = (
    "Bytes/doc counts non-zeros × (index bytes + value bytes) / documents, uncompressed; "
    "uint16 index + fp16 value = 4 B per entry. On-disk bytes/doc is the stored files' size / documents."
)
"""How sizes are counted; printed under the table."""

_SAE_FIRST = ("fvu", "l0", "dead_fraction", "fvu_train", "l0_train", "top1_top2_median")
_SAE_NOT_LISTED = ("warnings", "labels_shaped_codes")
_SAE_LABELS = {
    "fvu": "FVU on the reported split (fraction of variance unexplained)",
    "l0": "L0 on the reported split (active latents per document)",
    "dead_fraction": "Dead latents (fraction never active on the training split)",
    "fvu_train": "FVU on the training split",
    "l0_train": "L0 on the training split",
    "top1_top2_median": "Median over live latents of top-1 / top-2 training activation",
    "top1_top2_above_3": "Live latents whose top-1 / top-2 ratio exceeds 3 (fraction)",
}
_LABELS_NOTE = {
    True: "Labels shaped the codes: the SAE was trained with the training split's labels (train.label_loss_weight > 0, "
    "or always-on latents fixed to a classifier of them, train.dense_init=probe).",
    False: "Labels did not shape the codes: the SAE was trained without labels.",
}


def write_report(run_dir: str | os.PathLike[str], report: Report) -> None:
    """Write ``report.json`` (NaN as null) and ``report.md`` into ``run_dir``, each atomically.

    Args:
        run_dir: The run directory (created if needed).
        report: The run's report.
    """
    markdown = render_report(report)
    directory = Path(run_dir)
    atomic_write_json(directory / REPORT_JSON_NAME, report.to_json())
    atomic_write_text(directory / REPORT_MD_NAME, markdown)


def render_report(report: Report) -> str:
    """The Markdown text of ``report.md``: title, dataset line, results table, SAE stats, size note."""
    lines = [f"# textsae report: {report.recipe}", "", f"Dataset: {_dataset_line(report.dataset.to_json())}", ""]
    sae = report.sae.to_json()
    notices = [f"> **Warning:** {line}" for line in report.sae.warnings] + [
        f"> **Note:** {line}" for line in report.notes
    ]
    if notices:
        lines += [*notices, ""]
    eval_split = report.dataset.eval_split  # the pipeline reports on test, or validation when there is no test
    lines += [format_eval_table(report), ""]
    if report.eval:
        lines += [
            f"Logistic regression; C chosen by stratified K-fold CV accuracy on the training split only, scores on the "
            f"{eval_split} split.",
            "",
        ]
    lines += ["## Sparse autoencoder", "", _LABELS_NOTE[report.sae.labels_shaped_codes], ""]
    keys = [k for k in _SAE_FIRST if k in sae] + [k for k in sae if k not in _SAE_FIRST and k not in _SAE_NOT_LISTED]
    lines += [f"- {_SAE_LABELS.get(key, key)}: {_format_value(sae[key])}" for key in keys]
    lines.append("")
    lines += [f"_{BYTES_NOTE}_", ""]
    return "\n".join(lines)


def format_eval_table(report: Report | UniversalEntry) -> str:
    """A Markdown table with one row per representation, in the order of ``report.eval``.

    Columns: accuracy, macro-F1, bytes/doc, on-disk bytes/doc (only when some representation has
    ``disk_bytes_per_doc``) and C. Missing values show as ``–``.
    """
    results = report.eval
    if not results:
        return "(no classifier evaluation: the corpus has no labels)"
    with_disk = any(r.disk_bytes_per_doc is not None for r in results.values())
    columns = [
        ("accuracy", "accuracy", "{:.4f}"),
        ("macro-F1", "macro_f1", "{:.4f}"),
        ("bytes/doc", "bytes_per_doc", "{:.1f}"),
    ]
    if with_disk:
        columns.append(("on-disk bytes/doc", "disk_bytes_per_doc", "{:.1f}"))
    columns.append(("C", "C", "{:g}"))
    header = ["representation"] + [title for title, _, _ in columns]
    rows = [[name] + [_cell(getattr(scores, key), fmt) for _, key, fmt in columns] for name, scores in results.items()]
    align: list[Literal["left", "right"]] = ["right"] * len(header)
    align[0] = "left"  # the representation's name
    return markdown_table(header, rows, align=align)


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    try:
        return fmt.format(value)
    except (TypeError, ValueError):
        return str(value)


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _dataset_line(dataset: dict[str, Any]) -> str:
    name = dataset.get("name")
    details = ", ".join(
        f"{key}={_format_value(value)}"
        for key, value in dataset.items()
        if key != "name" and not isinstance(value, (dict, list))
    )
    if name and details:
        return f"{name} ({details})"
    return str(name or details)
