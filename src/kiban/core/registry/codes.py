"""全国地方公共団体コード: five digits of JIS X 0402 plus a check digit.

The check digit is ``(11 - (6·d1 + 5·d2 + 4·d3 + 3·d4 + 2·d5) mod 11) mod 10`` (総務省's rule:
remainder 0 gives 1, remainder 1 gives 0). All 1,788 codes and the 175 ward codes in the
seed data satisfy it.
"""

from __future__ import annotations

import unicodedata

from kiban.kit.errors import InvalidInput

_WEIGHTS = (6, 5, 4, 3, 2)


def check_digit(code5: str) -> str:
    if len(code5) != 5 or not code5.isdigit():
        raise ValueError("code5 must be five ASCII digits")
    total = sum(int(d) * w for d, w in zip(code5, _WEIGHTS, strict=True))
    return str((11 - total % 11) % 10)


def with_check_digit(code5: str) -> str:
    return code5 + check_digit(code5)


def lg_code_problem(raw: str) -> str | None:
    """Why ``raw`` is not a valid 6-digit code, in Japanese; ``None`` when it is valid.

    Full-width digits are accepted (people paste them from documents) and folded first.
    """
    code = unicodedata.normalize("NFKC", raw or "").strip()
    if not code:
        return "団体コードを入力してください（6桁の数字）。"
    if not code.isascii() or not code.isdigit():
        return f"団体コード「{raw}」には数字以外の文字が含まれています。6桁の数字で入力してください。"
    if len(code) != 6:
        hint = "（末尾の検査数字を含めて6桁です）" if len(code) == 5 else ""
        return f"団体コード「{raw}」は{len(code)}桁です。6桁で入力してください{hint}。"
    expected = check_digit(code[:5])
    if code[5] != expected:
        return (f"団体コード「{raw}」の検査数字（6桁目）が正しくありません。"
                f"前5桁が {code[:5]} なら6桁目は {expected} です。")
    return None


def normalize_lg_code(raw: str, *, field: str = "code") -> str:
    """The valid 6-digit code for ``raw``, or ``InvalidInput`` (422) saying what is wrong."""
    message = lg_code_problem(raw)
    if message is not None:
        raise InvalidInput(message, errors=[{"field": field, "message": message}])
    return unicodedata.normalize("NFKC", raw).strip()


def prefecture_number(code: str) -> str:
    return code[:2]


def prefecture_code(code: str) -> str:
    """The 6-digit code of the prefecture a code belongs to (e.g. 011002 → 010006)."""
    return with_check_digit(code[:2] + "000")
