"""Issue 9 items 5 and 7 over HTTP: the dashboard counts registrations and persons after 名寄せ in
every breakdown, exactly for the prefecture's own area; the shelter crowding setting warns and
occupancy above capacity asks for confirmation; the shelter form reports every error at once and
keeps the input; 一括名寄せ shows what it will do before it does it and is undone as one batch."""

from __future__ import annotations

import re

from sqlalchemy import select

from kiban.core.registry import service as registry
from kiban.core.tenancy import settings_service
from kiban.core.tenancy.context import as_tenant, unscoped
from kiban.modules.disaster import matching
from kiban.modules.disaster.models import MatchDecision, Shelter
from tests.modules.test_disaster_web import (
    CABINET_OFFICE,
    ISHIKAWA,
    KANAZAWA,
    TOYAMA,
    WAJIMA,
    _open_disaster,
    _register,
    _shelter,
)


async def _same_person_twice(staff) -> tuple[str, str, str, object, object]:
    """高橋健太 registered by 輪島市 and again (髙, half-width kana) by 金沢市, confirmed by 金沢市."""
    matching.forget()
    disaster = await _open_disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    father = await _register(wajima, WAJIMA, disaster, whereabouts="home", care_needs="高齢者")
    kanazawa = await staff(KANAZAWA, "staff")
    again = await _register(kanazawa, KANAZAWA, disaster, whereabouts="relatives", family_name="髙橋",
                            family_kana="ﾀｶﾊｼ", given_kana="ｹﾝﾀ", phone="", household_key="K-1", care_needs="高齢者")
    confirmed = await kanazawa.client.post(f"/t/{KANAZAWA}/disasters/{disaster}/matches", data={
        "record_id": again, "other_id": father, "decision": "confirmed", "csrf_token": kanazawa.csrf})
    assert confirmed.status_code == 303
    await accept_request(wajima, WAJIMA, disaster, father)  # across municipalities the owner accepts first
    return disaster, father, again, wajima, kanazawa


async def accept_request(person, code: str, disaster: str, record: str) -> None:
    """The owner of ``record`` accepts the confirmation waiting on it."""
    page = await person.client.get(f"/t/{code}/disasters/{disaster}/records/{record}")
    decision = re.search(r'/matches/([0-9a-f-]+)/accept"', page.text).group(1)
    accepted = await person.client.post(f"/t/{code}/disasters/{disaster}/matches/{decision}/accept",
                                        data={"csrf_token": person.csrf})
    assert accepted.status_code == 303, accepted.text


async def test_every_breakdown_counts_registrations_and_persons_after_matching(staff) -> None:
    disaster, _, _, wajima, _ = await _same_person_twice(staff)
    board = (await wajima.client.get(f"/api/v1/t/{WAJIMA}/disasters/{disaster}/dashboard")).json()
    assert (board["registrations"], board["people"]) == (2, 1)
    damage = {row["label"]: (row["registrations"], row["people"]) for row in board["tables"]["住家の被害"]}
    assert damage == {"全壊": (2, 1)}
    assert [(r["registrations"], r["people"]) for r in board["tables"]["要配慮者"]] == [(2, 1)]
    registered = {row["label"]: (row["registrations"], row["people"]) for row in board["tables"]["登録した市町村"]}
    assert registered == {"輪島市": (1, 1), "金沢市": (1, 1)}
    page = await wajima.client.get(f"/t/{WAJIMA}/disasters/{disaster}/dashboard")
    assert "登録件数" in page.text and "人数（名寄せ後）" in page.text
    exported = (await wajima.client.get(f"/t/{WAJIMA}/disasters/{disaster}/dashboard.csv")).content.decode("utf-8-sig")
    assert "区分,項目,登録件数,人数（名寄せ後）" in exported and "住家の被害,全壊,2,1" in exported


async def test_the_responsible_prefecture_sees_exact_counts_for_its_area(staff) -> None:
    disaster, *_ = await _same_person_twice(staff)
    ishikawa = await staff(ISHIKAWA, "viewer")
    board = (await ishikawa.client.get(f"/api/v1/t/{ISHIKAWA}/disasters/{disaster}/dashboard")).json()
    assert board["scope"] == "prefecture" and board["small_count_suppressed_below"] is None
    assert {"label": "全壊", "count": 2, "registrations": 2, "people": 1} in board["tables"]["住家の被害"]
    page = await ishikawa.client.get(f"/t/{ISHIKAWA}/disasters/{disaster}/dashboard")
    assert "10未満" not in page.text
    # The whole disaster stays suppressed, for the prefecture as for 内閣府.
    national = await ishikawa.client.get(f"/t/{ISHIKAWA}/disasters/{disaster}/dashboard", params={"view": "national"})
    assert "10未満" in national.text
    cabinet = (await (await staff(CABINET_OFFICE, "viewer")).client.get(
        f"/api/v1/t/{CABINET_OFFICE}/disasters/{disaster}/dashboard")).json()
    assert cabinet["small_count_suppressed_below"] == 10
    assert {"label": "全壊", "count": None, "registrations": None, "people": None} in cabinet["tables"]["住家の被害"]


