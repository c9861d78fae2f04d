"""調査・照会 at service level: the question kit (types, ranges, conditions, 内訳と総数), versions
and what respondents see changed, prefill from the registry, drafts with optimistic versions,
決裁 and submission, the relay (差戻し・確認・送付), delivery and SQL aggregates, who may read
what (函館市 never reads 札幌市's answer), the .xlsx round trip with cell-by-cell errors, the
duplicate-question warning, and disclosure control (primary and secondary suppression, checked
against an independent rank computation)."""

from __future__ import annotations

import io
import random
from datetime import date, timedelta
from fractions import Fraction

import openpyxl
import pytest
from sqlalchemy import func, select

from kiban.core.registry import service as registry_service
from kiban.core.registry.models import Organization
from kiban.core.tenancy.context import bind_tenant, unscoped
from kiban.kit.errors import Conflict, InvalidInput, NotFound
from kiban.modules.surveys import disclosure, service, workbook
from kiban.modules.surveys import questions as qs
from kiban.modules.surveys.models import SurveyResponse, SurveyValue
from tests.factories import HAKODATE, HOKKAIDO, SAPPORO

SOUMU = "000027"
DEADLINE = (date.today() + timedelta(days=20)).isoformat()

QUESTIONS = [
    {"type": "number", "label": "住民基本台帳人口", "unit": "人", "binding": "registry.population", "section": "基本"},
    {"type": "number", "label": "職員数（総数）", "unit": "人", "min": 0, "max": 100000, "required": True, "section": "職員"},
    {"type": "number", "label": "うち正規職員", "unit": "人", "min": 0, "required": True, "section": "職員"},
    {"type": "number", "label": "うち会計年度任用職員", "unit": "人", "min": 0, "required": True, "section": "職員"},
    {"type": "yesno", "label": "テレワークを導入していますか", "required": True},
    {"type": "number", "label": "テレワーク可能な職員数", "unit": "人", "required": True,
     "show_if": {"q": "q5", "equals": "はい"}},
    {"type": "multi", "label": "利用している会議システム", "options": ["A社", "B社", "C社"]},
    {"type": "date", "label": "計画の策定日"},
    {"type": "table", "label": "庁舎ごとの端末数", "columns": [{"label": "庁舎名", "type": "text"},
                                                       {"label": "端末数", "type": "number"}]},
]
RULES = [{"total": "q2", "parts": ["q3", "q4"]}]
GOOD = {"q1": "1973395", "q2": "1,200", "q3": "1000", "q4": "200", "q5": "はい", "q6": "300", "q7": ["A社", "C社"],
        "q8": "2026-04-01", "q9": [{"c1": "本庁舎", "c2": "900"}, {"c1": "分庁舎", "c2": "150"}]}


async def _bind(session, lg_code: str):
    tenant = await registry_service.tenant_for(session, lg_code)
    await bind_tenant(session, tenant)
    return tenant


async def _survey(session, *, relayed: bool = True, title: str = "地方公共団体の職員数等に関する調査",
                  questions=QUESTIONS, prefectures=("01",)):
    await _bind(session, SOUMU)
    survey = await service.create_survey(session, service.Settings(
        title=title, deadline=DEADLINE, minutes=45, relayed=relayed, target_kind="municipalities",
        prefectures=list(prefectures)), actor="総務省 担当")
    await service.replace_definition(session, survey, [dict(q) for q in questions], RULES if questions is QUESTIONS else [],
                                     expected_version=None)
    return survey


async def _mine(session, lg_code: str, survey) -> service.Addressed:
    await _bind(session, lg_code)
    response = await session.scalar(select(SurveyResponse).where(SurveyResponse.survey_id == survey.id))
    return await service.own_response(session, response.id)


# -- the question kit --------------------------------------------------------------------------------

