"""Staff invitations by e-mail, through core/notify.

An administrator may give the invitee's address when inviting. The invitation e-mail then goes
through the outbox like every other notification, with its body *sealed* (core/notify/sealing.py:
AES-GCM under a key derived from ``KIBAN_SECRET_KEY``), because the body carries the one-time
link: the link is never stored in clear, and the sealed body is wiped once the message has been
sent (or given up). The invitation and its e-mail are written in one transaction, linked by the
notification's ``dedupe_key`` (``identity.invitation:<invitation id>``), so the administrator sees
the delivery state of every open invitation (``open_invitations``). Without an address the link
is shown once to the administrator, as before.

The invitee's address is kept only in the outbox row that delivers to it: not in the audit log
(its entry says only that the invitation went by e-mail) and not in application logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.identity.models import Invitation, Principal, StaffCredential
from kiban.core.notify import service as notify
from kiban.core.notify.models import FAILED, QUEUED, SENDING, SENT, Notification
from kiban.core.tenancy.context import Tenant
from kiban.core.tenancy.repository import TenantRepository
from kiban.kit.db import utcnow
from kiban.kit.errors import InvalidInput
from kiban.kit.wareki import JST

INVITATION_MAIL = notify.register_template(notify.TemplateDef(
    key="identity.invitation", label="職員の招待",
    subject="【{municipality}】職員アカウントへの招待",
    body="{name} 様\n\n{municipality}の{inviter}さんから、Kiban（国・地方デジタル共通基盤）の職員アカウントに"
         "招待されました。\n\n次のリンクを開いて、パスワードを設定してください。\n{invite_url}\n\n"
         "リンクの有効期限: {expires_at}\n"
         "このリンクはあなただけが使えます。ほかの人に転送しないでください。"
         "心当たりがない場合は、このメールを破棄してください。\n\nこのメールには返信できません。",
    placeholders=("municipality", "name", "inviter", "invite_url", "expires_at"),
    required=("invite_url",)))

SERVICE = notify.PLATFORM_SERVICE
BAD_EMAIL = "メールアドレスの形式が正しくありません（例: hanako@example.jp）。空欄にすると、招待リンクを画面に表示します。"


def dedupe_key(invitation_id: str) -> str:
    return f"identity.invitation:{invitation_id}"


def clean_email(raw: str | None) -> str | None:
    """The address as typed (trimmed), None when left empty; ``InvalidInput`` on field ``email``."""
    address = (raw or "").strip()
    if not address:
        return None
    if not notify.valid_email(address):
        raise InvalidInput(BAD_EMAIL, errors=[{"field": "email", "message": BAD_EMAIL}])
    return address


async def mail_invitation(session: AsyncSession, tenant: Tenant, *, invitation_id: str, email: str,
                          display_name: str, inviter: str, invite_url: str, expires_at: datetime) -> Notification:
    """Queue the invitation e-mail (sealed) in the caller's transaction."""
    return await notify.send(
        session, tenant, template=INVITATION_MAIL.key, to=notify.Recipient(email=email, name=display_name),
        context={"municipality": tenant.name, "name": display_name, "inviter": inviter, "invite_url": invite_url,
                 "expires_at": f"{expires_at.astimezone(JST):%Y年%m月%d日 %H:%M}"},
        service=SERVICE, dedupe_key=dedupe_key(invitation_id), sealed=True)


DELIVERY_LABELS = {QUEUED: "メール送信待ち", SENDING: "メール送信中", SENT: "メールで送信済み", FAILED: "メールを送信できませんでした"}


def masked(address: str | None) -> str | None:
    """``t***@example.jp``: enough for the administrator to recognise the address."""
    if not address or "@" not in address:
        return None
    local, domain = address.split("@", 1)
    return f"{local[:1]}***@{domain}"


@dataclass(frozen=True)
class OpenInvitation:
    invitation_id: str
    principal_id: str
    display_name: str
    username: str | None
    created_at: datetime
    expires_at: datetime
    expired: bool
    channel: str                  # email | link
    state: str | None             # the e-mail's state: queued | sending | sent | failed (None for a link)
    state_label: str
    email_masked: str | None
    last_error: str | None
    wait_reason: str | None
    notification_id: str | None


class _Invitations(TenantRepository[Invitation]):
    model = Invitation


def _label(n: Notification | None, expired: bool) -> str:
    if n is None:
        label = "招待リンクを画面に表示（メールは送っていません）"
    else:
        label = DELIVERY_LABELS.get(n.state, n.state)
    return label + ("（期限切れ）" if expired else "")


async def open_invitations(session: AsyncSession, *, limit: int = 100) -> list[OpenInvitation]:
    """The bound tenant's invitations not yet accepted, newest first, with how each was delivered."""
    repo = _Invitations(session)
    rows: Sequence[Invitation] = await repo.all(repo.select().where(Invitation.accepted_at.is_(None))
                                                .order_by(Invitation.created_at.desc(), Invitation.id).limit(limit))
    if not rows:
        return []
    outbox = notify.NotificationRepository(session)
    mails = {n.dedupe_key: n for n in await outbox.all(outbox.select().where(
        Notification.dedupe_key.in_([dedupe_key(i.id) for i in rows])))}
    status = None
    if any(n.state == QUEUED for n in mails.values()):
        from kiban.core.notify import delivery

        status = await delivery.tenant_status(session, outbox.tenant.lg_code)
    now = utcnow()
    found = []
    for inv in rows:
        principal = await session.get(Principal, inv.principal_id)
        credential = await session.get(StaffCredential, inv.principal_id)
        n = mails.get(dedupe_key(inv.id))
        expired = inv.expires_at <= now
        found.append(OpenInvitation(
            invitation_id=inv.id, principal_id=inv.principal_id,
            display_name=principal.display_name if principal else "", username=credential.username if credential else None,
            created_at=inv.created_at, expires_at=inv.expires_at, expired=expired,
            channel="email" if n is not None else "link", state=n.state if n is not None else None,
            state_label=_label(n, expired), email_masked=masked(n.email) if n is not None else None,
            last_error=n.last_error if n is not None else None,
            wait_reason=notify.wait_reason(n, status, now) if n is not None and status is not None else None,
            notification_id=n.id if n is not None else None))
    return found
