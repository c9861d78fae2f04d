"""The survey definition: typed questions, conditions, cross-field rules; checking an author's
question, checking answers (Japanese messages naming each field), what changed between two
versions, and how alike two questions are (重複照会の抑止).

A definition is ``{"questions": [...], "rules": [...]}``. A question::

    {"key": "q3", "section": "職員", "type": "number", "label": "職員数", "unit": "人",
     "min": 0, "max": 100000, "required": true, "show_if": {"q": "q2", "equals": "はい"},
     "binding": "registry.population", "options": [...], "columns": [{"key": "c1", "label": "施設名", "type": "text"}]}

A rule: ``{"kind": "sum_equals", "total": "q1", "parts": ["q2", "q3"]}`` (内訳の合計は総数と一致).
Answers are ``{key: value}``: a number or text as a string, a list for 複数選択, a list of
``{column_key: str}`` for a table.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from decimal import Decimal, InvalidOperation

QUESTION_TYPES = {"number": "数値", "choice": "選択（ひとつ）", "multi": "選択（複数）", "date": "日付",
                  "text": "自由記述", "yesno": "はい／いいえ", "table": "表（行ごとに入力）"}
COLUMN_TYPES = {"number": "数値", "text": "文字", "date": "日付"}
YES, NO = "はい", "いいえ"
MAX_QUESTIONS = 200
MAX_OPTIONS = 50
MAX_TEXT = 2000
MAX_ROWS = 50

# Data the platform already holds: the answer is prefilled with its source and date.
BINDINGS = {
    "registry.population": "人口（基本台帳）",
    "registry.households": "世帯数（基本台帳）",
    "catalog.adoptions": "共通システムの利用数（共通サービスカタログ）",
    "catalog.annual_cost": "共通システムの年間経費の合計（円、共通サービスカタログ）",
}


def question_type_label(kind: str) -> str:
    return QUESTION_TYPES.get(kind, "（不明な種類）")


def binding_label(binding: str) -> str:
    return BINDINGS.get(binding, "")


# -- numbers and text -------------------------------------------------------------------------------

def normalise_text(value: object) -> str:
    return unicodedata.normalize("NFKC", str(value if value is not None else "")).strip()


def plain_text(value: object) -> str:
    """An author's wording: trimmed, spaces collapsed, characters kept as written (（） stay full-width)."""
    return re.sub(r"\s+", " ", str(value if value is not None else "")).strip()


def canonical_option(value: object, options: list[str]) -> str:
    """The option a respondent meant (「Ａ社」 → 「A社」 when the option is written so), else the input."""
    wanted = normalise_text(value)
    return next((o for o in options if normalise_text(o) == wanted), wanted)


