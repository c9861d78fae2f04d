"""Issue 10 item 1: 名寄せ that cannot be used to look people up.

Both attacks the issue reports are reproduced and fail: ``decision=auto`` posted by an outsider,
and a look-alike registered from a name and a birth date and 「同じ人として統合」 pressed on the
≥ 50 % candidate, which now only asks the other record's owner and shows nothing of its record
until the owner accepts. Records marked 支援措置対象 are never candidates outside their owner and
the prefectures and never shared. Confirmations are limited per staff member and unusual ones are
flagged to the prefecture. A cross-tenant walk requests every disaster route (pages and API) as
every kind of organisation in each 名寄せ state and finds the victim's details only where
災害対策基本法 第90条の3・第90条の4, as implemented, lets them be read. The shelter's QR code is
built from the configured public address, never from a Host header a client sends."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from kiban.core.audit.models import AuditEntry
from kiban.core.tenancy.context import unscoped
from kiban.modules.disaster import matching
from kiban.modules.disaster import service as disaster_service
from kiban.modules.disaster.models import MatchDecision
from tests.core.test_route_permissions import api_routes
from tests.factories import HOKKAIDO, SAPPORO
from tests.modules.test_disaster_web import (
    CABINET_OFFICE,
    ISHIKAWA,
    KANAZAWA,
    TOYAMA,
    WAJIMA,
    _open_disaster,
    _person,
    _register,
    _shelter,
)

# What only readers of 輪島市's record may see: its phone, its address, its household number.
SECRETS = ("0768-22-1234", "輪島市河井町2-3-4", "W-001")


async def _victim(staff) -> tuple[str, str, str, object]:
    """輪島市 registers 高橋 健太 at its shelter."""
    matching.forget()
    disaster = await _open_disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    shelter = await _shelter(wajima, WAJIMA, disaster, "輪島中学校")
    victim = await _register(wajima, WAJIMA, disaster, shelter_id=shelter)
    return disaster, victim, shelter, wajima


async def _look_alike(attacker, code: str, disaster: str) -> str:
    """Someone who knows only the name and the birth date registers a look-alike."""
    return await _register(attacker, code, disaster, whereabouts="relatives", phone="", home_address="",
                           household_key="S-1", damage_level="未調査", risai_status="未申請", rebuild_plan="未定")


async def _confirm(person, code: str, disaster: str, mine: str, other: str, decision: str = "confirmed"):
    return await person.client.post(f"/t/{code}/disasters/{disaster}/matches", data={
        "record_id": mine, "other_id": other, "decision": decision, "csrf_token": person.csrf})


async def _answer(owner, code: str, disaster: str, record: str, answer: str) -> None:
    page = await owner.client.get(f"/t/{code}/disasters/{disaster}/records/{record}")
    decision = re.search(rf'/matches/([0-9a-f-]+)/{answer}"', page.text).group(1)
    response = await owner.client.post(f"/t/{code}/disasters/{disaster}/matches/{decision}/{answer}",
                                       data={"csrf_token": owner.csrf})
    assert response.status_code == 303, response.text


def _leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


async def test_decision_auto_from_staff_is_refused_and_reveals_nothing(staff, session) -> None:
    disaster, victim, _, _ = await _victim(staff)
    sapporo = await staff(SAPPORO, "admin")
    mine = await _look_alike(sapporo, SAPPORO, disaster)
    response = await _confirm(sapporo, SAPPORO, disaster, mine, victim, decision="auto")
    assert response.status_code == 422
    assert (await sapporo.client.get(f"/t/{SAPPORO}/disasters/{disaster}/records/{victim}")).status_code == 404
    async with unscoped(session, "test"):
        assert (await session.scalars(select(MatchDecision).where(MatchDecision.disaster_id == disaster))).all() == []


async def test_a_look_alike_confirmed_by_name_and_birth_date_sees_nothing_until_the_owner_accepts(staff, session) -> None:
    disaster, victim, _, wajima = await _victim(staff)
    sapporo = await staff(SAPPORO, "admin")
    mine = await _look_alike(sapporo, SAPPORO, disaster)

    page = await sapporo.client.get(f"/t/{SAPPORO}/disasters/{disaster}/records/{mine}")
    card = page.text[page.text.index('id="candidates"'):page.text.index("<h2>判断の履歴</h2>")]
    assert "輪島市が登録" in card and "統合すると輪島市に確認を依頼し" in card
    # The minimum to judge a match: no birth date, shelter, address or phone of 輪島市's record.
    assert "昭和55年" not in card and "1980" not in card and "輪島中学校" not in page.text and _leaks(page.text) == []
    probability = float(re.search(r"一致の確からしさ ([0-9.]+)%", card).group(1))
    assert probability >= 50

    response = await _confirm(sapporo, SAPPORO, disaster, mine, victim)
    assert response.status_code == 303
    page = await sapporo.client.get(f"/t/{SAPPORO}/disasters/{disaster}/records/{mine}")
    assert "確認を依頼中: 輪島市の受け入れ待ち" in page.text
    assert "この人はほかの団体にも登録されています。問い合わせ先: 輪島市（または石川県）" in page.text
    assert 'id="linked"' not in page.text and _leaks(page.text) == [] and "輪島中学校" not in page.text
    assert (await sapporo.client.get(f"/t/{SAPPORO}/disasters/{disaster}/records/{victim}")).status_code == 404
    listing = await sapporo.client.get(f"/t/{SAPPORO}/disasters/{disaster}")
    assert _leaks(listing.text) == [] and listing.text.count("高橋 健太") == 1  # its own look-alike only
    # Pressing again changes nothing.
    assert (await _confirm(sapporo, SAPPORO, disaster, mine, victim)).status_code == 303
    async with unscoped(session, "test"):
        pending = (await session.scalars(select(MatchDecision).where(MatchDecision.disaster_id == disaster,
                                                                     MatchDecision.reverted_at.is_(None)))).all()
    assert [(d.decision, d.acceptance, d.awaiting_code) for d in pending] == [("confirmed", "pending", WAJIMA)]

    # 輪島市 is asked, on its workspace and on the record, and sees what 札幌市 registered.
    workspace = await wajima.client.get(f"/t/{WAJIMA}/disasters/{disaster}")
    assert "札幌市からの依頼" in workspace.text
    own = await wajima.client.get(f"/t/{WAJIMA}/disasters/{disaster}/records/{victim}")
    assert "同じ人としての確認の依頼" in own.text and "札幌市の記録: 高橋 健太" in own.text
    # 輪島市 says they are different people: 札幌市 still sees nothing, and the pair is 別の人.
    await _answer(wajima, WAJIMA, disaster, victim, "decline")
    page = await sapporo.client.get(f"/t/{SAPPORO}/disasters/{disaster}/records/{mine}")
    assert "判断済み: 別の人" in page.text and _leaks(page.text) == []
    assert (await sapporo.client.get(f"/t/{SAPPORO}/disasters/{disaster}/records/{victim}")).status_code == 404


async def test_only_the_owner_or_its_prefecture_may_answer(staff) -> None:
    disaster, victim, _, wajima = await _victim(staff)
    sapporo = await staff(SAPPORO, "admin")
    mine = await _look_alike(sapporo, SAPPORO, disaster)
    assert (await _confirm(sapporo, SAPPORO, disaster, mine, victim)).status_code == 303
    page = await wajima.client.get(f"/t/{WAJIMA}/disasters/{disaster}/records/{victim}")
    decision = re.search(r'/matches/([0-9a-f-]+)/accept"', page.text).group(1)
    for code in (SAPPORO, HOKKAIDO, KANAZAWA, TOYAMA, CABINET_OFFICE):
        outsider = sapporo if code == SAPPORO else await staff(code, "admin")
        response = await outsider.client.post(f"/t/{code}/disasters/{disaster}/matches/{decision}/accept",
                                              data={"csrf_token": outsider.csrf})
        assert response.status_code == 404, code
    assert (await sapporo.client.get(f"/t/{SAPPORO}/disasters/{disaster}/records/{victim}")).status_code == 404
    # The responsible prefecture may answer for its municipality.
    ishikawa = await staff(ISHIKAWA, "admin")
    workspace = await ishikawa.client.get(f"/t/{ISHIKAWA}/disasters/{disaster}")
    assert "札幌市からの依頼" in workspace.text and "輪島市の記録" in workspace.text
    response = await ishikawa.client.post(f"/t/{ISHIKAWA}/disasters/{disaster}/matches/{decision}/accept",
                                          data={"csrf_token": ishikawa.csrf})
    assert response.status_code == 303
    shared = await sapporo.client.get(f"/t/{SAPPORO}/disasters/{disaster}/records/{victim}")
    assert shared.status_code == 200 and "輪島市が登録した記録です" in shared.text


async def test_a_protected_record_is_no_candidate_and_its_whereabouts_stay_with_its_owner(staff) -> None:
    disaster, victim, shelter, wajima = await _victim(staff)
    marked = await wajima.client.post(f"/t/{WAJIMA}/disasters/{disaster}/records/{victim}/edit", data={
        **_person(shelter_id=shelter), "protected": "on", "expected_version": "1", "csrf_token": wajima.csrf})
    assert marked.status_code == 303
    own = await wajima.client.get(f"/t/{WAJIMA}/disasters/{disaster}/records/{victim}")
    assert 'id="protected"' in own.text
    kanazawa = await staff(KANAZAWA, "staff")
    mine = await _look_alike(kanazawa, KANAZAWA, disaster)
    page = await kanazawa.client.get(f"/t/{KANAZAWA}/disasters/{disaster}/records/{mine}")
    assert "輪島市が登録" not in page.text and "候補はありません" in page.text
    assert (await _confirm(kanazawa, KANAZAWA, disaster, mine, victim)).status_code == 404
    # 金沢市 registers a 支援措置対象 person whose home is 輪島市: 輪島市 does not learn where they are.
    hidden = await _register(kanazawa, KANAZAWA, disaster, given_name="真理", given_kana="マリ", birth_date="1990-01-01",
                             whereabouts="relatives", protected="on", phone="076-000-0000", household_key="K-9")
    assert (await wajima.client.get(f"/t/{WAJIMA}/disasters/{disaster}/records/{hidden}")).status_code == 404
    listing = await wajima.client.get(f"/t/{WAJIMA}/disasters/{disaster}")
    assert "真理" not in listing.text
    board = (await wajima.client.get(f"/api/v1/t/{WAJIMA}/disasters/{disaster}/dashboard")).json()
    current = {row["label"]: row["registrations"] for row in board["tables"]["現在いる市町村"]}
    assert current["金沢市"] == 1  # 金沢市's look-alike only, not the protected registration
    # The prefecture sees both.
    ishikawa = await staff(ISHIKAWA, "viewer")
    for record in (victim, hidden):
        assert (await ishikawa.client.get(f"/t/{ISHIKAWA}/disasters/{disaster}/records/{record}")).status_code == 200


async def test_confirmations_are_limited_per_person_and_unusual_ones_flagged_to_the_prefecture(
        staff, session, monkeypatch) -> None:
    monkeypatch.setattr(disaster_service, "CONFIRM_LIMIT_PER_HOUR", 1)
    monkeypatch.setattr(disaster_service, "FLAG_CONFIRMATIONS_PER_DAY", 1)
    disaster, victim, _, wajima = await _victim(staff)
    second = await _register(wajima, WAJIMA, disaster, whereabouts="home", given_name="美咲", given_kana="ミサキ",
                             birth_date="1982-08-03", sex="female", household_key="W-002", phone="")
    kanazawa = await staff(KANAZAWA, "staff")
    first_alike = await _look_alike(kanazawa, KANAZAWA, disaster)
    second_alike = await _register(kanazawa, KANAZAWA, disaster, whereabouts="relatives", given_name="美咲",
                                   given_kana="ミサキ", birth_date="1982-08-03", sex="female", phone="", home_address="",
                                   household_key="K-2")
    assert (await _confirm(kanazawa, KANAZAWA, disaster, first_alike, victim)).status_code == 303
    refused = await _confirm(kanazawa, KANAZAWA, disaster, second_alike, second)
    assert refused.status_code == 429 and "1時間に確認できるのは 1 件までです" in refused.text
    async with unscoped(session, "test"):
        flags = (await session.scalars(select(AuditEntry).where(
            AuditEntry.lg_code == ISHIKAWA, AuditEntry.action.in_(("disaster.match.flagged", "disaster.match.limited")),
            AuditEntry.target_id == disaster))).all()
    assert {f.action for f in flags} == {"disaster.match.flagged", "disaster.match.limited"}
    ishikawa = await staff(ISHIKAWA, "viewer")
    workspace = await ishikawa.client.get(f"/t/{ISHIKAWA}/disasters/{disaster}")
    assert "名寄せの注意（2 件）" in workspace.text and "ほかの団体の記録と同じ人とする確認を依頼しています" in workspace.text
    # Another prefecture hears nothing of it.
    toyama = await staff(TOYAMA, "viewer")
    assert "名寄せの注意" not in (await toyama.client.get(f"/t/{TOYAMA}/disasters/{disaster}")).text


# -- the cross-tenant walk ------------------------------------------------------------------------

def _disaster_get_routes(app) -> list[str]:
    paths = []
    for route in api_routes(app):  # nested routers flattened, as OpenAPI sees them
        path = route.path
        if "GET" in (route.methods or ()) and (
                path.startswith("/t/{lg_code}/disasters") or path.startswith("/api/v1/t/{lg_code}/disasters")):
            paths.append(path)
    return sorted(set(paths))


async def _walk(app, viewers: dict[str, object], allowed: set[str], *, disaster: str, records: list[str],
                shelter: str, state: str) -> int:
    """Every disaster GET route as every viewer; SECRETS only where ``allowed``."""
    requests = 0
    for path in _disaster_get_routes(app):
        for code, person in viewers.items():
            for record in records if "{record_id}" in path else records[:1]:
                url = (path.replace("{lg_code}", code).replace("{disaster_id}", disaster).replace("{record_id}", record)
                       .replace("{shelter_id}", shelter).replace("{batch_id}", record))
                if "{" in url:
                    continue
                response = await person.client.get(url, params={"q": "高橋"} if url.endswith(disaster) else None)
                requests += 1
                assert response.status_code < 500, (state, code, url)
                if code not in allowed:
                    assert _leaks(response.text) == [], (state, code, url, _leaks(response.text))
    return requests


@pytest.mark.parametrize("state", ["pending", "declined", "accepted", "protected"])
async def test_no_record_is_readable_outside_the_sharing_rules_in_any_matching_state(staff, app, state) -> None:
    disaster, victim, shelter, wajima = await _victim(staff)
    sapporo = await staff(SAPPORO, "admin")
    mine = await _look_alike(sapporo, SAPPORO, disaster)  # home 輪島市, staying with relatives in 札幌市
    assert (await _confirm(sapporo, SAPPORO, disaster, mine, victim)).status_code == 303
    # Who may read 輪島市's record: its owner and home municipality, and 石川県 (第90条の3・第90条の4) ...
    allowed = {WAJIMA, ISHIKAWA}
    if state == "declined":
        await _answer(wajima, WAJIMA, disaster, victim, "decline")
    elif state in ("accepted", "protected"):
        await _answer(wajima, WAJIMA, disaster, victim, "accept")
        # ... and, once 輪島市 accepted, the linked registration's readers: 札幌市 and 北海道.
        allowed |= {SAPPORO, HOKKAIDO}
    if state == "protected":
        page = await wajima.client.get(f"/t/{WAJIMA}/disasters/{disaster}/records/{victim}/edit")
        version = re.search(r'name="expected_version" value="(\d+)"', page.text).group(1)
        marked = await wajima.client.post(f"/t/{WAJIMA}/disasters/{disaster}/records/{victim}/edit", data={
            **_person(shelter_id=shelter), "protected": "on", "expected_version": version, "csrf_token": wajima.csrf})
        assert marked.status_code == 303
        allowed = {WAJIMA, ISHIKAWA}  # a 支援措置対象 record: its owner and the prefecture only
    viewers = {WAJIMA: wajima, SAPPORO: sapporo}
    for code in (ISHIKAWA, HOKKAIDO, KANAZAWA, TOYAMA, CABINET_OFFICE):
        viewers[code] = await staff(code, "admin")
    requests = await _walk(app, viewers, allowed, disaster=disaster, records=[victim, mine], shelter=shelter,
                           state=state)
    assert requests > 100
    # The rules themselves, seen from the attacker: the record opens exactly when allowed.
    opened = await sapporo.client.get(f"/t/{SAPPORO}/disasters/{disaster}/records/{victim}")
    assert opened.status_code == (200 if SAPPORO in allowed else 404), state
    if SAPPORO in allowed:
        assert "避難所（輪島市）" in opened.text  # the accepted link shares where the person is


# -- the shelter's QR code ----------------------------------------------------------------------

async def test_the_qr_code_is_never_built_from_a_forged_host(staff, app) -> None:
    disaster, _, shelter, wajima = await _victim(staff)
    url = f"/t/{WAJIMA}/disasters/{disaster}/shelters/{shelter}"
    forged = await wajima.client.get(url, headers={"Host": "evil.example"})
    assert forged.status_code == 200
    assert "evil.example" not in forged.text and "<svg" not in forged.text
    assert "公開アドレスが設定されていないため" in forged.text
    allowed = await wajima.client.get(url, headers={"Host": "127.0.0.1:8000"})
    assert f"http://127.0.0.1:8000/t/{WAJIMA}/disasters/{disaster}/shelters/{shelter}/register" in allowed.text
    app.state.settings.public_url = "https://kiban.example.jp/"
    try:
        configured = await wajima.client.get(url, headers={"Host": "evil.example"})
    finally:
        app.state.settings.public_url = None
    assert f"https://kiban.example.jp/t/{WAJIMA}/disasters/{disaster}/shelters/{shelter}/register" in configured.text
    assert "evil.example" not in configured.text and "<svg" in configured.text
