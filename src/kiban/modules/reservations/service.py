"""施設予約の業務ルール: facilities and their rules, registered users, slots, booking and
cancelling. Routes (pages and their JSON twins) call these; audit entries, notices and metering
are written here, in the caller's transaction; nothing here commits.

Times: a facility's opening hours are Japan time; a slot's start is stored in UTC.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.audit import service as audit
from kiban.core.tenancy.context import Tenant
from kiban.core.tenancy.repository import TenantRepository
from kiban.kit.db import utcnow
from kiban.kit.errors import Conflict, InvalidInput, NotFound
from kiban.kit.secrets import secret_key
from kiban.kit.wareki import JST
from kiban.modules.reservations import notices
from kiban.modules.reservations.models import ACTIVE, CANCELLED, Booker, Booking, Facility, Lottery, Room

SERVICE_ID = "aichi-shisetsu-yoyaku"  # the catalog's 施設予約 (metering and notices count under it)

KIND_LABELS = {"gym": "体育館", "meeting": "会議室", "ground": "グラウンド", "hall": "ホール", "other": "その他"}
ELIGIBILITY_LABELS = {"residents": "市内在住・在勤の方と登録団体", "groups": "登録団体のみ", "anyone": "どなたでも（利用者登録が必要）"}
BOOKER_KIND_LABELS = {"resident": "市内在住・在勤", "group": "登録団体", "other": "市外の方"}
BOOKER_STATUS_LABELS = {"active": "利用できます", "pending": "団体の承認待ち"}
STATUS_LABELS = {ACTIVE: "予約済み", CANCELLED: "取消済み"}
SOURCE_LABELS = {"direct": "先着", "lottery": "抽選"}
WEEKDAYS = ("月", "火", "水", "木", "金", "土", "日")
SLOT_TAKEN = "この枠はすでに予約されています。ほかの方が先に予約しました。別の枠をお選びください。"
NOT_FOUND = "お探しの施設は見つかりませんでした。"

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class SlotTaken(Conflict):
    title = "この枠はすでに予約されています"
    type_slug = "slot-taken"


class RoomInUse(Conflict):
    """A room with future bookings (or slots in an open lottery) cannot be removed."""

    title = "これからの予約がある部屋・区画は削除できません"
    type_slug = "room-in-use"


class BookingRefused(InvalidInput):
    """A rule refuses the booking or cancellation (window, deadline, eligibility, limit)."""

    title = "予約の条件を満たしていません"
    type_slug = "booking-refused"


# -- repositories --------------------------------------------------------------------------------

class FacilityRepository(TenantRepository[Facility]):
    model = Facility


class RoomRepository(TenantRepository[Room]):
    model = Room


class BookerRepository(TenantRepository[Booker]):
    model = Booker


class BookingRepository(TenantRepository[Booking]):
    model = Booking

    async def active_in(self, facility_id: str, start: datetime, end: datetime) -> Sequence[Booking]:
        return await self.all(self.select().where(Booking.facility_id == facility_id, Booking.status == ACTIVE,
                                                  Booking.starts_at >= start, Booking.starts_at < end))

    async def active_count_of(self, principal_id: str, now: datetime) -> int:
        return await self.count(self.select().where(Booking.principal_id == principal_id, Booking.status == ACTIVE,
                                                    Booking.ends_at > now))


class LotteryRepository(TenantRepository[Lottery]):
    model = Lottery


# -- input ---------------------------------------------------------------------------------------

FACILITY_FIELDS = ("name", "kind", "address", "description", "eligibility", "slot_minutes", "booking_window_days",
                   "cancel_deadline_hours", "max_active_per_person",
                   *(f"{edge}_{day}" for day in range(7) for edge in ("open", "close")))


def _int_in(errors: dict, form: Mapping, key: str, label: str, low: int, high: int) -> int | None:
    raw = str(form.get(key, "")).strip().translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    if not raw:
        errors[key] = f"{label}を入力してください。"
        return None
    if not raw.isdigit() or not low <= int(raw) <= high:
        errors[key] = f"{label}は{low}から{high}までの整数で入力してください。"
        return None
    return int(raw)


def _text(errors: dict, form: Mapping, key: str, label: str, limit: int, *, required: bool) -> str:
    value = str(form.get(key, "")).strip()
    if required and not value:
        errors[key] = f"{label}を入力してください。"
    elif len(value) > limit:
        errors[key] = f"{label}は{limit}文字以内で入力してください。"
    return value


def facility_values(form: Mapping) -> dict:
    """The facility's settings from a form (page or JSON twin), or ``InvalidInput`` listing every
    field that is wrong (field-level Japanese messages; nothing is stored)."""
    errors: dict[str, str] = {}
    values: dict = {
        "name": _text(errors, form, "name", "施設名", 100, required=True),
        "address": _text(errors, form, "address", "所在地", 200, required=False),
        "description": _text(errors, form, "description", "説明", 2000, required=False),
    }
    values["kind"] = str(form.get("kind", ""))
    if values["kind"] not in KIND_LABELS:
        errors["kind"] = "施設の種類を選んでください。"
    values["eligibility"] = str(form.get("eligibility", ""))
    if values["eligibility"] not in ELIGIBILITY_LABELS:
        errors["eligibility"] = "予約できる方を選んでください。"
    values["slot_minutes"] = _int_in(errors, form, "slot_minutes", "1枠の長さ（分）", 15, 720)
    values["booking_window_days"] = _int_in(errors, form, "booking_window_days", "予約できる期間（日先まで）", 1, 400)
    values["cancel_deadline_hours"] = _int_in(errors, form, "cancel_deadline_hours", "取消の期限（開始の何時間前まで）",
                                              0, 720)
    values["max_active_per_person"] = _int_in(errors, form, "max_active_per_person", "1人が持てる予約の数", 1, 100)
    hours: dict[str, list[str]] = {}
    for day in range(7):
        opens, closes = (str(form.get(f"{edge}_{day}", "")).strip() for edge in ("open", "close"))
        if not opens and not closes:
            continue  # closed that weekday
        key = f"open_{day}"
        if not _HHMM.match(opens) or not _HHMM.match(closes):
            errors[key] = f"{WEEKDAYS[day]}曜日の開館・閉館の時刻は 09:00 のように入力してください（休館日は両方とも空欄）。"
        elif opens >= closes:
            errors[key] = f"{WEEKDAYS[day]}曜日の閉館時刻は開館時刻より後にしてください。"
        elif values["slot_minutes"] and _minutes(closes) - _minutes(opens) < values["slot_minutes"]:
            errors[key] = f"{WEEKDAYS[day]}曜日の開館時間が1枠の長さより短いため、予約できる枠がありません。"
        else:
            hours[str(day)] = [opens, closes]
    if not hours and not any(k.startswith("open_") for k in errors):
        errors["open_0"] = "少なくとも1つの曜日の開館時間を入力してください。"
    values["opening_hours"] = hours
    if errors:
        raise InvalidInput(f"入力内容に{len(errors)}件の誤りがあります。" if len(errors) > 1 else next(iter(errors.values())),
                           errors=[{"field": k, "message": v} for k, v in errors.items()])
    return values


def facility_form(facility: Facility | None) -> dict:
    """A facility's settings as the form shows them (defaults for a new one)."""
    if facility is None:
        return {"name": "", "kind": "gym", "address": "", "description": "", "eligibility": "residents",
                "slot_minutes": "120", "booking_window_days": "60", "cancel_deadline_hours": "24",
                "max_active_per_person": "4",
                **{f"{edge}_{day}": value for day in range(7)
                   for edge, value in (("open", "09:00"), ("close", "21:00"))}}
    form = {k: str(getattr(facility, k)) for k in FACILITY_FIELDS if "_" not in k or hasattr(facility, k)}
    for day in range(7):
        opens, closes = facility.opening_hours.get(str(day), ["", ""])
        form[f"open_{day}"], form[f"close_{day}"] = opens, closes
    return form


