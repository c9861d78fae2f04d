"""被災者生活再建支援金 (support for rebuilding the lives of disaster victims): eligibility and amount.

A pure calculation, no database and no I/O: given a household's damage level (り災証明書の被害の
程度), its size and how it plans to rebuild, ``estimate`` returns whether the household is
a 支給対象 and how much 基礎支援金 and 加算支援金 it gets, with explanation lines in Japanese.

Source of the rules (current national rules):

* 被災者生活再建支援法（平成10年法律第66号、e-Gov法令ID 410AC0100000066）, as amended by
  被災者生活再建支援法の一部を改正する法律（令和2年法律第69号、令和2年12月4日公布・施行）, which
  added 中規模半壊世帯 (第2条第2号ホ) and their amounts (第3条第5項).
* 第2条第2号 defines the 被災世帯: イ 全壊; ロ 半壊又は敷地被害によりやむを得ず解体; ハ 長期避難;
  ニ 大規模半壊; ホ 中規模半壊. ハ takes precedence over ニ, and ホ applies only to households
  not in ロ–ニ.
* 第3条第2項: 基礎支援金 100万円 (大規模半壊 50万円) plus 加算支援金 建設・購入 200万円, 補修
  100万円, 賃借（公営住宅以外）50万円.
* 第3条第3項: a household in two or more of those categories (e.g. it rents first, then builds)
  gets the highest 加算, not the sum — so 「賃借後に建設・購入」 is 200万円, not 250万円.
* 第3条第5項: 中規模半壊 — no 基礎支援金; 加算 建設・購入 100万円, 補修 50万円, 賃借 25万円
  (the same "highest, not the sum" rule applies).
* 第3条第7項: 単数世帯 (one person at the time of the disaster) get 3/4 of each amount.
* Applicability: the Act applies only to a 自然災害 of the size set by 被災者生活再建支援法施行令
  第1条 (e.g. a municipality with 10 or more households whose homes were 全壊, a prefecture with
  100 or more, …). Whether it applies is decided per disaster, outside this module: pass
  ``act_applies``. Where it does not apply, 都道府県の独自制度 may still help.

Out of scope: the 政令 special case for some 長期避難世帯 (第3条第4項); the 申請期間; the
households a 都道府県 or 市町村 supports under its own scheme. ``demolished`` covers a house
judged 半壊 or worse and demolished; demolition because of 敷地被害 (宅地被害) to a house judged
less than 半壊 is not modelled here (the result says to ask the municipality).

Amounts are whole yen ``int``s.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DAMAGE_LEVELS",
    "REBUILD_PLANS",
    "SOURCE",
    "SupportEstimate",
    "SupportInputError",
    "estimate",
]

DAMAGE_LEVELS = ("全壊", "大規模半壊", "中規模半壊", "半壊", "準半壊", "準半壊に至らない（一部損壊）")
REBUILD_PLANS = ("未定", "建設・購入", "補修", "賃借（公営住宅以外）", "賃借後に建設・購入", "賃借後に補修")

SOURCE = (
    "被災者生活再建支援法（平成10年法律第66号）第2条第2号・第3条第2項・第3項・第5項・第7項"
    "（令和2年法律第69号による改正後。中規模半壊世帯を追加）、同法施行令第1条（対象となる自然災害）"
)

_UNDECIDED = "未定"
_BUILD = "建設・購入"
_REPAIR = "補修"
_RENT = "賃借（公営住宅以外）"

# Each plan is the set of 第3条第2項各号 the household ends up in; 第3条第3項 pays the highest.
_PLAN_PARTS: dict[str, tuple[str, ...]] = {
    _UNDECIDED: (),
    _BUILD: (_BUILD,),
    _REPAIR: (_REPAIR,),
    _RENT: (_RENT,),
    "賃借後に建設・購入": (_RENT, _BUILD),
    "賃借後に補修": (_RENT, _REPAIR),
}

# 第3条第2項 (全壊・解体・長期避難・大規模半壊) and 第3条第5項 (中規模半壊), multi-person households.
_ADDITIONAL_FULL = {_BUILD: 2_000_000, _REPAIR: 1_000_000, _RENT: 500_000}
_ADDITIONAL_MEDIUM = {_BUILD: 1_000_000, _REPAIR: 500_000, _RENT: 250_000}

_ALL_CATEGORY = "全壊"
_DEMOLISHED_CATEGORY = "解体"
_EVACUATION_CATEGORY = "長期避難"
_MAJOR_CATEGORY = "大規模半壊"
_MEDIUM_CATEGORY = "中規模半壊"

# 被災世帯の区分 (第2条第2号イ〜ホ) → (基礎支援金, 加算支援金の表), multi-person households.
_CATEGORIES: dict[str, tuple[int, dict[str, int]]] = {
    _ALL_CATEGORY: (1_000_000, _ADDITIONAL_FULL),
    _DEMOLISHED_CATEGORY: (1_000_000, _ADDITIONAL_FULL),
    _EVACUATION_CATEGORY: (1_000_000, _ADDITIONAL_FULL),
    _MAJOR_CATEGORY: (500_000, _ADDITIONAL_FULL),
    _MEDIUM_CATEGORY: (0, _ADDITIONAL_MEDIUM),
}

# Levels from 大規模半壊 down to 半壊: demolishing such a house makes the household 解体 (第2条第2号ロ).
_DEMOLITION_LEVELS = ("大規模半壊", "中規模半壊", "半壊")


class SupportInputError(ValueError):
    """An input ``estimate`` cannot use; the message is in Japanese, for the person entering it."""


@dataclass(frozen=True)
class SupportEstimate:
    """The result of ``estimate``.

    ``additional`` is ``None`` while the rebuilding plan is 未定 for an eligible household (the
    加算支援金 is decided once the plan is); it is 0 for a household that is not eligible.
    ``total`` is ``basic`` plus ``additional`` (0 while undecided).
    """

    eligible: bool
    basic: int
    additional: int | None
    total: int
    lines: tuple[str, ...]
    source: str


def _yen(amount: int) -> str:
    return f"{amount:,}円"


def _scaled(amount: int, single: bool) -> int:
    if not single:
        return amount
    # Every statutory amount is a multiple of 4 yen, so 3/4 is exact (25万円 → 18万7,500円).
    assert amount % 4 == 0, amount
    return amount * 3 // 4


def _check_inputs(
    damage_level: object,
    household_size: object,
    rebuild_plan: object,
    flags: dict[str, object],
) -> None:
    if not isinstance(damage_level, str) or damage_level not in DAMAGE_LEVELS:
        raise SupportInputError(
            f"被害の程度「{damage_level}」は扱えません。次のいずれかを指定してください: "
            + "、".join(DAMAGE_LEVELS)
        )
    if isinstance(household_size, bool) or not isinstance(household_size, int):
        raise SupportInputError(f"世帯人数は整数で指定してください（指定された値: {household_size!r}）")
    if household_size < 1:
        raise SupportInputError(f"世帯人数は1人以上で指定してください（指定された値: {household_size}）")
    if not isinstance(rebuild_plan, str) or rebuild_plan not in REBUILD_PLANS:
        raise SupportInputError(
            f"住宅の再建方法「{rebuild_plan}」は扱えません。次のいずれかを指定してください: "
            + "、".join(REBUILD_PLANS)
        )
    for label, value in flags.items():
        if not isinstance(value, bool):
            raise SupportInputError(f"{label}は真偽値（True または False）で指定してください（指定された値: {value!r}）")


def _category(damage_level: str, demolished: bool, long_term_evacuation: bool) -> str | None:
    """被災世帯の区分 under 第2条第2号, or None when the household is not a 被災世帯."""
    if damage_level == "全壊":
        return _ALL_CATEGORY
    if demolished and damage_level in _DEMOLITION_LEVELS:
        return _DEMOLISHED_CATEGORY
    if long_term_evacuation:
        return _EVACUATION_CATEGORY
    if damage_level == "大規模半壊":
        return _MAJOR_CATEGORY
    if damage_level == "中規模半壊":
        return _MEDIUM_CATEGORY
    return None


def _not_eligible(lines: list[str]) -> SupportEstimate:
    lines.append("支給額: 0円")
    return SupportEstimate(eligible=False, basic=0, additional=0, total=0, lines=tuple(lines), source=SOURCE)


def estimate(
    damage_level: str,
    *,
    household_size: int,
    rebuild_plan: str = "未定",
    demolished: bool = False,
    long_term_evacuation: bool = False,
    act_applies: bool = True,
) -> SupportEstimate:
    """Eligibility and amount of 被災者生活再建支援金 for one household.

    ``damage_level`` is one of ``DAMAGE_LEVELS`` (the り災証明書's 被害の程度); ``household_size`` the
    number of people in the household at the time of the disaster (1 → 単数世帯, 3/4 of each
    amount); ``rebuild_plan`` one of ``REBUILD_PLANS``; ``demolished`` that a house judged 半壊 or
    worse was unavoidably demolished (→ 解体世帯); ``long_term_evacuation`` that the household
    cannot live in its home for a long time because the danger continues (→ 長期避難世帯);
    ``act_applies`` whether the disaster meets the Act's 自然災害 threshold.

    Raises ``SupportInputError`` (Japanese message) for an unknown level or plan, a household
    size that is not a whole number of at least 1, or a flag that is not a bool.
    """
    _check_inputs(
        damage_level,
        household_size,
        rebuild_plan,
        {
            "解体の有無（demolished）": demolished,
            "長期避難の有無（long_term_evacuation）": long_term_evacuation,
            "支援法の適用の有無（act_applies）": act_applies,
        },
    )
    single = household_size == 1
    household = "単数世帯" if single else "複数世帯"

    if not act_applies:
        return _not_eligible([
            "この災害には被災者生活再建支援法の適用がないため、被災者生活再建支援金は支給されない",
            "支援法は一定規模以上の自然災害（例: 10世帯以上の住宅全壊被害が発生した市町村）に適用される",
            "支援法が適用されない地域でも、都道府県の独自制度（支援法に準じた支援金）がある場合がある",
        ])

    category = _category(damage_level, demolished, long_term_evacuation)
    if category is None:
        lines = [
            (
                f"{damage_level}（{household}）: 被災者生活再建支援金の支給対象外"
                "（対象は全壊・解体・長期避難・大規模半壊・中規模半壊の世帯）"
            ),
        ]
        if demolished:
            lines.append(
                "住宅の敷地被害（宅地被害）によりやむを得ず解体した場合は「解体」世帯に当たることがあるため、市町村に確認が必要"
            )
        lines.append("都道府県・市町村の独自制度の対象となる場合がある")
        return _not_eligible(lines)

    full_basic, table = _CATEGORIES[category]
    basic = _scaled(full_basic, single)
    lines: list[str] = []
    if category == _DEMOLISHED_CATEGORY:
        lines.append(f"{damage_level}の住宅をやむを得ず解体したため、解体世帯（全壊と同額）として扱う（第2条第2号ロ）")
    elif category == _EVACUATION_CATEGORY and damage_level != "全壊":
        lines.append("長期避難世帯のため、全壊と同額として扱う（第2条第2号ハ）")
    if category == _MEDIUM_CATEGORY:
        lines.append(f"{category}（{household}）: 基礎支援金 {_yen(basic)}（中規模半壊は加算支援金のみ）")
    else:
        lines.append(f"{category}（{household}）: 基礎支援金 {_yen(basic)}")
    if single:
        lines.append("単数世帯のため各金額の4分の3（第3条第7項）")

    parts = _PLAN_PARTS[rebuild_plan]
    additional: int | None
    if not parts:
        additional = None
        options = "／".join(f"{plan} {_yen(_scaled(table[plan], single))}" for plan in (_BUILD, _REPAIR, _RENT))
        lines.append(f"住宅の再建方法が未定のため、加算支援金は再建方法が決まった時点で決定（{options}）")
        total = basic
    else:
        additional = max(_scaled(table[part], single) for part in parts)
        if len(parts) > 1:
            rent = _scaled(table[_RENT], single)
            lines.append(
                f"加算支援金（{rebuild_plan}）: {_yen(additional)}"
                f"（賃借分 {_yen(rent)} を含む合計額。賃借分は上乗せしない。第3条第3項）"
            )
        else:
            lines.append(f"加算支援金（{rebuild_plan}）: {_yen(additional)}")
        total = basic + additional
    lines.append(f"合計: {_yen(total)}")
    return SupportEstimate(
        eligible=True, basic=basic, additional=additional, total=total, lines=tuple(lines), source=SOURCE
    )