def test_answers_are_checked_by_type_range_condition_and_the_sum_rule() -> None:
    built: list[dict] = []
    for q in QUESTIONS:
        built.append(qs.build_question(q, built))
    definition = {"questions": built, "rules": [qs.build_rule(RULES[0], built)]}
    assert qs.validate(definition, GOOD) == []
    wrong = {**GOOD, "q2": "千二百", "q3": "-1", "q7": ["D社"], "q8": "4月1日頃", "q9": [{"c1": "本庁舎", "c2": "多数"}]}
    found = {e["field"]: e["message"] for e in qs.validate(definition, wrong)}
    assert found["q2"] == "「職員数（総数）」は数値で入力してください（入力: 「千二百」）。"
    assert found["q3"] == "「うち正規職員」は0以上で入力してください。"
    assert "選択肢にない「D社」" in found["q7"] and "日付" in found["q8"]
    assert found["q9.1.c2"].startswith("「庁舎ごとの端末数」の1行目「端末数」は数値")
    # 内訳の合計は総数と一致
    mismatch = qs.validate(definition, {**GOOD, "q4": "150"})
    assert mismatch == [{"field": "q2", "message": "内訳（「うち正規職員」＋「うち会計年度任用職員」）の合計 1150 が"
                                                   "「職員数（総数）」 1200 と一致しません。"}]
    # a question shown only when テレワーク is はい is not required otherwise
    assert qs.validate(definition, {**GOOD, "q5": "いいえ", "q6": ""}) == []
    assert [e["field"] for e in qs.validate(definition, {**GOOD, "q6": ""})] == ["q6"]
    # the platform's figure may be corrected only with a reason
    prefill = {"q1": {"value": 1973395, "source": "基本台帳の人口", "as_of": "2026-11-30"}}
    corrected = {**GOOD, "q1": "1973000"}
    assert qs.validate(definition, GOOD, prefill=prefill) == []
    assert [e["field"] for e in qs.validate(definition, corrected, prefill=prefill)] == ["q1"]
    assert qs.validate(definition, corrected, prefill=prefill, reasons={"q1": "転入の反映"}) == []


def test_authoring_refuses_bad_questions_naming_each_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        qs.build_question({"type": "choice", "label": "", "options": "ひとつ"}, [])
    assert {e["field"] for e in caught.value.errors} == {"label", "options"}
    with pytest.raises(InvalidInput) as caught:
        qs.build_question({"type": "text", "label": "人口", "binding": "registry.population"}, [])
    assert [e["field"] for e in caught.value.errors] == ["binding"]
    with pytest.raises(InvalidInput):
        qs.build_question({"type": "table", "label": "施設", "columns": "名前:画像"}, [])


def test_similar_japanese_wording_and_what_changed_between_versions() -> None:
    assert qs.similarity("テレワークを導入していますか", "テレワークを導入していますか。") == 1.0
    assert qs.similarity("貴団体の職員数（総数）", "職員数（総数）を記入してください") >= qs.SIMILAR
    assert qs.similarity("職員数", "ごみの収集量") < 0.2
    old = {"questions": [{"key": "q1", "label": "職員数", "type": "number"},
                         {"key": "q2", "label": "端末数", "type": "number"}], "rules": []}
    new = {"questions": [{"key": "q1", "label": "職員数（4月1日現在）", "type": "number"},
                         {"key": "q3", "label": "庁舎数", "type": "number"}], "rules": []}
    assert qs.changes_between(old, new) == ["質問「職員数」を「職員数（4月1日現在）」に変更しました。",
                                            "質問「庁舎数」を追加しました。", "質問「端末数」を削除しました。"]


# -- disclosure control ------------------------------------------------------------------------------

def _rank(rows: list[list[Fraction]]) -> int:
    """Rank by column-wise elimination (independent of disclosure.recoverable)."""
    m = [list(r) for r in rows if any(r)]
    rank = 0
    cols = len(m[0]) if m else 0
    for c in range(cols):
        pivot = next((i for i in range(rank, len(m)) if m[i][c] != 0), None)
        if pivot is None:
            continue
        m[rank], m[pivot] = m[pivot], m[rank]
        for i in range(rank + 1, len(m)):
            if m[i][c]:
                f = m[i][c] / m[rank][c]
                m[i] = [a - f * b for a, b in zip(m[i], m[rank], strict=True)]
        rank += 1
    return rank


