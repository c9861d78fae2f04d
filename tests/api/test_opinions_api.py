"""The JSON twins of 意見照会 (/api/v1/t/{lg_code}/opinions, /api/v1/opinions): the same story as
the pages, problem+json in Japanese for bad input, 409 for a stale version, 401/403/404 by who
asks, and a system commenting with a scoped API key."""

from __future__ import annotations

import re
from datetime import timedelta

from kiban.modules.opinions import service
from tests.factories import DIGITAL_AGENCY, HAKODATE, SAPPORO

PROBLEM = "application/problem+json"
BASE = f"/api/v1/t/{DIGITAL_AGENCY}/opinions"


def _draft(**overrides) -> dict:
    today = service.today()
    return {"title": "API で作る方針案", "description": "",
            "sections": "# 1 総論\n総論の本文\n# 2 各論\n各論の本文", "opens_on": (today - timedelta(days=1)).isoformat(),
            "closes_on": (today + timedelta(days=7)).isoformat(), "target_kind": "all", **overrides}


async def _open(agency) -> dict:
    made = await agency.client.post(BASE, json=_draft())
    assert made.status_code == 201, made.text
    body = made.json()
    assert [s["key"] for s in body["sections"]] == ["s1", "s2"] and body["status"] == "draft"
    announced = await agency.client.post(f"{BASE}/{body['id']}/announce", json={"expected_version": body["version"]})
    assert announced.status_code == 200, announced.text
    assert announced.json()["status"] == "open"
    return announced.json()


async def test_the_api_walks_the_story_from_draft_to_published_table(staff, client) -> None:
    agency = await staff(DIGITAL_AGENCY, "staff")
    sapporo = await staff(SAPPORO, "staff")
    c = await _open(agency)
    cid = c["id"]
    listed = (await sapporo.client.get(f"/api/v1/t/{SAPPORO}/opinions")).json()
    assert cid in [r["id"] for r in listed["received"]] and listed["written"] == []
    assert cid in [r["id"] for r in (await agency.client.get(BASE)).json()["written"]]

    made = await sapporo.client.post(f"/api/v1/t/{SAPPORO}/opinions/{cid}/comments", json={
        "section_key": "s2", "kind": "opinion", "body": "各論に例を加えてほしい。", "proposal": "例を加える。"})
    assert made.status_code == 201, made.text
    comment = made.json()
    assert comment["kind_label"] == "意見" and comment["version"] == 1
    edited = await sapporo.client.put(f"/api/v1/t/{SAPPORO}/opinions/{cid}/comments/{comment['id']}", json={
        "section_key": "s2", "kind": "opinion", "body": "各論に具体例を加えてほしい。", "expected_version": 1})
    assert edited.status_code == 200 and edited.json()["version"] == 2 and edited.json()["proposal"] == ""
    stale = await sapporo.client.put(f"/api/v1/t/{SAPPORO}/opinions/{cid}/comments/{comment['id']}", json={
        "section_key": "s2", "kind": "opinion", "body": "古い版", "expected_version": 1})
    assert stale.status_code == 409 and stale.headers["content-type"].startswith(PROBLEM)
    assert "ほかの職員がこの意見を先に変更しました" in stale.json()["detail"]
    got = (await sapporo.client.get(f"/api/v1/t/{SAPPORO}/opinions/{cid}/comments/{comment['id']}")).json()
    assert got["body"] == "各論に具体例を加えてほしい。"

    review = (await agency.client.get(f"{BASE}/{cid}/review")).json()
    (row,) = review["rows"]
    assert row["body_name"] == "札幌市" and row["category"] is None
    classified = await agency.client.post(f"{BASE}/{cid}/reviews", json={
        "refs": [row["ref"]], "category": "revised", "answer_text": "具体例を加えます。"})
    assert classified.status_code == 200, classified.text
    answer_id = classified.json()["answer_id"]
    changed = await agency.client.put(f"{BASE}/{cid}/answers/{answer_id}", json={"text": "具体例を2つ加えます。",
                                                                                 "expected_version": 1})
    assert changed.status_code == 200 and changed.json()["version"] == 2
    published = await agency.client.post(f"{BASE}/{cid}/publish", json={"expected_version": review["version"]})
    assert published.status_code == 200, published.text
    table = (await client.get(f"/api/v1/opinions/{cid}")).json()
    assert table["rows"] == [{
        "number": 1, "section_number": "2", "section_heading": "各論", "kind": "opinion", "kind_label": "意見",
        "body_kind": "市区町村", "body_name": None, "comment": "各論に具体例を加えてほしい。", "proposal": "",
        "category": "revised", "category_label": "御意見を踏まえ修正", "answer": "具体例を2つ加えます。"}]
    again = await agency.client.post(f"{BASE}/{cid}/publish", json={})
    assert again.status_code == 422 and "すでに公表しています" in again.json()["detail"]


