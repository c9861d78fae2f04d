"""Factories for modules/governance's tenant-owned tables (tests/factories.py merges them into FACTORIES)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from kiban.kit.db import utcnow
from kiban.modules.governance.models import Endorsement, Need, StudyAnswer


async def _need(session: AsyncSession, lg_code: str, marker: str) -> Need:
    return Need(lg_code=lg_code, id=str(uuid.uuid4()), title=marker, task="施設予約", description=marker,
                problems="", current_system="", vendor="", confidential=["annual_cost"], annual_cost=1_000_000,
                created_by="test", created_at=utcnow())


async def _endorsement(session: AsyncSession, lg_code: str, marker: str) -> Endorsement:
    return Endorsement(lg_code=lg_code, need_lg_code="232033", need_id=str(uuid.uuid4()), comment=marker,
                       current_system="", vendor="", confidential=[], created_by="test", created_at=utcnow())


async def _study_answer(session: AsyncSession, lg_code: str, marker: str) -> StudyAnswer:
    return StudyAnswer(lg_code=lg_code, question_id=str(uuid.uuid4()), answer=marker, answered_by="test",
                       answered_at=utcnow())


FACTORIES: dict[type, Callable[[AsyncSession, str, str], Awaitable[object]]] = {
    Need: _need,
    Endorsement: _endorsement,
    StudyAnswer: _study_answer,
}
APPEND_ONLY: set[type] = set()
