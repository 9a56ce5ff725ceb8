"""Downstream evaluation: representation sizes, the linear probe, and the run report."""

from __future__ import annotations

from textsae.eval.classify import ClassifierResult, evaluate_representation, select_C
from textsae.eval.report import (
    BYTES_NOTE,
    REPORT_JSON_NAME,
    REPORT_MD_NAME,
    format_eval_table,
    render_report,
    write_report,
)
from textsae.eval.sizes import (
    bytes_per_doc,
    entries_for_bytes,
    index_bytes_needed,
    truncate_rows,
)

__all__ = [
    "BYTES_NOTE",
    "REPORT_JSON_NAME",
    "REPORT_MD_NAME",
    "ClassifierResult",
    "bytes_per_doc",
    "entries_for_bytes",
    "evaluate_representation",
    "format_eval_table",
    "index_bytes_needed",
    "render_report",
    "select_C",
    "truncate_rows",
    "write_report",
]
