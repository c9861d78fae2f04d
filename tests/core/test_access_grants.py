"""A prefecture reads a municipality's records only through an explicit grant, and each read
is audited with the grant's purpose and legal basis."""

from __future__ import annotations

from sqlalchemy import select

from kiban.core.audit.models import AuditEntry
from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import as_tenant
from tests.factories import HAKODATE, HOKKAIDO, SAPPORO

HISTORY = f"/api/v1/t/{SAPPORO}/settings/history"


async def _grant(admin, **overrides):
    data = {"grantee_code": HOKKAIDO, "permission": "tenancy.setting.read", "purpose": "道内の保育施策の調整",
            "legal_basis": "地方自治法第245条の4（技術的な助言）", "expires_on": "", "csrf_token": admin.csrf,
            **overrides}
    return await admin.client.post(f"/t/{SAPPORO}/grants", data=data)


async def test_prefecture_staff_read_a_municipality_only_after_it_grants_access(staff, session) -> None:
    hokkaido = await staff(HOKKAIDO, "staff")
    assert (await hokkaido.client.get(HISTORY)).status_code == 404
    sapporo_admin = await staff(SAPPORO)
    assert (await _grant(sapporo_admin)).status_code == 303
    assert (await hokkaido.client.get(HISTORY)).status_code == 200
    # Only what was granted: the audit log was not.
    assert (await hokkaido.client.get(f"/t/{SAPPORO}/audit")).status_code == 404
    # Another municipality that granted nothing stays invisible.
    assert (await hokkaido.client.get(f"/api/v1/t/{HAKODATE}/settings/history")).status_code == 404
    tenant = await registry_service.tenant_for(session, SAPPORO)
    async with as_tenant(session, tenant):
        used = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "tenancy.grant.used"))).all()
    assert len(used) == 1
    assert used[0].purpose == "道内の保育施策の調整" and used[0].legal_basis.startswith("地方自治法")


async def test_a_revoked_grant_closes_access_at_once(staff, session) -> None:
    from kiban.core.tenancy.grants_models import AccessGrant

    hokkaido = await staff(HOKKAIDO, "staff")
    sapporo_admin = await staff(SAPPORO)
    await _grant(sapporo_admin)
    assert (await hokkaido.client.get(HISTORY)).status_code == 200
    tenant = await registry_service.tenant_for(session, SAPPORO)
    async with as_tenant(session, tenant):
        grant = (await session.scalars(select(AccessGrant))).one()
    revoked = await sapporo_admin.client.post(f"/t/{SAPPORO}/grants/{grant.id}/revoke",
                                              data={"csrf_token": sapporo_admin.csrf})
    assert revoked.status_code == 303
    assert (await hokkaido.client.get(HISTORY)).status_code == 404


async def test_grants_need_purpose_and_legal_basis_and_cannot_grant_writes(staff) -> None:
    sapporo_admin = await staff(SAPPORO)
    missing = await _grant(sapporo_admin, purpose="")
    assert missing.status_code == 422 and "利用目的を入力してください" in missing.text
    write = await _grant(sapporo_admin, permission="tenancy.setting.update")
    assert write.status_code == 422 and "閲覧の権限だけ" in write.text
    itself = await _grant(sapporo_admin, grantee_code=SAPPORO)
    assert itself.status_code == 422
    bad_code = await _grant(sapporo_admin, grantee_code="010007")
    assert bad_code.status_code == 422 and "検査数字" in bad_code.text


async def test_a_grant_does_not_let_the_prefecture_write(staff) -> None:
    hokkaido = await staff(HOKKAIDO, "admin")
    sapporo_admin = await staff(SAPPORO)
    await _grant(sapporo_admin)
    edit = await hokkaido.client.post(f"/t/{SAPPORO}/settings/childcare.application_deadline_day",
                                      data={"value": "3", "expected_version": "0", "csrf_token": hokkaido.csrf})
    assert edit.status_code == 404


def _visible(html: str) -> str:
    import re

    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def _the_grant(session):
    from kiban.core.tenancy.grants_models import AccessGrant

    tenant = await registry_service.tenant_for(session, SAPPORO)
    async with as_tenant(session, tenant):
        return (await session.scalars(select(AccessGrant))).one()


