"""Background exports (core/exports), first used by the audit log: any number of entries, built
in chunks by the job runner, handed only to the staff member who asked, through the one writer
that neutralises formulas; small ones ready at once."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from kiban.core.audit import service as audit
from kiban.core.audit.models import AuditEntry
from kiban.core.registry import service as registry_service
from kiban.core.exports import service as exports
from kiban.core.exports.models import ExportFile, ExportPart
from kiban.core.jobs.kinds import KINDS
from kiban.core.jobs.runner import Runner
from kiban.core.tenancy.context import unscoped
from kiban.kit.db import utcnow
from tests.conftest import session_on
from tests.factories import HAKODATE, SAPPORO


def _csv(content: bytes) -> list[list[str]]:
    assert content.startswith("\ufeff".encode()) and content.count("\ufeff".encode()) == 1
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


async def _request(person, **filters):
    return await person.client.post(f"/t/{SAPPORO}/audit/exports", data={"csrf_token": person.csrf, **filters})


async def test_a_small_audit_export_is_ready_at_once_and_matches_the_direct_csv(staff) -> None:
    admin = await staff(SAPPORO, "admin", name="=1+2 札幌")  # a name a spreadsheet would compute
    direct = _csv((await admin.client.get(f"/t/{SAPPORO}/audit.csv")).content)
    asked = await _request(admin)
    assert asked.status_code == 303
    page = await admin.client.get(asked.headers["location"])
    assert page.status_code == 200 and "受け取る" in page.text and "監査ログ" in page.text
    file = await admin.client.get(asked.headers["location"] + "/download")
    assert file.status_code == 200 and file.headers["content-type"].startswith("text/csv")
    assert "attachment" in file.headers["content-disposition"]
    rows = _csv(file.content)
    # The same entries as the direct CSV, up to the newest when it was asked for (the direct
    # download's own record of being exported comes first in the log, and is in both).
    assert rows[0] == direct[0] and rows[1:len(direct)] == direct[1:]
    assert any(cell == "'=1+2 札幌" for row in rows for cell in row)
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    listed = await admin.client.get(f"/t/{SAPPORO}/exports")
    assert "監査ログ" in listed.text and "受け取れます" in listed.text


async def test_a_large_export_is_built_in_chunks_by_the_runner(staff, session, connection, monkeypatch) -> None:
    monkeypatch.setattr(exports, "INLINE_ROWS", 0)
    monkeypatch.setattr(exports, "PAGE_ROWS", 3)
    monkeypatch.setitem(KINDS, exports.KIND, dataclasses.replace(KINDS[exports.KIND], chunk_seconds=0))
    admin = await staff(SAPPORO, "admin")
    sapporo = await registry_service.tenant_for(session, SAPPORO)
    for n in range(10):
        await audit.record(session, audit.Actor("operator", f"運用担当{n}"), "tenancy.setting.cleared", tenant=sapporo)
    await session.commit()
    asked = await _request(admin)
    url = asked.headers["location"]
    building = await admin.client.get(url)
    assert "作成の順番を待っています" in building.text and 'hx-trigger="every 2s"' in building.text
    assert (await admin.client.get(url + "/download")).status_code == 409  # not made yet
    runner = Runner(lambda: session_on(connection), worker="test", kinds=[exports.KIND], pause_ratio=0)
    assert await runner.run_until_idle() == 1
    poll = await admin.client.get(url + "?progress=1", headers={"HX-Request": "true"})
    assert poll.headers.get("HX-Refresh") == "true"
    export_id = url.rsplit("/", 1)[1]
    async with unscoped(session, "test: the export's parts"):
        parts = (await session.scalars(select(ExportPart.seq).where(ExportPart.export_id == export_id))).all()
        total = await session.scalar(select(ExportFile.rows).where(ExportFile.id == export_id))
    assert len(parts) > 2 and sorted(parts) == list(range(len(parts)))
    rows = _csv((await admin.client.get(url + "/download")).content)
    assert rows[0][0] == "番号" and sum(1 for row in rows if row[0] == "番号") == 1
    seqs = [int(row[0]) for row in rows[1:]]
    assert len(seqs) == total and seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_only_the_person_who_asked_receives_the_file(staff) -> None:
    admin = await staff(SAPPORO, "admin")
    colleague = await staff(SAPPORO, "admin")
    other = await staff(HAKODATE, "admin")
    url = (await _request(admin)).headers["location"]
    export_id = url.rsplit("/", 1)[1]
    for path in (url, url + "/download", url + "/delete"):
        assert (await colleague.client.get(path)).status_code == 404
    assert (await colleague.client.get(f"/api/v1/t/{SAPPORO}/exports/{export_id}/download")).status_code == 404
    assert (await other.client.get(f"/t/{HAKODATE}/exports/{export_id}")).status_code == 404
    assert "監査ログ" not in (await colleague.client.get(f"/t/{SAPPORO}/exports")).text


async def test_a_viewer_cannot_ask_for_the_audit_log_and_bad_filters_change_nothing(staff, session) -> None:
    viewer = await staff(SAPPORO, "viewer")
    assert (await _request(viewer)).status_code == 403
    admin = await staff(SAPPORO, "admin")
    refused = await _request(admin, since="2026-13-01")
    assert refused.status_code == 422 and "開始日" in refused.text
    async with unscoped(session, "test: no export was made"):
        assert (await session.scalars(select(ExportFile).where(ExportFile.requested_by == admin.principal_id))).all() == []


async def test_the_api_twin_queues_reports_and_hands_over_the_file(staff) -> None:
    admin = await staff(SAPPORO, "admin")
    base = f"/api/v1/t/{SAPPORO}"
    asked = await admin.client.post(f"{base}/audit/exports", json={"outcome": "success"})
    assert asked.status_code == 202, asked.text
    body = asked.json()
    assert asked.headers["location"] == body["location"] and body["state"] in ("building", "ready")
    status = (await admin.client.get(body["location"])).json()
    assert status["state"] == "ready" and status["download_url"] and "成功" in status["title"]
    rows = _csv((await admin.client.get(status["download_url"])).content)
    assert rows[1:] and all(row[5] == "成功" for row in rows[1:])
    listed = (await admin.client.get(f"{base}/exports")).json()
    assert [item["id"] for item in listed["items"]] == [body["id"]]
    bad = await admin.client.post(f"{base}/audit/exports", json={"since": "昨日"})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    gone = await admin.client.request("DELETE", body["location"], json={})
    assert gone.status_code == 204
    assert (await admin.client.get(body["location"])).status_code == 404


async def test_deleting_is_confirmed_and_recorded_and_a_week_old_export_is_gone(staff, session) -> None:
    admin = await staff(SAPPORO, "admin")
    url = (await _request(admin)).headers["location"]
    confirm = await admin.client.get(url + "/delete")
    assert confirm.status_code == 200 and "元に戻せません" in confirm.text
    done = await admin.client.post(url + "/delete", data={"csrf_token": admin.csrf})
    assert done.status_code == 303 and (await admin.client.get(url)).status_code == 404
    async with unscoped(session, "test: the deletion's record"):
        deleted = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "exports.export.deleted",
                                                                  AuditEntry.actor_id == admin.principal_id))).all()
    assert len(deleted) == 1

    url = (await _request(admin)).headers["location"]
    export_id = url.rsplit("/", 1)[1]
    async with unscoped(session, "test: a week passes"):
        await session.execute(update(ExportFile).where(ExportFile.id == export_id)
                              .values(expires_at=utcnow() - timedelta(minutes=1)))
        await session.commit()
    assert (await admin.client.get(url)).status_code == 404
    await _request(admin)  # asking again removes what has expired
    async with unscoped(session, "test: the expired export's rows"):
        assert (await session.scalars(select(ExportPart).where(ExportPart.export_id == export_id))).all() == []
        assert await session.get(ExportFile, (SAPPORO, export_id)) is None


@pytest.mark.parametrize("limit", [1])
async def test_the_direct_csv_refuses_more_than_its_limit_and_points_to_the_background(staff, monkeypatch, limit) -> None:
    from kiban.core.audit import web as audit_web

    monkeypatch.setattr(audit_web, "DIRECT_LIMIT", limit)
    admin = await staff(SAPPORO, "admin")
    page = await admin.client.get(f"/t/{SAPPORO}/audit")
    assert "背景で書き出す" in page.text and "audit.csv" not in page.text
    refused = await admin.client.get(f"/t/{SAPPORO}/audit.csv")
    assert refused.status_code == 422 and "背景で書き出す" in refused.text


async def test_an_api_key_asks_for_an_export_and_receives_it(staff) -> None:
    """A key's stand-in principal (``apikey:<32 hex>``) is longer than a person's id."""
    admin = await staff(SAPPORO, "admin")
    page = await admin.client.post(f"/t/{SAPPORO}/apikeys", data={
        "name": "監査ログの取得", "kind": "live", "permissions": ["audit.entry.read", "exports.file.read"],
        "rate_limit_per_minute": "60", "csrf_token": admin.csrf})
    assert page.status_code == 200, page.text
    headers = {"Authorization": "Bearer " + re.search(r'<code id="new-api-key">([^<]+)</code>', page.text).group(1)}
    asked = await admin.client.post(f"/api/v1/t/{SAPPORO}/audit/exports", json={}, headers=headers)
    assert asked.status_code == 202, asked.text
    status = (await admin.client.get(asked.headers["location"], headers=headers)).json()
    assert status["state"] == "ready"
    assert (await admin.client.get(status["download_url"], headers=headers)).status_code == 200
    assert (await admin.client.get(asked.headers["location"])).status_code == 404  # the key asked, not the admin
