"""The one CSV writer: formula-like text is defused, numbers stay numbers."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.csv_export import FORMULA_START, csv_writer, neutralise


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1", "'\t=1"),
        ("-1.250", "-1.250"),
        ("+49", "+49"),
        ("12.5", "12.5"),
        ("Sonnenfeld", "Sonnenfeld"),
        (-3, -3),
    ],
)
def test_neutralise(cell: object, written: object) -> None:
    assert neutralise(cell) == written


@given(st.lists(st.text(), min_size=1, max_size=5))
def test_no_written_cell_starts_a_formula_unless_it_is_a_plain_number(row: list[str]) -> None:
    out = io.StringIO()
    csv_writer(out).writerow(row)
    (read,) = list(csv.reader(io.StringIO(out.getvalue())))
    for original, cell in zip(row, read, strict=True):
        if cell.startswith(FORMULA_START):
            float(cell)  # a plain number, written as it was
        assert cell.removeprefix("'") == original or cell == original
