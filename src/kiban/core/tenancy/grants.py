"""Granting, finding and revoking explicit access between organisations. Only read
permissions can be granted: another organisation never changes a tenant's records."""

from __future__ import annotations

import re
import unicodedata
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


_DAY = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?$")
TEXT_LIMIT = 200  # purpose and legal basis (access_grant columns)


def parse_expiry(text: str | None) -> date | None:
    """The expiry date a person typed: 2027-03-31, 2027/3/31, ２０２７年３月３１日 (widths folded);
    None when empty. ValueError when it is not a date."""
    folded = unicodedata.normalize("NFKC", text or "").strip().replace(" ", "")
    if not folded:
        return None
    match = _DAY.match(folded) or re.match(r"^(\d{4})(\d{2})(\d{2})$", folded)
    if not match:
        raise ValueError(text)
    return date(int(match[1]), int(match[2]), int(match[3]))


async def grant_access(session: AsyncSession, actor: audit.Actor, *, grantee_code: str, permission: str,
                       purpose: str, legal_basis: str, expires_on: date | str | None) -> AccessGrant:
    """Grant ``grantee_code`` (a code or a name, as typed) read access for a purpose and legal
    basis. Checks every field and fails with one ``InvalidInput`` whose ``errors`` name each
    wrong field (``grantee_code``, ``permission``, ``purpose``, ``legal_basis``, ``expires_on``),
    so a form can show them all at once; nothing is written then. ``expires_on`` may be the
    text typed in the form."""
    repo = AccessGrantRepository(session)
    errors: list[dict[str, str]] = []

    def wrong(field: str, message: str) -> None:
        errors.append({"field": field, "message": message})

    grantee = None
    try:
        code = await registry_service.resolve_lg_code_input(  # 「北海道」「０１０００６」「01000」 too
            session, grantee_code, field="grantee_code", label="相手の団体")
        grantee = await registry_service.tenant_for(session, code)
    except (InvalidInput, NotFound) as exc:
        errors.extend(exc.errors or [{"field": "grantee_code", "message": exc.detail}])
    if grantee is not None and grantee.lg_code == repo.tenant.lg_code:
        wrong("grantee_code", "自分の団体には許可を出せません。許可を出す相手の団体を入力してください。")
    if permission not in GRANTABLE:
        wrong("permission", "許可できるのは閲覧の権限だけです。範囲は一覧から選んでください。")
    purpose, legal_basis = (purpose or "").strip(), (legal_basis or "").strip()
    if not purpose:
        wrong("purpose", "利用目的を入力してください（閲覧のたびに監査ログと本人の利用記録に残ります）。")
    elif len(purpose) > TEXT_LIMIT:
        wrong("purpose", f"利用目的は{TEXT_LIMIT}文字以内で入力してください（いま{len(purpose)}文字）。")
    if not legal_basis:
        wrong("legal_basis", "法的根拠を入力してください（例: 地方自治法第245条の4）。")
    elif len(legal_basis) > TEXT_LIMIT:
        wrong("legal_basis", f"法的根拠は{TEXT_LIMIT}文字以内で入力してください（いま{len(legal_basis)}文字）。")
    if isinstance(expires_on, str):
        try:
            expires_on = parse_expiry(expires_on)
        except ValueError:
            expires_on = None
            wrong("expires_on", "有効期限は「2027-03-31」のように年・月・日で入力してください（期限なしなら空欄）。")
    if expires_on is not None and expires_on < date.today():
        wrong("expires_on", "有効期限が過去の日付です。今日以降の日付を入力するか、空欄にしてください。")
    if errors:
        detail = errors[0]["message"] if len(errors) == 1 else f"入力内容に{len(errors)}件の誤りがあります。"
        raise InvalidInput(detail, errors=errors)
    grant = repo.add(AccessGrant(id=str(uuid.uuid4()), grantee_code=grantee.lg_code, permission=permission,
                                 purpose=purpose, legal_basis=legal_basis, granted_by=actor.label,
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