def parse_number(value: object) -> Decimal | None:
    """「1,234」「１２３４」「1234.5」 → Decimal; None for an empty answer; ValueError otherwise."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("not a number")
    if isinstance(value, (int, float, Decimal)):
        return Decimal(str(value))
    text = normalise_text(value).replace(",", "").replace(" ", "")
    if text == "":
        return None
    if not re.fullmatch(r"-?\d+(\.\d+)?", text):
        raise ValueError("not a number")
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the pattern above admits only numbers
        raise ValueError("not a number") from exc


def number_text(value: Decimal | float | int | None) -> str:
    if value is None:
        return ""
    d = Decimal(str(value))
    return str(d.quantize(Decimal(1))) if d == d.to_integral_value() else format(d.normalize(), "f")


def parse_date(value: object) -> date | None:
    if isinstance(value, date):
        return value
    text = normalise_text(value).replace("/", "-").replace("年", "-").replace("月", "-").replace("日", "")
    if text == "":
        return None
    m = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", text)
    if not m:
        raise ValueError("not a date")
    return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))


# -- authoring ----------------------------------------------------------------------------------------

def _int_or_none(raw: object, field: str, label: str, errors: list) -> int | None:
    text = normalise_text(raw).replace(",", "")
    if text == "":
        return None
    if not re.fullmatch(r"-?\d+", text):
        errors.append({"field": field, "message": f"{label}は整数で入力してください。"})
        return None
    return int(text)


def parse_columns(raw: str | list) -> tuple[list[dict], list[str]]:
    """「施設名:文字」「定員:数値」 (one per line) → columns; also accepts a list of dicts."""
    problems: list[str] = []
    columns: list[dict] = []
    items = raw if isinstance(raw, list) else [line for line in str(raw or "").splitlines() if line.strip()]
    by_label = {v: k for k, v in COLUMN_TYPES.items()}
    for i, item in enumerate(items, start=1):
        if isinstance(item, dict):
            label, kind = plain_text(item.get("label", "")), str(item.get("type", "text"))
        else:
            text = plain_text(item).replace("：", ":")
            label, _, kind_text = text.partition(":")
            kind = by_label.get(kind_text.strip(), kind_text.strip() or "text")
            label = label.strip()
        if not label:
            problems.append(f"{i}列目の名前がありません。")
            continue
        if kind not in COLUMN_TYPES:
            problems.append(f"列「{label}」の種類「{kind}」は使えません（{'・'.join(COLUMN_TYPES.values())}）。")
            continue
        columns.append({"key": f"c{i}", "label": label[:100], "type": kind})
    return columns, problems


def build_question(raw: dict, existing: list[dict]) -> dict:
    """An author's question from form or JSON input; raises InvalidInput naming every field."""
    from kiban.kit.errors import InvalidInput

    errors: list[dict] = []
    kind = str(raw.get("type") or "")
    label = plain_text(raw.get("label"))
    binding = str(raw.get("binding") or "")
    if binding:
        if binding not in BINDINGS:
            errors.append({"field": "binding", "message": "連携するデータを一覧から選んでください。"})
        kind = kind or "number"
        if kind != "number":
            errors.append({"field": "binding", "message": "プラットフォームのデータと連携できるのは数値の質問だけです。"})
    if kind not in QUESTION_TYPES:
        errors.append({"field": "type", "message": "質問の種類を選んでください。"})
    if not label:
        errors.append({"field": "label", "message": "質問文を入力してください。"})
    elif len(label) > 400:
        errors.append({"field": "label", "message": "質問文は400文字以内にしてください。"})
    if len(existing) >= MAX_QUESTIONS:
        errors.append({"field": "label", "message": f"質問は{MAX_QUESTIONS}問までです。"})
    options: list[str] = []
    if kind in ("choice", "multi"):
        source = raw.get("options") or []
        items = source if isinstance(source, list) else str(source).splitlines()
        options = [plain_text(o)[:100] for o in items if plain_text(o)]
        if len(options) < 2:
            errors.append({"field": "options", "message": "選択肢を2つ以上、1行に1つずつ入力してください。"})
        elif len(options) > MAX_OPTIONS or len(set(options)) != len(options):
            errors.append({"field": "options", "message": f"選択肢は重複なく{MAX_OPTIONS}個までにしてください。"})
    minimum = _int_or_none(raw.get("min"), "min", "最小値", errors) if kind == "number" else None
    maximum = _int_or_none(raw.get("max"), "max", "最大値", errors) if kind == "number" else None
    if minimum is not None and maximum is not None and minimum > maximum:
        errors.append({"field": "max", "message": "最大値は最小値以上にしてください。"})
    columns: list[dict] = []
    if kind == "table":
        columns, problems = parse_columns(raw.get("columns") or "")
        if not columns and not problems:
            problems = ["表の列を「列名:種類」の形で1行に1つずつ入力してください（例: 施設名:文字）。"]
        errors.extend({"field": "columns", "message": p} for p in problems)
    show_if = None
    cond_q = str((raw.get("show_if") or {}).get("q", "") if isinstance(raw.get("show_if"), dict)
                 else raw.get("show_if_q") or "")
    cond_eq = plain_text((raw.get("show_if") or {}).get("equals", "") if isinstance(raw.get("show_if"), dict)
                             else raw.get("show_if_equals") or "")
    if cond_q:
        target = next((q for q in existing if q["key"] == cond_q), None)
        if target is None or target["type"] not in ("choice", "yesno"):
            errors.append({"field": "show_if", "message": "条件にできるのは、前にある選択・はい／いいえの質問だけです。"})
        elif cond_eq not in (target.get("options") or [YES, NO]):
            errors.append({"field": "show_if", "message": f"条件の答えは「{'」「'.join(target.get('options') or [YES, NO])}」のどれかにしてください。"})
        else:
            show_if = {"q": cond_q, "equals": cond_eq}
    if errors:
        raise InvalidInput(" ".join(e["message"] for e in errors), errors=errors)
    used = {q["key"] for q in existing}
    n = len(existing) + 1
    while f"q{n}" in used:
        n += 1
    question = {"key": raw.get("key") if raw.get("key") and raw.get("key") not in used else f"q{n}",
                "section": plain_text(raw.get("section"))[:100], "type": kind, "label": label,
                "unit": plain_text(raw.get("unit"))[:20] if kind in ("number", "table") else "",
                "required": bool(raw.get("required")) or bool(binding), "binding": binding}
    if kind == "number":
        question.update({"min": minimum, "max": maximum})
    if options:
        question["options"] = options
    if columns:
        question["columns"] = columns
    if show_if:
        question["show_if"] = show_if
    return question