def _exposed(table: disclosure.Table) -> list:
    """Suppressed entries an attacker solves from the published totals: x_k is determined exactly
    when dropping its column lowers the rank of the system over the unknowns."""
    unknowns = [e for e in table.entries() if e in table.suppressed and table.value(e)[1] > 0]
    if not unknowns:
        return []
    matrix = []
    for eq in table.equations():
        matrix.append([Fraction(1 if e in eq[:-1] else -1 if e == eq[-1] else 0) for e in unknowns])
    full = _rank(matrix)
    return [u for k, u in enumerate(unknowns) if _rank([r[:k] + r[k + 1:] for r in matrix]) < full]


def test_small_cells_are_suppressed_and_none_can_be_recovered_from_the_totals() -> None:
    # 北海道 has one 政令市 (札幌市): its cell would give 札幌市's figure, and the row total minus
    # the other cells would give it back, so a second cell in the row and in the column goes too.
    cells = {("01", "政令市"): (1200, 1), ("01", "市"): (5000, 34), ("01", "町"): (2100, 129),
             ("13", "特別区"): (9000, 23), ("13", "市"): (4000, 26), ("13", "町"): (30, 5),
             ("14", "政令市"): (8000, 3), ("14", "市"): (3000, 16), ("14", "町"): (200, 13)}
    table = disclosure.suppress(disclosure.Table(["01", "13", "14"], ["政令市", "特別区", "市", "町"], cells))
    assert ("cell", "01", "政令市") in table.suppressed
    assert table.shown(("cell", "01", "政令市")) is None
    assert len([e for e in table.suppressed if e[0] == "cell" and e[1] == "01"]) >= 2
    # in the 政令市 column 札幌市's cell is covered by another suppression (a cell or the total)
    column = [e for e in table.suppressed if (e[0] == "cell" and e[2] == "政令市") or e == ("col", "政令市")]
    assert len(column) >= 2, table.suppressed
    assert _exposed(table) == []
    assert table.shown(("total",)) is not None  # the national total stays published
    # without the complementary suppression the first cell is recoverable: the check can fail
    naive = disclosure.Table(table.rows, table.cols, cells, suppressed={("cell", "01", "政令市")})
    assert _exposed(naive) == [("cell", "01", "政令市")]


def test_random_tables_never_show_a_small_cell_or_leave_one_recoverable() -> None:
    rng = random.Random(13)
    for _ in range(40):
        rows, cols = [f"{i:02d}" for i in range(1, rng.randint(2, 7))], ["政令市", "市", "町", "村"][:rng.randint(2, 4)]
        cells = {}
        for r in rows:
            for c in cols:
                n = rng.choice([0, 1, 2, 3, 5, 8, 20])
                cells[(r, c)] = (float(sum(rng.randint(1, 500) for _ in range(n))), n)
        table = disclosure.suppress(disclosure.Table(rows, cols, cells))
        for entry in table.entries():
            value = table.shown(entry)
            assert value is None or not 0 < value[1] < disclosure.MIN_RESPONDENTS, entry
        assert _exposed(table) == [], (cells, table.suppressed)


# -- the whole relay, at service level ------------------------------------------------------------------

