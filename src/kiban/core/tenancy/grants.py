"""Granting, finding and revoking explicit access between organisations. Only read
permissions can be granted: another organisation never changes a tenant's records."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.audit import service as audit
from kiban.core.registry import service as registry_service
from kiban.core.tenancy.grants_models import AccessGrant
from kiban.core.tenancy.repository import TenantRepository
from kiban.kit.db import utcnow
from kiban.kit.errors import InvalidInput, NotFound

GRANTABLE = {
    "tenancy.setting.read": "テナント設定と変更履歴の閲覧",
    "audit.entry.read": "監査ログの閲覧",
    "catalog.adoption.read": "共通システムの利用状況と経費の閲覧",
}


class AccessGrantRepository(TenantRepository[AccessGrant]):
    model = AccessGrant

    async def by_id(self, grant_id: str) -> AccessGrant | None:
        return await self.first(self.select().where(AccessGrant.id == grant_id))

    async def listed(self) -> Sequence[AccessGrant]:
        return await self.all(self.select().order_by(AccessGrant.granted_at.desc()))

    async def active_for(self, grantee_code: str, permission: str) -> AccessGrant | None:
        today = date.today()
        for grant in await self.all(self.select().where(
                AccessGrant.grantee_code == grantee_code, AccessGrant.permission == permission,
                AccessGrant.revoked_at.is_(None))):
            if grant.expires_on is None or grant.expires_on >= today:
                return grant
        return None


async def grant_access(session: AsyncSession, actor: audit.Actor, *, grantee_code: str, permission: str,
                       purpose: str, legal_basis: str, expires_on: date | None) -> AccessGrant:
    repo = AccessGrantRepository(session)
    grantee_code = await registry_service.resolve_lg_code_input(  # 「北海道」「０１０００６」「01000」 too
        session, grantee_code, field="grantee_code", label="相手の団体コード")
    grantee = await registry_service.tenant_for(session, grantee_code)
    if grantee.lg_code == repo.tenant.lg_code:
        raise InvalidInput("自分の団体には許可を出せません。")
    if permission not in GRANTABLE:
        raise InvalidInput("許可できるのは閲覧の権限だけです。一覧から選んでください。")
    if not (purpose or "").strip() or not (legal_basis or "").strip():
        raise InvalidInput("利用目的と法的根拠を入力してください（利用のたびに監査ログと本人の利用記録に残ります）。")
    if expires_on is not None and expires_on < date.today():
        raise InvalidInput("有効期限が過去の日付です。")
    grant = repo.add(AccessGrant(id=str(uuid.uuid4()), grantee_code=grantee.lg_code, permission=permission,
                                 purpose=purpose.strip(), legal_basis=legal_basis.strip(), granted_by=actor.label,
                                 granted_at=utcnow(), expires_on=expires_on))
    await audit.record(session, actor, "tenancy.grant.created", target_type="access_grant", target_id=grant.id,
                       details={"grantee": grantee.lg_code, "permission": permission, "purpose": purpose})
    await session.flush()
    return grant


async def revoke_grant(session: AsyncSession, actor: audit.Actor, grant_id: str) -> None:
    grant = await AccessGrantRepository(session).by_id(grant_id)
    if grant is None:
        raise NotFound("その許可はありません。")
    if grant.revoked_at is None:
        grant.revoked_at = utcnow()
        await audit.record(session, actor, "tenancy.grant.revoked", target_type="access_grant", target_id=grant_id)
        await session.flush()
