"""A 名寄せ matcher catches up on what changed since it last looked, and only on that.

While residents register at a disaster's shelters the generation moves every few milliseconds
and the catch-up's overlap (``matching.OVERLAP``) holds a minute of registrations, nearly all
indexed already: a catch-up must re-read only the ids in the overlap (from the index
``ix_victim_record_changes``), and the compared fields of the records it has not indexed as they
are now; and a request that waited while another caught up past the generation it read must not
catch up again (bench/load.py's mix, issue #11).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from kiban.core.tenancy.context import unscoped
from kiban.modules.disaster import matching
from kiban.modules.disaster.models import VictimRecord
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


async def _stamp(session, record_id: str) -> object:
    async with unscoped(session, "test"):
        return await session.scalar(select(VictimRecord.updated_at).where(VictimRecord.id == record_id))


async def _restamp(session, record_id: str, when) -> None:
    """Set a record's stamp as a transaction that stamped it then and committed now would have."""
    async with unscoped(session, "test"):
        await session.execute(update(VictimRecord).where(VictimRecord.id == record_id).values(updated_at=when)
                              .execution_options(synchronize_session=False))


@pytest.mark.parametrize("overlap", [matching.OVERLAP, timedelta(0)], ids=["overlap", "control-without-overlap"])
async def test_a_catch_up_reads_again_only_what_it_has_not_indexed(staff, session, indexed, monkeypatch,
                                                                   overlap) -> None:
    monkeypatch.setattr(matching, "OVERLAP", overlap)
    matching.forget()
    disaster = await _open_disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    first = await _register(wajima, WAJIMA, disaster, whereabouts="home")
    second = await _register(wajima, WAJIMA, disaster, whereabouts="home", given_name="美咲", given_kana="ミサキ",
                             birth_date="1982-08-03", sex="female")
    entry = await matching.matcher_for(session, disaster)
    assert sorted(indexed.pop()) == sorted([first, second]) and indexed == []

    # A registration whose transaction stamped it before the newest record the matcher has seen,
    # and committed after the matcher looked: the overlap finds it; nothing else is read again.
    late = await _register(wajima, WAJIMA, disaster, whereabouts="home", given_name="翔", given_kana="ショウ",
                           birth_date="2010-04-01")
    await _restamp(session, late, await _stamp(session, second) - timedelta(seconds=30))
    await matching.matcher_for(session, disaster)
    if overlap:
        assert indexed == [[late]]
    else:  # the control: without the overlap the late record is missed, as the test can tell
        assert indexed == [[]]
    assert (late in entry.recent) is bool(overlap)

    # An edit of a compared field (a new stamp) is indexed again; the records unchanged are not.
    indexed.clear()
    edited = await wajima.client.post(f"/t/{WAJIMA}/disasters/{disaster}/records/{first}/edit",
                                      data={**await _form_of(wajima, disaster, first), "phone": "0768-22-9999"})
    assert edited.status_code == 303, edited.text
    await matching.matcher_for(session, disaster)
    assert indexed == [[first]]


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


async def test_records_loaded_long_ago_are_not_read_again_after_the_build(staff, session, indexed) -> None:
    """Counted from the read's time, not the newest stamp: a disaster bulk loaded an hour ago
    (every stamp within a minute of the newest) is read once by the build, and the first
    catch-up after it reads what changed since, not the last minute of the load again."""
    matching.forget()
    disaster = await _open_disaster(staff)
    wajima = await staff(WAJIMA, "staff")
    loaded = [await _register(wajima, WAJIMA, disaster, whereabouts="home"),
              await _register(wajima, WAJIMA, disaster, whereabouts="home", given_name="美咲", given_kana="ミサキ",
                              birth_date="1982-08-03", sex="female")]
    an_hour_ago = await _stamp(session, loaded[0]) - timedelta(hours=1)
    for n, record_id in enumerate(loaded):
        await _restamp(session, record_id, an_hour_ago + timedelta(seconds=n))
    await session.commit()

    entry = await matching.matcher_for(session, disaster)
    assert sorted(indexed.pop()) == sorted(loaded)
    assert entry.recent == {}  # nothing a catch-up could have to read again

    new = await _register(wajima, WAJIMA, disaster, whereabouts="home", given_name="翔", given_kana="ショウ",
                          birth_date="2010-04-01")
    await matching.matcher_for(session, disaster)
    assert indexed == [[new]] and set(entry.recent) == {new}
    # ... and the catch-up's floor is a minute before it began, not a minute before the load's end
    assert entry.floor > an_hour_ago + matching.OVERLAP


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
