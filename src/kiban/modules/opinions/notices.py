"""Telling the consulted bodies that a consultation opened (core/notify): an in-app notice to each
active staff member of each consulted body, written in the same transaction as the announcement
(the dedupe key keeps a retry from telling anyone twice). Staff read them at /t/{lg_code}/notices."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.identity.models import Membership
from kiban.core.notify import service as notify
from kiban.core.registry import service as registry
from kiban.core.tenancy.context import Tenant, as_tenant, unscoped
from kiban.modules.opinions import service
from kiban.modules.opinions.models import Consultation

OPENED_TEMPLATE = "opinions.consultation_opened"

notify.register_template(notify.TemplateDef(
    key=OPENED_TEMPLATE, label="意見照会の開始のお知らせ",
    subject="【意見照会】{ministry}から「{title}」への意見照会が届きました（締切 {closes_on}）",
    body="{ministry}から、{body}あてに「{title}」への意見照会が届きました。\n\n"
         "受付期間: {opens_on} から {closes_on} まで\n\n"
         "案の本文は節ごとに読めます。意見・質問は節を選んで出し、締切日までは直したり取り下げたりできます。"
         "「意見照会」の画面から確かめてください。",
    placeholders=("ministry", "body", "title", "opens_on", "closes_on")))


async def consultation_opened(session: AsyncSession, ministry: Tenant, consultation: Consultation) -> int:
    """One notice per active staff member of each consulted body that has staff; returns how many.
    The memberships are read across the consulted bodies (the ministry addresses the people of
    the bodies it consults: the same named rule as the consultation itself)."""
    bodies = {o.code: o for o in await service.target_bodies(session, consultation)}
    async with unscoped(session, service.NOTIFY_REASON):
        people = (await session.execute(select(Membership.lg_code, Membership.principal_id).where(
            Membership.lg_code.in_(sorted(bodies)), Membership.revoked_at.is_(None)))).all()
    by_code: dict[str, list[str]] = {}
    for code, principal_id in people:
        by_code.setdefault(code, []).append(principal_id)
    sent = 0
    for code in sorted(by_code):
        body = registry.tenant_of(bodies[code])
        async with as_tenant(session, body):
            for principal_id in sorted(by_code[code]):
                await notify.send(session, body, template=OPENED_TEMPLATE, to=notify.Recipient(principal_id=principal_id),
                                  context={"ministry": ministry.name, "body": body.name, "title": consultation.title[:80],
                                           "opens_on": consultation.opens_on.isoformat(),
                                           "closes_on": consultation.closes_on.isoformat()},
                                  service=notify.PLATFORM_SERVICE,
                                  dedupe_key=f"opinions.opened:{consultation.id}:{principal_id}")
                sent += 1
    return sent
