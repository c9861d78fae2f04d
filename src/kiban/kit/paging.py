"""Paging parameters with bounds, so a page number or an offset from the URL never reaches the
database as a number it cannot hold (``?page=10**30`` was a 500: the offset overflowed SQLite's
64-bit integer and PostgreSQL's ``bigint``).

Pages (HTML) take ``PageNumber``; the API takes ``Offset`` (and states its bounds) in
the OpenAPI document. Beyond the bounds the answer is 422 with a Japanese message, as for any
other wrong input; a page number past the last page of results is still just an empty page.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

#: More than any list here has pages (1,788 organisations; audit logs at 50 a page: 5 million entries).
MAX_PAGE = 100_000
#: Offsets up to 100 million rows; a larger one is not a real request.
MAX_OFFSET = 100_000_000

PageNumber = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"ページ番号（1〜{MAX_PAGE}）")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description=f"開始位置（0〜{MAX_OFFSET}）")]


def offset_of(page: int, page_size: int) -> int:
    """The first row of ``page`` (1-based), for ``page`` already within ``PageNumber``'s bounds."""
    return (max(1, min(page, MAX_PAGE)) - 1) * page_size