async def test_a_relayed_survey_is_prefilled_answered_certified_checked_and_aggregated(session) -> None:
    survey = await _survey(session)
    burden = await service.burden(session, survey)
    municipalities = await session.scalar(select(func.count()).select_from(Organization).where(
        Organization.prefecture_number == "01", Organization.type.in_(["政令市", "市", "町", "村"]),
        Organization.retired_on.is_(None)))
    assert burden.targets == municipalities == 179 and burden.total_minutes == 179 * 45
    version = await service.send(session, survey, actor="総務省 担当", expected_version=None)
    assert version.number == 1 and len(survey.target_codes) == 179
    await session.commit()

    sapporo = await _mine(session, SAPPORO, survey)
    population = (await session.get(Organization, SAPPORO)).population
    assert sapporo.response.prefill["q1"]["value"] == population
    assert sapporo.response.answers["q1"] == str(population)
    assert sapporo.goes_through_prefecture
    # drafts: two staff on one response; the second save on an old version is refused
    problems = await service.save_answers(session, sapporo, {"q2": "1200"}, actor="札幌 甲", expected_version=1)
    assert sapporo.response.version == 2 and sapporo.response.status == "draft"
    assert any(p["field"] == "q3" for p in problems) is False  # a draft reports only what is wrong, not what is missing
    with pytest.raises(Conflict) as caught:
        await service.save_answers(session, sapporo, {"q2": "1300"}, actor="札幌 乙", expected_version=1)
    assert "ほかの職員がこの回答を先に保存しました（いまは第2版です）" in caught.value.detail
    with pytest.raises(Conflict):  # no 決裁, no submission
        await service.submit(session, sapporo, actor="札幌 甲", expected_version=None)
    with pytest.raises(InvalidInput):  # not complete yet
        await service.certify(session, sapporo, actor="札幌 課長", expected_version=None)
    await service.save_answers(session, sapporo, {k: v for k, v in GOOD.items() if k != "q1"}, actor="札幌 甲",
                               expected_version=None)
    await service.certify(session, sapporo, actor="札幌 課長", expected_version=None)
    await service.submit(session, sapporo, actor="札幌 甲", expected_version=None)
    await service.submit(session, sapporo, actor="札幌 甲", expected_version=None)  # a retry changes nothing
    assert sapporo.response.status == "submitted" and sapporo.response.delivered_at is None  # waits for 北海道
    await session.commit()

    hakodate = await _mine(session, HAKODATE, survey)
    with pytest.raises(NotFound):  # 函館市 never reads 札幌市's answer
        await service.own_response(session, sapporo.response.id)
    await service.save_answers(session, hakodate, {**GOOD, "q1": hakodate.response.answers["q1"], "q2": "800", "q3": "700", "q4": "100", "q6": "90",
                                                   "q9": []}, actor="函館 甲", expected_version=None)
    await service.certify(session, hakodate, actor="函館 課長", expected_version=None)
    await service.submit(session, hakodate, actor="函館 甲", expected_version=None)
    with pytest.raises(NotFound):  # a municipality is no prefecture: no relay view
        await service.relayed_response(session, await _bind(session, HAKODATE), SAPPORO, sapporo.response.id)
    await session.commit()

    hokkaido = await _bind(session, HOKKAIDO)
    _, _, rows = await service.relayed_survey(session, hokkaido, SOUMU, survey.id)
    assert len(rows) == 179 and {o.code for _, o in rows} >= {SAPPORO, HAKODATE}
    h_item, _ = await service.relayed_response(session, hokkaido, HAKODATE, hakodate.response.id)
    with pytest.raises(InvalidInput):
        await service.send_back(session, h_item, actor="北海道 担当", comment=" ", expected_version=None)
    await service.send_back(session, h_item, actor="北海道 担当", comment="会計年度任用職員の数を確認してください。",
                            expected_version=None)
    s_item, _ = await service.relayed_response(session, hokkaido, SAPPORO, sapporo.response.id)
    await service.approve(session, s_item, actor="北海道 担当", expected_version=None)
    s_version = s_item.version
    assert await service.forward(session, hokkaido, s_item.survey, s_version, actor="北海道 担当") == 1
    await session.commit()

    await _bind(session, SOUMU)
    survey = await service.get_survey(session, survey.id)
    agg = await service.aggregates(session, survey)
    assert agg.delivered == 1 and agg.numbers["q2"]["sum"] == 1200 and agg.numbers["q1"]["sum"] == population
    assert dict(agg.choices["q7"]) == {"A社": 1, "C社": 1} and agg.columns["q9"]["c2"]["sum"] == 1050
    progress = {p.code: p for p in await service.progress(session, survey)}
    assert progress[HOKKAIDO].targets == 179 and progress[HOKKAIDO].delivered == 1
    assert progress[HOKKAIDO].counts["returned"] == 1 and progress[HOKKAIDO].counts["approved"] == 1
    header, rows = await service.export_rows(session, survey, await service.get_version(session, survey, 1))
    assert header[0] == "全国地方公共団体コード" and rows[0][:2] == [SAPPORO, "札幌市"]
    with pytest.raises(NotFound):  # 函館市's answer never reached the sender
        await service.delivered_response(session, survey, HAKODATE)

    # 函館市 sees the comment and corrects; 札幌市 reopens after submission, which withdraws its answer
    hakodate = await _mine(session, HAKODATE, survey)
    assert hakodate.response.status == "returned" and "会計年度任用職員" in hakodate.response.review_comment
    sapporo = await _mine(session, SAPPORO, survey)
    with pytest.raises(Conflict):
        await service.save_answers(session, sapporo, {"q2": "1"}, actor="札幌 甲", expected_version=None)
    await service.reopen(session, sapporo, actor="札幌 甲", reason="端末数の誤り", expected_version=None)
    assert [e.kind for e in await service.events(session, sapporo.response.id)] == [
        "saved", "saved", "certified", "submitted", "approved", "forwarded", "reopened"]
    await session.commit()
    await _bind(session, SOUMU)
    assert (await session.scalars(select(SurveyValue).where(SurveyValue.survey_id == survey.id))).all() == []


