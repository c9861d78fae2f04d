"""Putting work on the queue and reading how it goes, in the caller's tenant and transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.jobs.kinds import kind_of
from kiban.core.jobs.models import QUEUED, Job
from kiban.core.tenancy.repository import TenantRepository
from kiban.kit.db import utcnow


class JobRepository(TenantRepository[Job]):
    model = Job

    async def for_target(self, target_type: str, target_id: str) -> Job | None:
        """The latest job working on that object."""
        return await self.first(self.select().where(Job.target_type == target_type, Job.target_id == target_id)
                                .order_by(Job.created_at.desc()))


async def enqueue(session: AsyncSession, kind: str, *, created_by: str, payload: dict[str, Any] | None = None,
                  total: int | None = None, message: str = "", target: tuple[str, str] | None = None,
                  dedupe_key: str | None = None, run_after: datetime | None = None) -> Job:
    """Queue a job of a registered ``kind`` for the bound tenant, in the caller's transaction:
    it becomes visible to the runners when the caller commits, together with whatever the
    caller changed (an import marked as importing), or not at all. With ``dedupe_key``, an
    existing job of the same kind and key is returned instead of a second one (a concurrent
    enqueue of the same key fails on the unique constraint). Flushes; does not commit."""
    definition = kind_of(kind)
    repo = JobRepository(session)
    if dedupe_key is not None:
        existing = await repo.first(repo.select().where(Job.kind == kind, Job.dedupe_key == dedupe_key))
        if existing is not None:
            return existing
    now = utcnow()
    job = repo.add(Job(
        id=str(uuid.uuid4()), kind=kind, state=QUEUED, payload=payload or {}, cursor=None, result=None,
        dedupe_key=dedupe_key, target_type=target[0] if target else None, target_id=target[1] if target else None,
        progress_done=0, progress_total=total, message=message, attempts=0, max_attempts=definition.max_attempts,
        run_after=run_after or now, created_by=created_by[:200], created_at=now, updated_at=now))
    await session.flush()
    return job


async def get(session: AsyncSession, job_id: str) -> Job | None:
    repo = JobRepository(session)
    return await repo.first(repo.select().where(Job.id == job_id))


async def for_target(session: AsyncSession, target_type: str, target_id: str) -> Job | None:
    return await JobRepository(session).for_target(target_type, target_id)


def percent(job: Job) -> int | None:
    if not job.progress_total:
        return None
    return min(100, int(job.progress_done * 100 / job.progress_total))
