"""Issue 11 item 2: the workspace costs what it shows.

The list, its search and its count run in SQL over search keys stored with each record and over
``person_id`` (the person after 名寄せ), so a page reads about a page of records however large the
disaster. These tests count the rows the database hands back, check that search folds 異体字 and
kana the way registrations are folded, and that visibility through ``person_id`` follows the
match decisions in force and nothing else: pending confirmations, reverts, batch undo, 支援措置対象
records and values a user sends all leave it where the rules put it."""

from __future__ import annotations

import random
import uuid

import pytest
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import event, insert, select

from kiban.core.audit import service as audit
from kiban.core.registry import service as registry
from kiban.core.registry.codes import prefecture_code
from kiban.core.tenancy.context import bind_tenant, unscoped
from kiban.modules.disaster import service
from kiban.modules.disaster.models import LinkageBatch, MatchDecision, VictimRecord
from kiban.modules.disaster.names import prefix_upper_bound, search_keys
from kiban.modules.disaster.roster import WHEREABOUTS
from tests.modules.test_disaster_web import ISHIKAWA, KANAZAWA, SUZU, WAJIMA, _person

ACTOR = audit.Actor("staff", "試験")
SAPPORO = "011002"


@pytest.fixture(params=["from the viewer's records", "walking the disaster"])
def listing(request, monkeypatch) -> str:
    """Run the test with each way the list finds a viewer's records (``service.records_page``):
    they must agree on every record."""
    monkeypatch.setattr(service, "SMALL_AREA", 10**9 if request.param.startswith("from") else -1)
    return request.param


@contextmanager
def records_read(engine):
    """Rows of victim records and match decisions the database returned while inside."""
    counted = [0]

    def after(conn, cursor, statement, parameters, context, executemany) -> None:
        if "victim_record" in statement or "match_decision" in statement:
            counted[0] += len(getattr(cursor, "_rows", ()) or ())

    event.listen(engine.sync_engine, "after_cursor_execute", after)
    try:
        yield counted
    finally:
        event.remove(engine.sync_engine, "after_cursor_execute", after)


def _row(disaster_id: str, owner: str, n: int, *, home: str | None = None, **values) -> dict:
    """A record as a bulk insert writes it: no search keys given (the column defaults fill them)."""
    home = home or owner
    at = datetime(2026, 11, 2, tzinfo=UTC) + timedelta(seconds=n)
    row = dict(lg_code=owner, id=str(uuid.uuid4()), disaster_id=disaster_id, family_name="佐藤", given_name=f"{n}",
               family_kana="サトウ", given_kana="", birth_date=date(1970, 1, 1), home_lg_code=home,
               home_pref_code=prefecture_code(home), whereabouts="home", current_lg_code=home,
               current_pref_code=prefecture_code(home), care_needs=[], supports=[], created_by="試験",
               created_at=at, updated_at=at)
    row.update(values)
    return row


async def _bulk(session, rows: list[dict]) -> None:
    async with unscoped(session, "試験データ"):
        await session.execute(insert(VictimRecord), rows)


async def _tenant(session, code: str):
    tenant = await registry.tenant_for(session, code)
    await bind_tenant(session, tenant)
    return tenant


async def _disaster(session) -> str:
    """A disaster opened by 石川県 (輪島市 and 珠洲市 affected), without signing anyone in."""
    disaster = await service.open_disaster(session, await _tenant(session, ISHIKAWA), name="令和8年能登半島北部地震",
                                           kind="地震", occurred_on=date(2026, 11, 1), description="",
                                           affected=[WAJIMA, SUZU], relief_act=[WAJIMA], actor="試験")
    return disaster.id


