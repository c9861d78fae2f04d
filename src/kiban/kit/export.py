"""Every CSV and .xlsx file Kiban hands out is written here, so none can carry a formula.

A cell beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return can be read as a
formula (CSV injection, OWASP); such a text cell gets a leading apostrophe, which Excel and
LibreOffice show as text and do not display. Numbers (int, Decimal, float) are written as numbers,
so a negative amount stays a number.

* ``csv_bytes``: CSV for Excel (UTF-8 with BOM, CRLF), every cell neutralised; ``csv_part`` for
  a file written piece by piece (core/exports).
* ``workbook()`` and ``xlsx_bytes(book)``: build a sheet with openpyxl as usual (styles, widths,
  drop-downs), then serialise it here; every cell of every sheet is neutralised on the way out,
  whoever wrote it and however (a text that openpyxl took for a formula becomes text again).
* ``attachment``: the download response, with the file name encoded for every browser.

``tests/kit/test_exports.py`` fails on any ``csv.writer(`` or ``Workbook(`` outside this file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.responses import Response

if TYPE_CHECKING:
    from openpyxl import Workbook

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


def csv_part(rows: Iterable[Sequence[object]], header: Sequence[object] | None = None, *, first: bool) -> bytes:
    """One piece of a CSV written in pieces (a background export, chunk by chunk): the BOM only
    in the ``first`` piece, ``header`` where given, every cell neutralised as ``csv_bytes`` does.
    The pieces joined in order are the file ``csv_bytes`` would write."""
    body = csv_bytes(rows, header)
    return body if first else body[len("\ufeff".encode()):]


CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def workbook() -> Workbook:
    """A new openpyxl workbook; write it out with ``xlsx_bytes`` (never ``book.save``)."""
    from openpyxl import Workbook

    return Workbook()


def xlsx_bytes(book: Workbook) -> bytes:
    """``book`` as .xlsx bytes, after neutralising every cell of every sheet."""
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) or cell.data_type == "f":
                    cell.value = neutralise(cell.value)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def attachment(content: bytes, filename: str, media_type: str = CSV_MEDIA_TYPE) -> Response:
    """A download of ``content`` as ``filename`` (any characters: sent as RFC 5987 UTF-8)."""
    return Response(content, media_type=media_type,
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"})