async def test_a_new_version_shows_respondents_what_changed_and_a_direct_survey_skips_the_relay(session) -> None:
    survey = await _survey(session, relayed=False, title="情報システムの利用状況調査", questions=QUESTIONS[:2])
    await service.send(session, survey, actor="総務省 担当", expected_version=None)
    await session.commit()
    sapporo = await _mine(session, SAPPORO, survey)
    await service.save_answers(session, sapporo, {"q2": "10"}, actor="札幌 甲", expected_version=None)
    await session.commit()
    await _bind(session, SOUMU)
    survey = await service.get_survey(session, survey.id)
    with pytest.raises(InvalidInput):  # nothing changed: no new version
        await service.send(session, survey, actor="総務省 担当", expected_version=None)
    await service.add_question(session, survey, {"type": "yesno", "label": "クラウドを利用していますか"},
                               expected_version=None)
    version = await service.send(session, survey, actor="総務省 担当", expected_version=None)
    assert version.number == 2 and version.changes == ["質問「クラウドを利用していますか」を追加しました。"]
    await session.commit()
    sapporo = await _mine(session, SAPPORO, survey)
    assert sapporo.response.version_number == 2
    assert await service.changes_since_seen(session, sapporo) == [(2, ["質問「クラウドを利用していますか」を追加しました。"])]
    await service.save_answers(session, sapporo, {"q3": "はい"}, actor="札幌 甲", expected_version=None)
    await service.certify(session, sapporo, actor="札幌 課長", expected_version=None)
    await service.submit(session, sapporo, actor="札幌 甲", expected_version=None)
    assert sapporo.response.delivered_at is not None  # direct: at the sender at once
    await session.commit()
    await _bind(session, SOUMU)
    agg = await service.aggregates(session, await service.get_survey(session, survey.id))
    assert agg.numbers["q2"]["sum"] == 10 and agg.choices["q3"] == [("はい", 1)]


