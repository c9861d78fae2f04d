"""Placeholder templates: ``{name}`` is replaced by a value, ``{{`` and ``}}`` are literal braces.

Only plain names are allowed (no ``{a.b}``, ``{a[0]}``, conversions or format specs): a
tenant's staff write these, and Python's own ``str.format`` would let ``{x.__class__}`` reach
into objects. ``check`` lists every problem at once, in Japanese, for the edit form.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TemplateError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _parse(text: str) -> list[tuple[str, str | None]]:
    """(literal, field) pairs; raises TemplateError on unbalanced or unsafe braces."""
    parts: list[tuple[str, str | None]] = []
    try:
        for literal, field, spec, conversion in string.Formatter().parse(text):
            if field is not None and (spec or conversion or not _NAME.match(field)):
                shown = "{" + field + ("!" + conversion if conversion else "") + (":" + spec if spec else "") + "}"
                raise TemplateError([f"差し込み項目 {shown} の書き方が正しくありません（{{項目名}} の形で書いてください）。"])
            parts.append((literal, field))
    except ValueError as exc:
        if isinstance(exc, TemplateError):
            raise
        raise TemplateError(["波かっこ { } の対応が取れていません。文字として使うときは {{ と }} と書いてください。"]) from None
    return parts


def fields(text: str) -> list[str]:
    return [f for _, f in _parse(text) if f is not None]


def check(text: str, allowed: Iterable[str], *, what: str) -> list[str]:
    """Problems with ``text`` (empty when it is fine), each naming ``what`` (件名/本文)."""
    try:
        used = fields(text)
    except TemplateError as exc:
        return [f"{what}: {p}" for p in exc.problems]
    allowed = set(allowed)
    unknown = sorted({f for f in used if f not in allowed}, key=used.index)
    return [f"{what}: 差し込み項目 {{{f}}} はこのテンプレートでは使えません。" for f in unknown]


def render(text: str, context: Mapping[str, object]) -> str:
    """Fill ``text``; a placeholder missing from ``context`` raises KeyError (a caller's bug)."""
    out: list[str] = []
    for literal, field in _parse(text):
        out.append(literal)
        if field is not None:
            value = context[field]
            out.append("" if value is None else str(value))
    return "".join(out)
