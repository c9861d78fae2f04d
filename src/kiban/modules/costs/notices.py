"""Telling members a 負担金算定書 was issued (core/notify): an in-app notice to each active staff
member of each member organisation, written in the same transaction as the statements, so a
statement exists exactly when its notices do. Staff read them at /t/{lg_code}/notices.

No e-mail: staff accounts carry no e-mail address (sign-in is password + TOTP, invited by the
organisation's administrator), so the in-app notice is the channel."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.notify import service as notify
from kiban.core.registry import service as registry
from kiban.core.identity.models import Membership
from kiban.core.tenancy.context import Tenant, as_tenant, unscoped

STATEMENT_TEMPLATE = "costs.statement_issued"
PLATFORM_SERVICE = "kiban-notify"


def _register() -> None:
    notify.register_template(notify.TemplateDef(
        key=STATEMENT_TEMPLATE, label="負担金算定書の交付のお知らせ",
        subject="【{consortium}】{fiscal_year}の{service}の負担金算定書が交付されました（文書番号 {document_no}）",
        body="{consortium}の事務局（{secretariat}）から、{member}あての負担金算定書が交付されました。\n\n"
             "システム: {service}\n年度: {fiscal_year}\n負担金: {fee} 円\n納付期限: {due_on}\n文書番号: {document_no}\n\n"
             "算定書（算定の方法と根拠つき）は「負担金算定書」の画面で確かめられます。",
        placeholders=("consortium", "secretariat", "member", "service", "fiscal_year", "fee", "due_on", "document_no")))


_register()


async def statements_issued(session: AsyncSession, secretariat: Tenant, statements: list, *,
                            fiscal_year_label: str, due_on_label: str) -> int:
    """One notice per active staff member of each member with a statement; returns how many.
    The memberships are read across the members (the secretariat addresses the people of the
    organisations it issues statements to: the same named rule as the statements themselves)."""
    codes = sorted({s.lg_code for s in statements})
    members = {code: registry.tenant_of(org) for code, org in (await registry.organizations_by_code(session, codes)).items()}
    async with unscoped(session, "協議会事務局が負担金算定書の交付を構成団体の職員に知らせる（宛先の職員だけ読む）"):
        people = (await session.execute(select(Membership.lg_code, Membership.principal_id).where(
            Membership.lg_code.in_(codes), Membership.revoked_at.is_(None)))).all()
    by_code: dict[str, list[str]] = {}
    for code, principal_id in people:
        by_code.setdefault(code, []).append(principal_id)
    sent = 0
    for statement in sorted(statements, key=lambda s: s.lg_code):
        member = members[statement.lg_code]
        async with as_tenant(session, member):
            for principal_id in sorted(by_code.get(statement.lg_code, [])):
                await notify.send(session, member, template=STATEMENT_TEMPLATE,
                                  to=notify.Recipient(principal_id=principal_id),
                                  context={"consortium": statement.consortium_name, "secretariat": secretariat.name,
                                           "member": statement.member_name, "service": statement.service_name,
                                           "fiscal_year": fiscal_year_label, "fee": f"{statement.fee:,}",
                                           "due_on": due_on_label, "document_no": statement.document_no},
                                  service=PLATFORM_SERVICE,
                                  dedupe_key=f"costs.statement:{statement.schedule_id}:{principal_id}")
                sent += 1
    return sent
