"""Questions asked of identity tables."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from kiban.core.identity.models import Membership, Principal, StaffCredential, WebSession
from kiban.core.registry.models import Organization
from kiban.core.tenancy.context import unscoped
from kiban.core.tenancy.repository import Repository, TenantRepository


class StaffRepository(Repository[StaffCredential]):
    model = StaffCredential

    async def by_username(self, username: str) -> StaffCredential | None:
        return await self.first(self.select().where(StaffCredential.username == username))

    async def for_principal(self, principal_id: str) -> StaffCredential | None:
        return await self.session.get(StaffCredential, principal_id)


SIGNED_IN_KEY = "kiban.signed_in"  # session.info: (principal, organisation acted for) of the web session


class SessionRepository(Repository[WebSession]):
    model = WebSession

    async def by_token_hash(self, token_hash: str) -> WebSession | None:
        """The session, loaded in one statement with its principal and the organisation it acts
        for: every signed-in request needs all three (the header, ``require``, the URL's tenant),
        and ``session.get`` then finds them in the identity map instead of asking the database
        twice more. The map holds objects weakly: ``session.info`` keeps these two for the
        request's session."""
        row = (await self.session.execute(
            select(WebSession, Principal, Organization)
            .join(Principal, Principal.id == WebSession.principal_id)
            .outerjoin(Organization, Organization.code == WebSession.acting_lg_code)
            .where(WebSession.token_hash == token_hash).limit(1))).first()
        if row is None:
            return None
        self.session.info[SIGNED_IN_KEY] = (row[1], row[2])
        return row[0]


class MembershipRepository(TenantRepository[Membership]):
    model = Membership

    async def active_for(self, principal_id: str) -> Membership | None:
        return await self.first(self.select().where(Membership.principal_id == principal_id,
                                                    Membership.revoked_at.is_(None)))

    async def active_with_people(self) -> list[tuple[Membership, Principal, StaffCredential | None]]:
        """The tenant's current members with who they are and their sign-in name."""
        rows = (await self.session.execute(
            self.select().add_columns(Principal, StaffCredential)
            .join(Principal, Principal.id == Membership.principal_id)
            .outerjoin(StaffCredential, StaffCredential.principal_id == Principal.id)
            .where(Membership.revoked_at.is_(None)).order_by(Membership.granted_at)
        )).all()
        return [tuple(r) for r in rows]

    async def stopped_with_people(self) -> list[tuple[Membership, Principal, StaffCredential | None]]:
        """The tenant's stopped members (access revoked, role kept for reinstating), latest first."""
        rows = (await self.session.execute(
            self.select().add_columns(Principal, StaffCredential)
            .join(Principal, Principal.id == Membership.principal_id)
            .outerjoin(StaffCredential, StaffCredential.principal_id == Principal.id)
            .where(Membership.revoked_at.is_not(None)).order_by(Membership.revoked_at.desc())
        )).all()
        return [tuple(r) for r in rows]

    async def with_person(self, principal_id: str) -> tuple[Membership, Principal] | None:
        """One member of the tenant, active or stopped, with who they are; None when the
        principal has never belonged here (the caller answers 404)."""
        row = (await self.session.execute(
            self.select().add_columns(Principal).join(Principal, Principal.id == Membership.principal_id)
            .where(Membership.principal_id == principal_id)
        )).first()
        return (row[0], row[1]) if row else None

    async def stopped_for(self, principal_id: str) -> Membership | None:
        return await self.first(self.select().where(Membership.principal_id == principal_id,
                                                    Membership.revoked_at.is_not(None)))



async def organisations_of(session, principal_id: str) -> Sequence[Membership]:
    """Every organisation a principal belongs to: read across tenants to offer the choice of
    whom to act for at sign-in."""
    async with unscoped(session, "サインイン時の所属団体の一覧"):
        return (await session.scalars(
            select(Membership).where(Membership.principal_id == principal_id,
                                     Membership.revoked_at.is_(None)).order_by(Membership.lg_code)
        )).all()


async def principal(session, principal_id: str) -> Principal | None:
    return await session.get(Principal, principal_id)
