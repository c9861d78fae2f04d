"""What residents are told (core/notify) and what is counted (core/metering) for 施設予約.

Templates are registered at import. ``send`` and ``count`` write in the caller's transaction, so
a confirmation exists, and a booking is counted, exactly when the booking commits.

Both shared parts arrived in issue #12 alongside this module: they are used once their tables
are part of the schema (``kiban.models`` imports their models, as it does once they land), so
that this module works, and is tested, with or without them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.tenancy.context import Tenant
from kiban.kit.wareki import JST

try:
    from kiban.core.notify import service as notify
except ImportError:  # pragma: no cover - core/notify not installed
    notify = None  # type: ignore[assignment]
try:
    from kiban.core.metering import service as metering
except ImportError:  # pragma: no cover
    metering = None  # type: ignore[assignment]

SERVICE = "aichi-shisetsu-yoyaku"
_COMMON = ("municipality", "facility", "room", "slot", "name")

TEMPLATES = {
    "reservations.confirmed": ("施設予約の確定", "【{municipality}】{facility}の予約を受け付けました",
                               "{name} 様\n\n次の施設の予約を受け付けました。\n\n施設: {facility}（{room}）\n日時: {slot}\n"
                               "使用料: {fee}円\n予約番号: {booking_id}\n\n取消は「わたしの予約」から、{deadline}までにお手続きください。\n",
                               (*_COMMON, "fee", "booking_id", "deadline")),
    "reservations.cancelled": ("施設予約の取消", "【{municipality}】{facility}の予約を取り消しました",
                               "{name} 様\n\n次の施設の予約を取り消しました。\n\n施設: {facility}（{room}）\n日時: {slot}\n"
                               "予約番号: {booking_id}\n", (*_COMMON, "booking_id")),
    "reservations.lottery_won": ("施設の抽選の当選", "【{municipality}】{facility}の抽選に当選しました",
                                 "{name} 様\n\n「{lottery}」の抽選の結果、次の枠に当選し、予約が確定しました。\n\n"
                                 "施設: {facility}（{room}）\n日時: {slot}\n予約番号: {booking_id}\n",
                                 (*_COMMON, "lottery", "booking_id")),
    "reservations.lottery_lost": ("施設の抽選の落選", "【{municipality}】{facility}の抽選の結果のお知らせ",
                                  "{name} 様\n\n「{lottery}」の抽選の結果、次の枠は落選となりました。\n\n"
                                  "施設: {facility}（{room}）\n日時: {slot}\n\nほかの空いている枠は空き状況の画面から予約できます。\n",
                                  (*_COMMON, "lottery")),
}

if notify is not None:
    for _key, (_label, _subject, _body, _placeholders) in TEMPLATES.items():
        notify.register_template(notify.TemplateDef(key=_key, label=_label, subject=_subject, body=_body,
                                                    placeholders=_placeholders))


def _in_schema(model_name: str) -> bool:
    import kiban.models

    return hasattr(kiban.models, model_name)


def notify_ready() -> bool:
    return notify is not None and _in_schema("Notification")


def metering_ready() -> bool:
    return metering is not None and _in_schema("UsageCounter")


def slot_text(starts_at: datetime, ends_at: datetime) -> str:
    start, end = starts_at.astimezone(JST), ends_at.astimezone(JST)
    weekday = "月火水木金土日"[start.weekday()]
    return f"{start:%Y年%m月%d日}（{weekday}）{start:%H:%M}〜{end:%H:%M}"


async def _send(session: AsyncSession, tenant: Tenant, template: str, booker, principal_id: str, context: dict,
                dedupe_key: str) -> None:
    if not notify_ready():
        return
    recipient = notify.Recipient(principal_id=principal_id, email=booker.email if booker else None,
                                 name=booker.name if booker else None)
    await notify.send(session, tenant, template=template, to=recipient,
                      context={"municipality": tenant.name, "name": booker.name if booker else "利用者", **context},
                      service=SERVICE, dedupe_key=dedupe_key)


def _base(booking, facility, room) -> dict:
    return {"facility": facility.name, "room": room.name, "slot": slot_text(booking.starts_at, booking.ends_at),
            "booking_id": booking.id}


async def booking_confirmed(session, tenant, booking, booker, facility, room) -> None:
    from datetime import timedelta

    deadline = (booking.starts_at - timedelta(hours=facility.cancel_deadline_hours)).astimezone(JST)
    if booking.lottery_id:
        return  # the lottery's own notice says so
    await _send(session, tenant, "reservations.confirmed", booker, booking.principal_id,
                {**_base(booking, facility, room), "fee": f"{booking.fee_yen:,}",
                 "deadline": f"{deadline:%Y年%m月%d日 %H:%M}"}, f"reservations.confirmed:{booking.id}")


async def booking_cancelled(session, tenant, booking, booker, facility, room) -> None:
    await _send(session, tenant, "reservations.cancelled", booker, booking.principal_id,
                _base(booking, facility, room), f"reservations.cancelled:{booking.id}")


async def lottery_result(session, tenant, lottery, entry, booking, booker, facility, room) -> None:
    from kiban.modules.reservations.service import slot_end

    context = {"facility": facility.name, "room": room.name, "lottery": lottery.title,
               "slot": slot_text(entry.starts_at, slot_end(facility, entry.starts_at) or entry.starts_at)}
    if booking is not None:
        await _send(session, tenant, "reservations.lottery_won", booker, entry.principal_id,
                    {**context, "booking_id": booking.id}, f"reservations.lottery_won:{entry.id}")
    else:
        await _send(session, tenant, "reservations.lottery_lost", booker, entry.principal_id, context,
                    f"reservations.lottery_lost:{entry.id}")


async def count_booking(session: AsyncSession, tenant: Tenant, booking_id: str) -> None:
    if metering_ready():
        await metering.count(session, tenant, SERVICE, "booking", key=booking_id)