def build_rule(raw: dict, questions: list[dict]) -> dict:
    """「内訳の合計は総数と一致」: the total and its parts must be number questions."""
    from kiban.kit.errors import InvalidInput

    numbers = {q["key"]: q for q in questions if q["type"] == "number"}
    total = str(raw.get("total") or "")
    parts_raw = raw.get("parts") or []
    parts = [p for p in (parts_raw if isinstance(parts_raw, list) else re.split(r"[,、\s]+", str(parts_raw))) if p]
    errors = []
    if total not in numbers:
        errors.append({"field": "total", "message": "総数には数値の質問を選んでください。"})
    if len(parts) < 2 or any(p not in numbers or p == total for p in parts):
        errors.append({"field": "parts", "message": "内訳には総数以外の数値の質問を2つ以上選んでください。"})
    if errors:
        raise InvalidInput(" ".join(e["message"] for e in errors), errors=errors)
    return {"kind": "sum_equals", "total": total, "parts": parts}


def rule_text(rule: dict, questions: list[dict]) -> str:
    labels = {q["key"]: q["label"] for q in questions}
    parts = "＋".join(f"「{labels.get(p, p)}」" for p in rule["parts"])
    return f"{parts} の合計は「{labels.get(rule['total'], rule['total'])}」と一致すること"


# -- answering ----------------------------------------------------------------------------------------

def visible(question: dict, answers: dict) -> bool:
    cond = question.get("show_if")
    return not cond or normalise_text(answers.get(cond["q"], "")) == normalise_text(cond["equals"])


def _empty(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, list):
        return not value or all(_empty(v) if not isinstance(v, dict) else all(_empty(x) for x in v.values())
                                for v in value)
    return normalise_text(value) == ""


def _check_cell(kind: str, value: object, where: str) -> str | None:
    if _empty(value):
        return None
    if kind == "number":
        try:
            parse_number(value)
        except ValueError:
            return f"{where}は数値で入力してください（入力: 「{normalise_text(value)[:30]}」）。"
    if kind == "date":
        try:
            parse_date(value)
        except ValueError:
            return f"{where}は日付（例: 2026-04-01）で入力してください。"
    if kind == "text" and len(normalise_text(value)) > MAX_TEXT:
        return f"{where}は{MAX_TEXT}文字以内にしてください。"
    return None


