"""The registry held in memory for search.

The base registry is small (about 2,000 organisations) and changes only when it is seeded or a
merger is recorded, yet it is read on almost every screen. Each process keeps a snapshot and
answers searches from it; every ``ttl`` seconds (``KIBAN_REGISTRY_CACHE_SECONDS``, default 1)
a background task compares the snapshot's revision with ``registry_revision`` (one row) and
reloads when another process changed the registry. Filtering, sorting and paging happen here, in one
place, for the API and the pages alike.

Across ``kiban serve --workers N`` (and several machines) this is the invalidation: ``seed`` and
``merge`` bump ``registry_revision`` in the transaction that changes the registry, so a worker
that reads the new revision reads the new rows too, and every worker has reloaded within about
``ttl`` seconds of the commit. A short TTL rather than a read per request, because registry
search is the busiest public read (served from memory without touching the database), while
registry changes are rare and announced long before they take effect (a merger's date).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kiban.core.registry.models import Organization, OrgType
from kiban.core.registry.repository import OrganizationRepository
from kiban.core.registry.schemas import OrganizationPage, OrganizationRead
from kiban.kit.textnorm import search_key

_MISSING_LAST = float("inf")
log = logging.getLogger("kiban.registry")


# What a type's name ends with, written and read, so that 「那覇」「なは」 match 那覇市 exactly.
_SUFFIXES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    OrgType.prefecture.value: (("都", "道", "府", "県"), ("ト", "ドウ", "フ", "ケン")),
    OrgType.designated_city.value: (("市",), ("シ",)),
    OrgType.city.value: (("市",), ("シ",)),
    OrgType.special_ward.value: (("区",), ("ク",)),
    OrgType.ward.value: (("区",), ("ク",)),
    OrgType.town.value: (("町",), ("マチ", "チョウ")),
    OrgType.village.value: (("村",), ("ムラ", "ソン")),
}
_CODE_SEPARATORS = re.compile(r"[\s\-‐－ー]+")

# Ranks of a match, best first: the whole name (or code), the start of a name, anywhere.
EXACT, PREFIX, SUBSTRING = 0, 1, 2


def _without_suffix(key: str, suffixes: tuple[str, ...]) -> str | None:
    for suffix in suffixes:
        if key.endswith(suffix) and len(key) > len(suffix):
            return key[: -len(suffix)]
    return None


_CHECKED_KEY = "kiban.registry_checked"  # session.info: id(cache) -> (the transaction, the snapshot checked in it)


@dataclass(frozen=True, slots=True)
class _Entry:
    item: OrganizationRead
    key: str                 # "|name|prefecture+name|reading": substring, and prefix after "|"
    names: tuple[str, ...]   # name, prefecture + name, reading
    exact: frozenset[str]    # those, and without 市/町/村... (「那覇」「なは」): exact matches
    reading: str             # what 読みの順 sorts by
    order: int
    json: bytes  # the item as the API sends it, serialised once per snapshot

    @classmethod
    def of(cls, org: Organization) -> _Entry:
        item = OrganizationRead.of(org)
        name = search_key(org.name)
        full = search_key((org.prefecture_name or "") + org.name) if org.type != OrgType.prefecture.value else name
        kana = search_key(org.kana)
        names = tuple(dict.fromkeys(k for k in (name, full, kana) if k))
        written, read = _SUFFIXES.get(org.type, ((), ()))
        bare = {_without_suffix(name, written), _without_suffix(full, written), _without_suffix(kana, read)}
        bare.discard(None)
        return cls(item, "|" + "|".join(names), names, frozenset(names) | bare, kana or name,
                   org.sort_order, item.model_dump_json().encode())

    def rank(self, key: str) -> int:
        if key in self.exact:
            return EXACT
        return PREFIX if "|" + key in self.key else SUBSTRING


def code_query(text: str | None) -> str | None:
    """The digits of a query that is a code or its start (「011002」「０１１００」「01100-2」)."""
    if not text:
        return None
    digits = _CODE_SEPARATORS.sub("", unicodedata.normalize("NFKC", text))
    return digits if digits.isascii() and digits.isdigit() and len(digits) <= 6 else None


class RegistrySnapshot:
    def __init__(self, revision: int, organizations: Sequence[Organization]) -> None:
        self.revision = revision
        self._entries = tuple(_Entry.of(o) for o in sorted(organizations, key=lambda o: (o.sort_order, o.code)))
        self._by_code = {e.item.code: e for e in self._entries}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, code: str) -> OrganizationRead | None:
        entry = self._by_code.get(code)
        return entry.item if entry is not None else None

    def named(self, text: str) -> list[OrganizationRead]:
        """Organisations whose whole name or reading is ``text`` (with or without the prefecture
        in front, with or without 市/町/村...), folded as search folds it; retired and wards
        included, in registry order. Whole names win: 「府中市」 does not also give 府中町."""
        key = search_key(text)
        if not key:
            return []
        whole = [e.item for e in self._entries if key in e.names]
        return whole or [e.item for e in self._entries if key in e.exact]

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
        code = code_query(q)
        key = "" if code else search_key(q)
        wanted_types = set(types)
        ward = OrgType.ward.value
        # A query naming a ward (「札幌市中央区」「中央区」) or a whole code shows wards too.
        include_wards = include_wards or "区" in key or (code is not None and len(code) >= 5)
        if code:
            candidates = [e for e in self._entries if e.item.code.startswith(code)]
        elif key:
            candidates = [e for e in self._entries if key in e.key]
        else:
            candidates = self._entries
        matches = [
            e for e in candidates
            if (not prefecture or e.item.prefecture == prefecture)
            and (e.item.type in wanted_types if wanted_types else (include_wards or e.item.type != ward))
            and (include_retired or e.item.retired_on is None)
        ]
        if sort == "population_desc":
            matches.sort(key=lambda e: (-(e.item.population if e.item.population is not None else -_MISSING_LAST), e.item.code))
        elif sort == "population_asc":
            matches.sort(key=lambda e: (e.item.population if e.item.population is not None else _MISSING_LAST, e.item.code))
        elif sort == "kana":
            matches.sort(key=lambda e: (e.reading, e.item.code))
        elif sort == "relevance" and key:
            matches = _by_relevance(matches, key, ward)
        return matches


def _by_relevance(matches: list[_Entry], key: str, ward: str) -> list[_Entry]:
    """Whole names first, then names starting with ``key``, then the rest; registry order
    within each, and a ward after the municipalities of the same rank. (Comprehensions, not a
    sort with a key function: 「町」 matches 750 entries on a path served thousands of times.)"""
    starts = "|" + key
    rest = [e for e in matches if key not in e.exact]
    exact = [e for e in matches if key in e.exact] if len(rest) < len(matches) else []
    prefix = [e for e in rest if starts in e.key]
    ranked = exact + prefix + [e for e in rest if starts not in e.key] if prefix else exact + rest
    if "区" in key:
        rank = {id(e): i for i, e in enumerate(ranked)}
        ranked.sort(key=lambda e: (0 if key in e.exact else 1 if starts in e.key else 2,
                                   e.item.type == ward, rank[id(e)]))
    return ranked


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
        self._refresh: asyncio.Task | None = None

    @property
    def latest(self) -> RegistrySnapshot | None:
        """The snapshot last loaded, without asking the database (``None`` before the first
        ``get``): for synchronous code, e.g. ``resolve_lg_code_input_sync`` in a CSV parser."""
        return self._snapshot

    async def get(self, session: AsyncSession) -> RegistrySnapshot:
        snapshot = self._snapshot
        if snapshot is None or self.ttl <= 0 or self._sessionmaker is None:
            return await self._revalidated_in_transaction(session)
        if time.monotonic() - self._checked_at >= self.ttl and self._refresh is None:
            self._checked_at = time.monotonic()
            self._refresh = asyncio.create_task(self._refresh_in_background())
        return snapshot

    async def _revalidated_in_transaction(self, session: AsyncSession) -> RegistrySnapshot:
        """``revalidate`` once per transaction of the caller's session: a page names
        organisations two or three times (its records, its requests, its header), and each asked
        the database for the revision again."""
        transaction = session.sync_session.get_transaction()
        checked = session.info.get(_CHECKED_KEY, {}).get(id(self))
        if checked is not None and transaction is not None and checked[0] is transaction:
            return checked[1]
        snapshot = await self.revalidate(session)
        transaction = session.sync_session.get_transaction()  # begun by the revalidation's query
        if transaction is not None:
            session.info.setdefault(_CHECKED_KEY, {})[id(self)] = (transaction, snapshot)
        return snapshot

    async def revalidate(self, session: AsyncSession) -> RegistrySnapshot:
        """Compare revisions now and reload if another process changed the registry.

        No lock is held while the caller's session works: a request that took a lock and then
        waited for a pool connection, while the requests holding every connection waited for
        that lock, stopped a whole server process until the pool's 30 s timeout (bench/load.py,
        50 staff, 2026-12-01). Two requests that find the registry changed at once both load it;
        the later load wins, and both are the same revision or newer."""
        repo = OrganizationRepository(session)
        revision = await repo.revision()
        snapshot = self._snapshot
        if snapshot is None or snapshot.revision != revision:
            snapshot = RegistrySnapshot(revision, await repo.everything())
            self._snapshot = snapshot
            # Long-lived objects out of the collector's way: without this, full
            # collections over the snapshot stall the event loop for tens of ms.
            gc.freeze()
        self._checked_at = time.monotonic()
        return snapshot

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
