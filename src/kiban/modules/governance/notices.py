"""Telling the bodies behind a candidate what the council decided (core/notify): an in-app
notice to each active staff member of every body that submitted or endorsed a need in the
candidate's group, written in the same transaction as the decision, so a decision exists exactly
when its notices do. Staff read them at /t/{lg_code}/notices.

Once per decision and person (the dedupe key names both): a retried request does not tell them
twice, and a later meeting's decision on the same candidate (a replacement) tells them again.
No e-mail, for the reason modules/costs/notices.py gives: staff accounts carry no address."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.identity.models import Membership
from kiban.core.notify import service as notify
from kiban.core.registry import service as registry
from kiban.core.tenancy.context import as_tenant, unscoped

DECISION_TEMPLATE = "governance.decision_made"
PLATFORM_SERVICE = "kiban-notify"
READ_REASON = "連絡協議会の決定を、候補の課題を提出・賛同した団体の職員に知らせる（宛先の職員だけ読む）"

notify.register_template(notify.TemplateDef(
    key=DECISION_TEMPLATE, label="連絡協議会の決定のお知らせ",
    subject="【連絡協議会】共通化の候補「{candidate}」は「{outcome}」と決まりました",
    body="{body}が提出または賛同した課題をもとにした共通化の候補「{candidate}」について、"
         "{meeting}（{held_on}）で連絡協議会が決定しました。\n\n"
         "決定: {outcome}\n理由: {reason}\n{catalog}\n\n"
         "決定と議事録は公開の画面（{url}）で確かめられます。",
    placeholders=("body", "candidate", "meeting", "held_on", "outcome", "reason", "catalog", "url")))


async def decision_made(session: AsyncSession, *, decision, candidate, meeting, codes: list[str],
                        outcome_label: str, service_name: str | None) -> dict[str, int]:
    """One notice per active staff member of each body in ``codes``; returns {lg_code: notices}.

    The memberships are read across the bodies under the named reason (the secretariat
    addresses the people of the bodies that brought the need, nobody else)."""
    orgs = await registry.organizations_by_code(session, sorted(set(codes)))
    async with unscoped(session, READ_REASON):
        people = (await session.execute(select(Membership.lg_code, Membership.principal_id).where(
            Membership.lg_code.in_(sorted(orgs)), Membership.revoked_at.is_(None)))).all()
    by_code: dict[str, list[str]] = {}
    for code, principal_id in people:
        by_code.setdefault(code, []).append(principal_id)
    catalog_line = (f"カタログ: 「{service_name}」として共通サービスのカタログに載りました。" if service_name
                    else "カタログ: この決定ではカタログは変わりません。")
    sent: dict[str, int] = {}
    for code in sorted(orgs):
        body = registry.tenant_of(orgs[code])
        async with as_tenant(session, body):
            for principal_id in sorted(by_code.get(code, [])):
                await notify.send(session, body, template=DECISION_TEMPLATE,
                                  to=notify.Recipient(principal_id=principal_id),
                                  context={"body": body.name, "candidate": candidate.name, "meeting": meeting.title,
                                           "held_on": f"{meeting.held_on.year}年{meeting.held_on.month}月{meeting.held_on.day}日", "outcome": outcome_label,
                                           "reason": decision.reason, "catalog": catalog_line,
                                           "url": f"/governance/meetings/{meeting.id}"},
                                  service=PLATFORM_SERVICE,
                                  dedupe_key=f"governance.decision:{decision.id}:{principal_id}")
                sent[code] = sent.get(code, 0) + 1
    return sent