async def test_the_author_is_warned_of_a_question_asked_within_a_year_with_its_published_answers(session) -> None:
    earlier = await _survey(session, relayed=False, title="前回の職員数調査", questions=QUESTIONS[:2])
    await service.send(session, earlier, actor="総務省 担当", expected_version=None)
    await session.commit()
    for code, staff_count in ((SAPPORO, "100"), (HAKODATE, "50"), ("012033", "30")):
        item = await _mine(session, code, earlier)
        await service.save_answers(session, item, {"q2": staff_count}, actor="担当", expected_version=None)
        await service.certify(session, item, actor="課長", expected_version=None)
        await service.submit(session, item, actor="担当", expected_version=None)
    await session.commit()
    await _bind(session, SOUMU)
    earlier = await service.get_survey(session, earlier.id)
    await service.publish(session, earlier)
    draft = await _survey(session, relayed=False, title="新しい調査", questions=[
        {"type": "number", "label": "人口", "binding": "registry.population"},
        {"type": "number", "label": "貴団体の職員数（総数）"}, {"type": "text", "label": "ごみの収集方法"}])
    found = await service.duplicates(session, draft)
    assert set(found) == {"q1", "q2"}
    (by_binding,) = [d for d in found["q1"] if d.survey_title == "前回の職員数調査"]
    assert by_binding.why == "同じデータ（人口（基本台帳））を尋ねています"
    (by_wording,) = [d for d in found["q2"] if d.survey_title == "前回の職員数調査"]
    assert "質問文が似ています" in by_wording.why and "3 団体が回答、合計 180人" in by_wording.answers


# -- the .xlsx form ---------------------------------------------------------------------------------------

async def test_the_xlsx_round_trip_reports_each_wrong_cell_and_changes_nothing(session) -> None:
    survey = await _survey(session, relayed=False)
    await service.send(session, survey, actor="総務省 担当", expected_version=None)
    await session.commit()
    item = await _mine(session, SAPPORO, survey)
    r = item.response
    content = workbook.form_bytes(title=item.version.title, organization="札幌市", deadline=DEADLINE, version=1,
                                  response_id=r.id, definition=item.definition, answers=r.answers, prefill=r.prefill,
                                  reasons=r.reasons)
    book = openpyxl.load_workbook(io.BytesIO(content))
    sheet = book["回答"]
    rows = {sheet[f"A{i}"].value: i for i in range(6, 6 + len(QUESTIONS))}
    assert sheet[f"E{rows['q1']}"].value == r.prefill["q1"]["value"]  # prefilled, as a number
    for key, value in (("q2", 1200), ("q3", "千"), ("q4", 200), ("q5", "はい"), ("q6", 300), ("q7", "A社、C社")):
        sheet[f"E{rows[key]}"] = value
    book["表_q9"]["A3"], book["表_q9"]["B3"] = "本庁舎", "たくさん"
    wrong = io.BytesIO()
    book.save(wrong)
    with pytest.raises(InvalidInput) as caught:
        workbook.read(wrong.getvalue(), response_id=r.id, definition=item.definition, prefill=r.prefill)
    messages = [e["message"] for e in caught.value.errors]
    assert messages == [f"セル E{rows['q3']}: 「うち正規職員」は数値で入力してください（入力: 「千」）。",
                        "シート「表_q9」のセル B3: 「庁舎ごとの端末数」の1行目「端末数」は数値で入力してください（入力: 「たくさん」）。"]
    assert "何も変更していません" in caught.value.detail
    sheet[f"E{rows['q3']}"] = 1000
    book["表_q9"]["B3"] = 900
    right = io.BytesIO()
    book.save(right)
    answers, reasons = workbook.read(right.getvalue(), response_id=r.id, definition=item.definition, prefill=r.prefill)
    assert answers["q3"] == "1000" and answers["q7"] == ["A社", "C社"] and answers["q9"] == [{"c1": "本庁舎", "c2": "900"}]
    with pytest.raises(InvalidInput) as caught:  # another response's form
        workbook.read(right.getvalue(), response_id="other", definition=item.definition, prefill=r.prefill)
    assert "別の調査・別の団体の様式" in caught.value.detail


async def test_sending_checks_the_draft_and_nothing_is_sent_twice(session) -> None:
    survey = await _survey(session, questions=[])
    with pytest.raises(InvalidInput) as caught:
        await service.send(session, survey, actor="総務省 担当", expected_version=None)
    assert caught.value.errors[0]["field"] == "questions"
    with pytest.raises(Conflict):
        await service.add_question(session, survey, {"type": "text", "label": "自由意見"}, expected_version=survey.version - 1)
    async with unscoped(session, "test"):
        assert await session.scalar(select(func.count()).select_from(SurveyResponse).where(
            SurveyResponse.survey_id == survey.id)) == 0