async def test_bad_input_is_refused_in_japanese_as_problem_json_and_nothing_changes(staff) -> None:
    agency = await staff(DIGITAL_AGENCY, "staff")
    bad = await agency.client.post(BASE, json=_draft(sections="見出しがない", closes_on="2001-01-01"))
    assert bad.status_code == 422 and bad.headers["content-type"].startswith(PROBLEM)
    fields = {e["field"] for e in bad.json()["errors"]}
    assert {"sections", "closes_on"} <= fields
    assert all(re.search(r"[ぁ-んァ-ン一-龥]", e["message"]) for e in bad.json()["errors"])
    assert "API で作る方針案" not in [w["title"] for w in (await agency.client.get(BASE)).json()["written"]]
    c = await _open(agency)
    sapporo = await staff(SAPPORO, "staff")
    for body in ({"section_key": "s9", "kind": "opinion", "body": "存在しない節"},
                 {"section_key": "s1", "kind": "other", "body": "種別が違う"},
                 {"section_key": "s1", "kind": "opinion", "body": " "}):
        refused = await sapporo.client.post(f"/api/v1/t/{SAPPORO}/opinions/{c['id']}/comments", json=body)
        assert refused.status_code == 422 and refused.headers["content-type"].startswith(PROBLEM), body
    assert (await sapporo.client.get(f"/api/v1/t/{SAPPORO}/opinions/{c['id']}")).json()["comments"] == []
    # After announcement the sections are frozen; the deadline may still move.
    frozen = await agency.client.put(f"{BASE}/{c['id']}", json={**_draft(sections="# 1 差し替え\n本文"),
                                                               "expected_version": c["version"]})
    assert frozen.status_code == 422 and "公開した後は" in frozen.json()["detail"]
    later = (service.today() + timedelta(days=30)).isoformat()
    moved = await agency.client.put(f"{BASE}/{c['id']}", json={**_draft(closes_on=later), "expected_version": c["version"]})
    assert moved.status_code == 200 and moved.json()["closes_on"] == later


async def test_who_may_call_each_twin(staff, client) -> None:
    agency = await staff(DIGITAL_AGENCY, "staff")
    c = await _open(agency)
    assert (await client.get(f"/api/v1/t/{SAPPORO}/opinions")).status_code == 401
    viewer = await staff(SAPPORO, "viewer")
    assert (await viewer.client.get(f"/api/v1/t/{SAPPORO}/opinions/{c['id']}")).status_code == 200
    refused = await viewer.client.post(f"/api/v1/t/{SAPPORO}/opinions/{c['id']}/comments", json={
        "section_key": "s1", "kind": "opinion", "body": "閲覧者の意見"})
    assert refused.status_code == 403 and refused.headers["content-type"].startswith(PROBLEM)
    # A municipality's staff cannot write a consultation (only national bodies: 404 elsewhere).
    sapporo = await staff(SAPPORO, "admin")
    assert (await sapporo.client.post(f"/api/v1/t/{SAPPORO}/opinions", json=_draft())).status_code == 404
    hakodate = await staff(HAKODATE, "staff")
    assert (await hakodate.client.get(f"/api/v1/t/{SAPPORO}/opinions/{c['id']}")).status_code == 404


async def test_a_system_comments_with_a_scoped_api_key(staff, client) -> None:
    agency = await staff(DIGITAL_AGENCY, "staff")
    c = await _open(agency)
    admin = await staff(SAPPORO, "admin")
    page = await admin.client.post(f"/t/{SAPPORO}/apikeys", data={
        "name": "文書管理システム", "kind": "live", "permissions": ["opinions.comment.read", "opinions.comment.write"],
        "rate_limit_per_minute": "600", "csrf_token": admin.csrf})
    token = re.search(r'<code id="new-api-key">([^<]+)</code>', page.text).group(1)
    key = {"Authorization": f"Bearer {token}"}
    made = await client.post(f"/api/v1/t/{SAPPORO}/opinions/{c['id']}/comments", headers=key, json={
        "section_key": "s1", "kind": "question", "body": "総論の対象期間は何年か。"})
    assert made.status_code == 201, made.text
    assert made.json()["submitted_by"].startswith("文書管理システム")
    # The key does not manage consultations (not granted): 403.
    assert (await client.get(f"/api/v1/t/{SAPPORO}/opinions/{c['id']}/review", headers=key)).status_code == 403


async def test_the_secretariat_sees_when_a_body_changes_a_comment_after_it_was_classified(staff) -> None:
    agency = await staff(DIGITAL_AGENCY, "staff")
    sapporo = await staff(SAPPORO, "staff")
    c = await _open(agency)
    made = (await sapporo.client.post(f"/api/v1/t/{SAPPORO}/opinions/{c['id']}/comments", json={
        "section_key": "s1", "kind": "opinion", "body": "総論に賛成。"})).json()
    (row,) = (await agency.client.get(f"{BASE}/{c['id']}/review")).json()["rows"]
    await agency.client.post(f"{BASE}/{c['id']}/reviews", json={"refs": [row["ref"]], "category": "as_is",
                                                                 "answer_text": "原案どおりとします。"})
    (row,) = (await agency.client.get(f"{BASE}/{c['id']}/review")).json()["rows"]
    assert row["changed_since_review"] is False
    await sapporo.client.put(f"/api/v1/t/{SAPPORO}/opinions/{c['id']}/comments/{made['id']}", json={
        "section_key": "s1", "kind": "opinion", "body": "総論に賛成。ただし期限を示してほしい。", "expected_version": 1})
    (row,) = (await agency.client.get(f"{BASE}/{c['id']}/review")).json()["rows"]
    assert row["changed_since_review"] is True and row["category"] == "as_is"
    assert row["comment"]["body"].endswith("期限を示してほしい。")