def room_values(form: Mapping) -> dict:
    errors: dict[str, str] = {}
    values = {"name": _text(errors, form, "name", "部屋・区画の名前", 100, required=True)}
    capacity = str(form.get("capacity", "")).strip()
    values["capacity"] = None
    if capacity:
        values["capacity"] = _int_in(errors, form, "capacity", "定員", 1, 100_000)
    values["fee_yen"] = _int_in(errors, form, "fee_yen", "1枠の使用料（円）", 0, 10_000_000)
    if errors:
        raise InvalidInput(next(iter(errors.values())) if len(errors) == 1 else f"入力内容に{len(errors)}件の誤りがあります。",
                           errors=[{"field": k, "message": v} for k, v in errors.items()])
    return values


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


# -- facilities ------------------------------------------------------------------------------------

async def facilities(session: AsyncSession, *, include_retired: bool = False) -> Sequence[Facility]:
    repo = FacilityRepository(session)
    query = repo.select().order_by(Facility.name, Facility.id)
    if not include_retired:
        query = query.where(Facility.retired_at.is_(None))
    return await repo.all(query)


async def get_facility(session: AsyncSession, facility_id: str, *, include_retired: bool = False) -> Facility:
    repo = FacilityRepository(session)
    found = await repo.first(repo.select().where(Facility.id == facility_id))
    if found is None or (found.retired_at is not None and not include_retired):
        raise NotFound(NOT_FOUND)
    return found


