"""Factories for modules/surveys's tenant-owned tables (tests/factories.py merges them into FACTORIES)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from kiban.kit.db import utcnow
from kiban.modules.surveys.models import Survey, SurveyResponse, SurveyResponseEvent, SurveyValue, SurveyVersion


async def _survey(session: AsyncSession, lg_code: str, marker: str) -> Survey:
    now = utcnow()
    return Survey(lg_code=lg_code, id=str(uuid.uuid4()), title=marker, description="",
                  definition={"questions": [], "rules": []}, relayed=False, deadline="2099-12-31", minutes=30,
                  target={"kind": "municipalities"}, target_codes=[], sent_version=0, version=1, created_by="test",
                  created_at=now, updated_at=now)


async def _survey_version(session: AsyncSession, lg_code: str, marker: str) -> SurveyVersion:
    return SurveyVersion(lg_code=lg_code, survey_id=str(uuid.uuid4()), number=1, title=marker,
                         definition={"questions": []}, deadline="2099-12-31", changes=[], sent_by="test",
                         sent_at=utcnow())


async def _survey_response(session: AsyncSession, lg_code: str, marker: str) -> SurveyResponse:
    return SurveyResponse(lg_code=lg_code, id=str(uuid.uuid4()), survey_lg_code="000027", survey_id=str(uuid.uuid4()),
                          prefecture_code="", version_number=1, seen_version=0, answers={"q1": marker}, prefill={},
                          reasons={}, status="draft", contact_email="", certified_by="", review_comment="", version=1,
                          updated_by="test", updated_at=utcnow())


async def _survey_response_event(session: AsyncSession, lg_code: str, marker: str) -> SurveyResponseEvent:
    return SurveyResponseEvent(lg_code=lg_code, id=str(uuid.uuid4()), response_id=str(uuid.uuid4()), kind="comment",
                               body=marker, actor_name="test", created_at=utcnow())


async def _survey_value(session: AsyncSession, lg_code: str, marker: str) -> SurveyValue:
    return SurveyValue(lg_code=lg_code, survey_id=str(uuid.uuid4()), respondent_code="011002", question_key="q1",
                       row_no=0, column_key="", prefecture_code="010006", org_type="政令市", num=None, text=marker[:400])


FACTORIES: dict[type, Callable[[AsyncSession, str, str], Awaitable[object]]] = {
    Survey: _survey, SurveyVersion: _survey_version, SurveyResponse: _survey_response,
    SurveyResponseEvent: _survey_response_event, SurveyValue: _survey_value,
}
APPEND_ONLY: set[type] = set()