async def test_a_page_reads_a_page_of_a_large_disaster(staff, session, app_engine, monkeypatch, listing) -> None:
    monkeypatch.setattr(service, "COUNT_LIMIT", 5_000)  # every total exact here (see the next test)
    disaster = await _disaster(session)
    rng = random.Random(5)
    kana = ["アオキ", "イトウ", "ウエダ", "エンドウ", "オオタ", "カトウ", "キムラ", "クボ", "ケンモツ", "コバヤシ"]
    rows = [_row(disaster, WAJIMA, n, family_kana=rng.choice(kana), given_kana=f"{n:04d}") for n in range(1_800)]
    # 金沢市's registrations of people from 輪島市 are 輪島市's to see too (audited when shown).
    rows += [_row(disaster, KANAZAWA, n, home=WAJIMA, family_name="髙橋", family_kana="ﾀｶﾊｼ", given_name="幸子",
                  given_kana=f"ｻﾁｺ{n:03d}") for n in range(200)]
    await _bulk(session, rows)
    await session.commit()
    wajima = await staff(WAJIMA, "viewer")

    with records_read(app_engine) as read:
        page = await wajima.client.get(f"/t/{WAJIMA}/disasters/{disaster}", params={"page": 7})
    size = service.PAGE_SIZE
    pages = 2_000 // size
    assert page.status_code == 200 and "2,000 件" in page.text and f"7 / {pages} ページ" in page.text
    assert read[0] <= service.PAGE_SIZE + 20, read[0]  # the old list read all 2,000 and every decision

    with records_read(app_engine) as read:
        listed = (await wajima.client.get(f"/api/v1/t/{WAJIMA}/disasters/{disaster}/records",
                                          params={"page": 18})).json()
    assert (listed["total"], listed["pages"], len(listed["items"])) == (2_000, pages, size)
    assert read[0] <= service.PAGE_SIZE + 20, read[0]

    # In フリガナ order over the whole list, page after page, without gaps or repeats.
    async with unscoped(session, "試験"):
        expected = (await session.scalars(select(VictimRecord.id).where(VictimRecord.disaster_id == disaster)
                                          .order_by(*service.RECORD_ORDER))).all()
    tenant = await _tenant(session, WAJIMA)
    seen = []
    for number in (1, 2, 18):
        listed = await service.records_page(session, tenant, ACTOR, disaster, page=number)
        seen += [r.id for r in listed.records]
    assert seen == list(expected[:2 * size]) + list(expected[17 * size:18 * size])

    # Search: 「高橋」 finds 髙橋, ひらがな finds ﾊﾝｶｸ, the given name and its reading too.
    with records_read(app_engine) as read:
        found = (await wajima.client.get(f"/api/v1/t/{WAJIMA}/disasters/{disaster}/records",
                                         params={"q": "佐藤1"})).json()
    assert found["total"] == 1 + 10 + 100 + 800 and len(found["items"]) == size  # 佐藤1, 佐藤10…, 佐藤100…, 佐藤1000…
    assert read[0] <= service.PAGE_SIZE + 20, read[0]
    for query, expected_total in (("たかはし", 200), ("タカハシ　さちこ００７", 1), ("さちこ01", 10), ("幸子", 200),
                                  ("高橋幸子", 200), ("佐藤", 1_800), ("橋", 0), ("", 2_000)):
        listed = await service.records_page(session, tenant, ACTOR, disaster, q=query, page_size=1)
        assert listed.total == expected_total, query
    # Beyond COUNT_LIMIT the page says so instead of counting on, and still offers the next page.
    monkeypatch.setattr(service, "COUNT_LIMIT", 1_500)
    page = await wajima.client.get(f"/t/{WAJIMA}/disasters/{disaster}", params={"page": 15})
    assert "1,500 件以上" in page.text and "15 ページ目" in page.text and "page=16" in page.text


async def test_the_count_stops_and_says_there_are_more(session, monkeypatch, listing) -> None:
    disaster = await _disaster(session)
    await _bulk(session, [_row(disaster, WAJIMA, n) for n in range(30)])
    monkeypatch.setattr(service, "COUNT_LIMIT", 25)
    tenant = await _tenant(session, WAJIMA)

    async def shape(**asked):
        listed = await service.records_page(session, tenant, ACTOR, disaster, page_size=10, **asked)
        return listed.total, listed.more, listed.pages, listed.page, len(listed.records)

    assert await shape(page=1) == (25, True, 3, 1, 10)  # 25 counted, more after them
    assert await shape(page=3) == (30, False, 3, 3, 10)  # asking further counts further
    assert await shape(page=9) == (30, False, 3, 3, 10)  # past the end: the last page
    listed = await service.records_page(session, tenant, ACTOR, disaster, q="佐藤2", page_size=10)
    assert (listed.total, listed.more) == (11, False)  # 佐藤2, 佐藤20 … 佐藤29


