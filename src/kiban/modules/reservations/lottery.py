"""抽選: popular slots are given by a reproducible, audited draw instead of first come.

Staff choose slots of one facility and a closing time; those slots cannot be booked directly
while the lottery is open. Signed-in registered users apply (one application per slot each).
When staff start the draw, a random **seed** is fixed and written to the audit log *before* any
result exists, together with the number of applications; then a durable job (core/jobs, kind
``reservations.lottery_draw``) draws slot by slot, books each winner, and tells every applicant.

The draw (``rank``) is deterministic, so anyone holding the seed and the applications can
re-run it and get the same winners::

    for each slot (sorted by room id, then start in UTC ISO-8601):
        applicants = the ids of the slot's applications, sorted
        order them by SHA-256("{seed}|{room_id}|{starts_at}|{entry_id}") as hex, ties by id
        the first whose booking succeeds wins; everyone else loses

Each chunk of the job commits its slots' bookings, entry states and notices together with the
job's cursor, so a draw interrupted by a restart continues where it stopped and never books a
slot twice (and the partial unique index would refuse it anyway).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.audit import service as audit
from kiban.core.jobs import service as jobs
from kiban.core.jobs.kinds import JobContext, JobFailed, Kind, Progress, register
from kiban.core.tenancy.repository import TenantRepository
from kiban.kit.db import utcnow
from kiban.kit.errors import Conflict, InvalidInput, NotFound
from kiban.modules.reservations import notices, service
from kiban.modules.reservations.models import Lottery, LotteryEntry

JOB_KIND = "reservations.lottery_draw"
STATUS_LABELS = {"open": "受付中", "drawing": "抽選中", "drawn": "抽選済み"}
ENTRY_LABELS = {"applied": "申込み済み", "won": "当選", "lost": "落選"}


class EntryRepository(TenantRepository[LotteryEntry]):
    model = LotteryEntry


def rank(seed: str, room_id: str, starts_at: str, entry_ids: Sequence[str]) -> list[str]:
    """The applications for one slot in the order the draw takes them (the first wins)."""
    def key(entry_id: str) -> tuple[str, str]:
        return hashlib.sha256(f"{seed}|{room_id}|{starts_at}|{entry_id}".encode()).hexdigest(), entry_id

    return sorted(sorted(entry_ids), key=key)


def sorted_slots(slots: Sequence[dict]) -> list[dict]:
    return sorted(slots, key=lambda s: (s["room_id"], s["starts_at"]))


async def lotteries_of(session: AsyncSession, facility_id: str) -> Sequence[Lottery]:
    repo = service.LotteryRepository(session)
    return await repo.all(repo.select().where(Lottery.facility_id == facility_id).order_by(Lottery.created_at.desc()))


async def open_lotteries(session: AsyncSession, facility_id: str) -> Sequence[Lottery]:
    repo = service.LotteryRepository(session)
    return await repo.all(repo.select().where(Lottery.facility_id == facility_id, Lottery.status == "open")
                          .order_by(Lottery.closes_at))


async def get_lottery(session: AsyncSession, lottery_id: str, facility_id: str | None = None) -> Lottery:
    repo = service.LotteryRepository(session)
    query = repo.select().where(Lottery.id == lottery_id)
    if facility_id is not None:
        query = query.where(Lottery.facility_id == facility_id)
    found = await repo.first(query)
    if found is None:
        raise NotFound("お探しの抽選は見つかりませんでした。")
    return found


async def entries_of(session: AsyncSession, lottery_id: str) -> Sequence[LotteryEntry]:
    repo = EntryRepository(session)
    return await repo.all(repo.select().where(LotteryEntry.lottery_id == lottery_id)
                          .order_by(LotteryEntry.room_id, LotteryEntry.starts_at, LotteryEntry.id))


async def entries_of_person(session: AsyncSession, principal_id: str) -> Sequence[LotteryEntry]:
    repo = EntryRepository(session)
    return await repo.all(repo.select().where(LotteryEntry.principal_id == principal_id)
                          .order_by(LotteryEntry.created_at.desc()))


def lottery_values(form, facility, rooms) -> dict:
    """Title, closing time and slots (``slot`` values ``{room_id}|{YYYY-MM-DDTHH:MM}``), or
    ``InvalidInput`` with every wrong field."""
    errors: dict[str, str] = {}
    title = str(form.get("title", "")).strip()
    if not title or len(title) > 200:
        errors["title"] = "抽選の名前を200文字以内で入力してください。"
    closes_raw = str(form.get("closes_at", "")).strip()
    closes_at = None
    try:
        closes_at = service.parse_start(closes_raw) if closes_raw else None
    except InvalidInput:
        pass
    if closes_at is None:
        errors["closes_at"] = "申込みの締切日時を 2026-12-01T17:00 の形式で入力してください。"
    elif closes_at <= utcnow():
        errors["closes_at"] = "申込みの締切日時は今より後にしてください。"
    raw_slots = form.getlist("slot") if hasattr(form, "getlist") else list(form.get("slot") or [])
    room_ids = {r.id for r in rooms}
    slots: dict[tuple[str, str], dict] = {}
    for raw in raw_slots:
        room_id, _, start = str(raw).partition("|")
        try:
            starts_at = service.parse_start(start)
        except InvalidInput:
            starts_at = None
        if room_id not in room_ids or starts_at is None or service.slot_end(facility, starts_at) is None:
            errors["slot"] = f"抽選の枠「{raw}」はこの施設の枠ではありません。"
            continue
        if closes_at is not None and starts_at <= closes_at:
            errors["slot"] = "抽選の枠は申込みの締切より後の枠を選んでください。"
            continue
        key = service.slot_key(starts_at)
        slots[(room_id, key)] = {"room_id": room_id, "starts_at": key}
    if not slots and "slot" not in errors:
        errors["slot"] = "抽選にする枠を1つ以上選んでください。"
    if errors:
        raise InvalidInput(next(iter(errors.values())) if len(errors) == 1 else f"入力内容に{len(errors)}件の誤りがあります。",
                           errors=[{"field": k, "message": v} for k, v in errors.items()])
    return {"title": title, "closes_at": closes_at, "slots": sorted_slots(list(slots.values()))}


async def open_lottery(session: AsyncSession, actor: audit.Actor, facility, values: dict) -> Lottery:
    """Opens applications. A slot already booked, or held by another open lottery, is refused."""
    taken = []
    held = await service.held_by_lotteries(session, facility.id)
    booked = {(b.room_id, service.slot_key(b.starts_at)) for b in await service.bookings_of(session, facility.id)}
    for slot in values["slots"]:
        key = (slot["room_id"], slot["starts_at"])
        if key in held or key in booked:
            taken.append(slot["starts_at"])
    if taken:
        raise InvalidInput(f"選んだ枠のうち{len(taken)}件はすでに予約済みか、ほかの抽選の対象です。",
                           errors=[{"field": "slot", "message": "予約済み・抽選中の枠は選べません。"}])
    lottery = service.LotteryRepository(session).add(Lottery(
        id=str(uuid.uuid4()), facility_id=facility.id, title=values["title"], slots=values["slots"],
        closes_at=values["closes_at"], status="open", applicants=0, created_by=actor.label[:200],
        created_at=utcnow()))
    await session.flush()
    await audit.record(session, actor, "reservations.lottery.opened", target_type="facility_lottery",
                       target_id=lottery.id, details={"facility": facility.name, "name": lottery.title,
                                                      "entries": len(lottery.slots)})
    return lottery


async def apply(session: AsyncSession, lottery: Lottery, facility, principal_id: str, room_id: str,
                starts_at: datetime) -> LotteryEntry:
    if lottery.status != "open" or lottery.closes_at <= utcnow():
        raise service.BookingRefused("この抽選の申込みは締め切りました。")
    reason = service.may_book(facility, await service.get_booker(session, principal_id))
    if reason:
        raise service.BookingRefused(reason)
    key = service.slot_key(starts_at)
    if not any(s["room_id"] == room_id and s["starts_at"] == key for s in lottery.slots):
        raise service.BookingRefused("その枠はこの抽選の対象ではありません。")
    entry = LotteryEntry(id=str(uuid.uuid4()), lottery_id=lottery.id, principal_id=principal_id, room_id=room_id,
                         starts_at=starts_at, status="applied", created_at=utcnow())
    try:
        async with session.begin_nested():
            EntryRepository(session).add(entry)
            await session.flush()
    except IntegrityError:
        raise Conflict("この枠にはすでに申し込んでいます。") from None
    await audit.record(session, audit.Actor("resident", "本人", principal_id), "reservations.lottery.applied",
                       target_type="facility_lottery", target_id=lottery.id, subject_id=principal_id,
                       details={"slot": service.slot_param(starts_at)})
    return entry


async def start_draw(session: AsyncSession, actor: audit.Actor, lottery: Lottery, facility):
    """Closes applications, fixes and audits the seed, and queues the draw (a durable job).
    The caller commits; the job runs in the background (or ``run_now`` while staff wait)."""
    if lottery.status != "open":
        raise Conflict("この抽選はすでに抽選を始めています。")
    entries = await entries_of(session, lottery.id)
    now = utcnow()
    lottery.status, lottery.seed, lottery.applicants = "drawing", secrets.token_hex(16), len(entries)
    lottery.closes_at = min(lottery.closes_at, now)
    await audit.record(session, actor, "reservations.lottery.seed_fixed", target_type="facility_lottery",
                       target_id=lottery.id, details={"name": lottery.title, "seed": lottery.seed,
                                                      "applicants": len(entries), "entries": len(lottery.slots)})
    job = await jobs.enqueue(session, JOB_KIND, created_by=actor.label, payload={"lottery_id": lottery.id},
                             total=len(lottery.slots), message="抽選を待っています。", target=("facility_lottery", lottery.id),
                             dedupe_key=f"draw:{lottery.id}")
    lottery.job_id = job.id
    await session.flush()
    return job


async def _draw_slot(ctx: JobContext, lottery: Lottery, facility, slot: dict) -> dict:
    session = ctx.session
    repo = EntryRepository(session)
    starts_at = datetime.fromisoformat(slot["starts_at"])
    entries = {e.id: e for e in await repo.all(repo.select().where(
        LotteryEntry.lottery_id == lottery.id, LotteryEntry.room_id == slot["room_id"],
        LotteryEntry.starts_at == starts_at))}
    order = rank(lottery.seed, slot["room_id"], slot["starts_at"], list(entries))
    room = await service.get_room(session, facility.id, slot["room_id"])
    winner = None
    for entry_id in order:
        entry = entries[entry_id]
        if winner is None:
            try:
                booking = await service.book(session, ctx.tenant, facility, slot["room_id"], starts_at,
                                             entry.principal_id, lottery=lottery)
            except (service.SlotTaken, service.BookingRefused, NotFound):
                booking = None
            if booking is not None:
                winner, entry.status, entry.booking_id = entry_id, "won", booking.id
                await notices.lottery_result(session, ctx.tenant, lottery, entry, booking,
                                             await service.get_booker(session, entry.principal_id), facility, room)
                continue
        entry.status = "lost"
        await notices.lottery_result(session, ctx.tenant, lottery, entry, None,
                                     await service.get_booker(session, entry.principal_id), facility, room)
    return {"room_id": slot["room_id"], "starts_at": slot["starts_at"], "entries": sorted(entries),
            "winner_entry": winner}


async def _step(ctx: JobContext) -> Progress:
    lottery = await get_lottery(ctx.session, ctx.payload.get("lottery_id", ""))
    if lottery.status == "drawn":
        return Progress(cursor=ctx.cursor, done=len(lottery.slots), total=len(lottery.slots),
                        message="抽選は完了しています。", finished=True, result={"winners": _winners(lottery.result)})
    if lottery.status != "drawing" or not lottery.seed:
        raise JobFailed("抽選の準備（シードの確定）ができていません。")
    facility = await service.get_facility(ctx.session, lottery.facility_id, include_retired=True)
    slots = sorted_slots(lottery.slots)
    cursor = ctx.cursor or {"next": 0, "result": []}
    position, result = cursor["next"], list(cursor["result"])
    while position < len(slots):
        result.append(await _draw_slot(ctx, lottery, facility, slots[position]))
        position += 1
        if ctx.out_of_time():
            break
    finished = position >= len(slots)
    winners = _winners(result)
    if finished:
        lottery.status, lottery.result, lottery.drawn_at = "drawn", result, utcnow()
        await audit.record(ctx.session, audit.Actor("system", "抽選（自動処理）"), "reservations.lottery.drawn",
                           target_type="facility_lottery", target_id=lottery.id,
                           details={"name": lottery.title, "seed": lottery.seed, "applicants": lottery.applicants,
                                    "winners": winners, "entries": len(slots)})
    return Progress(cursor={"next": position, "result": result}, done=position, total=len(slots),
                    message=f"抽選が完了しました（{len(slots)}枠、当選{winners}件）。" if finished
                    else f"抽選中です（{position}/{len(slots)}枠）。",
                    finished=finished, result={"winners": winners} if finished else None)


def _winners(result) -> int:
    return sum(1 for r in (result or []) if r.get("winner_entry"))


DRAW = register(Kind(JOB_KIND, "施設の抽選", _step, max_attempts=5, chunk_seconds=0.5))


def verify(lottery: Lottery, entries: Sequence[LotteryEntry]) -> bool:
    """Re-runs the draw from the recorded seed and applications: True when every recorded
    winner is the first in the recomputed order. (A slot whose first-ranked applicant could not
    be booked, which the lottery's hold makes all but impossible, would show as a mismatch.)"""
    by_slot: dict[tuple[str, str], list[str]] = {}
    for entry in entries:
        by_slot.setdefault((entry.room_id, service.slot_key(entry.starts_at)), []).append(entry.id)
    for row in lottery.result or []:
        order = rank(lottery.seed, row["room_id"], row["starts_at"], by_slot.get((row["room_id"], row["starts_at"]), []))
        if row["winner_entry"] and order and order[0] != row["winner_entry"]:
            return False
    return True
