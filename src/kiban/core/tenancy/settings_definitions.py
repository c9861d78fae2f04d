"""Settings that local policy may change, each with its national default.

"The system is common, the policy is local": a module declares here what a municipality or
its prefecture may decide, with the national default; values are validated against the
declaration before they are stored. A municipality's value overrides its prefecture's, which
overrides the default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kiban.kit.errors import InvalidInput


@dataclass(frozen=True)
class SettingDefinition:
    key: str
    label: str
    description: str
    kind: str  # "int" | "str" | "bool" | "choice"
    default: Any
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = field(default_factory=tuple)
    max_length: int = 200

    def parse(self, raw: Any) -> Any:
        """The typed value for ``raw`` (form text or JSON), or ``InvalidInput`` saying why."""
        if self.kind == "int":
            return self._parse_int(raw)
        if self.kind == "bool":
            return self._parse_bool(raw)
        text = "" if raw is None else str(raw).strip()
        if self.kind == "choice":
            if text not in self.choices:
                raise self._invalid(f"「{self.label}」は次のいずれかを選んでください: {'、'.join(self.choices)}")
            return text
        if len(text) > self.max_length:
            raise self._invalid(f"「{self.label}」は{self.max_length}文字以内で入力してください。")
        return text

    def _parse_int(self, raw: Any) -> int:
        if isinstance(raw, bool):
            raise self._invalid(f"「{self.label}」は整数で入力してください。")
        if isinstance(raw, int):
            value = raw
        else:
            import unicodedata

            text = unicodedata.normalize("NFKC", str(raw if raw is not None else "")).strip()
            if not text.lstrip("-").isdigit():
                raise self._invalid(f"「{self.label}」は整数で入力してください（入力値: {raw!r}）。")
            value = int(text)
        if self.minimum is not None and value < self.minimum:
            raise self._invalid(f"「{self.label}」は{self.minimum}以上にしてください。")
        if self.maximum is not None and value > self.maximum:
            raise self._invalid(f"「{self.label}」は{self.maximum}以下にしてください。")
        return value

    def _parse_bool(self, raw: Any) -> bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in {"true", "1", "on", "yes", "はい"}:
            return True
        if text in {"false", "0", "off", "no", "いいえ"}:
            return False
        raise self._invalid(f"「{self.label}」は「はい」か「いいえ」で指定してください。")

    def _invalid(self, message: str) -> InvalidInput:
        return InvalidInput(message, errors=[{"field": "value", "message": message}])

    def display(self, value: Any) -> str:
        if self.kind == "bool":
            return "はい" if value else "いいえ"
        if value in (None, ""):
            return "（未設定）"
        return str(value)


DEFINITIONS: dict[str, SettingDefinition] = {}


def define(definition: SettingDefinition) -> SettingDefinition:
    if definition.key in DEFINITIONS:
        raise ValueError(f"setting {definition.key} defined twice")
    definition.parse(definition.default)
    DEFINITIONS[definition.key] = definition
    return definition


def get_definition(key: str) -> SettingDefinition:
    try:
        return DEFINITIONS[key]
    except KeyError:
        from kiban.kit.errors import NotFound

        raise NotFound(f"設定項目「{key}」はありません。") from None


CONTACT_DESK = define(SettingDefinition(
    key="contact.desk",
    label="問い合わせ窓口の表示名",
    description="住民向け画面に表示する担当窓口（例: 〇〇市 デジタル推進課）。空欄なら表示しません。",
    kind="str",
    default="",
    max_length=100,
))
SMALL_CELL_THRESHOLD = define(SettingDefinition(
    key="statistics.small_cell_threshold",
    label="集計値の秘匿基準（人）",
    description="団体の外に見せる集計で、この人数未満のセルを「*」に置き換えます。国の基準（10人）より緩くはできません。",
    kind="int",
    default=10,
    minimum=10,
    maximum=100,
))
CHILDCARE_DEADLINE_DAY = define(SettingDefinition(
    key="childcare.application_deadline_day",
    label="保育所等利用申込の締切日（毎月）",
    description="翌月入所の申込を締め切る日。多くの団体は毎月10日前後です。",
    kind="int",
    default=10,
    minimum=1,
    maximum=28,
))
SHELTER_WARNING_PERCENT = define(SettingDefinition(
    key="disaster.shelter_warning_percent",
    label="避難所の混雑警告（収容率 %）",
    description="避難所の収容率がこの値以上になると、状況把握画面で警告します。",
    kind="int",
    default=90,
    minimum=50,
    maximum=100,
))