async def test_the_count_known_from_own_records_agrees_with_the_full_count(session, monkeypatch, listing) -> None:
    """A list with more than COUNT_LIMIT records of the viewer's own (a municipality's
    registrations, a prefecture's residents) is not counted by the whole sharing rule; a viewer
    that sees many records but owns few still is. Either way the same totals."""
    disaster = await _disaster(session)
    await _bulk(session, [_row(disaster, WAJIMA, n) for n in range(3)]
                + [_row(disaster, KANAZAWA, n, home=WAJIMA) for n in range(30)]  # 輪島市's residents, 金沢市's records
                + [_row(disaster, SAPPORO, n) for n in range(40)])  # nobody here sees them but 北海道
    monkeypatch.setattr(service, "COUNT_LIMIT", 25)
    for code, first, all_of_them in ((WAJIMA, (25, True), 33), (KANAZAWA, (25, True), 30),
                                      (ISHIKAWA, (25, True), 33), (SUZU, (0, False), 0)):
        tenant = await _tenant(session, code)
        listed = await service.records_page(session, tenant, ACTOR, disaster, page_size=10)
        assert (listed.total, listed.more) == first, code
        further = await service.records_page(session, tenant, ACTOR, disaster, page=4, page_size=10)
        assert (further.total, further.more) == (all_of_them, False), code  # asked past the limit: counted
    if listing == "walking the disaster":  # known once per process (registrations are never deleted)
        assert service._owned_beyond[(disaster, KANAZAWA)] >= 25 and service._owned_beyond[(disaster, ISHIKAWA)] >= 25
        assert (disaster, WAJIMA) not in service._owned_beyond and (disaster, SUZU) not in service._owned_beyond


async def test_every_write_path_stores_the_search_keys(staff, session) -> None:
    disaster = await _disaster(session)
    wajima = await staff(WAJIMA, "staff")
    form = await wajima.client.post(f"/t/{WAJIMA}/disasters/{disaster}/records", data={
        **_person(family_name="髙橋", given_name="幸子", family_kana="ﾀｶﾊｼ", given_kana="ｻﾁｺ", whereabouts="home"),
        "csrf_token": wajima.csrf})
    assert form.status_code == 303
    by_form = form.headers["location"].rsplit("/", 1)[1]
    api = await wajima.client.post(f"/api/v1/t/{WAJIMA}/disasters/{disaster}/records", json={
        **{k: v for k, v in _person(family_name="齋藤", given_name="ケン", family_kana="さいとう", given_kana="",
                                    whereabouts="home").items() if k != "household_size"}, "household_size": 1})
    assert api.status_code == 201, api.text
    row = _row(disaster, WAJIMA, 1, family_name="渡邊", given_name="一", family_kana="ワタナベ", given_kana="ハジメ")
    await _bulk(session, [row])
    async with unscoped(session, "試験"):
        keys = {r.id: (r.name_key, r.given_key, r.kana_key, r.given_kana_key) for r in (await session.scalars(
            select(VictimRecord).where(VictimRecord.disaster_id == disaster))).all()}
    assert keys[by_form] == ("高橋幸子", "幸子", "たかはしさちこ", "さちこ")
    assert keys[api.json()["id"]] == ("斎藤けん", "けん", "さいとう", "")
    assert keys[row["id"]] == ("渡辺一", "一", "わたなべはじめ", "はじめ")
    # Correcting the name corrects the keys.
    tenant = await _tenant(session, WAJIMA)
    record = await service.own_record(session, disaster, by_form)
    data = service.RecordInput(family_name="髙橋", given_name="さち子", family_kana="タカハシ", given_kana="サチコ",
                               home_lg_code=WAJIMA, whereabouts="home")
    await service.update_record(session, tenant, await service.get_disaster(session, disaster), record.id, data,
                                expected_version=record.version)
    assert (record.name_key, record.given_key) == ("高橋さち子", "さち子")
    assert prefix_upper_bound("たか") == "たが" and prefix_upper_bound("") is None
    assert search_keys("ＳＭＩＴＨ", "John", "", "")["name_key"] == "smithjohn"


async def _pair(session, disaster: str, *, protected: bool = False) -> tuple[VictimRecord, VictimRecord]:
    """The same man registered by 輪島市 (his home) and by 札幌市, where he fled (another prefecture)."""
    d = await service.get_disaster(session, disaster)
    await _tenant(session, WAJIMA)
    home = await service.register(session, await registry.tenant_for(session, WAJIMA), d, service.RecordInput(
        family_name="高橋", given_name="健太", family_kana="タカハシ", given_kana="ケンタ", home_lg_code=WAJIMA,
        whereabouts="home"), actor="試験")
    await _tenant(session, SAPPORO)
    away = await service.register(session, await registry.tenant_for(session, SAPPORO), d, service.RecordInput(
        family_name="髙橋", given_name="健太", family_kana="ﾀｶﾊｼ", given_kana="ｹﾝﾀ", home_lg_code=SAPPORO,
        whereabouts="home", protected=protected), actor="試験")
    return home, away


async def _visible(session, code: str, disaster: str) -> set[str]:
    tenant = await _tenant(session, code)
    listed = await service.records_page(session, tenant, ACTOR, disaster)
    by_id = {r.id for r in await service.visible_records(session, tenant, disaster,
                                                         record_ids=[r.id for r in listed.records])}
    assert by_id == {r.id for r in listed.records}
    return {r.id for r in listed.records}


