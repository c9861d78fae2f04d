"""Issue #13 item 3 and 7: 重複照会の抑止 is recorded and counted. When the authoring screen shows a
question another survey asked within a year, the author can drop it as a duplicate (page with
confirmation, and its JSON twin): the question leaves the draft and stays in the survey's record
of avoided questions with what it repeated; once sent, the public indicator 「重複照会の抑止」
counts the answers the addressed bodies never had to give (avoided questions × bodies). A
question with no duplicate cannot be dropped as one (422, nothing changed); audited."""

from __future__ import annotations

from sqlalchemy import select

from kiban.core.audit.models import AuditEntry
from kiban.core.tenancy.context import unscoped
from kiban.kit.errors import InvalidInput
from kiban.modules.indicators import service as indicators
from kiban.modules.surveys import service
from tests.modules.test_surveys import SOUMU, _bind, _survey

PROBLEM = "application/problem+json"
EARLIER = [{"type": "number", "label": "貴団体の情報システム担当職員数", "unit": "人"}]
NEW = [{"type": "number", "label": "人口", "binding": "registry.population"},
       {"type": "number", "label": "貴団体の情報システム担当職員数（総数）", "unit": "人"},
       {"type": "text", "label": "ごみの収集方法"}]


async def _earlier_and_draft(session):
    earlier = await _survey(session, relayed=False, title="前回の情報化調査", questions=EARLIER)
    await service.send(session, earlier, actor="総務省 担当", expected_version=None)
    draft = await _survey(session, relayed=False, title="今回の調査", questions=NEW)
    await session.flush()
    return earlier, draft


async def test_a_dropped_duplicate_is_kept_on_record_and_counted_once_sent(session) -> None:
    _, draft = await _earlier_and_draft(session)
    # (q1, bound to population, may repeat surveys the browser tests committed to this database.)
    found = await service.duplicates(session, draft)
    assert "q2" in found and "q3" not in found
    with_no_duplicate = dict(draft.definition)
    try:
        await service.remove_question(session, draft, "q3", expected_version=None, as_duplicate=True, actor="総務省 担当")
        raise AssertionError("a question with no duplicate was dropped as one")
    except InvalidInput as exc:
        assert exc.errors[0]["field"] == "duplicate"
    assert draft.definition == with_no_duplicate
    await service.remove_question(session, draft, "q2", expected_version=None, as_duplicate=True, actor="総務省 担当")
    assert [q["key"] for q in draft.definition["questions"]] == ["q1", "q3"]
    (avoided,) = draft.definition["avoided"]
    assert avoided["label"] == "貴団体の情報システム担当職員数（総数）" and avoided["by"] == "総務省 担当"
    assert "前回の情報化調査" in [r["survey_title"] for r in avoided["repeats"]]
    # The API's whole-draft replacement keeps the record.
    await service.replace_definition(session, draft, [dict(q) for q in draft.definition["questions"]], [],
                                     expected_version=None)
    assert len(draft.definition["avoided"]) == 1
    targets = (await service.burden(session, draft)).targets
    await service.send(session, draft, actor="総務省 担当", expected_version=None)
    await session.flush()
    raw = await indicators._table(session, indicators.DEFINITIONS["avoided"], "fy", None, series=False)
    # 北海道's municipalities were addressed: one avoided question each.
    assert raw.cells == {("01", "avoided"): (float(targets), targets)} and targets > 100
    item = await indicators.indicator(session, "avoided", await indicators.scope_of(session, None, None, None))
    row = next(r for r in item.area.rows if r.key == "01")
    assert row.total.value == targets and not row.total.suppressed


async def test_the_author_drops_a_duplicate_on_the_page_or_through_the_api(staff, session) -> None:
    soumu = await staff(SOUMU, "staff", name="総務省 調査担当")
    _, draft = await _earlier_and_draft(session)
    await session.commit()
    base = f"/t/{SOUMU}/surveys/{draft.id}"
    page = await soumu.client.get(base)
    assert "不要なので省く" in page.text
    asked = await soumu.client.post(f"{base}/questions/q2/delete", data={
        "duplicate": "1", "expected_version": str(draft.version), "csrf_token": soumu.csrf})
    assert asked.status_code == 200 and "重複する質問を省きますか" in asked.text and "前回の情報化調査" in asked.text
    done = await soumu.client.post(f"{base}/questions/q2/delete", data={
        "duplicate": "1", "confirm": "yes", "expected_version": str(draft.version), "csrf_token": soumu.csrf})
    assert done.status_code == 303
    page = await soumu.client.get(base)
    assert "重複照会として省いた質問（1問）" in page.text

    api = f"/api/v1/t/{SOUMU}/surveys/{draft.id}"
    current = (await soumu.client.get(api)).json()
    assert [a["label"] for a in current["definition"]["avoided"]] == ["貴団体の情報システム担当職員数（総数）"]
    refused = await soumu.client.post(f"{api}/questions/q3/avoid", json={"expected_version": current["version"]})
    assert refused.status_code == 422 and refused.headers["content-type"].startswith(PROBLEM)
    assert "重複していません" in refused.json()["detail"]
    stale = await soumu.client.post(f"{api}/questions/q3/avoid", json={"expected_version": current["version"] - 1})
    assert stale.status_code == 409
    assert (await soumu.client.get(api)).json()["definition"] == current["definition"]

    await _bind(session, SOUMU)
    async with unscoped(session, "test"):
        actions = (await session.scalars(select(AuditEntry.action).where(
            AuditEntry.lg_code == SOUMU, AuditEntry.target_id == draft.id))).all()
    assert "surveys.question.avoided" in actions


async def test_another_body_cannot_drop_questions_from_the_senders_survey(staff, session) -> None:
    sapporo = await staff("011002", "admin", name="札幌 管理者")
    _, draft = await _earlier_and_draft(session)
    await session.commit()
    theirs = await sapporo.client.post(f"/api/v1/t/{SOUMU}/surveys/{draft.id}/questions/q2/avoid", json={})
    assert theirs.status_code in (403, 404)
    own_url = await sapporo.client.post(f"/api/v1/t/011002/surveys/{draft.id}/questions/q2/avoid", json={})
    assert own_url.status_code == 404
