"""Staff sign-in (password, then TOTP), sessions, and memberships.

Each step returns what happened or raises ``SignInRefused`` with a message fit to show; every
outcome is audited: a staff account's in its organisation's chain, residents', businesses' and
unknown user names' on the platform's. Callers commit.

サインインの保護 (how guessing is slowed without letting a stranger lock a clerk out):

- Password failures never lock an account. ``SignInThrottle`` counts them per pair of
  (user name as typed, address) and per address over all names, and answers with a delay
  window, enforced here before any password is checked: after 3 failures of a pair the next
  try waits 4 s, then 8, 16 ... up to 15 minutes; after 20 failures from one address (about
  20 an hour are forgotten) its next try waits 4 s, then 8 ... up to 5 minutes. A refused try
  is not evaluated, so it is not a guess, and the page says when to try again (429 with
  ``Retry-After``). Nothing counts per account alone: the owner signing in from an address
  with no failures is never slowed by someone else's guessing. A success clears its pair.
- The counters key on the name as typed, whether or not it exists, so throttling answers
  the same for unknown names; an IPv6 address counts by its /64 (one host holds a whole /64).
- Unknown user, wrong password, an invitation not yet accepted and a locked account get the
  same message after the same work: exactly one argon2 verification (against a dummy hash when
  there is no usable one), the same database reads and one audit entry per chain.
- The account lock stays for the second factor only: whoever reaches the TOTP step knows the
  password, so 5 wrong codes lock the account (backoff up to 60 minutes) and its owner is told.
- Each privilege change issues a new session id and revokes the old one: the password step,
  the TOTP (or enrolment) step and choosing the organisation to act for. The web layer
  rotates the CSRF token with it, so a value planted before sign-in is useless after it.
- The counters live in the shared store (``kiban.kit.shared``: Redis, or the database in the
  request's own transaction), so every worker process sees the same counts: N workers do not
  give an address N times the tries. The counter keys are keyed hashes of the name and
  address, so no typed text is stored. Behind a reverse proxy the address must be the
  client's: ``kiban serve`` believes X-Forwarded-For only from ``KIBAN_FORWARDED_ALLOW_IPS``
  (docs/production.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import math
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.audit import service as audit
from kiban.core.identity import credentials
from kiban.core.identity.models import Membership, Principal, StaffCredential, WebSession
from kiban.core.identity.permissions import Role
from kiban.core.identity.repository import (
    MembershipRepository,
    SessionRepository,
    StaffRepository,
    organisations_of,
)
from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import Tenant, as_tenant, unscoped
from kiban.kit.db import utcnow
from kiban.kit.errors import Conflict, InvalidInput, KibanError
from kiban.kit.secrets import derived_key
from kiban.kit.settings import get_settings
from kiban.kit.shared import MemoryState, SharedState
from kiban.kit.wareki import datetime_ja

PLATFORM_LG_CODE = "000019"  # デジタル庁 operates Kiban: platform-level events are kept on its chain
FAILURES_BEFORE_LOCK = 5
MAX_LOCK_MINUTES = 60


class SignInRefused(KibanError):
    status = 401
    title = "サインインできませんでした"
    type_slug = "sign-in-refused"


class SignInThrottled(SignInRefused):
    """Too many failures from this address (for this name, or for any): try again later."""

    status = 429
    title = "しばらく待ってからお試しください"
    type_slug = "sign-in-throttled"


@dataclass(frozen=True)
class ThrottleRule:
    """``free`` failures cost nothing; from then on each failure makes the next try wait
    4 s, 8 s, 16 s ... up to ``max_wait``. One failure is forgotten every ``forget`` seconds."""

    free: int
    max_wait: float
    forget: float

    def wait(self, failures: float) -> float:
        count = math.ceil(failures - 1e-9)
        if count < self.free:
            return 0.0
        return min(self.max_wait, 2.0 ** (count - self.free + 2))


PAIR_RULE = ThrottleRule(free=3, max_wait=15 * 60, forget=15 * 60)
ADDRESS_RULE = ThrottleRule(free=20, max_wait=5 * 60, forget=3 * 60)


class SignInThrottle:
    """Failure counters per (typed user name, address) and per address (see the module
    docstring), kept in ``store``: a ``SharedState`` every worker process shares, or by default
    this process's memory (one process, tests). ``clock`` is seconds on a scale every process
    shares (wall time; tests pass their own)."""

    def __init__(self, store: SharedState | None = None, clock: Callable[[], float] = time.time) -> None:
        self.store = store if store is not None else MemoryState()
        self._clock = clock

    @staticmethod
    def address_key(host: str | None) -> str:
        try:
            address = ipaddress.ip_address((host or "").strip())
        except ValueError:
            return (host or "unknown").strip() or "unknown"
        if address.version == 6:
            if address.ipv4_mapped:
                return str(address.ipv4_mapped)
            return str(ipaddress.ip_network(f"{address}/64", strict=False))
        return str(address)

    @staticmethod
    def name_key(username: str | None) -> str:
        return (username or "").strip().casefold()

    @staticmethod
    def _hashed(*parts: str) -> str:
        """A counter key that is no typed text: an HMAC (deployment secret) of the parts."""
        digest = hmac.new(derived_key("sign-in-throttle"), "\x00".join(parts).encode(), hashlib.sha256)
        return digest.hexdigest()[:40]

    def _keys(self, username: str, address: str) -> tuple[tuple[str, ThrottleRule], ...]:
        address = self.address_key(address)
        return ((f"signin:pair:{self._hashed(self.name_key(username), address)}", PAIR_RULE),
                (f"signin:address:{self._hashed(address)}", ADDRESS_RULE))

    async def retry_after(self, username: str, address: str, *, session: AsyncSession | None = None) -> float:
        """Seconds until a try from ``address`` for ``username`` is heard (0: now)."""
        now = self._clock()
        keys = self._keys(username, address)
        counts = await self.store.peek([key for key, _ in keys], session=session)
        waits = [0.0]
        for key, rule in keys:
            if (count := counts.get(key)) is not None:
                waits.append(count.at + rule.wait(count.level) - now)
        return max(waits)

    async def failed(self, username: str, address: str, *, session: AsyncSession | None = None) -> float:
        """Count a failure (one is forgotten every ``rule.forget`` seconds); the seconds the
        next try must wait. With the database store the count is part of ``session``'s
        transaction: the caller commits it (the sign-in page does, for the audit entry)."""
        now = self._clock()
        waits = [0.0]
        for key, rule in self._keys(username, address):
            count = await self.store.leak(key, now=now, rate=1.0 / rule.forget, hold=rule.max_wait, session=session)
            waits.append(count.at + rule.wait(count.level) - now)
        return max(waits)

    async def succeeded(self, username: str, address: str, *, session: AsyncSession | None = None) -> None:
        """The right password from this address: its pair starts afresh (the address's count
        stays, or one valid account would wash away the count of a spraying attack)."""
        pair, _address = self._keys(username, address)
        await self.store.forget(pair[0], session=session)


def wait_text(seconds: float) -> str:
    """「12秒後」「約3分後」: when to try again, in words."""
    seconds = max(1, math.ceil(seconds))
    return f"{seconds}秒後" if seconds < 60 else f"約{math.ceil(seconds / 60)}分後"


def _throttled(seconds: float) -> SignInThrottled:
    seconds = max(1, math.ceil(seconds))
    return SignInThrottled(
        f"このネットワークからのサインインの失敗が続いたため、{wait_text(seconds)}まで受け付けません。"
        "時間をおいてもう一度お試しください。心当たりがない場合は団体管理者に連絡してください。",
        extra={"retry_after": seconds})


@dataclass(frozen=True)
class NewSession:
    token: str
    session: WebSession


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _platform(session: AsyncSession) -> Tenant:
    return await registry_service.tenant_for(session, PLATFORM_LG_CODE)


async def _audit_sign_in(session: AsyncSession, actor: audit.Actor, action: str, outcome: str,
                         subject: str | None = None, *, tenant: Tenant | None = None, **details) -> None:
    await audit.record(session, actor, action, outcome=outcome, details=details, subject_id=subject,
                       tenant=tenant or await _platform(session), purpose="本人確認")


def _lock_minutes(failed: int) -> int:
    return min(MAX_LOCK_MINUTES, 2 ** (failed - FAILURES_BEFORE_LOCK))


# One answer for an unknown user name, a wrong password and a locked account: telling them
# apart would let anyone find out which user names exist (and which are under attack).
WRONG_CREDENTIALS = ("ユーザー名またはパスワードが正しくありません。続けて間違えると、"
                     "次に試せるまでの待ち時間が長くなります。"
                     "サインインできない状態が続く場合は、団体管理者に連絡してください。")
UNKNOWN_USER_ACTOR = audit.Actor("anonymous", "登録のないユーザー名での試行")


async def _register_failure(session: AsyncSession, credential: StaffCredential, now: datetime) -> int | None:
    """Count a failure; the minutes the account is now locked for, or None."""
    credential.failed_count += 1
    minutes = None
    if credential.failed_count >= FAILURES_BEFORE_LOCK:
        minutes = _lock_minutes(credential.failed_count)
        credential.locked_until = now + timedelta(minutes=minutes)
    await session.flush()
    return minutes


def _is_locked(credential: StaffCredential, now: datetime) -> bool:
    return credential.locked_until is not None and credential.locked_until > now


def _refuse_if_locked(credential: StaffCredential | None, now: datetime) -> None:
    """For the second step only: whoever gets there has shown the password already, so the
    lock cannot be set off, nor its existence learnt, by someone who only knows a name."""
    if credential is not None and _is_locked(credential, now):
        raise SignInRefused(
            f"確認コードの誤りが続いたため、{datetime_ja(credential.locked_until)} までサインインできません。"
            "心当たりがない場合はパスワードが他人に知られているおそれがあります。団体管理者に連絡してください。")


async def _sign_in_chains(session: AsyncSession, principal_id: str) -> list[Tenant]:
    """Whose audit log records this account's sign-ins: each organisation it belongs to (or,
    stopped everywhere, the ones that stopped it); the platform's when it has none."""
    async with unscoped(session, "サインインを記録する所属団体の確認"):
        rows = (await session.execute(select(Membership.lg_code, Membership.revoked_at)
                                      .where(Membership.principal_id == principal_id))).all()
    active = sorted({code for code, revoked_at in rows if revoked_at is None})
    codes = active or sorted({code for code, _ in rows})
    if not codes:
        return [await _platform(session)]
    return [await registry_service.tenant_for(session, code) for code in codes]


