"""法人番号: 13 digits, the first a check digit over the other twelve (国税庁's rule:
9 − (Σ Pn·Qn mod 9), Pn the n-th digit from the right of the twelve, Qn 1 for odd n, 2 for even)."""

from __future__ import annotations

import unicodedata


def corporate_check_digit(base12: str) -> str:
    total = sum(int(d) * (1 if n % 2 else 2) for n, d in enumerate(reversed(base12), start=1))
    return str(9 - total % 9)


def corporate_number_problem(raw: str | None) -> str | None:
    """Why ``raw`` is not a valid 法人番号, in Japanese; None when it is valid."""
    number = unicodedata.normalize("NFKC", raw or "").strip()
    if not number:
        return "法人番号がありません。"
    if not (number.isascii() and number.isdigit()):
        return f"法人番号「{raw}」に数字以外の文字が含まれています。"
    if len(number) != 13:
        return f"法人番号「{raw}」は{len(number)}桁です。13桁で指定してください。"
    if number[0] != corporate_check_digit(number[1:]):
        return f"法人番号「{raw}」の検査数字（先頭の1桁）が正しくありません。"
    return None
