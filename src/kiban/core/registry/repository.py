"""Questions asked of the registry."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, func, select

from kiban.core.registry.models import Organization, OrgType
from kiban.core.tenancy.repository import Repository
from kiban.kit.textnorm import search_key

SORTS = {
    "code": (Organization.sort_order, Organization.code),
    "population_desc": (Organization.population.desc().nulls_last(), Organization.code),
    "population_asc": (Organization.population.asc().nulls_last(), Organization.code),
    "kana": (Organization.search_key, Organization.code),
}


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class OrganizationRepository(Repository[Organization]):
    model = Organization

    async def by_code(self, code: str) -> Organization | None:
        return await self.session.get(Organization, code)

    def matching(self, *, q: str | None = None, prefecture: str | None = None,
                 types: Sequence[str] = (), include_retired: bool = False,
                 include_wards: bool = False, sort: str = "code") -> Select[tuple[Organization]]:
        statement = self.select()
        key = search_key(q)
        if key:
            statement = statement.where(
                Organization.search_key.like(f"%{_like_escape(key)}%", escape="\\")
            )
        if prefecture:
            statement = statement.where(Organization.prefecture_number == prefecture)
        if types:
            statement = statement.where(Organization.type.in_(list(types)))
        elif not include_wards:
            statement = statement.where(Organization.type != OrgType.ward.value)
        if not include_retired:
            statement = statement.where(Organization.retired_on.is_(None))
        return statement.order_by(*SORTS.get(sort, SORTS["code"]))

    async def children_of(self, code: str) -> Sequence[Organization]:
        statement = (self.select().where(Organization.parent_code == code)
                     .order_by(Organization.sort_order, Organization.code))
        return await self.all(statement)

    async def prefectures(self) -> Sequence[Organization]:
        return await self.all(self.select().where(Organization.type == OrgType.prefecture.value)
                              .order_by(Organization.code))

    async def predecessors_of(self, code: str) -> Sequence[Organization]:
        return await self.all(self.select().where(Organization.successor_code == code)
                              .order_by(Organization.retired_on))

    async def by_codes(self, codes: Sequence[str]) -> dict[str, Organization]:
        if not codes:
            return {}
        rows = await self.all(self.select().where(Organization.code.in_(list(codes))))
        return {row.code: row for row in rows}

    async def with_successor_chain(self, org: Organization) -> list[Organization]:
        """The organisations that replaced ``org``, in order (a town merged into a city that
        later merged again yields both)."""
        chain: list[Organization] = []
        seen = {org.code}
        current = org
        while current.successor_code and current.successor_code not in seen:
            nxt = await self.by_code(current.successor_code)
            if nxt is None:
                break
            chain.append(nxt)
            seen.add(nxt.code)
            current = nxt
        return chain

    async def current_counts_by_type(self) -> dict[str, tuple[int, int]]:
        """``{type: (count, population sum)}`` over organisations not retired."""
        rows = (await self.session.execute(
            select(Organization.type, func.count(), func.sum(Organization.population))
            .where(Organization.retired_on.is_(None)).group_by(Organization.type)
        )).all()
        return {kind: (count, population or 0) for kind, count, population in rows}
