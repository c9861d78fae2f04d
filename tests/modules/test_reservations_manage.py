"""施設予約 management: staff edit and remove rooms (a room with future bookings is not removed;
it can be closed for new bookings instead, and its bookings stand), list a facility's bookings
for a period and export them as CSV / .xlsx through kit/export, every change and export audited;
another municipality gets 404 on every one of these routes."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from kiban.core.audit.models import AuditEntry
from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import bind_tenant
from kiban.kit.db import utcnow
from kiban.kit.errors import InvalidInput
from kiban.modules.reservations import service
from kiban.modules.reservations.models import Booking
from tests.conftest import csrf_of
from tests.factories import HAKODATE, SAPPORO
from tests.modules.test_reservations import PROBLEM, _facility, _slot, ca, resident  # noqa: F401  (ca: fixture)


async def _actions(session, target_id: str) -> list[str]:
    await bind_tenant(session, await registry_service.tenant_for(session, SAPPORO))
    rows = (await session.scalars(select(AuditEntry).where(AuditEntry.target_id == target_id)
                                  .order_by(AuditEntry.seq))).all()
    return [e.action for e in rows]


async def test_staff_edit_a_room_bad_input_keeps_it_and_a_new_fee_applies_to_new_bookings(
        staff, ca, new_client, session) -> None:
    sapporo = await staff(SAPPORO, "staff")
    facility_id, room_id = await _facility(sapporo)
    hanako = await resident(new_client, ca, "hanako")
    first = await hanako.post(f"/api/v1/t/{SAPPORO}/reservations/facilities/{facility_id}/bookings",
                              json={"room_id": room_id, "starts_at": _slot(2, 9)})
    assert first.status_code == 201 and first.json()["fee_yen"] == 3000

    url = f"/t/{SAPPORO}/facilities/{facility_id}/rooms/{room_id}"
    page = await sapporo.client.get(url)
    assert page.status_code == 200 and 'value="アリーナ全面"' in page.text and "これからの予約: 1件" in page.text
    bad = await sapporo.client.post(url, data={"name": "", "capacity": "-3", "fee_yen": "無料",
                                               "csrf_token": sapporo.csrf})
    assert bad.status_code == 422
    assert "部屋・区画の名前を入力してください" in bad.text and "定員" in bad.text and "1枠の使用料（円）は0から" in bad.text
    assert 'value="無料"' in bad.text  # what was typed is kept
    detail = (await sapporo.client.get(f"/api/v1/t/{SAPPORO}/facilities/{facility_id}")).json()
    assert detail["rooms"][0]["name"] == "アリーナ全面" and detail["rooms"][0]["fee_yen"] == 3000  # nothing changed

    done = await sapporo.client.post(url, data={"name": "アリーナ（全面）", "capacity": "150", "fee_yen": "3500",
                                                "csrf_token": sapporo.csrf})
    assert done.status_code == 303 and done.headers["location"].endswith("?done=updated")
    assert "新しい使用料はこれからの予約に適用されます" in (await sapporo.client.get(done.headers["location"])).text
    second = await hanako.post(f"/api/v1/t/{SAPPORO}/reservations/facilities/{facility_id}/bookings",
                               json={"room_id": room_id, "starts_at": _slot(2, 11)})
    assert second.json()["fee_yen"] == 3500
    mine = (await hanako.get(f"/api/v1/t/{SAPPORO}/reservations/mine")).json()
    assert sorted(b["fee_yen"] for b in mine["bookings"]) == [3000, 3500]  # the first keeps its fee

    twin = await sapporo.client.put(f"/api/v1/t/{SAPPORO}/facilities/{facility_id}/rooms/{room_id}",
                                    json={"name": "アリーナ", "capacity": None, "fee_yen": 4000})
    assert twin.status_code == 200 and twin.json() == {"id": room_id, "name": "アリーナ", "capacity": None,
                                                       "fee_yen": 4000, "closed": False, "removed": False}
    wrong = await sapporo.client.put(f"/api/v1/t/{SAPPORO}/facilities/{facility_id}/rooms/{room_id}",
                                     json={"name": "", "fee_yen": -1})
    assert wrong.status_code == 422 and wrong.headers["content-type"].startswith(PROBLEM)
    assert {e["field"] for e in wrong.json()["errors"]} == {"name", "fee_yen"}
    assert (await _actions(session, room_id)).count("reservations.room.updated") == 2

    viewer = await staff(SAPPORO, "viewer")
    assert (await viewer.client.get(url)).status_code == 403
    assert (await viewer.client.post(url, data={"name": "x", "fee_yen": "1", "csrf_token": viewer.csrf})).status_code == 403


async def test_a_room_with_future_bookings_is_not_removed_but_closed_and_its_past_is_kept(
        staff, ca, new_client, session) -> None:
    sapporo = await staff(SAPPORO, "staff")
    facility_id, room_id = await _facility(sapporo)
    base = f"/t/{SAPPORO}/facilities/{facility_id}/rooms/{room_id}"
    hanako = await resident(new_client, ca, "hanako")
    booked = await hanako.post(f"/api/v1/t/{SAPPORO}/reservations/facilities/{facility_id}/bookings",
                               json={"room_id": room_id, "starts_at": _slot(3, 9)})
    booking_id = booked.json()["id"]

    # a booking already used (yesterday): the record that must survive the removal
    tenant = await registry_service.tenant_for(session, SAPPORO)
    await bind_tenant(session, tenant)
    facility = await service.get_facility(session, facility_id)
    yesterday = service.parse_start(_slot(-1, 9))
    hanako_id = (await session.scalars(select(Booking.principal_id).where(Booking.id == booking_id))).one()
    past = await service.book(session, tenant, facility, room_id, yesterday, hanako_id, now=yesterday - timedelta(days=1))
    await session.commit()
    assert past.starts_at < utcnow()

    confirm = await sapporo.client.get(f"{base}/delete/confirm")
    assert confirm.status_code == 200
    assert "これからの予約が1件あるため、削除できません" in confirm.text and "予約どおりに利用できなくなり" in confirm.text
    assert "代わりに新しい予約の受付を停止する" in confirm.text and f'action="{base}/close"' in confirm.text
    refused = await sapporo.client.post(f"{base}/delete", data={"csrf_token": sapporo.csrf})
    assert refused.status_code == 409 and "削除できません" in refused.text
    api_refused = await sapporo.client.delete(f"/api/v1/t/{SAPPORO}/facilities/{facility_id}/rooms/{room_id}")
    assert api_refused.status_code == 409 and api_refused.headers["content-type"].startswith(PROBLEM)
    assert "これからの予約が1件" in api_refused.json()["detail"]
    assert (await sapporo.client.get(base)).status_code == 200  # still there

    closed = await sapporo.client.post(f"{base}/close", data={"csrf_token": sapporo.csrf})
    assert closed.status_code == 303
    assert "新しい予約の受付を停止しました" in (await sapporo.client.get(closed.headers["location"])).text
    again = await hanako.post(f"/api/v1/t/{SAPPORO}/reservations/facilities/{facility_id}/bookings",
                              json={"room_id": room_id, "starts_at": _slot(4, 9)})
    assert again.status_code == 422 and "新しい予約の受付を停止しています" in again.json()["detail"]
    calendar = await hanako.get(f"/t/{SAPPORO}/reservations/facilities/{facility_id}?from={_slot(3)[:10]}")
    assert "受付停止中" in calendar.text and "あなたの予約" in calendar.text  # the booking stands
    availability = (await hanako.get(f"/api/v1/t/{SAPPORO}/reservations/facilities/{facility_id}/availability")).json()
    assert "free" not in {s["state"] for d in availability["days"] for s in d["slots"]}
    reopened = await sapporo.client.post(f"/api/v1/t/{SAPPORO}/facilities/{facility_id}/rooms/{room_id}/reopen", json={})
    assert reopened.status_code == 200 and reopened.json()["closed"] is False
    closed_twin = await sapporo.client.post(f"/api/v1/t/{SAPPORO}/facilities/{facility_id}/rooms/{room_id}/close", json={})
    assert closed_twin.json()["closed"] is True

    # once the future booking is gone, the removal is confirmed and done; the past is kept
    cancelled = await hanako.post(f"/api/v1/t/{SAPPORO}/reservations/mine/{booking_id}/cancel", json={})
    assert cancelled.status_code == 200
    confirm = await sapporo.client.get(f"{base}/delete/confirm")
    assert confirm.status_code == 200 and "「アリーナ全面」を削除します" in confirm.text and "削除する" in confirm.text
    assert (await sapporo.client.get(base)).status_code == 200  # the confirmation changed nothing
    removed = await sapporo.client.post(f"{base}/delete", data={"csrf_token": sapporo.csrf})
    assert removed.status_code == 303
    assert "部屋・区画を削除しました" in (await sapporo.client.get(removed.headers["location"])).text
    assert (await sapporo.client.get(base)).status_code == 404
    assert (await sapporo.client.get(f"/api/v1/t/{SAPPORO}/facilities/{facility_id}")).json()["rooms"] == []
    listed = (await sapporo.client.get(f"/api/v1/t/{SAPPORO}/facilities/{facility_id}/bookings",
                                       params={"from": _slot(-2)[:10], "to": _slot(5)[:10], "status": "all"})).json()
    assert [(b["id"], b["room_name"], b["status"]) for b in listed["bookings"]] == [
        (past.id, "アリーナ全面", "active"), (booking_id, "アリーナ全面", "cancelled")]
    page = await sapporo.client.get(f"/t/{SAPPORO}/facilities/{facility_id}/bookings",
                                    params={"from": _slot(-2)[:10], "to": _slot(5)[:10]})
    assert "アリーナ全面（削除済み）" in page.text
    assert await _actions(session, room_id) == ["reservations.room.closed", "reservations.room.reopened",
                                                "reservations.room.closed", "reservations.room.removed"]
    gone = await sapporo.client.delete(f"/api/v1/t/{SAPPORO}/facilities/{facility_id}/rooms/{room_id}")
    assert gone.status_code == 404


async def test_a_room_in_an_open_lottery_is_not_removed(staff, session) -> None:
    sapporo = await staff(SAPPORO, "staff")
    facility_id, room_id = await _facility(sapporo)
    opened = await sapporo.client.post(f"/api/v1/t/{SAPPORO}/facilities/{facility_id}/lotteries", json={
        "title": "週末の抽選", "closes_at": _slot(1, 17), "slots": [{"room_id": room_id, "starts_at": _slot(5, 9)}]})
    assert opened.status_code == 201, opened.text
    refused = await sapporo.client.delete(f"/api/v1/t/{SAPPORO}/facilities/{facility_id}/rooms/{room_id}")
    assert refused.status_code == 409 and "抽選中の枠が1件" in refused.json()["detail"]


def test_the_period_of_the_list_is_checked_with_every_error_in_japanese() -> None:
    today = service.today_jst()
    period = service.booking_range({}, today)
    assert (period.first, period.last, period.status) == (today, today + timedelta(days=30), "active")
    with pytest.raises(InvalidInput) as bad:
        service.booking_range({"from": "2026/13/01", "to": "x", "status": "deleted"}, today)
    assert {e["field"] for e in bad.value.errors} == {"from", "to", "status"}
    with pytest.raises(InvalidInput) as reversed_:
        service.booking_range({"from": "2026-12-10", "to": "2026-12-01"}, today)
    assert "終了日は開始日と同じ日かそれより後" in reversed_.value.detail
    with pytest.raises(InvalidInput) as too_long:
        service.booking_range({"from": "2026-01-01", "to": "2027-06-01"}, today)
    assert "366日以内" in too_long.value.detail
    with pytest.raises(InvalidInput):
        service.booking_range({"from": "0001-01-01"}, today)


async def test_the_bookings_list_exports_csv_and_xlsx_without_formulas_and_audited(
        staff, ca, new_client, session) -> None:
    sapporo = await staff(SAPPORO, "staff")
    facility_id, room_id = await _facility(sapporo)
    formula = await resident(new_client, ca, "formula", register=False)
    done = await formula.post(f"/t/{SAPPORO}/reservations/register", data={
        "kind": "resident", "name": "=HYPERLINK(\"http://evil\")", "email": "f@example.jp",
        "csrf_token": csrf_of(formula)})
    assert done.status_code == 303, done.text[:300]
    ok = await formula.post(f"/api/v1/t/{SAPPORO}/reservations/facilities/{facility_id}/bookings",
                            json={"room_id": room_id, "starts_at": _slot(2, 13)})
    assert ok.status_code == 201
    params = {"from": _slot(0)[:10], "to": _slot(7)[:10]}

    page = await sapporo.client.get(f"/t/{SAPPORO}/facilities/{facility_id}/bookings", params=params)
    assert page.status_code == 200 and "=HYPERLINK" in page.text and "3,000" in page.text
    assert "bookings.csv?" in page.text and "bookings.xlsx?" in page.text
    bad = await sapporo.client.get(f"/t/{SAPPORO}/facilities/{facility_id}/bookings",
                                   params={"from": "2026-02-30", "to": "later"})
    assert bad.status_code == 422 and "開始日は" in bad.text and "終了日は" in bad.text and 'value="later"' in bad.text
    api_bad = await sapporo.client.get(f"/api/v1/t/{SAPPORO}/facilities/{facility_id}/bookings", params={"to": "x"})
    assert api_bad.status_code == 422 and api_bad.headers["content-type"].startswith(PROBLEM)

    got = await sapporo.client.get(f"/t/{SAPPORO}/facilities/{facility_id}/bookings.csv", params=params)
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    assert "attachment" in got.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(got.content.decode("utf-8-sig"))))
    assert rows[0][:6] == ["予約番号", "利用日", "開始", "終了", "部屋・区画", "利用者"]
    assert rows[1][4] == "アリーナ全面" and rows[1][5] == "'=HYPERLINK(\"http://evil\")" and rows[1][8] == "3000"
    xlsx = await sapporo.client.get(f"/t/{SAPPORO}/facilities/{facility_id}/bookings.xlsx", params=params)
    assert xlsx.status_code == 200
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[0][0] == "予約番号" and values[1][5].startswith("'=") and values[1][8] == 3000
    assert (await sapporo.client.get(f"/t/{SAPPORO}/facilities/{facility_id}/bookings.pdf", params=params)).status_code == 404
    assert (await _actions(session, facility_id)).count("reservations.booking.exported") == 2
    entry = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "reservations.booking.exported")
                                   .order_by(AuditEntry.seq.desc()))).first()
    assert entry.details["rows"] == 1 and entry.details["format"] == "xlsx"

    viewer = await staff(SAPPORO, "viewer")  # reading bookings is enough to list and export them
    assert (await viewer.client.get(f"/t/{SAPPORO}/facilities/{facility_id}/bookings")).status_code == 200


async def test_another_municipality_gets_404_on_every_new_route(staff, ca, new_client) -> None:
    sapporo = await staff(SAPPORO, "staff")
    facility_id, room_id = await _facility(sapporo)
    hakodate = await staff(HAKODATE, "admin")
    c, csrf = hakodate.client, hakodate.csrf
    for lg in (SAPPORO, HAKODATE):
        base = f"/t/{lg}/facilities/{facility_id}"
        api = f"/api/v1/t/{lg}/facilities/{facility_id}"
        answers = [
            await c.get(f"{base}/rooms/{room_id}"),
            await c.post(f"{base}/rooms/{room_id}", data={"name": "x", "fee_yen": "1", "csrf_token": csrf}),
            await c.post(f"{base}/rooms/{room_id}/close", data={"csrf_token": csrf}),
            await c.post(f"{base}/rooms/{room_id}/reopen", data={"csrf_token": csrf}),
            await c.get(f"{base}/rooms/{room_id}/delete/confirm"),
            await c.post(f"{base}/rooms/{room_id}/delete", data={"csrf_token": csrf}),
            await c.get(f"{base}/bookings"),
            await c.get(f"{base}/bookings.csv"),
            await c.get(f"{base}/bookings.xlsx"),
            await c.put(f"{api}/rooms/{room_id}", json={"name": "x", "fee_yen": 1}),
            await c.post(f"{api}/rooms/{room_id}/close", json={}),
            await c.post(f"{api}/rooms/{room_id}/reopen", json={}),
            await c.delete(f"{api}/rooms/{room_id}"),
            await c.get(f"{api}/bookings"),
            await c.post(f"{base}/close-rooms", data={"csrf_token": csrf}),
            await c.post(f"{api}/close-rooms", json={}),
        ]
        assert [a.status_code for a in answers] == [404] * len(answers), [(a.request.url.path, a.status_code) for a in answers]
    detail = (await sapporo.client.get(f"/api/v1/t/{SAPPORO}/facilities/{facility_id}")).json()
    assert detail["rooms"][0]["name"] == "アリーナ全面" and detail["rooms"][0]["closed"] is False


async def test_a_facility_with_future_bookings_can_be_closed_instead_of_removed(staff, ca, new_client, session) -> None:
    sapporo = await staff(SAPPORO, "staff")
    facility_id, room_id = await _facility(sapporo)
    hanako = await resident(new_client, ca, "hanako")
    booked = await hanako.post(f"/api/v1/t/{SAPPORO}/reservations/facilities/{facility_id}/bookings",
                               json={"room_id": room_id, "starts_at": _slot(2, 9)})
    confirm = await sapporo.client.get(f"/t/{SAPPORO}/facilities/{facility_id}/delete/confirm")
    assert confirm.status_code == 200 and "これからの予約1件はすべて取り消され" in confirm.text
    assert "代わりに新しい予約の受付を停止する" in confirm.text
    closed = await sapporo.client.post(f"/t/{SAPPORO}/facilities/{facility_id}/close-rooms",
                                       data={"csrf_token": sapporo.csrf})
    assert closed.status_code == 303
    page = await sapporo.client.get(closed.headers["location"])
    assert "すべての部屋・区画の新しい予約の受付を停止しました" in page.text and "受付を停止中" in page.text
    mine = (await hanako.get(f"/api/v1/t/{SAPPORO}/reservations/mine")).json()
    assert [b["status"] for b in mine["bookings"]] == ["active"] and mine["bookings"][0]["id"] == booked.json()["id"]
    confirm = await sapporo.client.get(f"/t/{SAPPORO}/facilities/{facility_id}/delete/confirm")
    assert "代わりに新しい予約の受付を停止する" not in confirm.text  # nothing left to close
    twin = await sapporo.client.post(f"/api/v1/t/{SAPPORO}/facilities/{facility_id}/close-rooms", json={})
    assert twin.status_code == 200 and [r["closed"] for r in twin.json()] == [True]
    hakodate = await staff(HAKODATE, "admin")
    for lg in (SAPPORO, HAKODATE):
        assert (await hakodate.client.post(f"/t/{lg}/facilities/{facility_id}/close-rooms",
                                           data={"csrf_token": hakodate.csrf})).status_code == 404
        assert (await hakodate.client.post(f"/api/v1/t/{lg}/facilities/{facility_id}/close-rooms",
                                           json={})).status_code == 404
    assert await _actions(session, room_id) == ["reservations.room.closed"]