async def _audit_staff_sign_in(session: AsyncSession, principal: Principal, kind: str, action: str,
                               outcome: str, *, chains: list[Tenant] | None = None, **details) -> None:
    """A sign-in step of a known account, in the log of its own organisation(s), with the
    account as actor and target (never the typed text)."""
    actor = audit.Actor(kind, principal.display_name, principal.id)
    for tenant in chains if chains is not None else await _sign_in_chains(session, principal.id):
        await audit.record(session, actor, action, outcome=outcome, details=details, target_type="principal",
                           target_id=principal.id, tenant=tenant, purpose="本人確認")


async def start_session(session: AsyncSession, principal_id: str, stage: str) -> NewSession:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    web_session = WebSession(
        id=str(uuid.uuid4()), token_hash=token_hash(token), principal_id=principal_id, stage=stage,
        acting_lg_code=None, created_at=now, last_seen_at=now,
        expires_at=now + timedelta(hours=get_settings().session_absolute_hours),
    )
    session.add(web_session)
    await session.flush()
    return NewSession(token, web_session)


async def sign_in_with_password(session: AsyncSession, username: str, password: str, *,
                                address: str = "", throttle: SignInThrottle | None = None) -> NewSession:
    """Step 1. Unknown user, wrong password, an invitation not yet accepted and an account
    locked at the second step get the same answer after the same work: one argon2
    verification, the same reads, one audit entry per chain. With ``throttle``, a try from an
    address that must still wait is refused before anything is checked (``SignInThrottled``).

    Failures of an existing account are audited in its organisation's log; an unknown user
    name is audited on the platform's log without the name, so nothing typed by an anonymous
    visitor ends up in any log (or in a spreadsheet opened from its export)."""
    username = (username or "").strip()
    if throttle is not None and (wait := await throttle.retry_after(username, address, session=session)) > 0:
        raise _throttled(wait)
    credential = await StaffRepository(session).by_username(username) if username else None
    # argon2id costs ~0.1 s of CPU by design: off the event loop, so other requests go on.
    valid = await asyncio.to_thread(credentials.verify_password,
                                    credential.password_hash if credential else None, password or "")
    # The same reads whether or not the name exists: a principal, then whose log records it.
    principal = await session.get(Principal, credential.principal_id if credential else str(uuid.uuid4()))
    chains = await _sign_in_chains(session, principal.id if principal else str(uuid.uuid4()))
    if principal is None or not valid:
        reason = "unknown_user" if credential is None else "wrong_password"
        wait = await throttle.failed(username, address, session=session) if throttle is not None else 0.0
        details = {"step": "password", "reason": reason, **({"wait_seconds": math.ceil(wait)} if wait else {})}
        if principal is None:
            # ``chains`` is the platform's alone here (a fresh id belongs nowhere).
            await _audit_sign_in(session, UNKNOWN_USER_ACTOR, "identity.staff.sign_in", "failure",
                                 tenant=chains[0], **details)
        else:
            await _audit_staff_sign_in(session, principal, "anonymous", "identity.staff.sign_in", "failure",
                                       chains=chains, **details)
        raise SignInRefused(WRONG_CREDENTIALS + (f"次は{wait_text(wait)}から試せます。" if wait else ""),
                            extra={"retry_after": math.ceil(wait)} if wait else None)
    if throttle is not None:
        await throttle.succeeded(username, address, session=session)
    if principal.disabled_at is not None:
        await _audit_staff_sign_in(session, principal, "anonymous", "identity.staff.sign_in", "failure",
                                   chains=chains, step="password", reason="disabled")
        raise SignInRefused("このアカウントは利用停止されています。団体管理者に連絡してください。")
    stage = "password" if credential.totp_confirmed_at else "enrol"
    return await start_session(session, credential.principal_id, stage)


