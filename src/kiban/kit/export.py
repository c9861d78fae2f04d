"""CSV for Excel, safe to open: UTF-8 with BOM, CRLF, and no cell that a spreadsheet would run.

A cell beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return can be read as a
formula (CSV injection, OWASP); such a text cell gets a leading apostrophe, which Excel and
LibreOffice show as text and do not display. Numbers (int, Decimal, float) are written as numbers,
so a negative amount stays a number.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from decimal import Decimal

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> object:
    """The cell as it should be written: text that could start a formula gets a leading ``'``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float, Decimal)):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_bytes(rows: Iterable[Sequence[object]], header: Sequence[object] | None = None) -> bytes:
    """``header`` (if any) and ``rows`` as CSV bytes: UTF-8 with BOM, CRLF, every cell neutralised."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header is not None:
        writer.writerow([neutralise(cell) for cell in header])
    for row in rows:
        writer.writerow([neutralise(cell) for cell in row])
    return "\ufeff".encode() + buffer.getvalue().encode("utf-8")
