"""Markdown tables: the one builder that reports, benchmarks, sweeps and model cards use.

Cells are written as given (no escaping of ``|``); callers format their numbers first. This module imports
nothing from textsae, so every layer may use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

__all__ = ["markdown_row", "markdown_table"]

Align = Literal["left", "right"]


def markdown_row(cells: Sequence[str]) -> str:
    """One table row, ``| a | b |``."""
    return "| " + " | ".join(cells) + " |"


def markdown_table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    rule: Literal["compact", "spaced"] = "compact",
    align: Sequence[Align] | None = None,
) -> str:
    """A Markdown table: the header row, the rule under it, one line per row (no trailing newline).

    Args:
        header: Column titles.
        rows: Cells of each row, as many as ``header`` has.
        rule: Without ``align``, the rule under the header: ``|---|---|`` (compact) or ``| --- | --- |`` (spaced).
        align: Per column, ``left`` or ``right``: every column is padded to its widest cell, aligned so, and the
            rule marks right-aligned columns with ``:`` (``|------|----:|``); ``rule`` is then ignored.

    Raises:
        ValueError: A row or ``align`` has another number of cells than ``header``.
    """
    body = [list(row) for row in rows]
    for cells in [*body, *([] if align is None else [align])]:
        if len(cells) != len(header):
            raise ValueError(
                f"Each row needs {len(header)} cells, one per column of {list(header)}. Got {list(cells)}."
            )
    if align is None:
        dashes = "|" + "---|" * len(header) if rule == "compact" else markdown_row(["---"] * len(header))
        return "\n".join([markdown_row(header), dashes, *(markdown_row(cells) for cells in body)])
    widths = [max(len(cells[i]) for cells in [header, *body]) for i in range(len(header))]

    def padded(cells: Sequence[str]) -> str:
        return markdown_row(
            [cell.ljust(w) if side == "left" else cell.rjust(w) for cell, w, side in zip(cells, widths, align)]
        )

    dashes = "|" + "|".join("-" * (w + 2) if side == "left" else "-" * (w + 1) + ":" for w, side in zip(widths, align))
    return "\n".join([padded(header), dashes + "|", *(padded(cells) for cells in body)])
