"""A 名寄せ matcher catches up on what changed since it last looked, exactly and only on that.

Each writing transaction notes the ids it wrote under the generation it bumped
(``matcher_change``); a catch-up reads the entries past the generations it has seen, then those
records. While residents register and an import runs, the old catch-up (records stamped within
a minute) read the import's last minute again, ~20,000 rows, on every catch-up (issue #11).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select, update

from kiban.core.tenancy.context import unscoped
from kiban.kit.db import utcnow
from kiban.modules.disaster import matching
from kiban.modules.disaster.models import MatcherChange, VictimRecord
from tests.modules.test_disaster_web import WAJIMA, _open_disaster, _person, _register


@pytest.fixture
def indexed(monkeypatch) -> list[list[str]]:
    """The ids each catch-up or build handed to the matcher's indexes, call by call."""
    calls: list[list[str]] = []
    original = matching._index

    async def spy(entry, mappings):
        calls.append([m["record_id"] for m in mappings])
        await original(entry, mappings)

    monkeypatch.setattr(matching, "_index", spy)
    return calls


async def _changes(session, disaster: str) -> list[tuple[str, int, list[str]]]:
    rows = (await session.execute(select(MatcherChange.name, MatcherChange.generation, MatcherChange.record_ids)
                                  .where(MatcherChange.name.in_(matching.generation_names(disaster)))
                                  .order_by(MatcherChange.name, MatcherChange.generation))).all()
    return [tuple(row) for row in rows]


async def test_a_catch_up_reads_exactly_what_was_written_since(staff, session, indexed) -> None:
    matching.forget()
    disaster = await _open_disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    first = await _register(wajima, WAJIMA, disaster, whereabouts="home")
    second = await _register(wajima, WAJIMA, disaster, whereabouts="home", given_name="美咲", given_kana="ミサキ",
                             birth_date="1982-08-03", sex="female")
    # Each registration noted its id under the generation it bumped.
    assert sorted(ids[0] for _, _, ids in await _changes(session, disaster)) == sorted([first, second])
    entry = await matching.matcher_for(session, disaster)
    assert sorted(indexed.pop()) == sorted([first, second]) and indexed == []

    late = await _register(wajima, WAJIMA, disaster, whereabouts="home", given_name="翔", given_kana="ショウ",
                           birth_date="2010-04-01")
    await matching.matcher_for(session, disaster)
    assert indexed == [[late]] and late in entry.matcher

    # An edit of a compared field is indexed again; the records unchanged are not.
    indexed.clear()
    edited = await wajima.client.post(f"/t/{WAJIMA}/disasters/{disaster}/records/{first}/edit",
                                      data={**await _form_of(wajima, disaster, first), "phone": "0768-22-9999"})
    assert edited.status_code == 303, edited.text
    await matching.matcher_for(session, disaster)
    assert indexed == [[first]]

    # An edit of nothing the matcher compares bumps nothing and is not read.
    indexed.clear()
    before = entry.generation
    edited = await wajima.client.post(f"/t/{WAJIMA}/disasters/{disaster}/records/{first}/edit",
                                      data={**await _form_of(wajima, disaster, first), "phone": "0768-22-9999",
                                            "note": "毛布が必要"})
    assert edited.status_code == 303, edited.text
    await matching.matcher_for(session, disaster)
    assert indexed == [] and entry.generation == before


async def _form_of(person, disaster: str, record_id: str) -> dict:
    page = await person.client.get(f"/t/{WAJIMA}/disasters/{disaster}/records/{record_id}/edit")
    assert page.status_code == 200
    version = re.search(r'name="expected_version" value="(\d+)"', page.text).group(1)
    return {**_person(whereabouts="home"), "expected_version": version, "csrf_token": person.csrf}


async def test_a_request_that_waited_while_another_caught_up_further_does_not_catch_up_again(
        staff, session, indexed) -> None:
    matching.forget()
    disaster = await _open_disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    await _register(wajima, WAJIMA, disaster, whereabouts="home")
    read_before = await matching.generations(session, (*matching.generation_names(disaster), matching.ALL_DISASTERS))
    entry = await matching.matcher_for(session, disaster)
    assert len(indexed) == 1

    # A request read the generation, then waited for the lock while another request caught up
    # with a registration committed meanwhile: the matcher has seen more than it asks for.
    await _register(wajima, WAJIMA, disaster, whereabouts="home", given_name="美咲", given_kana="ミサキ",
                    birth_date="1982-08-03", sex="female")
    await matching.matcher_for(session, disaster)
    assert len(indexed) == 2 and entry.generation > read_before
    assert matching._caught_up(entry, read_before)
    assert not matching._caught_up(entry, (entry.generation[0] + 1, *entry.generation[1:]))
    assert not matching._caught_up(matching._Entry(), read_before)


async def test_a_built_matcher_is_kept_out_of_the_garbage_collectors_walk(staff, session, monkeypatch) -> None:
    """A million-registration matcher is millions of objects: each full collection walking them
    stopped the process for 2 s. Once built, they are frozen out of the collections (here from
    the first row: a matcher this small is otherwise left to the collector)."""
    import gc

    monkeypatch.setattr(matching, "FREEZE_FROM", 1)
    matching.forget()
    disaster = await _open_disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    await _register(wajima, WAJIMA, disaster, whereabouts="home")
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    entry = await matching.matcher_for(session, disaster)
    try:
        assert gc.get_freeze_count() > 0
        assert all(obj is not entry.matcher for obj in gc.get_objects())  # frozen: in no generation collected
    finally:
        gc.unfreeze()