async def _update_shelter(person, disaster: str, shelter: str, version: int, **values):
    form = {"shelter_id": shelter, "expected_version": str(version), "name": "輪島中学校", "address": "",
            "capacity": "100", "occupancy": "95", "is_open": "on", "needs": "", "csrf_token": person.csrf}
    form.update(values)
    return await person.client.post(f"/t/{WAJIMA}/disasters/{disaster}/shelters", data=form)


async def test_the_crowding_setting_warns_on_the_dashboard_and_the_shelter(staff, session) -> None:
    disaster = await _open_disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    shelter = await _shelter(wajima, WAJIMA, disaster, "輪島中学校")
    assert (await _update_shelter(wajima, disaster, shelter, 1)).status_code == 303  # 95 of 100
    board = (await wajima.client.get(f"/api/v1/t/{WAJIMA}/disasters/{disaster}/dashboard")).json()
    assert board["shelter_warning_percent"] == 90
    assert board["crowded_shelters"] == [{"name": "輪島中学校", "municipality": "輪島市", "occupancy": 95,
                                          "capacity": 100, "percent": 95}]
    page = await wajima.client.get(f"/t/{WAJIMA}/disasters/{disaster}/dashboard")
    assert "混雑している避難所（収容率 90% 以上）" in page.text and "95／100" in page.text
    assert "混雑（収容率 95%）" in (await wajima.client.get(f"/t/{WAJIMA}/disasters/{disaster}")).text
    assert 'id="crowding"' in (await wajima.client.get(f"/t/{WAJIMA}/disasters/{disaster}/shelters/{shelter}")).text
    ishikawa = (await (await staff(ISHIKAWA, "viewer")).client.get(
        f"/api/v1/t/{ISHIKAWA}/disasters/{disaster}/dashboard")).json()
    assert [c["name"] for c in ishikawa["crowded_shelters"]] == ["輪島中学校"]  # the prefecture's area

    # 輪島市 decides its own threshold: 96 % and 95 of 100 is no longer crowded.
    tenant = await registry.tenant_for(session, WAJIMA)
    async with as_tenant(session, tenant):
        await settings_service.set_setting(session, "disaster.shelter_warning_percent", "96", actor="防災課 試験")
        await session.flush()
    board = (await wajima.client.get(f"/api/v1/t/{WAJIMA}/disasters/{disaster}/dashboard")).json()
    assert board["shelter_warning_percent"] == 96 and board["crowded_shelters"] == []
    assert "収容率が 96% 以上の避難所はありません" in (await wajima.client.get(
        f"/t/{WAJIMA}/disasters/{disaster}/dashboard")).text


async def test_occupancy_above_capacity_is_saved_only_when_confirmed(staff, session) -> None:
    disaster = await _open_disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    shelter = await _shelter(wajima, WAJIMA, disaster, "輪島中学校")
    over = await _update_shelter(wajima, disaster, shelter, 1, occupancy="130", needs="毛布 50 枚")
    assert over.status_code == 422
    assert "避難者数 130 人が収容人数 100 人を超えています" in over.text
    assert 'name="confirm_over_capacity"' in over.text
    assert 'value="130"' in over.text and "毛布 50 枚" in over.text  # the input is kept
    assert f'name="shelter_id" value="{shelter}"' in over.text  # still the same shelter
    async with unscoped(session, "test"):
        stored = await session.scalar(select(Shelter).where(Shelter.id == shelter))
        await session.refresh(stored)
        assert (stored.occupancy, stored.version) == (0, 1)
    confirmed = await _update_shelter(wajima, disaster, shelter, 1, occupancy="130", confirm_over_capacity="yes")
    assert confirmed.status_code == 303
    async with unscoped(session, "test"):
        await session.refresh(stored)
        assert (stored.occupancy, stored.version) == (130, 2)


async def test_the_shelter_form_shows_every_error_at_once_and_keeps_the_input(staff, session) -> None:
    disaster = await _open_disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    shelter = await _shelter(wajima, WAJIMA, disaster, "輪島中学校")
    bad = await _update_shelter(wajima, disaster, shelter, 1, name=" ", occupancy="たくさん", capacity="-3",
                                address="輪島市河井町9-9")
    assert bad.status_code == 422
    for message in ("入力内容を確認してください（3 件）", "避難所の名称を入力してください", "避難者数「たくさん」",
                    "収容人数「-3」"):
        assert message in bad.text, message
    assert 'value="たくさん"' in bad.text and 'value="-3"' in bad.text and 'value="輪島市河井町9-9"' in bad.text
    assert bad.text.count('aria-invalid="true"') == 3
    assert bad.text.count('class="required"') >= 3  # 名称, 避難者数, 収容人数 marked 必須
    async with unscoped(session, "test"):
        stored = await session.scalar(select(Shelter).where(Shelter.id == shelter))
        assert stored.version == 1