async def test_linked_records_are_shared_only_while_the_link_is_in_force(session, listing) -> None:
    disaster = await _disaster(session)
    home, away = await _pair(session, disaster)
    assert await _visible(session, WAJIMA, disaster) == {home.id}
    assert await _visible(session, SAPPORO, disaster) == {away.id}
    # 札幌市 confirms: a request, nothing linked until 輪島市 (the other owner) accepts.
    sapporo = await _tenant(session, SAPPORO)
    match = await service.decide(session, sapporo, disaster, away, home, decision="confirmed", probability=0.99,
                                 reasons=[], actor="試験")
    assert match.acceptance == service.PENDING and home.person_id is None and away.person_id is None
    assert await _visible(session, SAPPORO, disaster) == {away.id}
    wajima = await _tenant(session, WAJIMA)
    await service.accept(session, wajima, disaster, match.id, "試験")
    assert home.person_id == away.person_id == min(home.id, away.id)
    assert await _visible(session, WAJIMA, disaster) == {home.id, away.id}
    assert await _visible(session, SAPPORO, disaster) == {home.id, away.id}
    assert await _visible(session, SUZU, disaster) == set()  # a neighbour of neither
    assert await _visible(session, "010006", disaster) == {home.id, away.id}  # 北海道: 札幌市's prefecture
    # Taken back: each sees its own again.
    await service.revert(session, wajima, disaster, match.id, "試験")
    assert home.person_id is None and away.person_id is None
    assert await _visible(session, WAJIMA, disaster) == {home.id}
    assert await _visible(session, SAPPORO, disaster) == {away.id}


async def test_a_protected_record_stays_with_its_owner_and_prefectures_when_linked(session, listing) -> None:
    disaster = await _disaster(session)
    home, away = await _pair(session, disaster, protected=True)
    wajima = await _tenant(session, WAJIMA)
    # 輪島市 asks; 札幌市 accepts: linked, but 輪島市 still does not see 札幌市's 支援措置対象 record.
    match = await service.decide(session, wajima, disaster, home, away, decision="confirmed", probability=0.99,
                                 reasons=[], actor="試験")
    await service.accept(session, await _tenant(session, SAPPORO), disaster, match.id, "試験")
    assert home.person_id is not None and home.person_id == away.person_id
    assert await _visible(session, WAJIMA, disaster) == {home.id}
    assert await _visible(session, SAPPORO, disaster) == {home.id, away.id}
    assert await _visible(session, ISHIKAWA, disaster) == {home.id}  # not 札幌市's prefecture
    assert await _visible(session, "010006", disaster) == {home.id, away.id}  # 北海道 is
    wajima = await _tenant(session, WAJIMA)
    assert await service.visible_records(session, wajima, disaster, record_ids=[away.id]) == []


async def test_nothing_a_user_sends_sets_the_person(staff, session) -> None:
    disaster = await _disaster(session)
    home, away = await _pair(session, disaster)
    await session.commit()
    sapporo = await staff(SAPPORO, "staff")
    body = {k: v for k, v in _person(home_lg_code=SAPPORO, whereabouts="home").items() if k != "household_size"}
    sent = await sapporo.client.post(f"/api/v1/t/{SAPPORO}/disasters/{disaster}/records",
                                     json={**body, "person_id": home.id})
    assert sent.status_code == 422  # an unknown field is refused
    form = await sapporo.client.post(f"/t/{SAPPORO}/disasters/{disaster}/records/{away.id}/edit", data={
        **_person(home_lg_code=SAPPORO, whereabouts="home"), "person_id": home.id, "expected_version": "1",
        "csrf_token": sapporo.csrf})
    assert form.status_code == 303, form.text
    async with unscoped(session, "試験"):
        people = (await session.scalars(select(VictimRecord.person_id).where(VictimRecord.disaster_id == disaster))).all()
    assert people == [None, None]
    listing = (await sapporo.client.get(f"/api/v1/t/{SAPPORO}/disasters/{disaster}/records")).json()
    assert [r["id"] for r in listing["items"]] == [away.id]
    assert (await sapporo.client.get(f"/api/v1/t/{SAPPORO}/disasters/{disaster}/records/{home.id}")).status_code == 404


