"""The one Markdown table builder: its three layouts, byte for byte."""

from __future__ import annotations

import pytest

from textsae.markdown import markdown_row, markdown_table

HEADER = ["name", "accuracy"]
ROWS = [["codes", "0.8312"], ["source", "–"]]


def test_compact_rule() -> None:
    assert markdown_table(HEADER, ROWS) == "| name | accuracy |\n|---|---|\n| codes | 0.8312 |\n| source | – |"


def test_spaced_rule() -> None:
    assert markdown_table(HEADER, ROWS, rule="spaced").splitlines()[1] == "| --- | --- |"


def test_aligned_columns_are_padded_and_marked() -> None:
    assert markdown_table(HEADER, ROWS, align=["left", "right"]).splitlines() == [
        "| name   | accuracy |",
        "|--------|---------:|",
        "| codes  |   0.8312 |",
        "| source |        – |",
    ]


def test_a_table_without_rows_is_its_header_and_rule() -> None:
    assert markdown_table(HEADER, []) == "| name | accuracy |\n|---|---|"
    assert markdown_row(["a"]) == "| a |"


def test_a_row_of_another_width_is_refused() -> None:
    with pytest.raises(ValueError, match="needs 2 cells"):
        markdown_table(HEADER, [["codes"]])
    with pytest.raises(ValueError, match="needs 2 cells"):
        markdown_table(HEADER, ROWS, align=["left"])
