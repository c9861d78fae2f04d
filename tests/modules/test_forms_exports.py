"""A form's submissions exported in the background (core/exports): in arrival order, in chunks,
the same rows as the download staff get at once, and the direct download refuses more than its
limit with the way to the background."""

from __future__ import annotations

import csv
import dataclasses
import io

from kiban.core.exports import service as exports
from kiban.core.jobs.kinds import KINDS
from kiban.core.jobs.runner import Runner
from kiban.modules.forms import web as forms_web
from tests.conftest import session_on
from tests.factories import HAKODATE, ICHINOMIYA
from tests.modules.test_forms import GOOD, _build, _confirm, _hidden


async def _submit(resident, name: str) -> None:
    confirm = await _confirm(resident, ICHINOMIYA, "sodai", {**GOOD, "a_q1": name})
    assert confirm.status_code == 200, confirm.text[:300]
    assert (await resident.post(f"/f/{ICHINOMIYA}/sodai/submit", data=_hidden(confirm.text))).status_code == 303


def _rows(content: bytes) -> list[list[str]]:
    assert content.startswith("\ufeff".encode()) and content.count("\ufeff".encode()) == 1
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


async def test_submissions_export_in_the_background_in_arrival_order(staff, new_client, connection, monkeypatch) -> None:
    monkeypatch.setattr(exports, "INLINE_ROWS", 0)
    monkeypatch.setattr(exports, "PAGE_ROWS", 2)
    monkeypatch.setitem(KINDS, exports.KIND, dataclasses.replace(KINDS[exports.KIND], chunk_seconds=0))
    admin = await staff(ICHINOMIYA, "admin")
    form = await _build(admin, ICHINOMIYA)
    resident = new_client()
    names = ["一宮 一郎", "=HYPERLINK(\"x\")", "一宮 三郎", "一宮 四郎", "一宮 五郎"]
    for name in names:
        await _submit(resident, name)
    direct = _rows((await admin.client.get(f"/t/{ICHINOMIYA}/forms/{form['id']}/submissions.csv")).content)

    asked = await admin.client.post(f"/api/v1/t/{ICHINOMIYA}/forms/{form['id']}/submissions/exports", json={})
    assert asked.status_code == 202, asked.text
    location = asked.headers["location"]
    assert (await admin.client.get(location)).json()["state"] == "building"
    runner = Runner(lambda: session_on(connection), worker="test", kinds=[exports.KIND], pause_ratio=0)
    assert await runner.run_until_idle() == 1
    status = (await admin.client.get(location)).json()
    assert status["state"] == "ready" and status["rows"] == len(names)
    rows = _rows((await admin.client.get(status["download_url"])).content)
    assert rows == direct  # the same file, written in three parts
    assert [row[5] for row in rows[1:]] == ["一宮 一郎", "'=HYPERLINK(\"x\")", "一宮 三郎", "一宮 四郎", "一宮 五郎"]

    # Through the page, filtered by status: nothing is 完了 yet, so only the header.
    page = await admin.client.post(f"/t/{ICHINOMIYA}/forms/{form['id']}/submissions/exports",
                                   data={"csrf_token": admin.csrf, "status": "completed"})
    assert page.status_code == 303  # nothing to write: made at once, while staff wait
    export_page = await admin.client.get(page.headers["location"])
    assert "受け取る" in export_page.text and "完了" in export_page.text
    only_header = _rows((await admin.client.get(page.headers["location"] + "/download")).content)
    assert only_header == [direct[0]]

    other = await staff(HAKODATE, "admin")
    refused = await other.client.post(f"/api/v1/t/{HAKODATE}/forms/{form['id']}/submissions/exports", json={})
    assert refused.status_code == 404


async def test_the_direct_download_refuses_more_than_its_limit(staff, new_client, monkeypatch) -> None:
    monkeypatch.setattr(forms_web, "DIRECT_EXPORT_LIMIT", 1)
    admin = await staff(ICHINOMIYA, "admin")
    form = await _build(admin, ICHINOMIYA)
    resident = new_client()
    for name in ("一宮 一郎", "一宮 二郎"):
        await _submit(resident, name)
    refused = await admin.client.get(f"/t/{ICHINOMIYA}/forms/{form['id']}/submissions.csv")
    assert refused.status_code == 422 and "背景で書き出す" in refused.text
    inbox = await admin.client.get(f"/t/{ICHINOMIYA}/forms/{form['id']}/submissions")
    assert "背景で書き出す" in inbox.text
