"""保活 at service level: points under a municipality's rules, rule versions, the staffing check,
施設型給付費 from entered prices, the signed receipt, and the application's routing."""

from __future__ import annotations

import pytest

from kiban.kit.errors import InvalidInput
from kiban.modules.childcare import reports, rules as rulebook

SUM = rulebook.preset("example_sum")["rules"]
MIN = rulebook.preset("example_min")["rules"]
TWO_WORKING = {"guardians": [{"situation": "employed", "hours_per_week": 40},
                             {"situation": "employed", "hours_per_week": 20}], "adjustments": ["sibling_enrolled"]}


def test_points_add_both_guardians_when_the_rules_sum_and_take_the_lower_when_they_take_the_minimum() -> None:
    summed = rulebook.points(SUM, TWO_WORKING, {0: 40, 1: 20})
    assert (summed.basic, summed.adjustment, summed.total) == (20 + 16, 3, 39)
    lower = rulebook.points(MIN, TWO_WORKING, {0: 40, 1: 20})
    assert (lower.basic, lower.adjustment, lower.total) == (70, 10, 80)  # 20時間: the 16時間以上 bracket
    assert any("低い方" in line for line in lower.lines)


def test_employment_without_a_certificate_counts_nothing_unless_the_rules_accept_the_declared_hours() -> None:
    uncertified = rulebook.points(SUM, TWO_WORKING, {})
    assert uncertified.basic == 0 and "就労証明書が届いていない" in uncertified.lines[0]
    lenient = {**SUM, "require_certificate": False}
    assert rulebook.points(lenient, TWO_WORKING, {}).basic == 36


def test_a_single_parent_counts_the_absent_guardian_and_the_adjustment() -> None:
    household = {"guardians": [{"situation": "employed", "hours_per_week": 30}], "adjustments": ["single_parent"]}
    scored = rulebook.points(SUM, household, {0: 30})
    assert scored.basic == 18 + SUM["absent"] and scored.adjustment == 5
    assert "不在" in scored.lines[1]


def test_tie_breaks_follow_the_municipalitys_order_smaller_first() -> None:
    single = {"guardians": [], "adjustments": ["single_parent"]}
    other = {"guardians": [], "adjustments": ["sibling_enrolled"]}
    assert rulebook.tie_break(SUM, single, {}, "B") < rulebook.tie_break(SUM, other, {}, "A")  # ひとり親 first
    assert rulebook.tie_break(MIN, other, {}, "B") < rulebook.tie_break(MIN, single, {}, "A")  # きょうだい first
    assert rulebook.tie_break(SUM, other, {}, "A") < rulebook.tie_break(SUM, other, {}, "B")  # then 受付順


def test_the_rule_editor_round_trips_and_names_every_wrong_field() -> None:
    assert rulebook.from_form(rulebook.to_form(SUM)) == SUM
    bad = rulebook.to_form(SUM) | {"employment": "四十時間", "situation_illness": "x", "sibling_policy": "?"}
    with pytest.raises(InvalidInput) as caught:
        rulebook.from_form(bad)
    assert {e["field"] for e in caught.value.errors} == {"employment", "situation_illness", "sibling_policy"}


def test_the_preview_scores_every_sample_household() -> None:
    rows = rulebook.preview(SUM)
    assert len(rows) == len(rulebook.SAMPLE_HOUSEHOLDS)
    assert rows[0][1].total == 40 and rows[2][1].total == 18 + 20 + 5


@pytest.mark.parametrize(("children", "staff", "verdict"), [
    ({0: 6, 1: 6, 2: 6, 3: 15, 4: 25, 5: 0}, 2 + 2 + 1 + 1, "ok"),        # 2 + 2 + 1 + 1 = 6
    ({0: 0, 1: 0, 2: 0, 3: 20, 4: 30, 5: 0}, 2, "transitional"),         # new: 1.3 + 1.2 → 3; old: 1 + 1 → 2
    ({0: 9, 1: 0, 2: 0, 3: 0, 4: 0, 5: 0}, 2, "short"),                 # 0歳 3:1 → 3
    ({0: 1, 1: 0, 2: 0, 3: 0, 4: 0, 5: 0}, 2, "ok"),                    # never fewer than 2
])
def test_staffing_against_the_april_2024_ratios_with_the_transitional_rule(children, staff, verdict) -> None:
    assert reports.staffing(children, staff).verdict == verdict