def validate(definition: dict, answers: dict, *, prefill: dict | None = None, reasons: dict | None = None,
             complete: bool = True) -> list[dict]:
    """Every problem with ``answers``: ``[{"field": key, "message": 日本語}]``. ``complete``
    also checks required questions and the cross-field rules (for 決裁 and 提出)."""
    errors: list[dict] = []
    prefill = prefill or {}
    reasons = reasons or {}
    questions = definition.get("questions", [])
    for q in questions:
        key, value, name = q["key"], answers.get(q["key"]), f"「{q['label']}」"
        if not visible(q, answers):
            continue
        if _empty(value):
            if complete and q.get("required"):
                errors.append({"field": key, "message": f"{name}は必須です。"})
            continue
        kind = q["type"]
        if kind == "number":
            try:
                number = parse_number(value)
            except ValueError:
                errors.append({"field": key, "message": f"{name}は数値で入力してください（入力: 「{normalise_text(value)[:30]}」）。"})
                continue
            if q.get("min") is not None and number < q["min"]:
                errors.append({"field": key, "message": f"{name}は{q['min']:,}以上で入力してください。"})
            elif q.get("max") is not None and number > q["max"]:
                errors.append({"field": key, "message": f"{name}は{q['max']:,}以下で入力してください。"})
            known = prefill.get(key)
            if known and known.get("value") is not None and number != parse_number(known["value"]) \
                    and not normalise_text(reasons.get(key, "")):
                errors.append({"field": key, "message": f"{name}がプラットフォームの値（{int(known['value']):,}、"
                                                        f"{known['source']}）と異なります。修正の理由を入力してください。"})
        elif kind in ("choice", "yesno"):
            options = q.get("options") or [YES, NO]
            if canonical_option(value, options) not in options:
                errors.append({"field": key, "message": f"{name}は「{'」「'.join(options)}」から選んでください。"})
        elif kind == "multi":
            items = value if isinstance(value, list) else [v for v in re.split(r"[,、\n]", str(value))]
            wrong = [normalise_text(v) for v in items if normalise_text(v) and canonical_option(v, q["options"]) not in q["options"]]
            if wrong:
                errors.append({"field": key, "message": f"{name}に選択肢にない「{wrong[0]}」があります。"})
        elif kind in ("date", "text"):
            problem = _check_cell(kind, value, name)
            if problem:
                errors.append({"field": key, "message": problem})
        elif kind == "table":
            rows = value if isinstance(value, list) else []
            if len(rows) > MAX_ROWS:
                errors.append({"field": key, "message": f"{name}の行は{MAX_ROWS}行までです。"})
            for i, row in enumerate(rows, start=1):
                for col in q["columns"]:
                    problem = _check_cell(col["type"], row.get(col["key"]), f"{name}の{i}行目「{col['label']}」")
                    if problem:
                        errors.append({"field": f"{key}.{i}.{col['key']}", "message": problem})
    if complete and not errors:
        for rule in definition.get("rules", []):
            errors.extend(_check_rule(rule, questions, answers))
    return errors


def _check_rule(rule: dict, questions: list[dict], answers: dict) -> list[dict]:
    if rule.get("kind") != "sum_equals":
        return []
    by_key = {q["key"]: q for q in questions}
    if any(k not in by_key or not visible(by_key[k], answers) for k in [rule["total"], *rule["parts"]]):
        return []
    values = [parse_number(answers.get(k)) for k in [rule["total"], *rule["parts"]]]
    if any(v is None for v in values):
        return []
    total, parts = values[0], values[1:]
    if sum(parts) == total:
        return []
    labels = "＋".join(f"「{by_key[p]['label']}」" for p in rule["parts"])
    return [{"field": rule["total"],
             "message": f"内訳（{labels}）の合計 {number_text(sum(parts))} が「{by_key[rule['total']]['label']}」"
                        f" {number_text(total)} と一致しません。"}]