async def _rotate(session: AsyncSession, old: WebSession, *, stage: str, acting_lg_code: str | None) -> NewSession:
    """The same sign-in under a new id and token, the old one revoked: at every privilege
    change, so a token seen (or planted) before it opens nothing after it. The absolute
    expiry still counts from the password step."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    fresh = WebSession(id=str(uuid.uuid4()), token_hash=token_hash(token), principal_id=old.principal_id,
                       stage=stage, acting_lg_code=acting_lg_code, created_at=now, last_seen_at=now,
                       expires_at=old.expires_at)
    old.revoked_at = now
    session.add(fresh)
    await session.flush()
    return NewSession(token, fresh)


async def verify_second_factor(session: AsyncSession, web_session: WebSession, code: str) -> NewSession:
    """Step 2: a TOTP code from the enrolled authenticator. Failures here count toward the
    account's lock (only someone who knows the password gets this far). Success revokes the
    password-stage session and returns a new, active one."""
    now = utcnow()
    credential = await StaffRepository(session).for_principal(web_session.principal_id)
    principal = await session.get(Principal, web_session.principal_id)
    _refuse_if_locked(credential, now)
    step = credentials.verify_totp(credentials.decrypt_secret(credential.totp_secret_encrypted), code,
                                   last_step=credential.last_totp_step)
    if step is None:
        locked_for = await _register_failure(session, credential, now)
        await _audit_staff_sign_in(session, principal, "staff", "identity.staff.sign_in", "failure",
                                   step="totp", reason="wrong_code",
                                   **({"lock_minutes": locked_for} if locked_for else {}))
        if locked_for:
            _refuse_if_locked(credential, now)
        raise SignInRefused("確認コードが正しくないか、有効期限が切れています。アプリに表示されている最新の6桁を入力してください。")
    credential.last_totp_step = step
    credential.failed_count = 0
    credential.locked_until = None
    await _audit_staff_sign_in(session, principal, "staff", "identity.staff.sign_in", "success")
    return await _rotate(session, web_session, stage="active", acting_lg_code=None)


async def begin_enrolment(session: AsyncSession, web_session: WebSession) -> tuple[bytes, str]:
    """A new TOTP secret for a session at the enrolment stage (kept encrypted until confirmed)."""
    credential = await StaffRepository(session).for_principal(web_session.principal_id)
    if credential.totp_confirmed_at is not None:
        raise Conflict("二要素認証はすでに登録されています。")
    secret = credentials.new_totp_secret()
    credential.totp_secret_encrypted = credentials.encrypt_secret(secret)
    await session.flush()
    return secret, credential.username


async def current_enrolment_secret(session: AsyncSession, web_session: WebSession) -> tuple[bytes, str] | None:
    credential = await StaffRepository(session).for_principal(web_session.principal_id)
    if credential.totp_secret_encrypted is None or credential.totp_confirmed_at is not None:
        return None
    return credentials.decrypt_secret(credential.totp_secret_encrypted), credential.username


async def confirm_enrolment(session: AsyncSession, web_session: WebSession, code: str) -> NewSession:
    """The first code from a newly enrolled authenticator; like step 2, a new active session."""
    credential = await StaffRepository(session).for_principal(web_session.principal_id)
    if credential.totp_secret_encrypted is None:
        raise InvalidInput("QRコードを表示してから、アプリの確認コードを入力してください。")
    step = credentials.verify_totp(credentials.decrypt_secret(credential.totp_secret_encrypted), code,
                                   last_step=credential.last_totp_step)
    if step is None:
        raise InvalidInput("確認コードが正しくありません。アプリに表示されている6桁を入力してください。")
    credential.totp_confirmed_at = utcnow()
    credential.last_totp_step = step
    principal = await session.get(Principal, web_session.principal_id)
    await _audit_staff_sign_in(session, principal, "staff", "identity.staff.totp_enrolled", "success")
    return await _rotate(session, web_session, stage="active", acting_lg_code=None)


#: How far a session's idle clock may lag: a page moves it at most this often.
TOUCH_EVERY = timedelta(seconds=60)


def touch_due(web_session: WebSession, now: datetime) -> bool:
    return now - web_session.last_seen_at > TOUCH_EVERY


async def load_session(session: AsyncSession, token: str | None, *, touch: bool = True) -> WebSession | None:
    """The live session for a cookie token, its idle clock reset (unless ``touch`` is False:
    the caller moves it, ``idle_clock``); None when absent, revoked, idle too long or past its
    absolute expiry."""
    if not token:
        return None
    web_session = await SessionRepository(session).by_token_hash(token_hash(token))
    now = utcnow()
    if web_session is None or web_session.revoked_at is not None or web_session.expires_at <= now:
        return None
    if now - web_session.last_seen_at > timedelta(minutes=get_settings().session_idle_minutes):
        return None
    if touch and touch_due(web_session, now):
        web_session.last_seen_at = now
        await session.flush()
    return web_session


async def sign_out(session: AsyncSession, web_session: WebSession) -> None:
    web_session.revoked_at = utcnow()
    await session.flush()


async def memberships_of(session: AsyncSession, principal_id: str):
    return await organisations_of(session, principal_id)


async def act_for(session: AsyncSession, web_session: WebSession, lg_code: str) -> tuple[Tenant, NewSession]:
    """Choose the organisation this session acts for; only one of the principal's own. What the
    session may do changes, so it continues under a new id (the old one is revoked)."""
    codes = {m.lg_code for m in await organisations_of(session, web_session.principal_id)}
    if lg_code not in codes:
        raise InvalidInput("所属していない団体は選べません。")
    rotated = await _rotate(session, web_session, stage=web_session.stage, acting_lg_code=lg_code)
    return await registry_service.tenant_for(session, lg_code), rotated


async def create_staff(session: AsyncSession, *, username: str, display_name: str, password: str,
                       lg_code: str, role: str, granted_by: str, totp_secret: bytes | None = None) -> Principal:
    """A staff account with a membership (operator tooling and the demo). With ``totp_secret``
    the second factor is enrolled already; otherwise enrolment happens at first sign-in."""
    if problem := credentials.password_problem(password):
        raise InvalidInput(problem)
    try:
        Role(role)
    except ValueError:
        raise InvalidInput(f"役割「{role}」はありません（{' / '.join(r.value for r in Role)}）。") from None
    if await StaffRepository(session).by_username(username):
        raise Conflict(f"ユーザー名「{username}」はすでに使われています。")
    tenant = await registry_service.tenant_for(session, lg_code)
    now = utcnow()
    principal = Principal(id=str(uuid.uuid4()), kind="staff", display_name=display_name, created_at=now)
    session.add(principal)
    await session.flush()
    session.add(StaffCredential(
        principal_id=principal.id, username=username, password_hash=credentials.hash_password(password),
        totp_secret_encrypted=credentials.encrypt_secret(totp_secret) if totp_secret else None,
        totp_confirmed_at=now if totp_secret else None, failed_count=0,
    ))
    async with as_tenant(session, tenant):
        MembershipRepository(session).add(Membership(principal_id=principal.id, role=role,
                                                     granted_by=granted_by, granted_at=now))
        await audit.record(session, audit.Actor("operator", granted_by), "identity.membership.granted",
                           target_type="principal", target_id=principal.id,
                           details={"role": role, "username": username})
    await session.flush()
    return principal


async def sign_in_with_card(session: AsyncSession, *, challenge_id: str, certificate: str, signature: str,
                            csrf_cookie: str | None) -> NewSession:
    """A resident signs in with the My Number Card (see ``jpki``). Every refusal is audited
    with its reason; the challenge is spent either way (the caller commits)."""
    from kiban.core.identity import jpki
    from kiban.core.identity.models import ResidentIdentity

    actor = audit.Actor("anonymous", "マイナンバーカード利用者")
    try:
        challenge = await jpki.consume_challenge(session, challenge_id, csrf_cookie)
        cert = jpki.parse_certificate(certificate)
        jpki.verify_card(cert, challenge.nonce, signature, jpki.trust_config())
    except jpki.CardRejected as exc:
        await _audit_sign_in(session, actor, "identity.resident.sign_in", "failure", reason=exc.reason)
        raise SignInRefused(exc.message) from exc
    now = utcnow()
    pseudonym = jpki.pseudonym(cert)
    identity = await session.get(ResidentIdentity, pseudonym)
    if identity is None:
        principal = Principal(id=str(uuid.uuid4()), kind="resident", display_name="住民", created_at=now)
        session.add(principal)
        await session.flush()
        identity = ResidentIdentity(pseudonym=pseudonym, principal_id=principal.id,
                                    issuer=cert.issuer.rfc4514_string(), not_after=cert.not_valid_after_utc,
                                    created_at=now, last_sign_in_at=now)
        session.add(identity)
    identity.last_sign_in_at = now
    await session.flush()
    await _audit_sign_in(session, audit.Actor("resident", "住民（本人）", identity.principal_id),
                         "identity.resident.sign_in", "success", subject=identity.principal_id)
    return await start_session(session, identity.principal_id, "active")


async def sign_in_with_gbizid(session: AsyncSession, config, claims: dict, login) -> NewSession:
    """A business user back from GビズID with verified claims: linked to their corporation by
    a valid 法人番号, or refused."""
    from kiban.core.identity.models import BusinessIdentity
    from kiban.core.identity.oidc import new_business_identity
    from kiban.core.registry.corporate_number import corporate_number_problem

    number = str(claims.get(config.corporate_number_claim) or "")
    actor = audit.Actor("business", str(claims.get("name") or claims["sub"]))
    if problem := corporate_number_problem(number):
        await _audit_sign_in(session, actor, "identity.business.sign_in", "failure",
                             reason="corporate_number_invalid")
        raise SignInRefused(f"GビズID から受け取った法人番号を確認できませんでした: {problem}")
    identity = await session.get(BusinessIdentity, (config.issuer, claims["sub"]))
    now = utcnow()
    if identity is None:
        principal = Principal(id=str(uuid.uuid4()), kind="business",
                              display_name=str(claims.get("name") or claims.get("email") or "事業者"), created_at=now)
        session.add(principal)
        await session.flush()
        identity = new_business_identity(config.issuer, claims["sub"], principal.id, number)
        session.add(identity)
    identity.corporate_number = number
    identity.last_sign_in_at = now
    await session.flush()
    await _audit_sign_in(session, audit.Actor("business", actor.label, identity.principal_id),
                         "identity.business.sign_in", "success", subject=identity.principal_id,
                         corporate_number=number)
    return await start_session(session, identity.principal_id, "active")


async def refuse_gbizid(session: AsyncSession, reason: str) -> None:
    await _audit_sign_in(session, audit.Actor("anonymous", "GビズID 利用者"), "identity.business.sign_in",
                         "failure", reason=reason)


INVITATION_DAYS = 7


@dataclass(frozen=True)
class NewInvitation:
    token: str
    principal: Principal
    invitation_id: str = ""
    expires_at: datetime | None = None


async def invite_staff(session: AsyncSession, admin_label: str, actor: audit.Actor, *, username: str,
                       display_name: str, role: str, by_email: bool = False) -> NewInvitation:
    """Create a staff account in the bound tenant with no password yet, and a one-time
    invitation link valid for a week. The link is returned once and never stored in clear
    (``invitations.mail_invitation`` sends it sealed when the administrator gave an address)."""
    from kiban.core.identity.models import Invitation

    username = (username or "").strip()
    display_name = (display_name or "").strip()
    if not username or not display_name:
        raise InvalidInput("ユーザー名と氏名を入力してください。")
    try:
        Role(role)
    except ValueError:
        raise InvalidInput("役割を選んでください。") from None
    if await StaffRepository(session).by_username(username):
        raise Conflict(f"ユーザー名「{username}」はすでに使われています。別の名前にしてください。")
    now = utcnow()
    principal = Principal(id=str(uuid.uuid4()), kind="staff", display_name=display_name, created_at=now)
    session.add(principal)
    await session.flush()
    session.add(StaffCredential(principal_id=principal.id, username=username,
                                password_hash="!invited", failed_count=0))
    MembershipRepository(session).add(Membership(principal_id=principal.id, role=role, granted_by=admin_label,
                                                 granted_at=now))
    token = secrets.token_urlsafe(32)
    invitation = Invitation(id=str(uuid.uuid4()), token_hash=token_hash(token), principal_id=principal.id,
                            role=role, invited_by=admin_label, created_at=now,
                            expires_at=now + timedelta(days=INVITATION_DAYS))
    session.add(invitation)
    details = {"username": username, "role": role}
    if by_email:
        details["method"] = "メール"  # whether it went by e-mail; never the address
    await audit.record(session, actor, "identity.membership.invited", target_type="principal",
                       target_id=principal.id, details=details)
    await session.flush()
    return NewInvitation(token, principal, invitation.id, invitation.expires_at)


async def find_invitation(session: AsyncSession, token: str):
    """The open invitation for a link, looked up across organisations by its hash (the token
    is the secret; it names no tenant)."""
    from kiban.core.identity.models import Invitation
    from kiban.core.tenancy.context import unscoped

    async with unscoped(session, "招待リンクの照合"):
        invitation = (await session.scalars(select(Invitation).where(Invitation.token_hash == token_hash(token)))).first()
    if invitation is None or invitation.accepted_at is not None or invitation.expires_at <= utcnow():
        raise InvalidInput("この招待リンクは使えません（使用済み・期限切れ・誤り）。団体管理者に再発行を依頼してください。")
    return invitation


async def accept_invitation(session: AsyncSession, token: str, password: str, confirm: str) -> None:
    invitation = await find_invitation(session, token)
    if password != confirm:
        raise InvalidInput("確認用のパスワードが一致しません。")
    if problem := credentials.password_problem(password):
        raise InvalidInput(problem)
    credential = await StaffRepository(session).for_principal(invitation.principal_id)
    credential.password_hash = await asyncio.to_thread(credentials.hash_password, password)
    tenant = await registry_service.tenant_for(session, invitation.lg_code)
    async with as_tenant(session, tenant):
        invitation.accepted_at = utcnow()
        principal = await session.get(Principal, invitation.principal_id)
        await audit.record(session, audit.Actor("staff", principal.display_name, principal.id),
                           "identity.membership.invitation_accepted", target_type="principal",
                           target_id=principal.id)
        await session.flush()


async def change_role(session: AsyncSession, actor: audit.Actor, principal_id: str, role: str) -> Membership:
    try:
        Role(role)
    except ValueError:
        raise InvalidInput("役割を選んでください。") from None
    membership = await MembershipRepository(session).active_for(principal_id)
    if membership is None:
        from kiban.kit.errors import NotFound

        raise NotFound("その職員はこの団体に所属していません。")
    old = membership.role
    membership.role = role
    await audit.record(session, actor, "identity.membership.role_changed", target_type="principal",
                       target_id=principal_id, details={"role": [old, role]})
    await session.flush()
    return membership


async def revoke_membership(session: AsyncSession, actor: audit.Actor, principal_id: str) -> None:
    """End a staff member's access to the bound tenant now, including their open sessions
    acting for it."""
    from kiban.kit.errors import NotFound

    membership = await MembershipRepository(session).active_for(principal_id)
    if membership is None:
        raise NotFound("その職員はこの団体に所属していません。")
    if actor.id == principal_id:
        raise InvalidInput("自分自身の利用は停止できません。ほかの団体管理者に依頼してください。")
    now = utcnow()
    membership.revoked_at = now
    for web_session in (await session.scalars(select(WebSession).where(
            WebSession.principal_id == principal_id, WebSession.acting_lg_code == membership.lg_code,
            WebSession.revoked_at.is_(None)))).all():
        web_session.revoked_at = now
    await audit.record(session, actor, "identity.membership.revoked", target_type="principal",
                       target_id=principal_id)
    await session.flush()


async def reinstate_membership(session: AsyncSession, actor: audit.Actor, principal_id: str) -> Membership:
    """Give a stopped staff member their access to the bound tenant back, with the role they
    held when stopped (the membership row keeps it). They sign in again themselves: sessions
    ended by the stop stay ended. Raises NotFound when the principal was never a member here
    or is not stopped (an active member has nothing to reinstate)."""
    from kiban.kit.errors import NotFound

    membership = await MembershipRepository(session).stopped_for(principal_id)
    if membership is None:
        raise NotFound("停止中の職員のなかに、その人はいません。")
    stopped_at = membership.revoked_at
    membership.revoked_at = None
    await audit.record(session, actor, "identity.membership.reinstated", target_type="principal",
                       target_id=principal_id,
                       details={"role": membership.role, "stopped_at": stopped_at.isoformat()})
    await session.flush()
    return membership
