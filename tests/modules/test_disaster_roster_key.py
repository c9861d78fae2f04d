"""Every victim record keeps the import key a roster row of the same person would have
(``roster_key``), so that a roster's preview and acceptance find who is registered already by
reading it, not by normalising the whole 台帳 again (issue #11: 2.2 s of the server's CPU per
look on 30,000 records). Kept current by every write path; filled for older records by the
jobs process."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import insert, select, update

from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import unscoped
from kiban.kit.db import utcnow
from kiban.modules.disaster import imports, service
from kiban.modules.disaster.models import VictimRecord
from kiban.modules.disaster.names import compute_import_key
from tests.modules.test_disaster_matcher_catch_up import _form_of
from tests.modules.test_disaster_web import WAJIMA, _open_disaster, _register

REASON = "test: roster keys"


def _key_of(record: VictimRecord) -> str:
    return compute_import_key({"family_name": record.family_name, "given_name": record.given_name,
                               "family_kana": record.family_kana, "given_kana": record.given_kana,
                               "birth_date": record.birth_date, "home_lg_code": record.home_lg_code,
                               "household_key": record.household_key})


async def _record(session, record_id: str) -> VictimRecord:
    async with unscoped(session, REASON):
        session.expire_all()
        return (await session.scalars(select(VictimRecord).where(VictimRecord.id == record_id))).one()


async def test_a_record_keeps_its_roster_key_through_edits(staff, session, monkeypatch) -> None:
    disaster = await _open_disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    tenant = await registry_service.tenant_for(session, WAJIMA)
    record_id = await _register(wajima, WAJIMA, disaster, whereabouts="home", family_name="髙橋", family_kana="ﾀｶﾊｼ")
    record = await _record(session, record_id)
    first = record.roster_key
    # The key a roster row of the same person gives: 異体字 and half-width kana folded.
    assert first == compute_import_key({"family_name": "高橋", "given_name": "健太", "family_kana": "たかはし",
                                        "given_kana": "ケンタ", "birth_date": date(1980, 5, 12),
                                        "home_lg_code": WAJIMA, "household_key": "W-001"})
    async with unscoped(session, REASON):
        assert await service.registered_keys(session, tenant, disaster, [first, "0" * 64]) == {first}
        monkeypatch.setattr(service, "KEYS_PER_QUERY", 1)  # a roster larger than one query's keys
        assert await service.registered_keys(session, tenant, disaster, ["0" * 64, first, "f" * 64]) == {first}
        monkeypatch.undo()

    # A new birth date is a new key; the old one is no longer "registered".
    edited = await wajima.client.post(f"/t/{WAJIMA}/disasters/{disaster}/records/{record_id}/edit", data={
        **await _form_of(wajima, disaster, record_id), "birth_date": "1980-05-13"})
    assert edited.status_code == 303, edited.text
    record = await _record(session, record_id)
    assert record.birth_date == date(1980, 5, 13) and record.roster_key == _key_of(record) != first
    async with unscoped(session, REASON):
        assert await service.registered_keys(session, tenant, disaster, [first, record.roster_key]) == {record.roster_key}

    # An edit of nothing in the key leaves it.
    second = record.roster_key
    edited = await wajima.client.post(f"/t/{WAJIMA}/disasters/{disaster}/records/{record_id}/edit", data={
        **await _form_of(wajima, disaster, record_id), "birth_date": "1980-05-13", "phone": "0768-22-0000"})
    assert edited.status_code == 303, edited.text
    record = await _record(session, record_id)
    assert record.phone == "0768-22-0000" and record.roster_key == second


async def test_a_bulk_insert_stores_the_key_and_the_jobs_process_fills_records_without_one(staff, session) -> None:
    disaster = await _open_disaster(staff)
    now = utcnow()
    row = {"id": str(uuid.uuid4()), "lg_code": WAJIMA, "disaster_id": disaster, "family_name": "輪島",
           "given_name": "花子", "family_kana": "ワジマ", "given_kana": "ハナコ", "birth_date": date(1958, 7, 7),
           "home_lg_code": WAJIMA, "home_pref_code": "170003", "whereabouts": "home", "current_lg_code": WAJIMA,
           "current_pref_code": "170003", "household_key": "W-9", "created_by": "test", "created_at": now,
           "updated_at": now}
    async with unscoped(session, REASON):
        await session.execute(insert(VictimRecord.__table__), [row])
    record = await _record(session, row["id"])
    key = record.roster_key
    assert key and key == _key_of(record)

    # Records registered before the column existed: the jobs process fills the same key, and a
    # preview meanwhile computes it (nothing registered looks new).
    async with unscoped(session, REASON):
        await session.execute(update(VictimRecord).where(VictimRecord.id == row["id"]).values(roster_key=None))
        tenant = await registry_service.tenant_for(session, WAJIMA)
        assert await service.registered_keys(session, tenant, disaster, [key, "1" * 64]) == {key}
    assert await imports.fill_roster_keys(session) >= 1
    filled = await _record(session, row["id"])
    assert filled.roster_key == key
    assert await imports.fill_roster_keys(session) == 0  # none left: the partial index is empty