async def test_persons_follow_every_change_of_links_and_match_the_clusters(session) -> None:
    disaster = await _disaster(session)
    rows = [_row(disaster, WAJIMA if n % 2 else KANAZAWA, n, home=WAJIMA) for n in range(40)]
    ids = [r["id"] for r in rows]
    await _bulk(session, rows)
    rng = random.Random(11)
    at = datetime(2026, 11, 3, tzinfo=UTC)
    decisions = []
    for n in range(60):
        a, b = sorted(rng.sample(ids, 2))
        decisions.append(MatchDecision(
            id=str(uuid.uuid4()), disaster_id=disaster, record_a_code="", record_a_id=a, record_b_code="", record_b_id=b,
            decision=rng.choice(("confirmed", "auto", "rejected")), probability="", reasons=[], decided_by_code=ISHIKAWA,
            decided_by="試験", decided_at=at + timedelta(seconds=n), acceptance=rng.choice(("", "", service.PENDING)),
            reverted_at=at if rng.random() < 0.2 else None))
    session.add_all(decisions)
    await session.flush()

    async def persons() -> dict[str, str | None]:
        async with unscoped(session, "試験"):
            return dict((await session.execute(select(VictimRecord.id, VictimRecord.person_id).where(
                VictimRecord.disaster_id == disaster))).all())

    def expected() -> dict[str, str | None]:
        person = service.clusters(decisions)
        return {i: person.get(i) for i in ids}

    assert await service.sync_persons(session, disaster) > 0  # the whole disaster at once (as migration 0018)
    assert await persons() == expected()
    # One link at a time, as decide / accept / revert do: the same result.
    for d in rng.sample(decisions, 15):
        d.reverted_at = None if d.reverted_at else at
        await service.sync_persons(session, disaster, {d.record_a_id, d.record_b_id})
        assert await persons() == expected()
    assert await service.sync_persons(session, disaster) == 0


async def test_a_batch_links_and_its_undo_unlinks(session, listing) -> None:
    disaster = await _disaster(session)
    rows = [_row(disaster, WAJIMA, 1), _row(disaster, KANAZAWA, 2, home=SUZU), _row(disaster, SAPPORO, 3)]
    await _bulk(session, rows)
    w, k, s = (r["id"] for r in rows)
    batch = LinkageBatch(id=str(uuid.uuid4()), disaster_id=disaster, run_by_code=ISHIKAWA, status="previewed", records=3,
                         threshold="0.9", pairs=[{"a": w, "a_code": WAJIMA, "b": k, "b_code": KANAZAWA, "probability": 0.99,
                                                  "action": "link", "reasons": []},
                                                 {"a": k, "a_code": KANAZAWA, "b": s, "b_code": SAPPORO, "probability": 0.98,
                                                  "action": "link", "reasons": []}],
                         created_by="試験", created_at=datetime.now(UTC))
    session.add(batch)
    ishikawa = await _tenant(session, ISHIKAWA)
    await service.apply_batch(session, ishikawa, disaster, batch.id, "試験")
    assert await _visible(session, WAJIMA, disaster) == {w, k, s}
    ishikawa = await _tenant(session, ISHIKAWA)
    await service.undo_batch(session, ishikawa, disaster, batch.id, "試験")
    assert await _visible(session, WAJIMA, disaster) == {w}
    assert await _visible(session, SAPPORO, disaster) == {s}


async def test_large_dashboards_are_counted_once_per_interval_and_per_area(session, monkeypatch) -> None:
    disaster = await _disaster(session)
    await _bulk(session, [_row(disaster, WAJIMA, n, care_needs=["高齢者", "高齢者"]) for n in range(6)]
                + [_row(disaster, SUZU, n) for n in range(4)])
    monkeypatch.setattr(service, "DASHBOARD_CACHE_FROM", 5)
    wajima = await _tenant(session, WAJIMA)
    first = await service.dashboard(session, wajima, disaster)
    assert (first.total, first.people) == (6, 6) and first.tables["要配慮者"][0].registrations == 6
    await _bulk(session, [_row(disaster, WAJIMA, 7)])
    again = await service.dashboard(session, wajima, disaster)
    assert (again.total, again.counted_at) == (6, first.counted_at)  # the counts of a moment ago
    suzu = await service.dashboard(session, await _tenant(session, SUZU), disaster)
    assert suzu.total == 4  # another area is never served another's counts
    monkeypatch.setattr(service, "DASHBOARD_MAX_AGE", 0.0)
    monkeypatch.setattr(service, "DASHBOARD_COST_SHARE", float("inf"))  # counts are stale at once
    stale = await service.dashboard(session, await _tenant(session, WAJIMA), disaster)
    assert (stale.total, stale.counted_at) == (6, first.counted_at)  # shown with their time, counted ahead soon
    monkeypatch.setattr(service, "DASHBOARD_SERVE_STALE_FOR", 0.0)  # too old to show: counted while waiting
    assert (await service.dashboard(session, await _tenant(session, WAJIMA), disaster)).total == 7
    service._counted.clear()  # nothing of this rolled-back disaster left for a job runner's tick
    service._viewed.clear()