async def rooms_of(session: AsyncSession, facility_id: str, *, bookable_only: bool = False) -> Sequence[Room]:
    """The facility's rooms (never the removed ones); ``bookable_only`` leaves out those closed
    for new bookings too (what new bookings and lotteries may use)."""
    repo = RoomRepository(session)
    query = repo.select().where(Room.facility_id == facility_id, Room.removed_at.is_(None))
    if bookable_only:
        query = query.where(Room.closed_at.is_(None))
    return await repo.all(query.order_by(Room.created_at, Room.name))


async def get_room(session: AsyncSession, facility_id: str, room_id: str, *, include_removed: bool = False) -> Room:
    repo = RoomRepository(session)
    found = await repo.first(repo.select().where(Room.facility_id == facility_id, Room.id == room_id))
    if found is None or (found.removed_at is not None and not include_removed):
        raise NotFound("お探しの部屋・区画は見つかりませんでした。")
    return found


async def create_facility(session: AsyncSession, actor: audit.Actor, values: dict, *,
                          rooms: Sequence[dict] = ()) -> Facility:
    now = utcnow()
    facility = FacilityRepository(session).add(Facility(id=str(uuid.uuid4()), created_by=actor.label[:200],
                                                        created_at=now, updated_at=now, **values))
    for room in rooms:
        RoomRepository(session).add(Room(id=str(uuid.uuid4()), facility_id=facility.id, created_at=now, **room))
    await session.flush()
    await audit.record(session, actor, "reservations.facility.created", target_type="facility", target_id=facility.id,
                       details={"name": facility.name})
    return facility


async def update_facility(session: AsyncSession, actor: audit.Actor, facility: Facility, values: dict) -> Facility:
    """Changes the rules. The slot length may change only while no future booking is active:
    old bookings would otherwise overlap the new slots."""
    if values["slot_minutes"] != facility.slot_minutes or values["opening_hours"] != facility.opening_hours:
        future = await BookingRepository(session).count(BookingRepository(session).select().where(
            Booking.facility_id == facility.id, Booking.status == ACTIVE, Booking.ends_at > utcnow()))
        if future:
            raise InvalidInput(f"これからの予約が{future}件あるため、1枠の長さと開館時間は変更できません。"
                               "予約がなくなってから変更するか、新しい施設として登録してください。",
                               errors=[{"field": "slot_minutes", "message": "これからの予約があるため変更できません。"}])
    changes = {k: [getattr(facility, k), v] for k, v in values.items() if getattr(facility, k) != v}
    for key, value in values.items():
        setattr(facility, key, value)
    facility.updated_at = utcnow()
    await session.flush()
    await audit.record(session, actor, "reservations.facility.updated", target_type="facility", target_id=facility.id,
                       details={"name": facility.name, "changed": sorted(changes)})
    return facility


async def retire_facility(session: AsyncSession, actor: audit.Actor, facility: Facility) -> int:
    """削除: the facility disappears from the public pages and can no longer be booked; its
    future bookings are cancelled (the people are notified). Returns how many were cancelled."""
    now = utcnow()
    facility.retired_at = now
    repo = BookingRepository(session)
    future = await repo.all(repo.select().where(Booking.facility_id == facility.id, Booking.status == ACTIVE,
                                                Booking.starts_at > now))
    for booking in future:
        await _cancel(session, booking, actor, by_staff=True)
    await session.flush()
    await audit.record(session, actor, "reservations.facility.retired", target_type="facility", target_id=facility.id,
                       details={"name": facility.name, "entries": len(future)})
    return len(future)


async def add_room(session: AsyncSession, actor: audit.Actor, facility: Facility, values: dict) -> Room:
    room = RoomRepository(session).add(Room(id=str(uuid.uuid4()), facility_id=facility.id, created_at=utcnow(),
                                            **values))
    await session.flush()
    await audit.record(session, actor, "reservations.room.added", target_type="facility", target_id=facility.id,
                       details={"name": room.name, "facility": facility.name})
    return room


def room_form(room: Room) -> dict:
    return {"name": room.name, "capacity": "" if room.capacity is None else str(room.capacity),
            "fee_yen": str(room.fee_yen)}


async def update_room(session: AsyncSession, actor: audit.Actor, facility: Facility, room: Room, values: dict) -> Room:
    """Changes a room's name, capacity or fee. A new fee applies to bookings made from now on;
    a booking keeps the fee it was made with."""
    changes = sorted(k for k, v in values.items() if getattr(room, k) != v)
    for key, value in values.items():
        setattr(room, key, value)
    await session.flush()
    await audit.record(session, actor, "reservations.room.updated", target_type="facility_room", target_id=room.id,
                       details={"name": room.name, "facility": facility.name, "changed": changes})
    return room


async def future_commitments(session: AsyncSession, room: Room, now: datetime | None = None) -> tuple[int, int]:
    """(active bookings not yet over, slots of lotteries not yet drawn) of ``room``."""
    now = now or utcnow()
    repo = BookingRepository(session)
    bookings = await repo.count(repo.select().where(Booking.facility_id == room.facility_id, Booking.room_id == room.id,
                                                    Booking.status == ACTIVE, Booking.ends_at > now))
    held = sum(1 for room_id, _start in await held_by_lotteries(session, room.facility_id) if room_id == room.id)
    return bookings, held


