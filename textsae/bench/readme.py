"""A benchmark's headline table and plot, written into a README between two marker comments.

``textsae bench quality --readme`` and ``textsae bench budgets --readme`` rewrite the block between their markers
with an intro line, the byte-budget table and a link to the accuracy plot, which is copied to ``docs/`` beside
the README. Everything outside the markers is kept byte for byte.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from textsae._io import atomic_path, atomic_write_text
from textsae.bench.plots import ACCURACY_PLOT
from textsae.errors import UserError

if TYPE_CHECKING:
    from textsae.bench.budgets import BudgetsReport
    from textsae.bench.quality_report import QualityReport

__all__ = [
    "BUDGETS_MARKERS",
    "QUALITY_MARKERS",
    "check_readme_markers",
    "update_budgets_readme",
    "update_quality_readme",
    "update_readme",
]

QUALITY_MARKERS = ("<!-- textsae:quality-table -->", "<!-- /textsae:quality-table -->")
"""The comments around the block ``bench quality --readme`` rewrites."""

BUDGETS_MARKERS = ("<!-- textsae:budgets-table -->", "<!-- /textsae:budgets-table -->")
"""The comments around the block ``bench budgets --readme`` rewrites."""


def _readme_block(readme: Path, markers: tuple[str, str]) -> tuple[str, int, int]:
    """The README text and the span between ``markers`` (start, end), or a UserError."""
    if not readme.is_file():
        raise UserError(f"--readme {readme}: no such file.")
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(markers[0]), text.find(markers[1])
    if start < 0 or end < start:
        raise UserError(
            f"--readme {readme}: the file needs the markers {markers[0]} and {markers[1]} (in that order) around the table to rewrite."
        )
    return text, start + len(markers[0]), end


def check_readme_markers(readme: Path, markers: tuple[str, str]) -> None:
    """Raise the UserError :func:`update_readme` would raise, before hours of benchmarking rather than after.

    Raises:
        UserError: ``readme`` is not a file or lacks ``markers`` (in that order).
    """
    _readme_block(readme, markers)


def update_readme(readme: Path, markers: tuple[str, str], intro: str, table: str, plot: Path, image_name: str) -> None:
    """Copy ``plot`` to ``docs/image_name`` beside the README and rewrite the block between ``markers``.

    The block becomes the intro line, the table and a link to the copied image; both files are written atomically.

    Raises:
        UserError: ``readme`` is not a file or lacks ``markers`` (in that order).
    """
    text, begin, end = _readme_block(readme, markers)
    image = readme.parent / "docs" / image_name
    with atomic_path(image) as tmp:
        shutil.copyfile(plot, tmp)
    block = (
        f"\n{intro}:\n\n{table}\n\n![accuracy vs bytes per document]({image.relative_to(readme.parent).as_posix()})\n"
    )
    atomic_write_text(readme, text[:begin] + block + text[end:])


def update_quality_readme(readme: Path, report: QualityReport) -> None:
    """Rewrite the quality block of ``readme`` with the byte-budget table and plot of a ``bench quality`` report.

    Args:
        readme: The README file, holding :data:`QUALITY_MARKERS`.
        report: What :func:`~textsae.bench.quality.run_quality_bench` returned (its ``out_dir`` holds the plot).
    """
    from textsae.bench.quality import format_budget_table  # lazy: the CLI imports this module to build its parsers

    intro = (
        f"**{report.dataset.name}**: {report.protocol}. Test accuracy of LogisticRegression at each byte budget; "
        f"regenerate with `{report.command} --readme {readme.name}`"
    )
    update_readme(
        readme,
        QUALITY_MARKERS,
        intro,
        format_budget_table(report.budgets),
        Path(report.out_dir) / ACCURACY_PLOT,
        f"quality_{report.dataset.name}.png",
    )


def update_budgets_readme(readme: Path, combined: BudgetsReport) -> None:
    """Rewrite the budgets block of ``readme`` with the table and plot of a combined ``bench budgets`` report.

    Args:
        readme: The README file, holding :data:`BUDGETS_MARKERS`.
        combined: What :func:`~textsae.bench.budgets.write_budgets_report` returned (its ``out_dir`` holds the plot).
    """
    from textsae.bench.quality import format_budget_table

    if combined.out_dir is None or not combined.plots:
        raise ValueError("update_budgets_readme needs a written report: what write_budgets_report returned.")
    labels = " and ".join(source.label for source in combined.sources)
    intro = (
        f"**{combined.dataset.name}**, {labels} sources: {combined.protocol}. Test accuracy of {combined.metric} at each byte budget; "
        f"the SAE column is the best code of either source; regenerate with `{combined.command} --readme {readme.name}`"
    )
    update_readme(
        readme,
        BUDGETS_MARKERS,
        intro,
        format_budget_table(combined.budgets),
        Path(combined.out_dir) / combined.plots[0],
        f"budgets_{combined.dataset.name}.png",
    )
