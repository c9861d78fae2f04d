"""調査・照会 through HTTP: 総務省 writes and sends a relayed survey on the pages (burden shown,
duplicate warned), 札幌市 answers (htmx draft, 409 on a stale version, .xlsx with a wrong cell →
422 and nothing changed, 決裁 only by the certifier, submission), 北海道 returns and approves,
the sender sees progress, aggregates and exports, the public results are suppressed; 函館市 gets
404 for 札幌市's answer; a system answers with a scoped API key (and may not certify); the
reminders reach the SMTP server exactly once."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta

import openpyxl
from sqlalchemy import func, select

from kiban.core.notify.models import Notice, Notification
from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import bind_tenant, unscoped
from kiban.modules.surveys import reminders, service
from kiban.modules.surveys.models import SurveyResponse
from tests.core.test_japanese_only import foreign_words, read
from tests.core.test_notify import _runner, clock, smtp  # noqa: F401 - fixtures
from tests.factories import HAKODATE, HOKKAIDO, SAPPORO

SOUMU = "000027"
PROBLEM = "application/problem+json"
DEADLINE = (date.today() + timedelta(days=20)).isoformat()


def _japanese(*pages) -> None:
    for page in pages:
        assert page.status_code == 200, page.status_code
        text, _ = read(page)
        assert foreign_words(text) == set(), (str(page.url), foreign_words(text))


async def _count(session, model, *where) -> int:
    async with unscoped(session, "test: counting rows"):
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)))


async def _response_id(session, lg_code: str, survey_id: str) -> str:
    async with unscoped(session, "test: finding a response"):
        return await session.scalar(select(SurveyResponse.id).where(SurveyResponse.lg_code == lg_code,
                                                                     SurveyResponse.survey_id == survey_id))


async def _write_survey(soumu, title: str = "自治体DXの取組状況調査") -> str:
    page = await soumu.client.post(f"/t/{SOUMU}/surveys", data={
        "title": title, "deadline": DEADLINE, "minutes": "40", "relayed": "1", "target_kind": "municipalities",
        "prefectures": ["01"], "csrf_token": soumu.csrf})
    assert page.status_code == 303, page.text
    survey_id = page.headers["location"].rsplit("/", 1)[1]
    for question in ({"type": "number", "label": "人口", "binding": "registry.population"},
                     {"type": "number", "label": "情報システム担当職員数", "unit": "人", "min": "0", "max": "1000",
                      "required": "1"},
                     {"type": "yesno", "label": "生成AIを業務で利用していますか", "required": "1"}):
        added = await soumu.client.post(f"/t/{SOUMU}/surveys/{survey_id}/questions",
                                        data={**question, "csrf_token": soumu.csrf})
        assert added.status_code == 303, added.text
    return survey_id


async def test_the_story_on_the_pages(session, staff) -> None:
    soumu = await staff(SOUMU, "staff", name="総務省 担当")
    bad = await soumu.client.post(f"/t/{SOUMU}/surveys", data={"title": "", "deadline": "来月", "minutes": "0",
                                                                "csrf_token": soumu.csrf})
    assert bad.status_code == 422
    for message in ("調査の名前を入力してください。", "回答期限を日付", "回答時間の見込みを1〜6000"):
        assert message in bad.text
    survey_id = await _write_survey(soumu)
    builder = await soumu.client.get(f"/t/{SOUMU}/surveys/{survey_id}")
    assert "179 団体 × 40 分 ＝ 延べ 7,160 分" in builder.text
    no_check = await soumu.client.post(f"/t/{SOUMU}/surveys/{survey_id}/send", data={"csrf_token": soumu.csrf})
    assert no_check.status_code == 422 and await _count(session, SurveyResponse, SurveyResponse.survey_id == survey_id) == 0
    sent = await soumu.client.post(f"/t/{SOUMU}/surveys/{survey_id}/send", data={
        "confirm": "yes", "csrf_token": soumu.csrf})
    assert sent.status_code == 303, sent.text
    assert await _count(session, SurveyResponse, SurveyResponse.survey_id == survey_id) == 179

    # a second survey repeating a question is warned at authoring
    again = await _write_survey(soumu, "生成AIの利用状況調査")
    warned = await soumu.client.get(f"/t/{SOUMU}/surveys/{again}")
    assert "重複照会のおそれ" in warned.text and "自治体DXの取組状況調査" in warned.text
    assert "同じデータ（人口（基本台帳））を尋ねています" in warned.text

    # 札幌市: staff answer, a certifier signs off
    clerk = await staff(SAPPORO, "staff", name="札幌 担当")
    chief = await staff(SAPPORO, "admin", name="札幌 課長")
    rid = await _response_id(session, SAPPORO, survey_id)
    page = await clerk.client.get(f"/t/{SAPPORO}/surveys/responses/{rid}")
    assert page.status_code == 200 and "プラットフォームの値: 1,973,395" in page.text
    draft = await clerk.client.post(f"/t/{SAPPORO}/surveys/responses/{rid}/answers", headers={"HX-Request": "true"},
                                    data={"q2": "12", "expected_version": "1", "csrf_token": clerk.csrf})
    assert draft.status_code == 200 and "下書きを保存しました（第2版）" in draft.text
    stale = await chief.client.post(f"/t/{SAPPORO}/surveys/responses/{rid}/answers",
                                    data={"q2": "13", "expected_version": "1", "csrf_token": chief.csrf})
    assert stale.status_code == 409 and "ほかの職員がこの回答を先に保存しました（いまは第2版です）" in stale.text

    form = await clerk.client.get(f"/t/{SAPPORO}/surveys/responses/{rid}/form.xlsx")
    assert form.status_code == 200 and form.headers["content-type"].startswith("application/vnd.openxmlformats")
    book = openpyxl.load_workbook(io.BytesIO(form.content))
    book["回答"]["E7"], book["回答"]["E8"] = "十二", "はい"
    wrong = io.BytesIO()
    book.save(wrong)
    refused = await clerk.client.post(f"/t/{SAPPORO}/surveys/responses/{rid}/upload", data={
        "expected_version": "2", "csrf_token": clerk.csrf}, files={"file": ("form.xlsx", wrong.getvalue())})
    assert refused.status_code == 422
    assert "セル E7: 「情報システム担当職員数」は数値で入力してください（入力: 「十二」）。" in refused.text
    async with unscoped(session, "test"):
        stored = await session.scalar(select(SurveyResponse).where(SurveyResponse.id == rid))
        await session.refresh(stored)
        assert stored.answers.get("q3") in (None, "") and stored.version == 2  # nothing changed
    book["回答"]["E7"] = 12
    right = io.BytesIO()
    book.save(right)
    taken = await clerk.client.post(f"/t/{SAPPORO}/surveys/responses/{rid}/upload", data={
        "expected_version": "2", "csrf_token": clerk.csrf}, files={"file": ("form.xlsx", right.getvalue())})
    assert taken.status_code == 303, taken.text
    forbidden = await clerk.client.post(f"/t/{SAPPORO}/surveys/responses/{rid}/certify", data={
        "csrf_token": clerk.csrf})
    assert forbidden.status_code == 403
    signed = await chief.client.post(f"/t/{SAPPORO}/surveys/responses/{rid}/certify", data={"csrf_token": chief.csrf})
    assert signed.status_code == 303
    submitted = await clerk.client.post(f"/t/{SAPPORO}/surveys/responses/{rid}/submit", data={"csrf_token": clerk.csrf})
    assert submitted.status_code == 303
    assert "提出済み" in (await clerk.client.get(f"/t/{SAPPORO}/surveys/responses/{rid}")).text

    # 函館市 never sees 札幌市's answer
    hakodate = await staff(HAKODATE, "admin", name="函館 担当")
    assert (await hakodate.client.get(f"/t/{SAPPORO}/surveys/responses/{rid}")).status_code == 404
    assert (await hakodate.client.get(f"/t/{HAKODATE}/surveys/responses/{rid}")).status_code == 404
    assert (await hakodate.client.get(f"/api/v1/t/{HAKODATE}/surveys/responses/{rid}")).status_code == 404
    assert (await hakodate.client.get(
        f"/t/{HAKODATE}/surveys/relay/responses/{SAPPORO}/{rid}")).status_code == 404
    hid = await _response_id(session, HAKODATE, survey_id)
    answered = await hakodate.client.put(f"/api/v1/t/{HAKODATE}/surveys/responses/{hid}/answers",
                                         json={"answers": {"q2": "4", "q3": "いいえ"}})
    assert answered.status_code == 200 and answered.json()["problems"] == []
    for step in ("certify", "submit"):
        assert (await hakodate.client.post(f"/api/v1/t/{HAKODATE}/surveys/responses/{hid}/{step}", json={})).status_code == 200

    # 北海道 returns 函館市's answer with a comment and approves 札幌市's, then forwards
    hokkaido = await staff(HOKKAIDO, "staff", name="北海道 担当")
    relay = await hokkaido.client.get(f"/t/{HOKKAIDO}/surveys/relay/{SOUMU}/{survey_id}")
    assert relay.status_code == 200 and "札幌市" in relay.text and "函館市" in relay.text
    review = await hokkaido.client.get(f"/t/{HOKKAIDO}/surveys/relay/responses/{HAKODATE}/{hid}")
    assert review.status_code == 200 and "いいえ" in review.text
    empty = await hokkaido.client.post(f"/t/{HOKKAIDO}/surveys/relay/responses/{HAKODATE}/{hid}/return",
                                       data={"comment": "", "csrf_token": hokkaido.csrf})
    assert empty.status_code == 422 and "差し戻す理由" in empty.text
    returned = await hokkaido.client.post(f"/t/{HOKKAIDO}/surveys/relay/responses/{HAKODATE}/{hid}/return",
                                          data={"comment": "担当職員数を再確認してください。", "csrf_token": hokkaido.csrf})
    assert returned.status_code == 303
    approved = await hokkaido.client.post(f"/t/{HOKKAIDO}/surveys/relay/responses/{SAPPORO}/{rid}/approve",
                                          data={"csrf_token": hokkaido.csrf})
    assert approved.status_code == 303
    forwarded = await hokkaido.client.post(f"/t/{HOKKAIDO}/surveys/relay/{SOUMU}/{survey_id}/forward",
                                           data={"csrf_token": hokkaido.csrf})
    assert forwarded.status_code == 303 and forwarded.headers["location"].endswith("forwarded=1")
    back = await hakodate.client.get(f"/t/{HAKODATE}/surveys/responses/{hid}")
    assert "都道府県から差し戻されました" in back.text and "担当職員数を再確認してください。" in back.text

    # 総務省 sees progress and aggregates at once, exports them, publishes with suppression
    progress = await soumu.client.get(f"/t/{SOUMU}/surveys/{survey_id}/progress")
    assert progress.status_code == 200 and "届いた回答 <strong>1</strong> / 179 団体" in progress.text
    assert re.search(r'data-aggregate="q2">合計 <strong>12</strong>人', progress.text)
    twin = (await soumu.client.get(f"/api/v1/t/{SOUMU}/surveys/{survey_id}/progress")).json()
    assert twin["delivered"] == 1 and twin["aggregates"]["numbers"]["q2"]["sum"] == 12
    csv = await soumu.client.get(f"/t/{SOUMU}/surveys/{survey_id}/export.csv")
    lines = csv.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("全国地方公共団体コード,団体名,都道府県") and lines[1].startswith("011002,札幌市,北海道")
    xlsx = await soumu.client.get(f"/t/{SOUMU}/surveys/{survey_id}/export.xlsx")
    assert openpyxl.load_workbook(io.BytesIO(xlsx.content))["回答"]["A2"].value == "011002"
    assert (await soumu.client.get(f"/t/{SOUMU}/surveys/{survey_id}/responses/{SAPPORO}")).status_code == 200
    assert (await soumu.client.get(f"/t/{SOUMU}/surveys/{survey_id}/responses/{HAKODATE}")).status_code == 404
    delivered = await soumu.client.get(f"/api/v1/t/{SOUMU}/surveys/{survey_id}/responses/{SAPPORO}")
    assert delivered.status_code == 200 and delivered.json()["answers"]["q2"] == "12"
    missing = await soumu.client.get(f"/api/v1/t/{SOUMU}/surveys/{survey_id}/responses/{HAKODATE}")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith(PROBLEM)
    published = await soumu.client.post(f"/t/{SOUMU}/surveys/{survey_id}/publish", data={"csrf_token": soumu.csrf})
    assert published.status_code == 303
    _japanese(await soumu.client.get(f"/t/{SOUMU}/surveys"), warned, progress,
              await soumu.client.get(f"/t/{SOUMU}/surveys/{survey_id}/responses/{SAPPORO}"),
              await clerk.client.get(f"/t/{SAPPORO}/surveys/responses/{rid}"), await clerk.client.get(f"/t/{SAPPORO}/surveys"),
              await hokkaido.client.get(f"/t/{HOKKAIDO}/surveys/relay/{SOUMU}/{survey_id}"),
              await hokkaido.client.get(f"/t/{HOKKAIDO}/surveys/relay/responses/{SAPPORO}/{rid}"),
              await hakodate.client.get(f"/t/{HAKODATE}/surveys/responses/{hid}"),
              await hakodate.client.get("/surveys/results"), await hakodate.client.get(f"/surveys/results/{SOUMU}/{survey_id}"))
    public = await hakodate.client.get(f"/surveys/results/{SOUMU}/{survey_id}?q=q2")
    assert public.status_code == 200 and "秘匿" in public.text and ">12<" not in public.text
    api = (await hakodate.client.get(f"/api/v1/surveys/results/{SOUMU}/{survey_id}", params={"q": "q2"})).json()
    assert api["rows"][0]["cells"]["政令市"] == {"suppressed": True} and api["total"] == {"suppressed": True}
    listed = (await hakodate.client.get("/api/v1/surveys/results")).json()
    assert any(x["id"] == survey_id and x["sender"] == "総務省" for x in listed)
    bad_q = await hakodate.client.get(f"/api/v1/surveys/results/{SOUMU}/{survey_id}", params={"q": "q9"})
    assert bad_q.status_code == 422 and bad_q.headers["content-type"].startswith(PROBLEM)


async def test_a_system_answers_with_a_scoped_key_and_cannot_certify(session, staff) -> None:
    soumu = await staff(SOUMU, "admin")
    made = await soumu.client.post(f"/api/v1/t/{SOUMU}/surveys", json={
        "title": "API で答える調査", "deadline": DEADLINE, "relayed": False, "target_kind": "list",
        "codes": [SAPPORO, HAKODATE], "questions": [{"type": "number", "label": "端末数", "required": True}]})
    assert made.status_code == 201, made.text
    survey = made.json()
    assert survey["targets"] == 2 and survey["burden"].startswith("2 団体 × 30 分")
    assert (await soumu.client.post(f"/api/v1/t/{SOUMU}/surveys/{survey['id']}/send", json={})).status_code == 200
    admin = await staff(SAPPORO, "admin")
    page = await admin.client.post(f"/t/{SAPPORO}/apikeys", data={
        "name": "調査回答システム", "kind": "live", "permissions": ["surveys.response.read", "surveys.response.write"],
        "rate_limit_per_minute": "600", "csrf_token": admin.csrf})
    token = re.search(r'<code id="new-api-key">([^<]+)</code>', page.text).group(1)
    key = {"Authorization": f"Bearer {token}"}
    listed = (await admin.client.get(f"/api/v1/t/{SAPPORO}/surveys", headers=key)).json()
    (item,) = [r for r in listed["received"] if r["survey_title"] == "API で答える調査"]
    rid = item["response_id"]
    wrong = await admin.client.put(f"/api/v1/t/{SAPPORO}/surveys/responses/{rid}/answers", headers=key,
                                   json={"answers": {"q1": "たくさん"}, "expected_version": 1})
    assert wrong.status_code == 200 and wrong.json()["problems"][0]["message"] == "「端末数」は数値で入力してください（入力: 「たくさん」）。"
    stale = await admin.client.put(f"/api/v1/t/{SAPPORO}/surveys/responses/{rid}/answers", headers=key,
                                   json={"answers": {"q1": "40"}, "expected_version": 1})
    assert stale.status_code == 409 and stale.headers["content-type"].startswith(PROBLEM)
    assert "ほかの職員がこの回答を先に保存しました" in stale.json()["detail"]
    good = await admin.client.put(f"/api/v1/t/{SAPPORO}/surveys/responses/{rid}/answers", headers=key,
                                  json={"answers": {"q1": "40"}, "expected_version": 2})
    assert good.status_code == 200 and good.json()["problems"] == []
    refused = await admin.client.post(f"/api/v1/t/{SAPPORO}/surveys/responses/{rid}/certify", headers=key, json={})
    assert refused.status_code == 403
    early = await admin.client.post(f"/api/v1/t/{SAPPORO}/surveys/responses/{rid}/submit", headers=key, json={})
    assert early.status_code == 409 and "決裁が必要です" in early.json()["detail"]


async def test_reminders_reach_the_smtp_server_exactly_once(connection, session, staff, smtp, clock) -> None:
    soumu = await staff(SOUMU, "admin")
    clerk = await staff(SAPPORO, "staff")
    made = (await soumu.client.post(f"/api/v1/t/{SOUMU}/surveys", json={
        "title": "期限の近い調査", "deadline": DEADLINE, "target_kind": "list", "codes": [SAPPORO],
        "questions": [{"type": "text", "label": "ご意見"}]})).json()
    await soumu.client.post(f"/api/v1/t/{SOUMU}/surveys/{made['id']}/send", json={})
    rid = await _response_id(session, SAPPORO, made["id"])
    await clerk.client.put(f"/api/v1/t/{SAPPORO}/surveys/responses/{rid}/answers",
                           json={"answers": {}, "contact_email": "joho@city.sapporo.example.jp"})
    deadline = date.fromisoformat(DEADLINE)
    await bind_tenant(session, await registry_service.tenant_for(session, SOUMU))
    survey = await service.get_survey(session, made["id"])
    assert reminders.due_stages(deadline, deadline - timedelta(days=1)) == ["arrival", "d7", "d1"]
    assert reminders.next_run(deadline, deadline - timedelta(days=3)) == deadline - timedelta(days=1)
    for _ in range(2):  # the sweep of the day before the deadline, run twice
        await reminders.sweep(session, survey, today=deadline - timedelta(days=1))
        await session.commit()
    clock.advance(60)
    await _runner(connection, clock).run_until_idle()
    subjects = sorted(m["Subject"] for m in smtp.messages)
    assert subjects == ["【総務省】期限の近い調査: 回答期限の7日前です", "【総務省】期限の近い調査: 回答期限は明日です",
                        "【総務省】期限の近い調査: 調査が届きました"]
    assert all(m["To"] == "joho@city.sapporo.example.jp" for m in smtp.messages)
    async with unscoped(session, "test"):
        notices = (await session.scalars(select(Notice).where(Notice.principal_id == clerk.principal_id))).all()
        assert sorted(n.subject for n in notices) == subjects
        assert await session.scalar(select(func.count()).select_from(Notification).where(
            Notification.template_key == "surveys.reminder", Notification.lg_code == SAPPORO)) >= 6