async def test_revoking_a_grant_asks_first_then_reports_what_happened(staff, session) -> None:
    hokkaido = await staff(HOKKAIDO, "staff")
    sapporo_admin = await staff(SAPPORO, name="札幌 管理者")
    await _grant(sapporo_admin)
    grant = await _the_grant(session)
    listing = await sapporo_admin.client.get(f"/t/{SAPPORO}/grants")
    text = _visible(listing.text)
    assert "北海道" in text and HOKKAIDO not in text  # the organisation by name, not its code
    assert f"/t/{SAPPORO}/grants/{grant.id}/revoke/confirm" in listing.text
    assert f'action="/t/{SAPPORO}/grants/{grant.id}/revoke"' not in listing.text  # no one-click revoke

    confirm = await sapporo_admin.client.get(f"/t/{SAPPORO}/grants/{grant.id}/revoke/confirm")
    assert confirm.status_code == 200
    text = _visible(confirm.text)
    assert "北海道への「テナント設定と変更履歴の閲覧」の許可を取り消します。" in text
    assert "北海道の職員は、すぐに札幌市の記録をこの範囲で閲覧できなくなります。" in text
    assert ">取り消す</button>" in confirm.text and f'href="/t/{SAPPORO}/grants">戻る</a>' in confirm.text
    assert (await hokkaido.client.get(HISTORY)).status_code == 200  # looking changes nothing

    revoked = await sapporo_admin.client.post(f"/t/{SAPPORO}/grants/{grant.id}/revoke",
                                              data={"csrf_token": sapporo_admin.csrf})
    assert revoked.status_code == 303
    result = await sapporo_admin.client.get(revoked.headers["location"])
    assert "北海道への「テナント設定と変更履歴の閲覧」の許可を取り消しました。" in _visible(result.text)
    assert (await hokkaido.client.get(HISTORY)).status_code == 404
    async with as_tenant(session, await registry_service.tenant_for(session, SAPPORO)):
        entries = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "tenancy.grant.revoked",
                                                                 AuditEntry.target_id == grant.id))).all()
    assert len(entries) == 1 and entries[0].actor_label.startswith("札幌 管理者")


async def test_revoking_grants_is_for_this_organisations_admins_only(staff, session) -> None:
    sapporo_admin = await staff(SAPPORO)
    await _grant(sapporo_admin)
    grant = await _the_grant(session)
    hakodate_admin = await staff(HAKODATE)
    clerk = await staff(SAPPORO, "staff")
    confirm = f"/t/{SAPPORO}/grants/{grant.id}/revoke/confirm"
    assert (await hakodate_admin.client.get(confirm)).status_code == 404
    assert (await hakodate_admin.client.post(f"/t/{SAPPORO}/grants/{grant.id}/revoke",
                                             data={"csrf_token": hakodate_admin.csrf})).status_code == 404
    assert (await clerk.client.get(confirm)).status_code == 403
    assert (await clerk.client.post(f"/t/{SAPPORO}/grants/{grant.id}/revoke",
                                    data={"csrf_token": clerk.csrf})).status_code == 403
    assert (await hakodate_admin.client.get(f"/t/{HAKODATE}/grants/{grant.id}/revoke/confirm")).status_code == 404
    assert (await hakodate_admin.client.post(f"/t/{HAKODATE}/grants/{grant.id}/revoke",
                                             data={"csrf_token": hakodate_admin.csrf})).status_code == 404
    async with as_tenant(session, await registry_service.tenant_for(session, SAPPORO)):
        await session.refresh(grant)
    assert grant.revoked_at is None


# -- the grant form: every error at once, the input kept ----------------------------------------

def _typed(html: str, name: str) -> str:
    import re

    return re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', html).group(1)


async def test_the_grant_form_shows_every_error_at_once_and_keeps_what_was_typed(staff, session) -> None:
    import re

    from kiban.core.tenancy.grants_models import AccessGrant

    sapporo_admin = await staff(SAPPORO)
    page = await _grant(sapporo_admin, grantee_code="010007", permission="audit.entry.read", purpose="道の監査",
                        legal_basis="", expires_on="2020-04-01")
    assert page.status_code == 422
    text = _visible(page.text)
    assert "検査数字" in text  # the organisation
    assert "法的根拠を入力してください" in text
    assert "有効期限が過去の日付です" in text
    assert "3点を直して" in text
    assert _typed(page.text, "grantee_code") == "010007"
    assert _typed(page.text, "purpose") == "道の監査"
    assert _typed(page.text, "expires_on") == "2020-04-01"
    assert re.search(r'<option value="audit.entry.read"\s*selected', page.text)

    page = await _grant(sapporo_admin, grantee_code=SAPPORO, permission="tenancy.setting.update", purpose="",
                        legal_basis="地方自治法", expires_on="来年の春")
    text = _visible(page.text)
    for message in ("自分の団体には許可を出せません", "閲覧の権限だけ", "利用目的を入力してください",
                    "有効期限は「2027-03-31」のように"):
        assert message in text, message
    assert "YYYY" not in page.text
    assert _typed(page.text, "legal_basis") == "地方自治法"
    async with as_tenant(session, await registry_service.tenant_for(session, SAPPORO)):
        assert (await session.scalars(select(AccessGrant))).all() == []  # nothing granted


async def test_an_expiry_typed_with_slashes_or_full_width_digits_is_read(staff, session) -> None:
    sapporo_admin = await staff(SAPPORO)
    assert (await _grant(sapporo_admin, expires_on="２０９９/３/３１")).status_code == 303
    grant = await _the_grant(session)
    assert str(grant.expires_on) == "2099-03-31"