def test_benefit_uses_the_band_of_the_facilitys_capacity() -> None:
    bands = reports.parse_bands("60,300000,180000,180000,90000,80000,80000\n120,1,2,3,4,5,6")
    assert reports.benefit(bands, 50, {0: 2, 3: 1})[0] == 2 * 300000 + 90000
    assert reports.benefit(bands, 100, {0: 2, 3: 1})[0] == 2 * 1 + 4
    assert reports.benefit(bands, 200, {0: 1})[0] is None
    with pytest.raises(ValueError, match="2行目"):
        reports.parse_bands("60,1,2,3,4,5,6\n120,1,2")


def test_the_receipt_signature_breaks_when_the_report_changes() -> None:
    text = reports.receipt_text({"month": "2026-11", "rows": [{"residence": "131121", "children": {"0": 1}}]})
    signature = reports.sign(text)
    assert reports.verify(text, signature)
    assert not reports.verify(text.replace('"0":1', '"0":2'), signature)


async def test_the_demo_seeds_the_shipped_nurseries_once_and_says_what_is_invented(session) -> None:
    from sqlalchemy import select

    from kiban.core.tenancy.context import unscoped
    from kiban.modules.childcare import demo
    from kiban.modules.childcare.models import ChildcareFacility

    shipped = demo.rows()
    assert len(shipped) == 247 and {r["city"] for r in shipped} == {"世田谷区", "目黒区", "渋谷区"}
    assert await demo.load_demo(session) >= len(shipped)
    assert await demo.load_demo(session) == 0
    async with unscoped(session, "test: the demo's facilities"):
        seeded = (await session.scalars(select(ChildcareFacility).where(ChildcareFacility.source == demo.SOURCE))).all()
    assert len(seeded) == len(shipped) and all("架空" in f.source for f in seeded)
    by_name = {f.name: f for f in seeded}
    first = shipped[0]
    assert by_name[first["name"]].total_capacity == int(first["capacity"])


@pytest.mark.parametrize(("policy", "same_facility", "rule", "placed"), [
    ("together_only", True, "together_only", 0),            # the 3歳児 class is full: neither is placed
    ("together_preferred", True, "together_preferred", 1),  # together impossible: each on their own list
    ("together_preferred", False, "independent", 1),       # the parent did not ask for one facility
])
async def test_siblings_reach_the_engine_as_the_municipalitys_policy_and_the_parents_wish_say(
        session, policy, same_facility, rule, placed) -> None:
    from kiban.core.registry import service as registry_service
    from kiban.core.tenancy.context import bind_tenant
    from kiban.kit.db import utcnow
    from kiban.modules.childcare import allocation as engine
    from kiban.modules.childcare import service
    from kiban.modules.childcare.models import ChildcareApplication
    from tests.factories import SAPPORO
    from tests.factories_childcare import FACTORIES, ChildcareFacility

    await bind_tenant(session, await registry_service.tenant_for(session, SAPPORO))
    facility = await FACTORIES[ChildcareFacility](session, SAPPORO, "きょうだい")
    facility.vacancy_3 = 0
    session.add(facility)
    now = utcnow()
    application = ChildcareApplication(
        lg_code=SAPPORO, id="a1", receipt_no="HK-SIB", form_token="t" * 20, principal_id="p1", guardian_name="保護者",
        email="", children=[{"key": "c1", "name": "一郎", "birth_date": "2025-06-01", "age_class": 1},
                            {"key": "c2", "name": "二郎", "birth_date": "2023-06-01", "age_class": 3}],
        preferences=[{"lg_code": SAPPORO, "facility_id": facility.id, "facility_name": facility.name,
                      "municipality": "札幌市"}],
        household={"guardians": [{"situation": "illness"}], "adjustments": ["single_parent"]},
        same_facility=same_facility, status="submitted", results={}, submitted_at=now, updated_at=now)
    session.add(application)
    await session.flush()
    rules = {**SUM, "sibling_policy": policy}
    instance, snapshot = await service.build_instance(session, rules, [application])
    assert {c.sibling_rule.value for c in instance.children} == {rule}
    assert {c.sibling_group for c in instance.children} == {"HK-SIB"}
    assert {c.points for c in instance.children} == {SUM["situations"]["illness"] + SUM["absent"] + 5}
    assert snapshot["facilities"][0]["capacity"] == [1, 1, 1, 0, 1, 1]
    result = engine.allocate(instance)
    assert result.stats.placed == placed
