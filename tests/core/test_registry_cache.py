"""The in-memory registry serves stale data only until its background check notices a change."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import async_sessionmaker

from kiban.core.registry.repository import OrganizationRepository
from kiban.core.registry.snapshot import RegistryCache
from tests.conftest import session_on


async def test_stale_snapshot_is_served_while_a_background_check_reloads_it(app_engine) -> None:
    # Real, separate sessions as in a server process. The revision bump is committed to the
    # test database; no test depends on the revision's value, only on it changing.
    sessionmaker = async_sessionmaker(app_engine, expire_on_commit=False)
    cache = RegistryCache(sessionmaker, ttl=0.01)
    async with sessionmaker() as session:
        first = await cache.get(session)
    assert len(first) == 1974
    async with sessionmaker() as other_process:
        new_revision = await OrganizationRepository(other_process).bump_revision()
        await other_process.commit()
    await asyncio.sleep(0.02)
    async with sessionmaker() as session:
        served = await cache.get(session)  # answers at once, from memory
        assert served is first
        while cache._refresh is not None:
            await asyncio.sleep(0.01)
        fresh = await cache.get(session)
    assert fresh is not first
    assert fresh.revision == new_revision


async def test_search_answers_match_filters_and_paging(connection) -> None:
    cache = RegistryCache(ttl=0)
    async with session_on(connection) as session:
        snapshot = await cache.get(session)
    page = snapshot.search(q="ﾐｻﾄ", prefecture=None, types=(), include_retired=False,
                           include_wards=False, sort="population_desc", limit=2, offset=0)
    assert page.total >= 3  # 秋田県美郷町, 島根県美郷町, 埼玉県美里町, 宮城県美里町 ...
    assert len(page.items) == 2
    assert page.items[0].population >= page.items[1].population


async def test_the_api_answer_is_the_same_as_the_page_model(connection) -> None:
    import json

    cache = RegistryCache(ttl=0)
    async with session_on(connection) as session:
        snapshot = await cache.get(session)
    criteria = {"q": "みさと", "prefecture": None, "types": (), "include_retired": False,
                "include_wards": False, "sort": "population_desc"}
    model = snapshot.search(limit=3, offset=1, **criteria)
    assert json.loads(snapshot.search_json(limit=3, offset=1, **criteria)) == json.loads(model.model_dump_json())


async def test_the_latest_snapshot_is_at_hand_without_a_session_once_loaded(session) -> None:
    from kiban.core.registry.service import resolve_lg_code_input_sync

    cache = RegistryCache(ttl=0)
    assert cache.latest is None
    await cache.get(session)
    assert resolve_lg_code_input_sync(cache.latest, "ｶﾅｻﾞﾜｼ") == "172014"


async def test_a_request_waiting_on_its_session_does_not_hold_up_the_others(monkeypatch) -> None:
    """Revalidating holds no lock while the caller's session works: the first request's session
    here answers only after the second request has revalidated (as when the first waits for a
    pool connection that the second holds). With a lock around the session's work, both wait."""
    from kiban.core.registry.snapshot import RegistrySnapshot

    second_done = asyncio.Event()
    order: list[str] = []

    class Session:  # as much of a session as the cache uses (no transaction: revalidated every time)
        def __init__(self, name: str) -> None:
            self.name, self.info, self.sync_session = name, {}, self

        def get_transaction(self) -> None:
            return None

    async def revision(self) -> int:
        if self.session.name == "first":
            await second_done.wait()
        order.append(self.session.name)
        return 7

    async def everything(self) -> list:
        return []

    monkeypatch.setattr(OrganizationRepository, "__init__", lambda self, session: setattr(self, "session", session))
    monkeypatch.setattr(OrganizationRepository, "revision", revision)
    monkeypatch.setattr(OrganizationRepository, "everything", everything)
    cache = RegistryCache(ttl=0)

    async def second() -> RegistrySnapshot:
        await asyncio.sleep(0.01)  # after the first has begun
        try:
            return await cache.get(Session("second"))
        finally:
            second_done.set()

    first, other = await asyncio.wait_for(asyncio.gather(cache.get(Session("first")), second()), timeout=5)
    assert order == ["second", "first"] and first.revision == other.revision == 7


async def test_the_revision_is_asked_once_per_transaction(session, monkeypatch) -> None:
    """A page names organisations two or three times; the registry's revision is asked once per
    transaction of its session, and again in the next (a change committed meanwhile is seen)."""
    from kiban.core.registry import service as registry_service

    asked = []
    original = OrganizationRepository.revision

    async def revision(self) -> int:
        asked.append(1)
        return await original(self)

    monkeypatch.setattr(OrganizationRepository, "revision", revision)
    first = await registry_service.names_by_code(session, {"011002"})
    second = await registry_service.names_by_code(session, {"131016"})
    assert (first, second) == ({"011002": "札幌市"}, {"131016": "千代田区"}) and len(asked) == 1
    await session.commit()
    assert await registry_service.names_by_code(session, {"011002"}) == {"011002": "札幌市"}
    assert len(asked) == 2
