"""JSON twins of a resident's own pages: who am I, and 「わたしの情報の利用記録」 (every access
to my data by any organisation, with its purpose). Only with the session from signing in with
the My Number Card: these routes have no tenant, and no API key speaks for a resident."""

from __future__ import annotations

from fastapi import APIRouter

from kiban.core.audit import service as audit
from kiban.core.audit.labels import action_label, outcome_label
from kiban.core.identity.dependencies import CurrentResident, DbSession
from kiban.core.identity.schemas_resident import AccessLog, AccessLogEntry, MeRead
from kiban.core.registry import service as registry_service

router = APIRouter(prefix="/api/v1/me", tags=["住民本人"])


@router.get("", summary="サインインしている住民本人", response_model=MeRead)
async def me(resident: CurrentResident) -> MeRead:
    return MeRead(kind="resident", kind_label="住民", display_name=resident.principal.display_name,
                  signed_in_at=resident.web_session.created_at, session_expires_at=resident.web_session.expires_at,
                  access_log_url="/api/v1/me/access-log")


@router.get("/access-log", summary="わたしの情報の利用記録（どの団体が・いつ・何のために）", response_model=AccessLog)
async def access_log(resident: CurrentResident, session: DbSession) -> AccessLog:
    entries = await audit.entries_about(session, resident.principal.id)
    orgs = await registry_service.organizations_by_code(session, sorted({e.lg_code for e in entries}))
    return AccessLog(limit=audit.ACCESS_LOG_LIMIT, items=[AccessLogEntry(
        occurred_at=e.occurred_at, lg_code=e.lg_code,
        organisation=orgs[e.lg_code].name if e.lg_code in orgs else "（団体名不明）", actor=e.actor_label,
        action=e.action, action_label=action_label(e.action), outcome=e.outcome, outcome_label=outcome_label(e.outcome),
        purpose=e.purpose, legal_basis=e.legal_basis) for e in entries])
