"""``TenantScoped``: the mixin every tenant-owned table uses.

It puts ``lg_code`` (the owning local government's 6-digit code) first in the primary key, so
it is non-null, indexed, and part of every identity, which is also what a distributed
PostgreSQL sharded by ``lg_code`` needs. Models list it explicitly in any unique constraint.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from kiban.kit.db import Base


class TenantScoped:
    @declared_attr
    def lg_code(cls) -> Mapped[str]:  # noqa: N805 - SQLAlchemy declared_attr signature
        return mapped_column(String(6), ForeignKey("organization.code"), primary_key=True,
                             nullable=False, sort_order=-100)


def tenant_owned_models() -> list[type]:
    """Every mapped class that is tenant-owned (the isolation tests walk this list)."""
    return sorted(
        (m.class_ for m in Base.registry.mappers if issubclass(m.class_, TenantScoped)),
        key=lambda cls: cls.__tablename__,
    )


def tenant_owned_tables() -> list[str]:
    return [cls.__tablename__ for cls in tenant_owned_models()]