def _count_the_counts(monkeypatch) -> list:
    """A list that grows by one each time an area is counted."""
    counting = []
    real_counts = service._counts

    async def spied(session_, condition, pace=None):
        counting.append(1)
        return await real_counts(session_, condition, pace)

    monkeypatch.setattr(service, "_counts", spied)
    return counting


async def test_a_large_area_counted_by_one_process_is_not_counted_again_by_another(session, test_database,
                                                                                     monkeypatch) -> None:
    """The counts are stored for every server process (shared_snapshot): another process (here:
    this one with its memory emptied) shows them without counting while they are fresh; once
    stale it counts again, unless another process is doing so (then the previous counts)."""
    if not test_database.is_postgres:
        pytest.skip("SQLite has one server process; there a view stores nothing (the test after this one)")
    disaster = await _disaster(session)
    await _bulk(session, [_row(disaster, WAJIMA, n) for n in range(6)])
    monkeypatch.setattr(service, "DASHBOARD_CACHE_FROM", 5)
    counting = _count_the_counts(monkeypatch)
    wajima = await _tenant(session, WAJIMA)
    first = await service.dashboard(session, wajima, disaster)
    assert first.total == 6 and len(counting) == 1
    await _bulk(session, [_row(disaster, WAJIMA, 7)])
    service._counted.clear()  # another process
    other = await service.dashboard(session, wajima, disaster)
    assert (other.total, other.counted_at, other.tables) == (6, first.counted_at, first.tables) and len(counting) == 1
    service._counted.clear()
    monkeypatch.setattr(service, "DASHBOARD_MAX_AGE", 0.0)
    monkeypatch.setattr(service, "DASHBOARD_COST_SHARE", float("inf"))
    monkeypatch.setattr(service, "DASHBOARD_SERVE_STALE_FOR", 0.0)

    async def busy(session_, name):
        return False  # another process holds the turn

    monkeypatch.setattr(service.shared, "claim_snapshot", busy)
    assert (await service.dashboard(session, wajima, disaster)).total == 6 and len(counting) == 1
    monkeypatch.undo()
    monkeypatch.setattr(service, "DASHBOARD_CACHE_FROM", 5)
    monkeypatch.setattr(service, "DASHBOARD_MAX_AGE", 0.0)
    monkeypatch.setattr(service, "DASHBOARD_COST_SHARE", float("inf"))
    monkeypatch.setattr(service, "DASHBOARD_SERVE_STALE_FOR", 0.0)
    service._counted.clear()
    assert (await service.dashboard(session, wajima, disaster)).total == 7
    service._counted.clear()
    service._viewed.clear()


async def test_on_sqlite_a_view_of_a_large_area_writes_nothing_and_the_ticker_stores_its_counts(
        session, test_database, monkeypatch) -> None:
    """On SQLite a dashboard view stays a reader: its counts are kept in the one server process's
    memory, shown while stale by less than DASHBOARD_SERVE_STALE_FOR, and stored by the ticker.
    (A view that stored them had to be run again with the write lock after counting.)"""
    if test_database.is_postgres:
        pytest.skip("on PostgreSQL the view stores its counts for the other server processes")
    disaster = await _disaster(session)
    await _bulk(session, [_row(disaster, WAJIMA, n) for n in range(6)])
    await session.commit()  # the rows are not this test's pending writes
    monkeypatch.setattr(service, "DASHBOARD_CACHE_FROM", 5)
    service._counted.clear()
    service._viewed.clear()
    counting = _count_the_counts(monkeypatch)
    wajima = await _tenant(session, WAJIMA)
    first = await service.dashboard(session, wajima, disaster)
    [area] = service._viewed
    name = "dashboard:" + "|".join(area)
    assert first.total == 6 and len(counting) == 1
    assert not (session.new or session.dirty or session.deleted)
    assert await service.shared.read_snapshot(session, name) is None  # nothing written
    monkeypatch.setattr(service, "DASHBOARD_MAX_AGE", 0.0)
    monkeypatch.setattr(service, "DASHBOARD_COST_SHARE", float("inf"))
    stale = await service.dashboard(session, wajima, disaster)
    assert (stale.total, stale.counted_at, len(counting)) == (6, first.counted_at, 1)  # shown with its time
    monkeypatch.setattr(service, "DASHBOARD_REFRESH_AHEAD", 0.0)
    assert await service.refresh_dashboards(session) == 1 and len(counting) == 2
    stored = await service.shared.read_snapshot(session, name)
    assert stored is not None and service._decoded(stored.value)["total"][None] == (6, 6)
    service._counted.clear()
    service._viewed.clear()