def in_use_reason(room: Room, bookings: int, held: int) -> str | None:
    """Why ``room`` cannot be removed now (Japanese), or None."""
    parts = []
    if bookings:
        parts.append(f"これからの予約が{bookings}件")
    if held:
        parts.append(f"抽選中の枠が{held}件")
    if not parts:
        return None
    return (f"「{room.name}」には{'、'.join(parts)}あるため、削除できません。削除すると、予約した方が"
            "予約どおりに利用できなくなり、予約の記録も確かめられなくなるためです。"
            "代わりに「新しい予約の受付を停止」すると、新しい予約と抽選には使えなくなり、"
            "いまある予約はそのまま利用できます。予約がすべて終わってから削除してください。")


async def close_room(session: AsyncSession, actor: audit.Actor, facility: Facility, room: Room) -> Room:
    """受付停止: no new bookings or lotteries for the room; its bookings stand."""
    if room.closed_at is None:
        room.closed_at = utcnow()
        await session.flush()
        await audit.record(session, actor, "reservations.room.closed", target_type="facility_room", target_id=room.id,
                           details={"name": room.name, "facility": facility.name})
    return room


async def reopen_room(session: AsyncSession, actor: audit.Actor, facility: Facility, room: Room) -> Room:
    if room.closed_at is not None:
        room.closed_at = None
        await session.flush()
        await audit.record(session, actor, "reservations.room.reopened", target_type="facility_room",
                           target_id=room.id, details={"name": room.name, "facility": facility.name})
    return room


async def close_all_rooms(session: AsyncSession, actor: audit.Actor, facility: Facility) -> list[Room]:
    """受付停止 for every room of the facility: the alternative to removing a facility whose
    future bookings would otherwise be cancelled."""
    rooms = list(await rooms_of(session, facility.id))
    for room in rooms:
        await close_room(session, actor, facility, room)
    return rooms


async def remove_room(session: AsyncSession, actor: audit.Actor, facility: Facility, room: Room) -> Room:
    """削除. Refused (``RoomInUse``) while the room has bookings not yet over or slots in an
    open lottery. The row stays (``removed_at``) so past bookings keep their room's name."""
    bookings, held = await future_commitments(session, room)
    reason = in_use_reason(room, bookings, held)
    if reason:
        raise RoomInUse(reason)
    now = utcnow()
    room.removed_at = now
    room.closed_at = room.closed_at or now
    await session.flush()
    await audit.record(session, actor, "reservations.room.removed", target_type="facility_room", target_id=room.id,
                       details={"name": room.name, "facility": facility.name})
    return room


# -- staff: the bookings list and its export -----------------------------------------------------------

RANGE_MAX_DAYS = 366
LIST_MAX = 5000
LIST_STATUSES = {"active": "予約済みのみ", "all": "取消済みも含める"}


@dataclass(frozen=True)
class BookingRange:
    first: date
    last: date
    status: str  # active | all


def booking_range(params: Mapping, today: date | None = None) -> BookingRange:
    """The list's period (Japan time, both days included) and status from query parameters
    ``from``, ``to``, ``status``; ``InvalidInput`` names every wrong one. Default: today and the
    next 30 days, active bookings."""
    today = today or today_jst()
    errors: dict[str, str] = {}
    days: dict[str, date] = {}
    for key, label, default in (("from", "開始日", today), ("to", "終了日", today + timedelta(days=30))):
        raw = str(params.get(key) or "").strip()
        if not raw:
            days[key] = default
            continue
        try:
            days[key] = date.fromisoformat(raw)
            if not 2000 <= days[key].year <= 2100:
                raise ValueError
        except ValueError:
            errors[key] = f"{label}は 2026-12-01 のように入力してください（2000年〜2100年）。"
            days[key] = default
    status = str(params.get("status") or "active")
    if status not in LIST_STATUSES:
        errors["status"] = "表示する予約の種類を選んでください。"
        status = "active"
    if not errors:
        if days["to"] < days["from"]:
            errors["to"] = "終了日は開始日と同じ日かそれより後にしてください。"
        elif (days["to"] - days["from"]).days >= RANGE_MAX_DAYS:
            errors["to"] = f"期間は{RANGE_MAX_DAYS}日以内にしてください。"
    if errors:
        raise InvalidInput(next(iter(errors.values())) if len(errors) == 1 else f"入力内容に{len(errors)}件の誤りがあります。",
                           errors=[{"field": k, "message": v} for k, v in errors.items()])
    return BookingRange(days["from"], days["to"], status)


