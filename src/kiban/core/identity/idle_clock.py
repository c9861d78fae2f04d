"""A session's idle clock, moved beside a page on SQLite instead of inside it.

Each page a signed-in user opens moves the session's ``last_seen_at`` (at most once a minute,
``service.TOUCH_EVERY``), so that someone who only reads is not signed out. On SQLite a page
that only reads runs in a deferred transaction: it reads a WAL snapshot and takes no lock
(``kit.db.ReadRetryMiddleware``). Writing the clock from that transaction made the page a
writer: refused when another connection held the write lock or had committed since its
snapshot, so the whole page ran again queued for the lock. bench/load.py signs every client in
at once, so a minute later their touches fell due together and staff pages waited 7-10 s
behind registrations and an import (issue #11, session 14).

So on SQLite a reading page only notes the touch here, and one task per process writes the
touches noted meanwhile in one short transaction of its own, queued for the lock like any
writer, while the page answers from its snapshot. A touch that cannot be written is tried
again; one not yet written when the process stops costs at most the minute it would have
added. On PostgreSQL (and for a request that writes anyway) the page writes it itself, as
before: there readers never wait for a writer.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlalchemy import bindparam, update
from sqlalchemy.ext.asyncio import AsyncEngine

from kiban.core.identity.models import WebSession

log = logging.getLogger("kiban.identity")

#: Seconds to wait before trying again a write that failed (the lock not taken in time), and
#: how many times in a row before the touches are given up (a database gone for good).
RETRY_SECONDS = 1.0
ATTEMPTS = 5


class IdleClock:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._pending: dict[str, datetime] = {}
        self._task: asyncio.Task | None = None

    def note(self, session_id: str, seen_at: datetime) -> None:
        """Move ``session_id``'s clock to ``seen_at`` soon (never back)."""
        if self._pending.get(session_id, seen_at) <= seen_at:
            self._pending[session_id] = seen_at
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._write(), name="kiban-idle-clock")

    async def settle(self) -> None:
        """Wait until what was noted is written (the server's stop; tests)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _write(self) -> None:
        table = WebSession.__table__
        statement = (update(table).where(table.c.id == bindparam("b_id"), table.c.last_seen_at < bindparam("b_at"))
                     .values(last_seen_at=bindparam("b_at")))
        failures = 0
        while self._pending:
            batch, self._pending = self._pending, {}
            try:
                async with self.engine.begin() as connection:
                    await connection.execute(statement, [{"b_id": i, "b_at": at} for i, at in sorted(batch.items())])
                failures = 0
            except Exception:  # noqa: BLE001 - the lock not taken in time: kept and tried again
                failures += 1
                if failures >= ATTEMPTS:
                    log.error("セッションの最終利用時刻を %d 回続けて書き込めませんでした（%d 件を諦めます）",
                              failures, len(batch) + len(self._pending), exc_info=True)
                    self._pending.clear()
                    return
                log.warning("セッションの最終利用時刻を書き込めませんでした（%d 件、再試行します）", len(batch),
                            exc_info=True)
                for session_id, at in batch.items():
                    if self._pending.get(session_id, at) <= at:
                        self._pending[session_id] = at
                await asyncio.sleep(RETRY_SECONDS)