async def test_a_large_area_viewed_lately_is_counted_ahead_so_no_view_waits_for_a_count(session, monkeypatch) -> None:
    """The job runner's tick counts a large area again before its counts go stale, while people
    look at it; a view then shows the new counts without counting. An area nobody looked at
    lately is left alone, and a small area is never kept."""
    disaster = await _disaster(session)
    await _bulk(session, [_row(disaster, WAJIMA, n) for n in range(6)] + [_row(disaster, SUZU, n) for n in range(2)])
    monkeypatch.setattr(service, "DASHBOARD_CACHE_FROM", 5)
    service._counted.clear()
    service._viewed.clear()
    counting = _count_the_counts(monkeypatch)
    wajima = await _tenant(session, WAJIMA)
    first = await service.dashboard(session, wajima, disaster)
    await service.dashboard(session, await _tenant(session, SUZU), disaster)  # small: counted at each view, not kept
    assert first.total == 6 and len(counting) == 2 and len(service._viewed) == 1
    assert await service.refresh_dashboards(session) == 0  # fresh: nothing to do yet
    await _bulk(session, [_row(disaster, WAJIMA, 7)])

    monkeypatch.setattr(service, "DASHBOARD_REFRESH_AHEAD", 0.0)  # as if the counts neared their end
    assert await service.refresh_dashboards(session) == 1 and len(counting) == 3
    monkeypatch.setattr(service, "DASHBOARD_REFRESH_AHEAD", 0.7)
    later = await service.dashboard(session, await _tenant(session, WAJIMA), disaster)
    assert later.total == 7 and later.counted_at > first.counted_at and len(counting) == 3  # the view counted nothing
    service._counted.clear()  # another process adopts the stored counts, without counting
    assert (await service.dashboard(session, await _tenant(session, WAJIMA), disaster)).total == 7 and len(counting) == 3

    # Nobody has looked for longer than DASHBOARD_KEEP_WARM: no more counting ahead.
    monkeypatch.setattr(service, "DASHBOARD_REFRESH_AHEAD", 0.0)
    monkeypatch.setattr(service, "DASHBOARD_KEEP_WARM", -1.0)
    assert await service.refresh_dashboards(session) == 0 and len(counting) == 3 and service._viewed == {}
    service._counted.clear()
    service._viewed.clear()


async def test_a_count_made_ahead_in_slices_adds_up_to_the_count_made_at_once(session, test_database, monkeypatch) -> None:
    """Counted ahead (``service.Pace``), an area is read in slices of the table and of the person
    ids, resting between them: the slices' sums must be the counts of one statement over the area,
    persons after 名寄せ and repeated care needs included."""
    if not test_database.is_postgres:
        pytest.skip("the slices are PostgreSQL's (ctid ranges); SQLite counts in one statement")
    disaster = await _disaster(session)
    rng = random.Random(11)
    rows = []
    for n in range(400):
        owner = rng.choice([WAJIMA, SUZU, KANAZAWA])
        rows.append(_row(disaster, owner, n, home=rng.choice([WAJIMA, SUZU, KANAZAWA, SAPPORO]),
                         whereabouts=rng.choice(list(WHEREABOUTS)),
                         care_needs=rng.choice([[], ["高齢者"], ["乳幼児", "高齢者", "高齢者"], ["障害者"]])))
    for a, b in zip(rows[0:120:2], rows[1:120:2]):  # 60 persons registered twice (名寄せ linked them)
        a["person_id"] = b["person_id"] = a["id"]
    await _bulk(session, rows)
    ishikawa = await _tenant(session, ISHIKAWA)
    condition = service.and_(VictimRecord.disaster_id == disaster, service._visible_to(ishikawa))
    async with unscoped(session, "試験"):
        at_once = await service._counts(session, condition)
        monkeypatch.setattr(service, "COUNT_SLICE_PAGES", 2)
        monkeypatch.setattr(service, "COUNT_REST", 0.0)
        assert len(await service._table_slices(session)) > 5  # really read in many slices
        pace = service.Pace()
        sliced = await service._counts(session, condition, pace)
    assert sliced == at_once and pace.busy > 0
    total, persons = at_once["total"][None]
    assert total == sum(1 for r in rows if r["home_lg_code"] != SAPPORO)  # 石川県's area: home or current in 石川県
    assert persons < total and at_once["care_needs"]["高齢者"][0] > 0