async def bookings_between(session: AsyncSession, facility: Facility, period: BookingRange) -> Sequence[Booking]:
    """The facility's bookings starting within ``period`` (Japan time), in start order; at most
    ``LIST_MAX`` (``InvalidInput`` asking for a shorter period beyond that)."""
    repo = BookingRepository(session)
    start = datetime.combine(period.first, time(0), JST)
    end = datetime.combine(period.last + timedelta(days=1), time(0), JST)
    query = repo.select().where(Booking.facility_id == facility.id, Booking.starts_at >= start, Booking.starts_at < end)
    if period.status == "active":
        query = query.where(Booking.status == ACTIVE)
    found = await repo.all(query.order_by(Booking.starts_at, Booking.room_id, Booking.created_at).limit(LIST_MAX + 1))
    if len(found) > LIST_MAX:
        raise InvalidInput(f"この期間の予約は{LIST_MAX:,}件を超えます。期間を短くしてください。",
                           errors=[{"field": "to", "message": "期間を短くしてください。"}])
    return found


EXPORT_HEADER = ("予約番号", "利用日", "開始", "終了", "部屋・区画", "利用者", "状態", "方法", "使用料（円）",
                 "予約日時", "取消日時", "取り消した人")


def export_rows(bookings: Sequence[Booking], rooms: Mapping[str, Room]) -> list[tuple]:
    rows = []
    for b in bookings:
        start, end = b.starts_at.astimezone(JST), b.ends_at.astimezone(JST)
        room = rooms.get(b.room_id)
        rows.append((b.id, f"{start:%Y-%m-%d}", f"{start:%H:%M}", f"{end:%H:%M}", room.name if room else "",
                     b.booker_name, STATUS_LABELS.get(b.status, b.status), SOURCE_LABELS.get(b.source, b.source),
                     b.fee_yen, f"{b.created_at.astimezone(JST):%Y-%m-%d %H:%M}",
                     f"{b.cancelled_at.astimezone(JST):%Y-%m-%d %H:%M}" if b.cancelled_at else "",
                     b.cancelled_by or ""))
    return rows


async def record_export(session: AsyncSession, actor: audit.Actor, facility: Facility, period: BookingRange,
                        rows: int, fmt: str) -> None:
    await audit.record(session, actor, "reservations.booking.exported", target_type="facility", target_id=facility.id,
                       details={"name": facility.name, "from": period.first.isoformat(), "to": period.last.isoformat(),
                                "rows": rows, "format": fmt})


# -- slots -------------------------------------------------------------------------------------------

