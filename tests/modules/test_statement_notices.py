"""Issue #12 item 3: the 負担金算定書 notice moves onto core/notify. When a secretariat issues
statements, every active staff member of each member organisation gets an in-app notice in that
organisation (written with the statements), read at /t/{lg_code}/notices and its JSON twin; each
sees only their own organisation's notice, and a replacement tells them again."""

from __future__ import annotations

from sqlalchemy import select

from kiban.core.notify.models import Notice
from kiban.core.tenancy.context import unscoped
from tests.api.test_json_twins import ALLOCATE, CONSORTIUM, DUE_ON, _key, _problem
from tests.factories import AICHI, HAKODATE, ICHINOMIYA

TOYOTA = "232114"


async def test_members_staff_are_told_of_their_own_statement_in_app(staff, client, session) -> None:
    ichinomiya = await staff(ICHINOMIYA, "viewer", name="一宮 一郎")
    toyota = await staff(TOYOTA, "staff", name="豊田 花子")
    aichi = await staff(AICHI, "admin")
    decided = await aichi.client.post(f"{CONSORTIUM}/schedules", json={**ALLOCATE, "due_on": DUE_ON})
    assert decided.status_code == 201, decided.text
    schedule = decided.json()
    fee = {line["code"]: line["fee"] for line in schedule["lines"]}

    page = await ichinomiya.client.get(f"/t/{ICHINOMIYA}/notices")
    assert page.status_code == 200
    assert f"電子申請・届出システムの負担金算定書が交付されました（文書番号 {schedule['number']}-{ICHINOMIYA}）" in page.text
    assert f"負担金: {fee[ICHINOMIYA]:,} 円" in page.text and "未読" in page.text
    twin = await ichinomiya.client.get(f"/api/v1/t/{ICHINOMIYA}/notify/notices")
    assert twin.status_code == 200
    mine = [n for n in twin.json()["items"] if schedule["number"] in n["subject"]]
    assert len(mine) == 1 and mine[0]["organisation"] == "一宮市" and mine[0]["read_at"] is None
    read = await ichinomiya.client.post(f"/api/v1/t/{ICHINOMIYA}/notify/notices/{mine[0]['id']}/read", json={})
    assert read.status_code == 200 and read.json()["read_at"]
    home = await ichinomiya.client.get(f"/t/{ICHINOMIYA}/")
    assert f'href="/t/{ICHINOMIYA}/notices"' in home.text

    # 豊田市 sees its own fee, never 一宮市's notice; 一宮市's notice is not reachable from 豊田市.
    theirs = (await toyota.client.get(f"/api/v1/t/{TOYOTA}/notify/notices")).json()["items"]
    assert [n for n in theirs if schedule["number"] in n["subject"]][0]["body"].count(f"{fee[TOYOTA]:,} 円") == 1
    _problem(await toyota.client.post(f"/api/v1/t/{TOYOTA}/notify/notices/{mine[0]['id']}/read", json={}), 404)
    _problem(await toyota.client.get(f"/api/v1/t/{ICHINOMIYA}/notify/notices"), 404)
    hakodate = await staff(HAKODATE, "admin")
    assert (await hakodate.client.get(f"/t/{ICHINOMIYA}/notices")).status_code == 404
    _problem(await client.get(f"/api/v1/t/{ICHINOMIYA}/notify/notices"), 401)
    admin = await staff(ICHINOMIYA, "admin")
    _problem(await client.get(f"/api/v1/t/{ICHINOMIYA}/notify/notices",
                              headers=await _key(admin, ICHINOMIYA, "costs.statement.read")), 403)

    # One notice per person per schedule; a replacement is a new schedule and tells them again.
    async with unscoped(session, "test: the notices written"):
        written = (await session.scalars(select(Notice).where(Notice.subject.contains(schedule["number"] + "-")))).all()
    assert {(n.lg_code, n.principal_id) for n in written} >= {(ICHINOMIYA, ichinomiya.principal_id),
                                                              (TOYOTA, toyota.principal_id)}
    assert len(written) == len({(n.lg_code, n.principal_id) for n in written})
    replaced = await aichi.client.post(f"{CONSORTIUM}/schedules", json={
        **ALLOCATE, "amount": 100_000_000, "due_on": DUE_ON, "replace": schedule["id"], "reason": "総経費の訂正"})
    assert replaced.status_code == 201, replaced.text
    again = (await ichinomiya.client.get(f"/api/v1/t/{ICHINOMIYA}/notify/notices")).json()["items"]
    assert any(replaced.json()["number"] in n["subject"] for n in again)
