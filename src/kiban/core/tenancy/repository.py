"""Repository bases: SQL lives in repositories, named for the question they answer.

``TenantRepository`` carries ``WHERE lg_code = :tenant`` in every ``select()`` it builds and
stamps the tenant on every row it adds; the safety net would add the same filter anyway, so
the two must agree (the isolation tests check both paths).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.tenancy.context import Tenant, TenantContextMissing, current_tenant

M = TypeVar("M")


class Repository(Generic[M]):
    model: type[M]

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def select(self) -> Select[tuple[M]]:
        return select(self.model)

    async def all(self, statement: Select[Any]) -> Sequence[Any]:
        return (await self.session.scalars(statement)).all()

    async def first(self, statement: Select[Any]) -> Any | None:
        return (await self.session.scalars(statement.limit(1))).first()

    async def count(self, statement: Select[Any]) -> int:
        counted = select(func.count()).select_from(statement.order_by(None).subquery())
        return int((await self.session.execute(counted)).scalar_one())


class TenantRepository(Repository[M]):
    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        tenant = current_tenant(session)
        if tenant is None:
            raise TenantContextMissing(
                f"{type(self).__name__} はテナント（自治体）が指定されたセッションでのみ使えます。"
            )
        self.tenant: Tenant = tenant

    def select(self) -> Select[tuple[M]]:
        return select(self.model).where(self.model.lg_code == self.tenant.lg_code)  # type: ignore[attr-defined]

    def add(self, obj: M) -> M:
        obj.lg_code = self.tenant.lg_code  # type: ignore[attr-defined]
        self.session.add(obj)
        return obj