def today_jst(now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(JST).date()


def slots_on(facility: Facility, day: date) -> list[tuple[datetime, datetime]]:
    """The slots of ``day`` (Japan time) as (start, end) in UTC: from opening, every
    ``slot_minutes``, while a whole slot fits before closing."""
    hours = facility.opening_hours.get(str(day.weekday()))
    if not hours:
        return []
    opens = datetime.combine(day, time.fromisoformat(hours[0]), JST)
    closes = datetime.combine(day, time.fromisoformat(hours[1]), JST)
    step = timedelta(minutes=facility.slot_minutes)
    found, start = [], opens
    while start + step <= closes:
        found.append((start.astimezone(JST), (start + step).astimezone(JST)))
        start += step
    return found


def slot_end(facility: Facility, starts_at: datetime) -> datetime | None:
    """The end of the slot starting at ``starts_at``, or None when no slot starts then."""
    local = starts_at.astimezone(JST)
    for start, end in slots_on(facility, local.date()):
        if start == local:
            return end
    return None


def parse_start(value: str) -> datetime:
    """``2026-12-01T10:00`` (Japan time) or an ISO time with offset, as an aware datetime."""
    try:
        parsed = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise InvalidInput("枠の開始日時が正しくありません。", errors=[{"field": "starts_at",
                                                                 "message": "枠の開始日時が正しくありません。"}]) from None
    return parsed.replace(tzinfo=JST) if parsed.tzinfo is None else parsed


def slot_param(starts_at: datetime) -> str:
    return starts_at.astimezone(JST).strftime("%Y-%m-%dT%H:%M")


@dataclass
class SlotView:
    room: Room
    starts_at: datetime
    ends_at: datetime
    state: str  # free | booked | mine | lottery | past | closed | stopped (room closed for new bookings)
    lottery_id: str | None = None

    @property
    def param(self) -> str:
        return slot_param(self.starts_at)

    @property
    def label(self) -> str:
        return f"{self.starts_at.astimezone(JST):%H:%M}〜{self.ends_at.astimezone(JST):%H:%M}"


@dataclass
class DayView:
    day: date
    rooms: list[tuple[Room, list[SlotView]]] = field(default_factory=list)

    @property
    def weekday(self) -> str:
        return WEEKDAYS[self.day.weekday()]


async def held_by_lotteries(session: AsyncSession, facility_id: str) -> dict[tuple[str, str], str]:
    """(room_id, start ISO UTC) -> lottery id, for slots of lotteries not yet drawn."""
    repo = LotteryRepository(session)
    held = {}
    for lottery in await repo.all(repo.select().where(Lottery.facility_id == facility_id,
                                                      Lottery.status.in_(("open", "drawing")))):
        for slot in lottery.slots:
            held[(slot["room_id"], slot["starts_at"])] = lottery.id
    return held


def slot_key(starts_at: datetime) -> str:
    """A slot's start as the lotteries store it: ISO-8601 in UTC."""
    return starts_at.astimezone(timezone.utc).isoformat()


async def availability(session: AsyncSession, facility: Facility, first_day: date, days: int = 7, *,
                       principal_id: str | None = None, now: datetime | None = None) -> list[DayView]:
    """Every slot of ``days`` days from ``first_day`` per room, with its state. No names: a
    booked slot is only 「予約済み」 (or 「あなたの予約」 for its own booker)."""
    now = now or utcnow()
    rooms = await rooms_of(session, facility.id)
    start = datetime.combine(first_day, time(0), JST)
    booked = {(b.room_id, slot_key(b.starts_at)): b
              for b in await BookingRepository(session).active_in(facility.id, start, start + timedelta(days=days))}
    held = await held_by_lotteries(session, facility.id)
    last_day = today_jst(now) + timedelta(days=facility.booking_window_days)
    views = []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        view = DayView(day)
        for room in rooms:
            slots = []
            for s, e in slots_on(facility, day):
                key = (room.id, slot_key(s))
                booking = booked.get(key)
                if booking is not None:
                    state = "mine" if principal_id and booking.principal_id == principal_id else "booked"
                elif key in held:
                    state = "lottery"
                elif room.closed_at is not None:
                    state = "stopped"
                elif s <= now:
                    state = "past"
                elif day > last_day:
                    state = "closed"
                else:
                    state = "free"
                slots.append(SlotView(room, s, e, state, held.get(key)))
            view.rooms.append((room, slots))
        views.append(view)
    return views


# -- registered users (利用者登録) -------------------------------------------------------------------------

async def get_booker(session: AsyncSession, principal_id: str, *, lock: bool = False) -> Booker | None:
    """The resident's registration; ``lock`` holds its row until commit (PostgreSQL), so that two
    bookings by one person at once are counted one after the other against the per-person limit
    (SQLite's writers are one at a time already)."""
    repo = BookerRepository(session)
    query = repo.select().where(Booker.principal_id == principal_id)
    if lock and session.bind.dialect.name == "postgresql":
        query = query.with_for_update()
    return await repo.first(query)


def booker_values(form: Mapping) -> dict:
    errors: dict[str, str] = {}
    values = {"kind": str(form.get("kind", "")),
              "name": _text(errors, form, "name", "お名前", 100, required=True),
              "group_name": _text(errors, form, "group_name", "団体名", 100, required=False),
              "email": _text(errors, form, "email", "メールアドレス", 254, required=True)}
    if values["kind"] not in BOOKER_KIND_LABELS:
        errors["kind"] = "利用者の区分を選んでください。"
    elif values["kind"] == "group" and not values["group_name"]:
        errors["group_name"] = "登録団体として利用するときは団体名を入力してください。"
    if values["email"] and "email" not in errors and not _EMAIL.match(values["email"]):
        errors["email"] = "メールアドレスの形式が正しくありません（例: hanako@example.jp）。"
    if errors:
        raise InvalidInput(next(iter(errors.values())) if len(errors) == 1 else f"入力内容に{len(errors)}件の誤りがあります。",
                           errors=[{"field": k, "message": v} for k, v in errors.items()])
    return values


async def register_booker(session: AsyncSession, principal_id: str, values: dict) -> Booker:
    """Registers (or updates) the resident as a user of this municipality's facilities. A group
    waits for staff approval; a change of kind to ``group`` does too."""
    booker = await get_booker(session, principal_id)
    now = utcnow()
    status = "pending" if values["kind"] == "group" else "active"
    if booker is None:
        booker = BookerRepository(session).add(Booker(principal_id=principal_id, status=status, feed_version=1,
                                                      created_at=now, **values))
    else:
        if booker.kind == "group" and values["kind"] == "group" and booker.group_name == values["group_name"]:
            status = booker.status  # the approved group stays approved
        for key, value in values.items():
            setattr(booker, key, value)
        booker.status = status
    await session.flush()
    await audit.record(session, audit.Actor("resident", "本人", principal_id), "reservations.booker.registered",
                       target_type="facility_booker", target_id=principal_id, subject_id=principal_id)
    return booker


async def bookers(session: AsyncSession) -> Sequence[Booker]:
    repo = BookerRepository(session)
    return await repo.all(repo.select().order_by(Booker.status.desc(), Booker.created_at))


async def approve_booker(session: AsyncSession, actor: audit.Actor, principal_id: str) -> Booker:
    booker = await get_booker(session, principal_id)
    if booker is None:
        raise NotFound("その利用者は登録されていません。")
    booker.status, booker.approved_by, booker.approved_at = "active", actor.label[:200], utcnow()
    await session.flush()
    await audit.record(session, actor, "reservations.booker.approved", target_type="facility_booker",
                       target_id=principal_id, subject_id=principal_id, details={"name": booker.group_name})
    return booker


def may_book(facility: Facility, booker: Booker | None) -> str | None:
    """None if ``booker`` may book ``facility``, else the reason in Japanese."""
    if booker is None:
        return "予約の前に利用者登録をしてください。"
    if booker.status != "active":
        return "団体の登録が承認されるまで予約できません。"
    if facility.eligibility == "groups" and booker.kind != "group":
        return f"{facility.name}は登録団体だけが予約できます。"
    if facility.eligibility == "residents" and booker.kind not in ("resident", "group"):
        return f"{facility.name}は市内在住・在勤の方と登録団体だけが予約できます。"
    return None


def feed_token(lg_code: str, principal_id: str, version: int) -> str:
    """The secret part of a resident's calendar URL: derived, never stored; a new
    ``feed_version`` makes the old URL stop working."""
    message = f"reservations-feed|{lg_code}|{principal_id}|{version}".encode()
    return hmac.new(secret_key(), message, hashlib.sha256).hexdigest()[:40]


# -- booking -----------------------------------------------------------------------------------------

async def book(session: AsyncSession, tenant: Tenant, facility: Facility, room_id: str, starts_at: datetime,
               principal_id: str, *, now: datetime | None = None, lottery: Lottery | None = None) -> Booking:
    """Books the slot for the resident, or refuses with the rule that stops it.

    The last word is the database's: the insert runs in a savepoint, and the partial unique
    index on active bookings refuses the second of two requests for one slot however close
    together they commit (``SlotTaken``, 409, the loser's transaction stays usable). A lottery's
    winner (``lottery``) skips the rules the lottery already applied (window, lottery hold,
    the per-person limit) but not the index."""
    now = now or utcnow()
    room = await get_room(session, facility.id, room_id)
    if room.closed_at is not None and lottery is None:
        raise BookingRefused(f"「{room.name}」は新しい予約の受付を停止しています。ほかの部屋・区画をお選びください。")
    repo = BookingRepository(session)
    if await repo.first(repo.select().where(Booking.room_id == room.id, Booking.starts_at == starts_at,
                                            Booking.status == ACTIVE)) is not None:
        raise SlotTaken(SLOT_TAKEN)  # taken and committed: refuse before any other work
    booker = await get_booker(session, principal_id, lock=lottery is None)
    if lottery is None:
        reason = may_book(facility, booker)
        if reason:
            raise BookingRefused(reason)
    end = slot_end(facility, starts_at)
    if end is None:
        raise BookingRefused("その時刻に始まる枠はありません。空き状況の画面から枠を選んでください。")
    if lottery is None:
        if starts_at <= now:
            raise BookingRefused("開始時刻を過ぎた枠は予約できません。")
        last_day = today_jst(now) + timedelta(days=facility.booking_window_days)
        if starts_at.astimezone(JST).date() > last_day:
            raise BookingRefused(f"{facility.name}は{facility.booking_window_days}日先（{last_day:%Y年%m月%d日}）までの枠を予約できます。")
        if (room.id, slot_key(starts_at)) in await held_by_lotteries(session, facility.id):
            raise BookingRefused("この枠は抽選で利用者を決めます。抽選に申し込んでください。")
        active = await repo.active_count_of(principal_id, now)
        if active >= facility.max_active_per_person:
            raise BookingRefused(f"{facility.name}の予約は1人{facility.max_active_per_person}件までです"
                                 f"（いま{active}件）。ほかの予約を取り消すか、利用後に予約してください。")
    booking = Booking(id=str(uuid.uuid4()), facility_id=facility.id, room_id=room.id, starts_at=starts_at,
                      ends_at=end, principal_id=principal_id,
                      booker_name=(booker.group_name or booker.name) if booker else "",
                      status=ACTIVE, fee_yen=room.fee_yen, source="lottery" if lottery else "direct",
                      lottery_id=lottery.id if lottery else None, created_at=now)
    try:
        async with session.begin_nested():
            BookingRepository(session).add(booking)
            await session.flush()
    except IntegrityError:
        raise SlotTaken(SLOT_TAKEN) from None
    await notices.booking_confirmed(session, tenant, booking, booker, facility, room)
    await notices.count_booking(session, tenant, booking.id)
    # Last: the audit entry locks the tenant's chain head until commit, so every other write of
    # the booking is done before it (the lock is what serialises a busy tenant's bookings).
    slot = f"{slot_param(starts_at)} {room.name}"
    actor = audit.Actor("system", "抽選", None) if lottery else audit.Actor("resident", "本人", principal_id)
    await audit.record(session, actor, "reservations.booking.created", target_type="facility_booking",
                       target_id=booking.id, subject_id=principal_id, details={"facility": facility.name, "slot": slot})
    return booking


async def get_booking(session: AsyncSession, booking_id: str, *, principal_id: str | None = None) -> Booking:
    repo = BookingRepository(session)
    query = repo.select().where(Booking.id == booking_id)
    if principal_id is not None:
        query = query.where(Booking.principal_id == principal_id)
    found = await repo.first(query)
    if found is None:
        raise NotFound("お探しの予約は見つかりませんでした。")
    return found


def cancel_refusal(facility: Facility, booking: Booking, now: datetime | None = None) -> str | None:
    """Why the resident may not cancel now, or None."""
    now = now or utcnow()
    if booking.status != ACTIVE:
        return "この予約はすでに取り消されています。"
    if booking.starts_at <= now:
        return "開始時刻を過ぎた予約は取り消せません。"
    deadline = booking.starts_at - timedelta(hours=facility.cancel_deadline_hours)
    if now > deadline:
        return (f"取消の期限（{deadline.astimezone(JST):%m月%d日 %H:%M}、開始の{facility.cancel_deadline_hours}時間前）を"
                "過ぎています。施設にお問い合わせください。")
    return None


async def cancel(session: AsyncSession, tenant: Tenant, booking: Booking, actor: audit.Actor, *,
                 by_staff: bool = False, now: datetime | None = None) -> Booking:
    facility = await get_facility(session, booking.facility_id, include_retired=True)
    if not by_staff:
        reason = cancel_refusal(facility, booking, now)
        if reason:
            raise BookingRefused(reason)
    elif booking.status != ACTIVE:
        raise BookingRefused("この予約はすでに取り消されています。")
    return await _cancel(session, booking, actor, by_staff=by_staff, tenant=tenant, facility=facility)


async def _cancel(session: AsyncSession, booking: Booking, actor: audit.Actor, *, by_staff: bool,
                  tenant: Tenant | None = None, facility: Facility | None = None) -> Booking:
    # Conditional: of two cancels at once only one changes the row (and notifies).
    changed = await session.execute(
        update(Booking).where(Booking.lg_code == booking.lg_code, Booking.id == booking.id, Booking.status == ACTIVE)
        .values(status=CANCELLED, cancelled_at=utcnow(), cancelled_by=actor.label[:200])
        .execution_options(synchronize_session=False))
    if changed.rowcount != 1:
        raise BookingRefused("この予約はすでに取り消されています。")
    await session.refresh(booking)
    await audit.record(session, actor, "reservations.booking.cancelled", target_type="facility_booking",
                       target_id=booking.id, subject_id=booking.principal_id,
                       details={"slot": slot_param(booking.starts_at), "reason": "職員による取消" if by_staff else "本人による取消"})
    from kiban.core.tenancy.context import current_tenant

    tenant = tenant or current_tenant(session)
    facility = facility or await get_facility(session, booking.facility_id, include_retired=True)
    room = await get_room(session, booking.facility_id, booking.room_id, include_removed=True)
    await notices.booking_cancelled(session, tenant, booking, await get_booker(session, booking.principal_id),
                                    facility, room)
    return booking


async def my_bookings(session: AsyncSession, principal_id: str) -> Sequence[Booking]:
    repo = BookingRepository(session)
    return await repo.all(repo.select().where(Booking.principal_id == principal_id)
                          .order_by(Booking.status, Booking.starts_at))


async def bookings_of(session: AsyncSession, facility_id: str, *, since: datetime | None = None,
                      active_only: bool = True, limit: int = 500) -> Sequence[Booking]:
    repo = BookingRepository(session)
    query = repo.select().where(Booking.facility_id == facility_id)
    if active_only:
        query = query.where(Booking.status == ACTIVE)
    if since is not None:
        query = query.where(Booking.ends_at > since)
    return await repo.all(query.order_by(Booking.starts_at).limit(limit))


async def rooms_by_id(session: AsyncSession, facility_ids: Sequence[str] | None = None) -> dict[str, Room]:
    repo = RoomRepository(session)
    query = repo.select()
    if facility_ids is not None:
        query = query.where(Room.facility_id.in_(list(facility_ids)))
    return {r.id: r for r in await repo.all(query)}


async def facilities_by_id(session: AsyncSession) -> dict[str, Facility]:
    return {f.id: f for f in await facilities(session, include_retired=True)}


async def count_active(session: AsyncSession, facility_id: str) -> int:
    repo = BookingRepository(session)
    return await repo.count(repo.select().where(Booking.facility_id == facility_id, Booking.status == ACTIVE))
