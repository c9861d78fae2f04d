"""API keys for systems (after GOV.UK Notify's): per organisation, scoped to permissions,
shown once, stored as a SHA-256 of a 256-bit random secret, revocable, and either ``live`` or
``test``. A test key authenticates and is rate limited like a live one, but is refused on every
route that reads or writes the organisation's data: it can never touch live data.

Key format: ``kiban_<kind>_<lg_code>_<id>_<secret>``. The organisation and id let the key be
found under the URL's tenant without any cross-tenant lookup.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.audit import service as audit
from kiban.core.identity.models import ApiKey
from kiban.core.identity.permissions import API_KEY_GRANTABLE, Permission
from kiban.core.tenancy.repository import TenantRepository
from kiban.kit.db import utcnow
from kiban.kit.errors import InvalidInput, KibanError, NotFound
from kiban.kit.shared import MemoryState, SharedState

KINDS = ("live", "test")
DEFAULT_RATE_LIMIT = 600


class RateLimited(KibanError):
    status = 429
    title = "リクエストが多すぎます"
    type_slug = "rate-limited"


class ApiKeyRepository(TenantRepository[ApiKey]):
    model = ApiKey

    async def by_id(self, key_id: str) -> ApiKey | None:
        return await self.first(self.select().where(ApiKey.id == key_id))

    async def listed(self):
        return await self.all(self.select().order_by(ApiKey.created_at.desc()))


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class NewKey:
    token: str
    key: ApiKey


async def create_key(session: AsyncSession, actor: audit.Actor, *, name: str, kind: str,
                     permissions: list[str], rate_limit_per_minute: int = DEFAULT_RATE_LIMIT) -> NewKey:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("キーの名前（用途が分かるもの）を入力してください。")
    if kind not in KINDS:
        raise InvalidInput("種類は「本番」か「テスト」を選んでください。")
    granted = [p for p in permissions if p in {g.value for g in API_KEY_GRANTABLE}]
    if not granted or len(granted) != len(permissions):
        raise InvalidInput("キーに与える権限を一つ以上、一覧から選んでください。")
    if not 1 <= rate_limit_per_minute <= 10_000:
        raise InvalidInput("1分あたりの上限は1〜10000で指定してください。")
    repo = ApiKeyRepository(session)
    key_id, secret = uuid.uuid4().hex, secrets.token_hex(32)
    key = repo.add(ApiKey(id=key_id, name=name, kind=kind, secret_hash=_hash(secret), permissions=granted,
                          rate_limit_per_minute=rate_limit_per_minute, created_by=actor.label,
                          created_at=utcnow()))
    await audit.record(session, actor, "identity.apikey.created", target_type="api_key", target_id=key_id,
                       details={"name": name, "kind": kind, "permissions": granted})
    await session.flush()
    return NewKey(f"kiban_{kind}_{repo.tenant.lg_code}_{key_id}_{secret}", key)


async def revoke_key(session: AsyncSession, actor: audit.Actor, key_id: str) -> None:
    key = await ApiKeyRepository(session).by_id(key_id)
    if key is None:
        raise NotFound("そのキーはありません。")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await audit.record(session, actor, "identity.apikey.revoked", target_type="api_key", target_id=key_id)
        await session.flush()


def parse(token: str) -> tuple[str, str, str, str] | None:
    """(kind, lg_code, id, secret), or None for anything that is not a Kiban key."""
    parts = (token or "").split("_")
    if len(parts) != 5 or parts[0] != "kiban" or parts[1] not in KINDS:
        return None
    return parts[1], parts[2], parts[3], parts[4]


async def authenticate(session: AsyncSession, token: str, lg_code: str) -> ApiKey | None:
    """The live key for ``token`` under the bound tenant ``lg_code``; None when unknown,
    for another organisation, wrong, or revoked (the caller answers 401 or 404)."""
    parsed = parse(token)
    if parsed is None:
        return None
    kind, key_lg_code, key_id, secret = parsed
    if key_lg_code != lg_code:
        return None
    key = await ApiKeyRepository(session).by_id(key_id)
    if key is None or key.revoked_at is not None or key.kind != kind:
        return None
    if not hmac.compare_digest(key.secret_hash, _hash(secret)):
        return None
    return key


class RateLimiter:
    """Token bucket per key: ``limit`` requests a minute, refilled smoothly.

    ``hit`` counts in ``store``, a ``SharedState`` every worker process shares (Redis or the
    database; by default this process's memory), so N workers do not give a key N times its
    limit. A token bucket is a leaky bucket: the level is the tokens spent, draining at
    ``limit`` a minute, and a request is admitted while the level stays within ``limit``. With
    the database store the count is committed at once (the caller's session), so a request that
    fails later still counts. ``check`` is the same bucket in this process alone, synchronous."""

    def __init__(self, store: SharedState | None = None, clock: Callable[[], float] = time.time) -> None:
        self.store = store if store is not None else MemoryState()
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    async def hit(self, key_id: str, limit: int, *, session: AsyncSession | None = None,
                  now: float | None = None) -> None:
        rate = limit / 60.0
        count = await self.store.leak(f"apikey:{key_id}", now=self._clock() if now is None else now,
                                      rate=rate, capacity=float(limit), hold=1.0, session=session)
        if self.store.transactional and session is not None:
            await session.commit()
        if not count.admitted:
            raise _limited(limit, math.ceil((count.level + 1.0 - limit) / rate))

    def check(self, key_id: str, limit: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        tokens, updated = self._buckets.get(key_id, (float(limit), now))
        tokens = min(float(limit), tokens + (now - updated) * limit / 60.0)
        if tokens < 1.0:
            self._buckets[key_id] = (tokens, now)
            raise _limited(limit, math.ceil((1.0 - tokens) * 60.0 / limit))
        self._buckets[key_id] = (tokens - 1.0, now)


def _limited(limit: int, retry_after: int) -> RateLimited:
    retry_after = max(1, retry_after)
    return RateLimited(f"このキーの上限（1分あたり{limit}件）を超えました。{retry_after}秒後にもう一度お試しください。",
                       extra={"retry_after": retry_after})


def permission_allowed(key: ApiKey, permission: Permission | str) -> bool:
    return key.kind == "live" and str(permission) in key.permissions