async def test_a_matcher_whose_next_entry_was_pruned_builds_again(staff, session, indexed) -> None:
    """Entries are kept for ``KEEP_CHANGES``; a matcher that needs one already deleted cannot
    know what it missed, and reads the whole disaster again rather than miss a record."""
    matching.forget()
    disaster = await _open_disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    first = await _register(wajima, WAJIMA, disaster, whereabouts="home")
    entry = await matching.matcher_for(session, disaster)
    indexed.clear()
    second = await _register(wajima, WAJIMA, disaster, whereabouts="home", given_name="美咲", given_kana="ミサキ",
                             birth_date="1982-08-03", sex="female")
    third = await _register(wajima, WAJIMA, disaster, whereabouts="home", given_name="翔", given_kana="ショウ",
                            birth_date="2010-04-01")
    # The entry of the second registration is gone (pruned); the third's is kept.
    (name, generation, _), = [c for c in await _changes(session, disaster) if c[2] == [second]]
    await session.execute(delete(MatcherChange).where(MatcherChange.name == name,
                                                      MatcherChange.generation == generation))
    await session.commit()
    await matching.matcher_for(session, disaster)
    assert sorted(indexed.pop()) == sorted([first, second, third]) and indexed == []
    assert all(r in entry.matcher for r in (first, second, third))


async def test_old_entries_are_pruned_and_recent_ones_kept(staff, session) -> None:
    matching.forget()
    disaster = await _open_disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    await _register(wajima, WAJIMA, disaster, whereabouts="home")
    recent = await _register(wajima, WAJIMA, disaster, whereabouts="home", given_name="美咲",
                             given_kana="ミサキ", birth_date="1982-08-03", sex="female")
    old_name, old_generation, _ = next(c for c in await _changes(session, disaster) if c[2] != [recent])
    await session.execute(update(MatcherChange).where(MatcherChange.name == old_name,
                                                      MatcherChange.generation == old_generation)
                          .values(changed_at=utcnow() - matching.KEEP_CHANGES - timedelta(minutes=1)))
    await session.commit()
    assert await matching.prune_changes(session) >= 1
    assert [c[2] for c in await _changes(session, disaster)] == [[recent]]
    from kiban.core.jobs.runner import TICKERS
    assert TICKERS[matching.prune_changes] == (matching.PRUNE_EVERY_SECONDS, False)  # where jobs run, not per worker


async def test_a_bulk_write_notes_its_rows_and_a_long_list_takes_consecutive_generations(
        staff, session, indexed, monkeypatch) -> None:
    matching.forget()
    disaster = await _open_disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    records = [await _register(wajima, WAJIMA, disaster, whereabouts="home"),
               await _register(wajima, WAJIMA, disaster, whereabouts="home", given_name="美咲",
                               given_kana="ミサキ", birth_date="1982-08-03", sex="female")]
    entry = await matching.matcher_for(session, disaster)
    indexed.clear()

    # One transaction, two rows given (an ORM bulk update by primary key), one id per entry.
    monkeypatch.setattr(matching, "IDS_PER_CHANGE", 1)
    monkeypatch.setattr(matching.random, "randrange", lambda n: 3)
    before = await _changes(session, disaster)
    async with unscoped(session, "test"):
        await session.execute(update(VictimRecord), [
            {"lg_code": WAJIMA, "id": r, "disaster_id": disaster, "phone": f"0768-22-000{n}"}
            for n, r in enumerate(records)])
    await session.commit()
    added = [c for c in await _changes(session, disaster) if c not in before]
    shard = matching.generation_names(disaster)[3]
    top = max([g for n, g, _ in before if n == shard], default=0)
    assert [(n, g) for n, g, _ in added] == [(shard, top + 1), (shard, top + 2)]
    assert sorted(ids[0] for _, _, ids in added) == sorted(records)
    await matching.matcher_for(session, disaster)
    assert sorted(indexed.pop()) == sorted(records) and indexed == []

    # A bulk write that does not say which rows: every matcher builds again.
    async with unscoped(session, "test"):
        await session.execute(update(VictimRecord).where(VictimRecord.disaster_id == disaster)
                              .values(phone="0768-22-1111").execution_options(synchronize_session=False))
    await session.commit()
    rebuilt_from = entry.matcher
    await matching.matcher_for(session, disaster)
    assert sorted(indexed.pop()) == sorted(records) and entry.matcher is not rebuilt_from


async def test_each_registration_bumps_one_shard_and_the_matcher_watches_them_all(staff, session, indexed,
                                                                                  monkeypatch) -> None:
    """A disaster's generation is spread over GENERATION_SHARDS rows, so that registrations do
    not queue on one row lock; a writer bumps one of them, a matcher notices any."""
    matching.forget()
    disaster = await _open_disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    names = (*matching.generation_names(disaster), matching.ALL_DISASTERS)
    entry = await matching.matcher_for(session, disaster)
    before = await matching.generations(session, names)

    shards = iter([5, 2])
    monkeypatch.setattr(matching.random, "randrange", lambda n: next(shards))
    first = await _register(wajima, WAJIMA, disaster, whereabouts="home")
    after_first = await matching.generations(session, names)
    assert [b - a for a, b in zip(before, after_first)] == [0, 0, 0, 0, 0, 1, 0, 0, 0]
    await matching.matcher_for(session, disaster)
    assert indexed[-1] == [first]

    second = await _register(wajima, WAJIMA, disaster, whereabouts="home", given_name="美咲", given_kana="ミサキ",
                             birth_date="1982-08-03", sex="female")
    after_second = await matching.generations(session, names)
    assert [b - a for a, b in zip(after_first, after_second)] == [0, 0, 1, 0, 0, 0, 0, 0, 0]
    await matching.matcher_for(session, disaster)
    assert indexed[-1] == [second] and entry.generation == after_second
    assert [(name, ids) for name, _, ids in await _changes(session, disaster)] == [
        (names[2], [second]), (names[5], [first])]
