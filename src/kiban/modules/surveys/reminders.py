"""Reminders of a sent survey through core/notify: when it arrives, 7 and 1 days before the
deadline, and when overdue — to the respondent's staff who answer (in-app notice) and to the
response's contact address (e-mail through the SMTP outbox).

A core/jobs job of kind ``surveys.reminders`` per survey runs the sweep and queues its own next
run for the next reminder day (a periodic job that ends after the overdue notice). Every notice
carries a dedupe key (survey, stage, recipient), so a sweep run twice — a retried chunk, two
runners, a second job — sends nothing twice.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.identity.models import Membership
from kiban.core.identity.permissions import Permission, permissions_of
from kiban.core.jobs import service as jobs
from kiban.core.jobs.kinds import JobContext, Kind, Progress, register
from kiban.core.notify import service as notify
from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import as_tenant, unscoped
from kiban.kit.db import utcnow
from kiban.modules.surveys.models import Survey, SurveyResponse
from kiban.modules.surveys.service import SEND_REASON

KIND = "surveys.reminders"
TEMPLATE = "surveys.reminder"
JST = timezone(timedelta(hours=9))
STAGES = {"arrival": "調査が届きました", "d7": "回答期限の7日前です", "d1": "回答期限は明日です",
          "overdue": "回答期限を過ぎています"}
OPEN = ("not_started", "draft", "certified", "returned")

notify.register_template(notify.TemplateDef(
    key=TEMPLATE, label="調査・照会の到着と回答期限のお知らせ",
    subject="【{sender}】{survey_title}: {stage}",
    body="{organization} ご担当者様\n\n{sender}からの調査「{survey_title}」について、{stage}。\n"
         "回答期限: {deadline}\n\n回答はこちらから: {url}\n（エクセルの様式でも回答できます。）",
    placeholders=("organization", "sender", "survey_title", "stage", "deadline", "url")))


def due_stages(deadline: date, today: date) -> list[str]:
    stages = ["arrival"]
    if today >= deadline - timedelta(days=7) and today < deadline:
        stages.append("d7")
    if today >= deadline - timedelta(days=1) and today <= deadline:
        stages.append("d1")
    if today > deadline:
        stages.append("overdue")
    return stages


def next_run(deadline: date, today: date) -> date | None:
    for day in (deadline - timedelta(days=7), deadline - timedelta(days=1), deadline + timedelta(days=1)):
        if day > today:
            return day
    return None


async def sweep(session: AsyncSession, survey: Survey, *, today: date) -> int:
    """Write the notices due ``today`` (JST) for ``survey``; returns how many were new."""
    deadline = date.fromisoformat(survey.deadline)
    stages = due_stages(deadline, today)
    sender = (await registry_service.get_organization(session, survey.lg_code)).name
    async with unscoped(session, SEND_REASON):
        responses = (await session.scalars(select(SurveyResponse).where(
            SurveyResponse.survey_lg_code == survey.lg_code, SurveyResponse.survey_id == survey.id)
            .order_by(SurveyResponse.lg_code))).all()
    written = 0
    for response in responses:
        wanted = [s for s in stages if s == "arrival" or response.status in OPEN]
        if not wanted:
            continue
        tenant = await registry_service.tenant_for(session, response.lg_code)
        async with as_tenant(session, tenant):
            members = (await session.scalars(select(Membership).where(Membership.revoked_at.is_(None)))).all()
            answerers = [m.principal_id for m in members
                         if Permission.surveys_response_write in permissions_of(m.role)]
            for stage in wanted:
                context = {"organization": tenant.name, "sender": sender, "survey_title": survey.title,
                           "stage": STAGES[stage], "deadline": survey.deadline,
                           "url": f"/t/{tenant.lg_code}/surveys/responses/{response.id}"}
                recipients = [notify.Recipient(principal_id=p) for p in answerers]
                if response.contact_email:
                    recipients.append(notify.Recipient(email=response.contact_email))
                for to in recipients:
                    who = to.principal_id or to.email
                    key = f"surveys:{survey.id}:{stage}:{who}"[:200]
                    before = utcnow()
                    sent = await notify.send(session, tenant, template=TEMPLATE, to=to, context=context,
                                             service="kiban-notify", dedupe_key=key)
                    written += sent.created_at >= before
    return written


def _jst_today() -> date:
    return utcnow().astimezone(JST).date()


async def schedule(session: AsyncSession, survey: Survey, *, on: date | None = None) -> None:
    """Queue the survey's next sweep (at once when ``on`` is None), once per day."""
    day = on or _jst_today()
    run_after = datetime.combine(day, time(9, 0), JST).astimezone(timezone.utc) if on else None
    await jobs.enqueue(session, KIND, created_by="調査・照会", payload={"survey_id": survey.id},
                       message="調査のお知らせを送ります。", dedupe_key=f"{survey.id}:{day.isoformat()}",
                       target=("survey", survey.id), run_after=run_after)


async def _step(ctx: JobContext) -> Progress:
    survey = await ctx.session.scalar(select(Survey).where(Survey.id == ctx.payload.get("survey_id")))
    if survey is None or not survey.sent_version:
        return Progress(cursor=None, done=0, total=0, message="対象の調査がありません。", finished=True)
    today = _jst_today()
    written = await sweep(ctx.session, survey, today=today)
    following = next_run(date.fromisoformat(survey.deadline), today)
    if following is not None:
        await schedule(ctx.session, survey, on=following)
    return Progress(cursor=None, done=written, total=written, message=f"{written} 件のお知らせを送りました。",
                    finished=True, result={"written": written})


REMINDERS = register(Kind(KIND, "調査のお知らせ（到着・期限）", _step, chunk_seconds=5.0))
