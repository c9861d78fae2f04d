"""Questions asked of the registry."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select

from kiban.core.registry.models import Organization, OrgType, RegistryRevision
from kiban.core.tenancy.repository import Repository
from kiban.kit.db import utcnow

class OrganizationRepository(Repository[Organization]):
    model = Organization

    async def by_code(self, code: str) -> Organization | None:
        return await self.session.get(Organization, code)

    async def everything(self) -> Sequence[Organization]:
        return await self.all(self.select().order_by(Organization.sort_order, Organization.code))

    async def revision(self) -> int:
        row = await self.session.get(RegistryRevision, 1)
        return row.revision if row else 0

    async def bump_revision(self) -> int:
        """Mark the registry changed (same transaction as the change)."""
        row = await self.session.get(RegistryRevision, 1)
        if row is None:
            row = RegistryRevision(id=1, revision=0, changed_at=utcnow())
            self.session.add(row)
        row.revision += 1
        row.changed_at = utcnow()
        await self.session.flush()
        return row.revision

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
