"""施設予約 through HTTP: staff define a facility, residents register, see availability, book
and cancel by the rules; the loser of a slot is told in Japanese; a lottery is drawn by a job,
reproducibly and audited; iCalendar feeds; another municipality sees nothing."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from icalendar import Calendar
from sqlalchemy import select

from kiban.core.audit.models import AuditEntry
from kiban.core.identity.devca import DevCA, load_card
from kiban.core.jobs import runner as job_runner
from kiban.core.jobs import service as jobs
from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import bind_tenant
from kiban.kit.settings import get_settings
from kiban.modules.reservations import lottery, service
from kiban.modules.reservations.models import Booking, LotteryEntry
from tests.conftest import csrf_of
from tests.factories import HAKODATE, SAPPORO

PROBLEM = "application/problem+json"
HOURS = {f"{edge}_{d}": value for d in range(7) for edge, value in (("open", "09:00"), ("close", "21:00"))}
FACILITY = {"name": "中央体育館", "kind": "gym", "address": "札幌市中央区1-1", "description": "", "eligibility": "residents",
            "slot_minutes": "120", "booking_window_days": "30", "cancel_deadline_hours": "24",
            "max_active_per_person": "2", **HOURS, "room_name": "アリーナ全面", "room_capacity": "200", "room_fee_yen": "3000"}


@pytest.fixture
def ca(tmp_path, monkeypatch) -> DevCA:
    monkeypatch.setenv("KIBAN_JPKI_DEV_CA_ENABLED", "1")
    monkeypatch.setenv("KIBAN_JPKI_DEV_CA_DIR", str(tmp_path / "dev-ca"))
    get_settings.cache_clear()
    authority = DevCA(tmp_path / "dev-ca")
    authority.init()
    yield authority
    get_settings.cache_clear()


async def resident(new_client, ca: DevCA, name: str, lg_code: str = SAPPORO, *, kind: str = "resident",
                   register: bool = True):
    client = new_client()
    card = load_card(ca.issue(name))
    page = await client.get("/signin/card")
    challenge_id = re.search(r'name="challenge_id" value="([^"]+)"', page.text).group(1)
    nonce = re.search(r'<code id="challenge">([^<]+)</code>', page.text).group(1)
    signed_in = await client.post("/signin/card", data={
        "challenge_id": challenge_id, "certificate": card.certificate_pem, "signature": card.sign(nonce),
        "csrf_token": csrf_of(client)})
    assert signed_in.status_code == 303
    if register:
        done = await client.post(f"/t/{lg_code}/reservations/register", data={
            "kind": kind, "name": f"{name} 様", "group_name": "バレー部" if kind == "group" else "",
            "email": f"{name}@example.jp", "csrf_token": csrf_of(client)})
        assert done.status_code == 303, done.text[:500]
    return client


async def _facility(sapporo, **changes) -> tuple[str, str]:
    response = await sapporo.client.post(f"/t/{SAPPORO}/facilities", data={**FACILITY, **changes, "csrf_token": sapporo.csrf})
    assert response.status_code == 303, response.text[:800]
    facility_id = response.headers["location"].split("/")[-1].split("?")[0]
    detail = (await sapporo.client.get(f"/api/v1/t/{SAPPORO}/facilities/{facility_id}")).json()
    return facility_id, detail["rooms"][0]["id"]


def _slot(days: int = 2, hour: int = 9) -> str:
    return f"{service.today_jst() + timedelta(days=days):%Y-%m-%d}T{hour:02d}:00"


async def test_staff_define_a_facility_and_bad_input_shows_every_error_and_stores_nothing(staff) -> None:
    sapporo = await staff(SAPPORO, "staff")
    bad = await sapporo.client.post(f"/t/{SAPPORO}/facilities", data={
        **FACILITY, "name": "", "slot_minutes": "abc", "open_1": "25:00", "csrf_token": sapporo.csrf})
    assert bad.status_code == 422
    assert "施設名を入力してください" in bad.text and "1枠の長さ（分）は15から720" in bad.text and "火曜日" in bad.text
    assert 'value="中央区' not in bad.text and "札幌市中央区1-1" in bad.text  # the input is kept
    assert (await sapporo.client.get(f"/api/v1/t/{SAPPORO}/facilities")).json() == []

    facility_id, room_id = await _facility(sapporo)
    page = await sapporo.client.get(f"/t/{SAPPORO}/facilities/{facility_id}")
    assert page.status_code == 200 and "アリーナ全面" in page.text
    room = await sapporo.client.post(f"/t/{SAPPORO}/facilities/{facility_id}/rooms",
                                     data={"name": "サブアリーナ", "fee_yen": "1500", "csrf_token": sapporo.csrf})
    assert room.status_code == 303
    twin = await sapporo.client.post(f"/api/v1/t/{SAPPORO}/facilities", json={
        "name": "市民会議室", "kind": "meeting", "eligibility": "anyone", "slot_minutes": 60, "booking_window_days": 10,
        "cancel_deadline_hours": 0, "max_active_per_person": 5, "opening_hours": {"0": ["09:00", "17:00"]},
        "rooms": [{"name": "第1会議室", "fee_yen": 500}]})
    assert twin.status_code == 201 and twin.json()["rooms"][0]["name"] == "第1会議室"
    wrong = await sapporo.client.post(f"/api/v1/t/{SAPPORO}/facilities", json={
        "name": "", "kind": "pool", "eligibility": "anyone", "slot_minutes": 5, "booking_window_days": 10,
        "cancel_deadline_hours": 0, "max_active_per_person": 5, "opening_hours": {}})
    assert wrong.status_code == 422 and wrong.headers["content-type"].startswith(PROBLEM)
    assert {e["field"] for e in wrong.json()["errors"]} >= {"name", "kind", "slot_minutes", "open_0"}
    names = [f["name"] for f in (await sapporo.client.get(f"/api/v1/t/{SAPPORO}/facilities")).json()]
    assert sorted(names) == ["中央体育館", "市民会議室"]

    viewer = await staff(SAPPORO, "viewer")
    assert (await viewer.client.get(f"/t/{SAPPORO}/facilities/{facility_id}")).status_code == 200
    refused = await viewer.client.post(f"/t/{SAPPORO}/facilities/{facility_id}/rooms",
                                       data={"name": "x", "fee_yen": "1", "csrf_token": viewer.csrf})
    assert refused.status_code == 403
    hakodate = await staff(HAKODATE, "admin")
    assert (await hakodate.client.get(f"/t/{SAPPORO}/facilities/{facility_id}")).status_code == 404
    assert (await hakodate.client.get(f"/api/v1/t/{HAKODATE}/facilities/{facility_id}")).status_code == 404
    anonymous = await sapporo.client.__class__(transport=sapporo.client._transport, base_url="http://testserver").get(
        f"/api/v1/t/{SAPPORO}/facilities")
    assert anonymous.status_code == 401


async def test_a_resident_books_and_the_second_is_refused_in_japanese(staff, ca, new_client, session) -> None:
    sapporo = await staff(SAPPORO, "staff")
    facility_id, room_id = await _facility(sapporo)
    hanako = await resident(new_client, ca, "hanako")
    taro = await resident(new_client, ca, "taro")
    calendar = await hanako.get(f"/t/{SAPPORO}/reservations/facilities/{facility_id}?from={_slot()[:10]}")
    assert calendar.status_code == 200 and "予約する" in calendar.text and 'name="viewport"' in calendar.text
    booked = await hanako.post(f"/t/{SAPPORO}/reservations/facilities/{facility_id}/book",
                               data={"room_id": room_id, "starts_at": _slot(), "csrf_token": csrf_of(hanako)})
    assert booked.status_code == 303
    mine = await hanako.get(booked.headers["location"])
    assert "予約しました" in mine.text and "予約済み" in mine.text

    lost = await taro.post(f"/t/{SAPPORO}/reservations/facilities/{facility_id}/book",
                           data={"room_id": room_id, "starts_at": _slot(), "csrf_token": csrf_of(taro)})
    assert lost.status_code == 409 and "この枠はすでに予約されています" in lost.text
    twin = await taro.post(f"/api/v1/t/{SAPPORO}/reservations/facilities/{facility_id}/bookings",
                           json={"room_id": room_id, "starts_at": _slot()})
    assert twin.status_code == 409 and twin.headers["content-type"].startswith(PROBLEM)
    assert "この枠はすでに予約されています" in twin.json()["detail"]

    public = await new_client().get(f"/api/v1/t/{SAPPORO}/reservations/facilities/{facility_id}/availability",
                                    params={"from": _slot()[:10]})
    states = [s["state"] for d in public.json()["days"][:1] for s in d["slots"]]
    assert states[0] == "booked" and "hanako" not in public.text
    assert "あなたの予約" in (await hanako.get(f"/t/{SAPPORO}/reservations/facilities/{facility_id}?from={_slot()[:10]}")).text

    # the rules: the window, the per-person limit, a slot that does not exist
    far = await taro.post(f"/api/v1/t/{SAPPORO}/reservations/facilities/{facility_id}/bookings",
                          json={"room_id": room_id, "starts_at": _slot(days=40)})
    assert far.status_code == 422 and "30日先" in far.json()["detail"]
    odd = await taro.post(f"/api/v1/t/{SAPPORO}/reservations/facilities/{facility_id}/bookings",
                          json={"room_id": room_id, "starts_at": _slot(hour=10)})
    assert odd.status_code == 422 and "その時刻に始まる枠はありません" in odd.json()["detail"]
    for hour in (11, 13):
        ok = await taro.post(f"/api/v1/t/{SAPPORO}/reservations/facilities/{facility_id}/bookings",
                             json={"room_id": room_id, "starts_at": _slot(hour=hour)})
        assert ok.status_code == 201, ok.text
    third = await taro.post(f"/api/v1/t/{SAPPORO}/reservations/facilities/{facility_id}/bookings",
                            json={"room_id": room_id, "starts_at": _slot(hour=15)})
    assert third.status_code == 422 and "1人2件まで" in third.json()["detail"]

    # cancelling: confirmed first; the slot is free again and can be booked
    booking_id = booked.headers["location"].split("booked=")[1]
    confirm = await hanako.get(f"/t/{SAPPORO}/reservations/mine/{booking_id}/cancel")
    assert confirm.status_code == 200 and "取り消す" in confirm.text and "取消は元に戻せません" in confirm.text
    done = await hanako.post(f"/t/{SAPPORO}/reservations/mine/{booking_id}/cancel", data={"csrf_token": csrf_of(hanako)})
    assert done.status_code == 303
    again = await hanako.post(f"/api/v1/t/{SAPPORO}/reservations/mine/{booking_id}/cancel", json={})
    assert again.status_code == 422 and "すでに取り消されています" in again.json()["detail"]
    rebooked = await new_client().post(f"/api/v1/t/{SAPPORO}/reservations/facilities/{facility_id}/bookings",
                                       json={"room_id": room_id, "starts_at": _slot()})
    assert rebooked.status_code == 401  # not signed in
    mine_twin = (await taro.get(f"/api/v1/t/{SAPPORO}/reservations/mine")).json()
    assert len(mine_twin["bookings"]) == 2 and mine_twin["calendar_url"]
    await taro.post(f"/api/v1/t/{SAPPORO}/reservations/mine/{mine_twin['bookings'][0]['id']}/cancel", json={})
    taken = await taro.post(f"/api/v1/t/{SAPPORO}/reservations/facilities/{facility_id}/bookings",
                            json={"room_id": room_id, "starts_at": _slot()})
    assert taken.status_code == 201  # hanako's cancelled booking no longer holds the slot

    await bind_tenant(session, await registry_service.tenant_for(session, SAPPORO))
    rows = (await session.scalars(select(Booking).where(Booking.facility_id == facility_id))).all()
    assert sorted(b.status for b in rows) == ["active", "active", "cancelled", "cancelled"]
    actions = (await session.scalars(select(AuditEntry.action).where(AuditEntry.action.like("reservations.booking.%")))).all()
    assert actions.count("reservations.booking.created") == 4 and actions.count("reservations.booking.cancelled") == 2


async def test_cancelling_after_the_deadline_and_eligibility_are_refused(staff, ca, new_client) -> None:
    sapporo = await staff(SAPPORO, "staff")
    facility_id, room_id = await _facility(sapporo, cancel_deadline_hours="72", eligibility="groups")
    hanako = await resident(new_client, ca, "hanako")
    refused = await hanako.post(f"/api/v1/t/{SAPPORO}/reservations/facilities/{facility_id}/bookings",
                                json={"room_id": room_id, "starts_at": _slot(days=1)})
    assert refused.status_code == 422 and "登録団体だけが予約できます" in refused.json()["detail"]
    club = await resident(new_client, ca, "club", kind="group")
    pending = await club.post(f"/api/v1/t/{SAPPORO}/reservations/facilities/{facility_id}/bookings",
                              json={"room_id": room_id, "starts_at": _slot(days=1)})
    assert pending.status_code == 422 and "承認されるまで" in pending.json()["detail"]
    users = (await sapporo.client.get(f"/api/v1/t/{SAPPORO}/facility-users")).json()
    group = next(u for u in users if u["kind"] == "group")
    approved = await sapporo.client.post(f"/t/{SAPPORO}/facility-users/{group['principal_id']}/approve",
                                         data={"csrf_token": sapporo.csrf})
    assert approved.status_code == 303
    booked = await club.post(f"/api/v1/t/{SAPPORO}/reservations/facilities/{facility_id}/bookings",
                             json={"room_id": room_id, "starts_at": _slot(days=1)})
    assert booked.status_code == 201
    late = await club.get(f"/t/{SAPPORO}/reservations/mine/{booked.json()['id']}/cancel")
    assert late.status_code == 422 and "取消の期限" in late.text and "取り消す</button>" not in late.text
    twin = await club.post(f"/api/v1/t/{SAPPORO}/reservations/mine/{booked.json()['id']}/cancel", json={})
    assert twin.status_code == 422 and "取消の期限" in twin.json()["detail"]
    # staff may still cancel, after confirming; the facility's deletion is confirmed too
    confirm = await sapporo.client.get(f"/t/{SAPPORO}/facilities/{facility_id}/bookings/{booked.json()['id']}/cancel/confirm")
    assert confirm.status_code == 200 and "バレー部" in confirm.text
    assert (await sapporo.client.post(f"/t/{SAPPORO}/facilities/{facility_id}/bookings/{booked.json()['id']}/cancel",
                                      data={"csrf_token": sapporo.csrf})).status_code == 303
    delete = await sapporo.client.get(f"/t/{SAPPORO}/facilities/{facility_id}/delete/confirm")
    assert delete.status_code == 200 and "削除は元に戻せません" in delete.text
    assert (await sapporo.client.post(f"/t/{SAPPORO}/facilities/{facility_id}/delete",
                                      data={"csrf_token": sapporo.csrf})).status_code == 303
    assert (await new_client().get(f"/t/{SAPPORO}/reservations/facilities/{facility_id}")).status_code == 404


async def test_a_lottery_is_drawn_by_a_job_reproducibly_and_audited(staff, ca, new_client, session) -> None:
    sapporo = await staff(SAPPORO, "staff")
    facility_id, room_id = await _facility(sapporo)
    slots = [_slot(days=5, hour=9), _slot(days=5, hour=11)]
    opened = await sapporo.client.post(f"/api/v1/t/{SAPPORO}/facilities/{facility_id}/lotteries", json={
        "title": "週末の抽選", "closes_at": _slot(days=3), "slots": [{"room_id": room_id, "starts_at": s} for s in slots]})
    assert opened.status_code == 201, opened.text
    lottery_id = opened.json()["id"]
    people = [await resident(new_client, ca, f"person{i}") for i in range(4)]
    held = await people[0].post(f"/api/v1/t/{SAPPORO}/reservations/facilities/{facility_id}/bookings",
                                json={"room_id": room_id, "starts_at": slots[0]})
    assert held.status_code == 422 and "抽選" in held.json()["detail"]
    for person in people:
        for s in slots:
            applied = await person.post(f"/t/{SAPPORO}/reservations/lotteries/{lottery_id}/apply",
                                        data={"room_id": room_id, "starts_at": s, "csrf_token": csrf_of(person)})
            assert applied.status_code == 303
    twice = await people[0].post(f"/api/v1/t/{SAPPORO}/reservations/lotteries/{lottery_id}/entries",
                                 json={"room_id": room_id, "starts_at": slots[0]})
    assert twice.status_code == 409

    started = await sapporo.client.post(f"/t/{SAPPORO}/facilities/{facility_id}/lotteries/{lottery_id}/draw",
                                        data={"csrf_token": sapporo.csrf})
    assert started.status_code == 303
    page = await sapporo.client.get(started.headers["location"])
    assert "抽選中" in page.text and 'id="draw-progress"' in page.text
    late = await people[0].post(f"/api/v1/t/{SAPPORO}/reservations/lotteries/{lottery_id}/entries",
                                json={"room_id": room_id, "starts_at": slots[1]})
    assert late.status_code in (409, 422)

    await bind_tenant(session, await registry_service.tenant_for(session, SAPPORO))
    found = await lottery.get_lottery(session, lottery_id)
    job = await jobs.get(session, found.job_id)
    assert await job_runner.run_now(session, job) == "done"
    result = (await sapporo.client.get(f"/api/v1/t/{SAPPORO}/facilities/{facility_id}/lotteries/{lottery_id}")).json()
    assert result["status"] == "drawn" and result["applicants"] == 8 and result["verified"] is True
    assert result["job_state"] == "done" and len(result["result"]) == 2

    entries = (await session.scalars(select(LotteryEntry).where(LotteryEntry.lottery_id == lottery_id)
                                      .execution_options(populate_existing=True))).all()
    for row in result["result"]:  # anyone can re-run the draw from the seed and the applications
        ids = [e.id for e in entries if service.slot_key(e.starts_at) == row["starts_at"]]
        assert lottery.rank(result["seed"], row["room_id"], row["starts_at"], ids)[0] == row["winner_entry"]
    assert sorted(e.status for e in entries) == ["lost"] * 6 + ["won"] * 2
    bookings = (await session.scalars(select(Booking).where(Booking.lottery_id == lottery_id))).all()
    assert len(bookings) == 2 and {b.source for b in bookings} == {"lottery"}
    audit = {e.action: e for e in (await session.scalars(select(AuditEntry).where(
        AuditEntry.target_id == lottery_id))).all()}
    assert audit["reservations.lottery.seed_fixed"].details["seed"] == result["seed"]
    assert audit["reservations.lottery.drawn"].details["winners"] == 2
    assert audit["reservations.lottery.drawn"].details["applicants"] == 8
    assert audit["reservations.lottery.seed_fixed"].seq < audit["reservations.lottery.drawn"].seq  # seed first
    from kiban.modules.reservations import notices

    if notices.notify_ready():  # winners and losers are told (core/notify), once each
        from kiban.core.notify.models import Notification

        told = (await session.scalars(select(Notification.template_key).where(
            Notification.template_key.like("reservations.lottery_%")))).all()
        assert sorted(told) == ["reservations.lottery_lost"] * 6 + ["reservations.lottery_won"] * 2
    shown = await sapporo.client.get(f"/t/{SAPPORO}/facilities/{facility_id}/lotteries/{lottery_id}")
    assert "抽選済み" in shown.text and result["seed"] in shown.text and "一致します" in shown.text


def test_the_draw_is_a_pure_function_of_seed_and_applications() -> None:
    ids = ["c", "a", "b", "d"]
    first = lottery.rank("seed-1", "room", "2026-12-01T00:00:00+00:00", ids)
    assert first == lottery.rank("seed-1", "room", "2026-12-01T00:00:00+00:00", list(reversed(ids)))
    assert sorted(first) == sorted(ids)
    others = {tuple(lottery.rank(f"seed-{n}", "room", "2026-12-01T00:00:00+00:00", ids))[0] for n in range(40)}
    assert others == set(ids)  # every applicant can win with some seed


async def test_icalendar_feeds_show_busy_slots_publicly_and_own_bookings_behind_a_secret(staff, ca, new_client) -> None:
    sapporo = await staff(SAPPORO, "staff")
    facility_id, room_id = await _facility(sapporo)
    hanako = await resident(new_client, ca, "hanako")
    assert (await hanako.post(f"/api/v1/t/{SAPPORO}/reservations/facilities/{facility_id}/bookings",
                              json={"room_id": room_id, "starts_at": _slot()})).status_code == 201
    public = await new_client().get(f"/t/{SAPPORO}/reservations/facilities/{facility_id}/calendar.ics")
    assert public.status_code == 200 and public.headers["content-type"].startswith("text/calendar")
    events = [c for c in Calendar.from_ical(public.content).walk("VEVENT")]
    assert len(events) == 1 and "予約済み" in str(events[0]["summary"])
    assert "hanako" not in public.text
    url = (await hanako.get(f"/api/v1/t/{SAPPORO}/reservations/mine")).json()["calendar_url"]
    own = await new_client().get(url)
    assert own.status_code == 200 and "中央体育館" in Calendar.from_ical(own.content).walk("VEVENT")[0]["summary"]
    assert (await new_client().get(url.replace(url.split("/")[-1], "0" * 40 + ".ics"))).status_code == 404
    assert (await new_client().get(url.replace(f"/t/{SAPPORO}/", f"/t/{HAKODATE}/"))).status_code == 404


async def test_resident_pages_need_the_card_and_forms_keep_input(ca, new_client) -> None:
    anonymous = new_client()
    page = await anonymous.get(f"/t/{SAPPORO}/reservations/mine")
    assert page.status_code in (302, 303, 401)
    hanako = await resident(new_client, ca, "hanako", register=False)
    bad = await hanako.post(f"/t/{SAPPORO}/reservations/register", data={
        "kind": "group", "name": "", "email": "not-an-address", "csrf_token": csrf_of(hanako)})
    assert bad.status_code == 422
    assert "お名前を入力してください" in bad.text and "団体名を入力" in bad.text and "形式が正しくありません" in bad.text
    assert 'value="not-an-address"' in bad.text
    public = await anonymous.get(f"/t/{SAPPORO}/reservations")
    assert public.status_code == 200 and "施設予約" in public.text


async def test_the_demo_gives_ichinomiya_a_gym_and_a_meeting_room_once(session, new_client) -> None:
    from kiban.modules.reservations.demo import load_demo

    assert await load_demo(session) == 2
    assert await load_demo(session) == 0
    listed = (await new_client().get("/api/v1/t/232033/reservations/facilities")).json()
    kinds = sorted(f["kind"] for f in listed if "デモ" in f["name"])
    assert kinds == ["gym", "meeting"] and all(f["rooms"] for f in listed)
    page = await new_client().get(f"/t/232033/reservations/facilities/{listed[0]['id']}")
    assert page.status_code == 200 and "空き状況" in page.text


async def test_confirmations_and_counts_are_written_with_the_booking(staff, ca, new_client, session) -> None:
    from kiban.modules.reservations import notices

    if not (notices.notify_ready() and notices.metering_ready()):
        pytest.skip("core/notify and core/metering are not part of the schema in this checkout")
    from kiban.core.metering.models import UsageEventKey
    from kiban.core.notify.models import Notification

    sapporo = await staff(SAPPORO, "staff")
    facility_id, room_id = await _facility(sapporo)
    hanako = await resident(new_client, ca, "hanako")
    booked = await hanako.post(f"/api/v1/t/{SAPPORO}/reservations/facilities/{facility_id}/bookings",
                               json={"room_id": room_id, "starts_at": _slot()})
    booking_id = booked.json()["id"]
    await hanako.post(f"/api/v1/t/{SAPPORO}/reservations/mine/{booking_id}/cancel", json={})
    await bind_tenant(session, await registry_service.tenant_for(session, SAPPORO))
    sent = (await session.scalars(select(Notification).where(Notification.dedupe_key.like(f"%{booking_id}")))).all()
    assert sorted(n.template_key for n in sent) == ["reservations.cancelled", "reservations.confirmed"]
    assert all(n.email == "hanako@example.jp" and n.service == "aichi-shisetsu-yoyaku" for n in sent)
    assert "中央体育館" in next(n.subject for n in sent if n.template_key == "reservations.confirmed")
    counted = (await session.scalars(select(UsageEventKey).where(UsageEventKey.key == booking_id))).all()
    assert len(counted) == 1
