"""What a module registers: a kind of job and the handler that does one chunk of it.

A handler is called again and again, each time in a fresh short transaction with the job's
tenant bound, until it says it has finished::

    async def step(ctx: JobContext) -> Progress:
        start = (ctx.cursor or {}).get("next", 0)
        ...do the items from ``start`` on, until ``ctx.out_of_time()``, in ``ctx.session``...
        return Progress(cursor={"next": start + n}, done=start + n, total=..., message="登録中: ...",
                        finished=start + n == total)

    jobs.register(Kind("disaster.roster_import", "名簿の取り込み", step, on_failure=...))

The runner commits the chunk's work together with the new cursor and progress, after checking
that it still holds the job's claim, so a chunk is committed once or not at all. Handlers must
therefore be **idempotent per chunk**: a chunk may be run again after a crash or a lost claim
(its earlier run rolled back), and must not rely on anything it did outside the transaction.
Raise ``JobFailed("日本語の理由")`` for a failure that another attempt cannot fix; any other
exception is retried with backoff up to ``max_attempts``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.jobs.models import Job
from kiban.core.tenancy.context import Tenant


class JobFailed(Exception):
    """A failure no retry can fix (bad input, a closed disaster): the job fails at once and
    ``message`` (Japanese, shown to staff) says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Progress:
    """What one chunk achieved. ``message`` is Japanese, for the page that shows the job."""

    cursor: Any
    done: int
    total: int | None
    message: str
    finished: bool = False
    result: Any = None  # kept on the job when it finishes (e.g. what an export produced)


@dataclass
class JobContext:
    """One chunk's view of its job. ``memo`` survives between the chunks of one claim (a parsed
    payload, say) but not a restart, so it may only hold what can be rebuilt."""

    session: AsyncSession
    tenant: Tenant
    job: Job
    deadline: float
    memo: dict[str, Any] = field(default_factory=dict)

    @property
    def payload(self) -> dict[str, Any]:
        return self.job.payload or {}

    @property
    def cursor(self) -> Any:
        return self.job.cursor

    def out_of_time(self) -> bool:
        """True once the chunk has had its share of time: finish the item in hand and return."""
        return time.monotonic() >= self.deadline


Step = Callable[[JobContext], Awaitable[Progress]]
OnFailure = Callable[[JobContext, str], Awaitable[None]]


@dataclass(frozen=True)
class Kind:
    """A kind of job. ``label`` is Japanese (「名簿の取り込み」). ``on_failure`` runs in the
    transaction that marks the job failed, so the module can mark its own records (an import
    as failed) together with it. ``chunk_seconds`` bounds one chunk's transaction."""

    name: str
    label: str
    step: Step
    on_failure: OnFailure | None = None
    max_attempts: int = 5
    backoff_seconds: float = 5.0
    lease_seconds: float = 60.0
    chunk_seconds: float = 0.25

    def backoff(self, attempts: int) -> float:
        """Seconds to wait before attempt ``attempts + 1``: doubling, at most an hour."""
        return min(self.backoff_seconds * 2 ** max(attempts - 1, 0), 3600.0)


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Make ``kind`` runnable in this process. A process claims only the kinds it knows, so a
    job is never taken by a server that cannot run it."""
    existing = KINDS.get(kind.name)
    if existing is not None and _origin(existing) != _origin(kind):
        raise ValueError(f"job kind {kind.name!r} is registered twice ({_origin(existing)}, {_origin(kind)})")
    KINDS[kind.name] = kind
    return kind


def _origin(kind: Kind) -> str:
    return f"{kind.step.__module__}.{kind.step.__qualname__}"


def kind_of(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise LookupError(f"no job kind {name!r} is registered in this process") from None