async def test_a_count_made_ahead_on_a_server_reads_one_snapshot(app_engine, test_database) -> None:
    """On a server (a session bound to the engine) a count made ahead reads on a transaction of
    its own: on PostgreSQL one REPEATABLE READ transaction, so the slices add up to the area at one
    moment; on SQLite a deferred one, a snapshot read that leaves the write lock to the writers."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import AsyncSession

    async with AsyncSession(bind=app_engine) as session:
        async with service._counting_session(session) as counting:
            assert counting is not session
            if test_database.is_postgres:
                assert await counting.scalar(text("SHOW transaction_isolation")) == "repeatable read"
            else:
                await counting.execute(text("SELECT count(*) FROM victim_record"))
                assert (await counting.connection()).sync_connection.get_execution_options().get("sqlite_deferred") is True


async def test_migration_0018_fills_the_keys_and_persons_of_existing_records(test_database, tmp_path) -> None:
    """Records registered before 0018 get their keys (the same function) and their person (the
    decisions in force: confirmed and accepted links, not a pending one nor a reverted one)."""
    import asyncio

    from sqlalchemy import text

    from kiban.kit import migrate
    from kiban.kit.db import create_engine

    if test_database.is_postgres:
        from tests.conftest import _admin, _pg_url

        name = test_database.name + "_m18"
        await _admin(f'CREATE DATABASE "{name}"')
        url = _pg_url("postgres", name)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'm18.sqlite3'}"
    engine = create_engine(url, pool=False)
    try:
        await asyncio.to_thread(migrate.upgrade, url, "0017")
        now = datetime(2026, 11, 2, tzinfo=UTC)
        async with engine.begin() as connection:
            for code, org_type in ((WAJIMA, "市"), (KANAZAWA, "市"), (ISHIKAWA, "県")):
                await connection.execute(text("INSERT INTO organization (code, name, type, search_key, sort_order)"
                                              " VALUES (:c, :c, :t, '', 0)"), {"c": code, "t": org_type})
            await connection.execute(text(
                "INSERT INTO disaster (id, name, kind, occurred_on, description, opened_by_code, opened_by, opened_at)"
                " VALUES ('d', '地震', '地震', :on, '', :by, '試験', :at)"), {"on": date(2026, 11, 1), "by": ISHIKAWA, "at": now})
            rows = [_row("d", WAJIMA, n, family_name="髙橋", given_name="幸子", family_kana="ﾀｶﾊｼ", given_kana="ｻﾁｺ",
                         id=f"r{n}") for n in range(5)]
            columns = [c for c in rows[0] if c not in ("care_needs", "supports")]
            await connection.execute(text(
                f"INSERT INTO victim_record ({', '.join(columns)}, care_needs, supports, phone, household_key,"
                " household_size, damage_level, risai_status, rebuild_plan, demolished, long_term_evacuation, note,"
                " version, home_address, protected)"
                f" VALUES ({', '.join(':' + c for c in columns)}, '[]', '[]', '', '', 1, '未調査', '未申請', '未定',"
                " false, false, '', 1, '', false)"), [{c: r[c] for c in columns} for r in rows])
            for n, (a, b, acceptance, reverted) in enumerate((("r0", "r1", "accepted", None), ("r1", "r2", "", None),
                                                              ("r3", "r4", "pending", None), ("r2", "r3", "", now))):
                await connection.execute(text(
                    "INSERT INTO match_decision (id, disaster_id, record_a_code, record_a_id, record_b_code, record_b_id,"
                    " decision, probability, reasons, decided_by_code, decided_by, decided_at, reverted_at, acceptance)"
                    " VALUES (:id, 'd', '', :a, '', :b, 'confirmed', '', '[]', '', '試験', :at, :reverted, :acceptance)"),
                    {"id": f"m{n}", "a": a, "b": b, "at": now, "reverted": reverted, "acceptance": acceptance})
        await asyncio.to_thread(migrate.upgrade, url, "0018")
        async with engine.connect() as connection:
            found = (await connection.execute(text(
                "SELECT id, name_key, given_key, kana_key, given_kana_key, person_id FROM victim_record ORDER BY id"))).all()
        assert [tuple(r) for r in found] == [(f"r{n}", "高橋幸子", "幸子", "たかはしさちこ", "さちこ",
                                              "r0" if n < 3 else None) for n in range(5)]
    finally:
        await engine.dispose()
        if test_database.is_postgres:
            await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_people_opening_a_large_dashboard_at_once_count_it_once(monkeypatch) -> None:
    import asyncio

    calls = []

    async def slow_counts(session, area, condition):
        calls.append(condition)
        await asyncio.sleep(0.05)
        return {"total": {None: (25_000, 20_000)}}, service.utcnow(), 0.05

    monkeypatch.setattr(service, "_shared_counts", slow_counts)
    area = (str(uuid.uuid4()), "national", "")
    results = await asyncio.gather(*(service._counts_of(None, area, "condition") for _ in range(5)))
    assert len(calls) == 1 and all(r == results[0] for r in results)
    assert (await service._counts_of(None, area, "condition")) == results[0] and len(calls) == 1  # cached
