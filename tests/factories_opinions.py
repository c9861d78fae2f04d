"""Factories for modules/opinions' tenant-owned tables (tests/factories.py merges them into FACTORIES)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from kiban.kit.db import utcnow
from kiban.modules.opinions.models import Answer, Comment, Consultation, Review


async def _consultation(session: AsyncSession, lg_code: str, marker: str) -> Consultation:
    now = utcnow()
    return Consultation(lg_code=lg_code, id=str(uuid.uuid4()), title=marker, description="",
                        sections=[{"key": "s1", "number": "1", "heading": marker, "text": marker}],
                        opens_on=date(2026, 1, 1), closes_on=date(2026, 1, 31), target_kind="all", publish_names=False,
                        version=1, created_by="test", created_at=now, updated_at=now)


async def _comment(session: AsyncSession, lg_code: str, marker: str) -> Comment:
    now = utcnow()
    return Comment(lg_code=lg_code, id=str(uuid.uuid4()), consultation_lg_code="000019",
                   consultation_id=str(uuid.uuid4()), section_key="s1", kind="opinion", body=marker, proposal="",
                   status="submitted", version=1, submitted_by="test", created_at=now, updated_at=now)


async def _answer(session: AsyncSession, lg_code: str, marker: str) -> Answer:
    now = utcnow()
    return Answer(lg_code=lg_code, id=str(uuid.uuid4()), consultation_id=str(uuid.uuid4()), text=marker, version=1,
                  created_by="test", created_at=now, updated_at=now)


async def _review(session: AsyncSession, lg_code: str, marker: str) -> Review:
    return Review(lg_code=lg_code, comment_lg_code="011002", comment_id=str(uuid.uuid4()),
                  consultation_id=str(uuid.uuid4()), category="reference", answer_id=None, reviewed_by=marker,
                  reviewed_at=utcnow())


FACTORIES: dict[type, Callable[[AsyncSession, str, str], Awaitable[object]]] = {
    Consultation: _consultation,
    Comment: _comment,
    Answer: _answer,
    Review: _review,
}
APPEND_ONLY: set[type] = set()
