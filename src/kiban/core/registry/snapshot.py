"""The registry held in memory for search.

The base registry is small (about 2,000 organisations) and changes only when it is seeded or a
merger is recorded, yet it is read on almost every screen. Each process keeps a snapshot and
answers searches from it; every ``ttl`` seconds (``KIBAN_REGISTRY_CACHE_SECONDS``, default 1)
a background task compares the snapshot's revision with ``registry_revision`` (one row) and
reloads when another process changed the registry. Filtering, sorting and paging happen here, in one
place, for the API and the pages alike.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kiban.core.registry.models import Organization, OrgType
from kiban.core.registry.repository import OrganizationRepository
from kiban.core.registry.schemas import OrganizationPage, OrganizationRead
from kiban.kit.textnorm import search_key

_MISSING_LAST = float("inf")
log = logging.getLogger("kiban.registry")


@dataclass(frozen=True, slots=True)
class _Entry:
    item: OrganizationRead
    key: str
    order: int
    json: bytes  # the item as the API sends it, serialised once per snapshot


class RegistrySnapshot:
    def __init__(self, revision: int, organizations: Sequence[Organization]) -> None:
        self.revision = revision
        items = [(OrganizationRead.of(o), o) for o in sorted(organizations, key=lambda o: (o.sort_order, o.code))]
        self._entries = tuple(_Entry(item, o.search_key, o.sort_order, item.model_dump_json().encode())
                              for item, o in items)

    def __len__(self) -> int:
        return len(self._entries)

    def search(self, *, limit: int, offset: int, **criteria) -> OrganizationPage:
        matches = self._matching(**criteria)
        return OrganizationPage(items=[e.item for e in matches[offset:offset + limit]],
                                total=len(matches), limit=limit, offset=offset)

    def search_json(self, *, limit: int, offset: int, **criteria) -> bytes:
        """The same answer as ``search``, already serialised (the API's hot path)."""
        matches = self._matching(**criteria)
        items = b",".join(e.json for e in matches[offset:offset + limit])
        return b'{"items":[%s],"total":%d,"limit":%d,"offset":%d}' % (items, len(matches), limit, offset)

    def _matching(self, *, q: str | None, prefecture: str | None, types: Sequence[str],
                  include_retired: bool, include_wards: bool, sort: str) -> list[_Entry]:
        key = search_key(q)
        wanted_types = set(types)
        ward = OrgType.ward.value
        matches = [
            e for e in self._entries
            if (not key or key in e.key)
            and (not prefecture or e.item.prefecture == prefecture)
            and (e.item.type in wanted_types if wanted_types else (include_wards or e.item.type != ward))
            and (include_retired or e.item.retired_on is None)
        ]
        if sort == "population_desc":
            matches.sort(key=lambda e: (-(e.item.population if e.item.population is not None else -_MISSING_LAST), e.item.code))
        elif sort == "population_asc":
            matches.sort(key=lambda e: (e.item.population if e.item.population is not None else _MISSING_LAST, e.item.code))
        elif sort == "kana":
            matches.sort(key=lambda e: (e.key, e.item.code))
        return matches


class RegistryCache:
    """One per application process, serving searches from memory.

    With ``ttl`` > 0 and a sessionmaker, a stale snapshot is still served while one background
    task checks the revision and reloads if needed (stale-while-revalidate): under load a
    request never waits for the database, which on a busy event loop can take far longer than
    the query itself. With ``ttl`` 0 (tests) every call revalidates on the caller's session.
    """

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession] | None = None,
                 ttl: float = 1.0) -> None:
        self.ttl = ttl
        self._sessionmaker = sessionmaker
        self._snapshot: RegistrySnapshot | None = None
        self._checked_at = 0.0
        self._lock = asyncio.Lock()
        self._refresh: asyncio.Task | None = None

    async def get(self, session: AsyncSession) -> RegistrySnapshot:
        snapshot = self._snapshot
        if snapshot is None or self.ttl <= 0 or self._sessionmaker is None:
            return await self.revalidate(session)
        if time.monotonic() - self._checked_at >= self.ttl and self._refresh is None:
            self._checked_at = time.monotonic()
            self._refresh = asyncio.create_task(self._refresh_in_background())
        return snapshot

    async def revalidate(self, session: AsyncSession) -> RegistrySnapshot:
        """Compare revisions now and reload if another process changed the registry."""
        async with self._lock:
            repo = OrganizationRepository(session)
            revision = await repo.revision()
            if self._snapshot is None or self._snapshot.revision != revision:
                self._snapshot = RegistrySnapshot(revision, await repo.everything())
                # Long-lived objects out of the collector's way: without this, full
                # collections over the snapshot stall the event loop for tens of ms.
                gc.freeze()
            self._checked_at = time.monotonic()
            return self._snapshot

    async def _refresh_in_background(self) -> None:
        try:
            async with self._sessionmaker() as session:
                await session.connection(execution_options={"sqlite_deferred": True})  # read-only
                await self.revalidate(session)
        except Exception:  # noqa: BLE001 - keep serving the last good snapshot
            log.warning("registry snapshot refresh failed; serving the previous one", exc_info=True)
        finally:
            self._refresh = None


async def load_snapshot(session: AsyncSession) -> RegistrySnapshot:
    repo = OrganizationRepository(session)
    return RegistrySnapshot(await repo.revision(), await repo.everything())