async def test_batch_matching_is_previewed_applied_and_undone_as_one(staff, session) -> None:
    matching.forget()
    disaster = await _open_disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    await _register(wajima, WAJIMA, disaster, whereabouts="home")
    await _register(wajima, WAJIMA, disaster, whereabouts="home", given_name="美咲", given_kana="ミサキ",
                    birth_date="1982-08-03", sex="female")
    kanazawa = await staff(KANAZAWA, "staff")
    again = await _register(kanazawa, KANAZAWA, disaster, whereabouts="relatives", family_name="髙橋",
                            family_kana="ﾀｶﾊｼ", given_kana="ｹﾝﾀ", phone="")
    # A weaker look-alike: same name, birth date one digit off, another address (borderline).
    await _register(kanazawa, KANAZAWA, disaster, whereabouts="relatives", birth_date="1980-05-13", phone="",
                    home_address="輪島市門前町1", household_key="Z")
    ishikawa = await staff(ISHIKAWA, "admin")
    run = await ishikawa.client.post(f"/t/{ISHIKAWA}/disasters/{disaster}/linkage", data={"csrf_token": ishikawa.csrf})
    assert run.status_code == 303
    batch_url = run.headers["location"]
    preview = await ishikawa.client.get(batch_url)
    assert preview.status_code == 200 and "一括名寄せの確認" in preview.text
    assert "まだ何も結び付けていません" in preview.text
    assert "境界（結び付けない・職員が確認）" in preview.text and "結び付ける</td>" in preview.text
    assert "生年月日が一致" in preview.text and "%</td>" in preview.text  # reasons and scores
    assert "金沢市が登録" in preview.text and "髙橋 健太" in preview.text  # its own area, by name
    async with unscoped(session, "test"):
        assert (await session.scalars(select(MatchDecision).where(MatchDecision.disaster_id == disaster))).all() == []
    # Only the body that ran it may apply it; a municipality never.
    assert (await wajima.client.post(f"/t/{WAJIMA}{batch_url.split(ISHIKAWA, 1)[1]}/apply",
                                     data={"csrf_token": wajima.csrf})).status_code in (403, 404)
    toyama = await staff(TOYAMA, "admin")
    assert (await toyama.client.post(f"/t/{TOYAMA}/disasters/{disaster}/linkage",
                                     data={"csrf_token": toyama.csrf})).status_code == 404
    assert (await toyama.client.get(f"/t/{TOYAMA}{batch_url.split(ISHIKAWA, 1)[1]}")).status_code == 404

    applied = await ishikawa.client.post(f"{batch_url}/apply", data={"csrf_token": ishikawa.csrf})
    assert applied.status_code == 303
    report = await ishikawa.client.get(applied.headers["location"])
    assert "1 組を同じ人として結び付けました" in report.text and "この一括名寄せを取り消す" in report.text
    twice = await ishikawa.client.post(f"{batch_url}/apply", data={"csrf_token": ishikawa.csrf})
    assert twice.status_code == 409
    async with unscoped(session, "test"):
        links = (await session.scalars(select(MatchDecision).where(MatchDecision.disaster_id == disaster))).all()
    assert [(d.decision, d.batch_id is not None) for d in links] == [("auto", True)]
    page = await kanazawa.client.get(f"/t/{KANAZAWA}/disasters/{disaster}/records/{again}")
    assert 'id="linked"' in page.text

    unconfirmed = await ishikawa.client.post(f"{batch_url}/undo", data={"csrf_token": ishikawa.csrf})
    assert unconfirmed.status_code == 422 and "確認のチェック" in unconfirmed.text
    undone = await ishikawa.client.post(f"{batch_url}/undo", data={"confirm": "yes", "csrf_token": ishikawa.csrf})
    assert undone.status_code == 303
    assert "結び付けた 1 組の結び付けを取り消しました" in (await ishikawa.client.get(undone.headers["location"])).text
    async with unscoped(session, "test"):
        for d in links:
            await session.refresh(d)
    assert all(d.reverted_at is not None for d in links)
    board = (await (await staff(CABINET_OFFICE, "viewer")).client.get(
        f"/api/v1/t/{CABINET_OFFICE}/disasters/{disaster}/dashboard")).json()
    assert (board["registrations"], board["people"]) == (4, 4)