def clean_answers(definition: dict, answers: dict) -> dict:
    """Answers reduced to the definition's questions, text normalised (kept even if invalid, so a
    draft keeps what the respondent typed)."""
    cleaned: dict = {}
    for q in definition.get("questions", []):
        value = answers.get(q["key"])
        if value is None:
            continue
        if q["type"] == "multi":
            items = value if isinstance(value, list) else re.split(r"[,、\n]", str(value))
            cleaned[q["key"]] = [canonical_option(v, q["options"]) for v in items if normalise_text(v)]
        elif q["type"] == "table":
            rows = []
            for row in value if isinstance(value, list) else []:
                kept = {c["key"]: normalise_text(row.get(c["key"], ""))[:MAX_TEXT] for c in q["columns"]}
                if any(kept.values()):
                    rows.append(kept)
            cleaned[q["key"]] = rows
        elif q["type"] in ("choice", "yesno"):
            cleaned[q["key"]] = canonical_option(value, q.get("options") or [YES, NO])
        elif q["type"] == "text":
            cleaned[q["key"]] = plain_text(value)[:MAX_TEXT] if "\n" not in str(value) else str(value).strip()[:MAX_TEXT]
        else:
            cleaned[q["key"]] = normalise_text(value)[:MAX_TEXT]
    return cleaned


def display(question: dict, value: object) -> str:
    if _empty(value):
        return "（未回答）"
    if question["type"] == "multi":
        return "、".join(value) if isinstance(value, list) else str(value)
    if question["type"] == "table":
        return f"{len(value)}行"
    if question["type"] == "number":
        try:
            return f"{parse_number(value):,} {question.get('unit', '')}".strip()
        except ValueError:
            return str(value)
    return str(value)


# -- versions -----------------------------------------------------------------------------------------

def changes_between(old: dict, new: dict) -> list[str]:
    """What a respondent needs to know about a new version, in Japanese."""
    before = {q["key"]: q for q in old.get("questions", [])}
    after = {q["key"]: q for q in new.get("questions", [])}
    found: list[str] = []
    for key, q in after.items():
        if key not in before:
            found.append(f"質問「{q['label']}」を追加しました。")
        elif q != before[key]:
            was = before[key]
            if q["label"] != was["label"]:
                found.append(f"質問「{was['label']}」を「{q['label']}」に変更しました。")
            else:
                found.append(f"質問「{q['label']}」の条件・選択肢などを変更しました。")
    found.extend(f"質問「{q['label']}」を削除しました。" for key, q in before.items() if key not in after)
    if old.get("rules", []) != new.get("rules", []):
        found.append("入力内容の確認ルール（内訳と総数など）を変更しました。")
    return found


# -- similarity (重複照会の抑止) ----------------------------------------------------------------------

_STRIP = re.compile(r"[\s、。・,.「」『』（）()？?！!:：/／]+")
# Words every survey wraps its questions in; they say nothing about what is asked.
_BOILERPLATE = re.compile(r"(貴団体|貴市町村|貴市|貴町|貴村|貴県|御団体|本団体|について|を記入してください|を入力してください|"
                          r"を回答してください|を教えてください|してください|ください|ですか|ますか|の状況|現在の|現在)")


def _grams(text: str) -> set[str]:
    t = _STRIP.sub("", normalise_text(text)).lower()
    t = _BOILERPLATE.sub("", t) or t
    if len(t) < 2:
        return {t} if t else set()
    return {t[i:i + 2] for i in range(len(t) - 1)}


def similarity(a: str, b: str) -> float:
    """How alike two questions are (0 … 1): character bigrams of the normalised wording without
    the usual survey boilerplate, the mean of the Dice coefficient and of the overlap with the
    shorter one (so 「貴団体の職員数（総数）」 matches 「職員数（総数）を記入してください」)."""
    ga, gb = _grams(a), _grams(b)
    if not ga or not gb:
        return 0.0
    common = len(ga & gb)
    return (2 * common / (len(ga) + len(gb)) + common / min(len(ga), len(gb))) / 2


SIMILAR = 0.6
