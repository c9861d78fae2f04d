"""JSON twins of the 施設予約 pages: staff's facilities, rooms, lotteries and registered users
(/api/v1/t/{lg_code}/facilities, /facility-users), the public availability and the resident's
own registration, bookings, cancellations and lottery applications (/api/v1/t/{lg_code}/reservations).

The same service functions and rules as the pages; errors are problem+json with Japanese
``detail`` and, for input, ``errors[]`` per field. Writes sent with a session cookie must be JSON."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, Field

from kiban.core.audit import service as audit
from kiban.core.identity.api_admin import JsonWrite
from kiban.core.identity.schemas_admin import NoFields
from kiban.core.identity.dependencies import PUBLIC, CurrentResident, StaffContext, require
from kiban.core.identity.permissions import Permission
from kiban.core.jobs import runner as job_runner
from kiban.core.jobs import service as jobs
from kiban.core.tenancy.dependencies import CurrentTenant, DbSession
from kiban.kit.errors import NotFound
from kiban.kit.openapi import problem_responses
from kiban.modules.reservations import lottery, service
from kiban.modules.reservations.models import Booking, Facility, Lottery, Room

tenant_router = APIRouter(prefix="/api/v1/t/{lg_code}", tags=["施設予約（職員）"])
public_router = APIRouter(prefix="/api/v1/t/{lg_code}/reservations", tags=["施設予約（住民）"])
Manager = Annotated[StaffContext, require(Permission.reservations_facility_manage)]
Reader = Annotated[StaffContext, require(Permission.reservations_booking_read)]
SLOT_TAKEN = problem_responses(409, 415, s409="この枠はすでに予約されています（同時の予約のうち一つだけが成立します）")
WRITE = problem_responses(415)


class RoomWrite(BaseModel):
    name: str = Field(max_length=100, description="部屋・区画の名前")
    capacity: int | None = Field(default=None, description="定員（人）")
    fee_yen: int = Field(description="1枠の使用料（円）")

    def form(self) -> dict:
        return {"name": self.name, "capacity": "" if self.capacity is None else str(self.capacity),
                "fee_yen": str(self.fee_yen)}


class FacilityWrite(BaseModel):
    name: str = Field(max_length=100, description="施設名")
    kind: str = Field(description="種類: gym（体育館）/ meeting（会議室）/ ground（グラウンド）/ hall / other")
    address: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=2000)
    eligibility: str = Field(description="予約できる方: residents / groups / anyone")
    slot_minutes: int = Field(description="1枠の長さ（分）")
    booking_window_days: int = Field(description="何日先まで予約できるか")
    cancel_deadline_hours: int = Field(description="取消の期限（開始の何時間前まで）")
    max_active_per_person: int = Field(description="1人が同時に持てる予約の数")
    opening_hours: dict[str, list[str]] = Field(description='曜日（"0"=月 … "6"=日）ごとの ["09:00", "21:00"]。ない曜日は休館')
    rooms: list[RoomWrite] = Field(default_factory=list, max_length=50, description="登録時に作る部屋・区画（作成のみ）")

    def form(self) -> dict:
        form = {k: str(v) for k, v in self.model_dump(exclude={"opening_hours", "rooms"}).items()}
        for day, hours in self.opening_hours.items():
            if day in {str(d) for d in range(7)} and len(hours) == 2:
                form[f"open_{day}"], form[f"close_{day}"] = hours
        return form


class RoomRead(BaseModel):
    id: str
    name: str
    capacity: int | None
    fee_yen: int
    closed: bool = Field(default=False, description="新しい予約の受付を停止しているとき true（いまある予約はそのまま）")
    removed: bool = Field(default=False, description="削除済みのとき true（これまでの予約の記録のために残ります）")


class FacilityRead(BaseModel):
    id: str
    name: str
    kind: str
    kind_label: str
    address: str
    description: str
    eligibility: str
    eligibility_label: str
    slot_minutes: int
    booking_window_days: int
    cancel_deadline_hours: int
    max_active_per_person: int
    opening_hours: dict[str, list[str]]
    rooms: list[RoomRead]
    page_url: str


class BookingRead(BaseModel):
    id: str
    facility_id: str
    room_id: str
    starts_at: datetime
    ends_at: datetime
    status: str
    status_label: str
    source: str
    fee_yen: int
    booker_name: str | None = None


class FacilityDetail(FacilityRead):
    upcoming_bookings: list[BookingRead]
    lottery_ids: list[str]


class SlotRead(BaseModel):
    room_id: str
    starts_at: datetime
    ends_at: datetime
    state: str = Field(description="free / booked / mine / lottery / past / closed")
    lottery_id: str | None = None


class DayRead(BaseModel):
    day: date
    slots: list[SlotRead]


class Availability(BaseModel):
    facility: FacilityRead
    days: list[DayRead]


class BookingWrite(BaseModel):
    room_id: str = Field(max_length=36)
    starts_at: str = Field(max_length=40, description="枠の開始（2026-12-01T10:00 は日本時間）")


class LotteryWrite(BaseModel):
    title: str = Field(max_length=200)
    closes_at: str = Field(max_length=40, description="申込みの締切（日本時間）")
    slots: list[BookingWrite] = Field(max_length=500)


class LotteryRead(BaseModel):
    id: str
    facility_id: str
    title: str
    status: str
    status_label: str
    closes_at: datetime
    slots: list[dict]
    seed: str | None
    applicants: int
    result: list[dict] | None
    drawn_at: datetime | None
    job_state: str | None = None
    job_message: str | None = None
    job_percent: int | None = None
    verified: bool | None = None


class EntryRead(BaseModel):
    id: str
    lottery_id: str
    room_id: str
    starts_at: datetime
    status: str


class BookerWrite(BaseModel):
    kind: str = Field(description="resident（市内在住・在勤）/ group（登録団体）/ other")
    name: str = Field(max_length=100)
    group_name: str = Field(default="", max_length=100)
    email: str = Field(max_length=254)


class BookerRead(BaseModel):
    principal_id: str
    kind: str
    kind_label: str
    name: str
    group_name: str
    status: str
    status_label: str


class Mine(BaseModel):
    booker: BookerRead | None
    bookings: list[BookingRead]
    entries: list[EntryRead]
    calendar_url: str | None


class Cancelled(BaseModel):
    cancelled_bookings: int


class BookingRow(BookingRead):
    room_name: str
    created_at: datetime
    cancelled_at: datetime | None


class BookingList(BaseModel):
    from_: date = Field(alias="from", description="最初の日（日本時間）")
    to: date = Field(description="最後の日（日本時間、この日を含む）")
    status: str = Field(description="active（予約済みのみ）/ all（取消済みも含む）")
    total_fee_yen: int = Field(description="予約済みの使用料の合計（円）")
    bookings: list[BookingRow]

    model_config = {"populate_by_name": True}


def _room(room: Room) -> RoomRead:
    return RoomRead(id=room.id, name=room.name, capacity=room.capacity, fee_yen=room.fee_yen,
                    closed=room.closed_at is not None, removed=room.removed_at is not None)


async def _facility(session, facility: Facility, lg_code: str) -> dict:
    return dict(id=facility.id, name=facility.name, kind=facility.kind, kind_label=service.KIND_LABELS.get(facility.kind, ""),
                address=facility.address, description=facility.description, eligibility=facility.eligibility,
                eligibility_label=service.ELIGIBILITY_LABELS.get(facility.eligibility, ""),
                slot_minutes=facility.slot_minutes, booking_window_days=facility.booking_window_days,
                cancel_deadline_hours=facility.cancel_deadline_hours,
                max_active_per_person=facility.max_active_per_person, opening_hours=facility.opening_hours,
                rooms=[_room(r) for r in await service.rooms_of(session, facility.id)],
                page_url=f"/t/{lg_code}/reservations/facilities/{facility.id}")


def _booking(booking: Booking, *, with_name: bool) -> BookingRead:
    return BookingRead(id=booking.id, facility_id=booking.facility_id, room_id=booking.room_id,
                       starts_at=booking.starts_at, ends_at=booking.ends_at, status=booking.status,
                       status_label=service.STATUS_LABELS.get(booking.status, ""), source=booking.source,
                       fee_yen=booking.fee_yen, booker_name=booking.booker_name if with_name else None)


async def _lottery(session, found: Lottery) -> LotteryRead:
    job = await jobs.get(session, found.job_id) if found.job_id else None
    verified = lottery.verify(found, await lottery.entries_of(session, found.id)) if found.status == "drawn" else None
    return LotteryRead(id=found.id, facility_id=found.facility_id, title=found.title, status=found.status,
                       status_label=lottery.STATUS_LABELS.get(found.status, ""), closes_at=found.closes_at,
                       slots=found.slots, seed=found.seed, applicants=found.applicants, result=found.result,
                       drawn_at=found.drawn_at, job_state=job.state if job else None,
                       job_message=job.message if job else None, job_percent=jobs.percent(job) if job else None,
                       verified=verified)


def _booker(booker) -> BookerRead:
    return BookerRead(principal_id=booker.principal_id, kind=booker.kind,
                      kind_label=service.BOOKER_KIND_LABELS.get(booker.kind, ""), name=booker.name,
                      group_name=booker.group_name, status=booker.status,
                      status_label=service.BOOKER_STATUS_LABELS.get(booker.status, ""))


# -- staff ---------------------------------------------------------------------------------------------

@tenant_router.get("/facilities", summary="施設の一覧", response_model=list[FacilityRead])
async def list_facilities(staff: Reader, session: DbSession) -> list[FacilityRead]:
    return [FacilityRead(**await _facility(session, f, staff.tenant.lg_code)) for f in await service.facilities(session)]


@tenant_router.post("/facilities", summary="施設の登録", response_model=FacilityRead, status_code=201, responses=WRITE)
async def create_facility(body: FacilityWrite, staff: Manager, _json: JsonWrite, session: DbSession) -> FacilityRead:
    values = service.facility_values(body.form())
    rooms = [service.room_values(r.form()) for r in body.rooms]
    facility = await service.create_facility(session, audit.Actor.of_staff(staff), values, rooms=rooms)
    await session.commit()
    return FacilityRead(**await _facility(session, facility, staff.tenant.lg_code))


@tenant_router.get("/facilities/{facility_id}", summary="施設の詳細（これからの予約・抽選）", response_model=FacilityDetail)
async def get_facility(facility_id: str, staff: Reader, session: DbSession) -> FacilityDetail:
    facility = await service.get_facility(session, facility_id)
    upcoming = await service.bookings_of(session, facility.id, since=service.utcnow(), limit=500)
    return FacilityDetail(**await _facility(session, facility, staff.tenant.lg_code),
                          upcoming_bookings=[_booking(b, with_name=True) for b in upcoming],
                          lottery_ids=[lot.id for lot in await lottery.lotteries_of(session, facility.id)])


@tenant_router.put("/facilities/{facility_id}", summary="施設の設定の変更", response_model=FacilityRead, responses=WRITE)
async def update_facility(facility_id: str, body: FacilityWrite, staff: Manager, _json: JsonWrite,
                          session: DbSession) -> FacilityRead:
    facility = await service.get_facility(session, facility_id)
    await service.update_facility(session, audit.Actor.of_staff(staff), facility, service.facility_values(body.form()))
    await session.commit()
    return FacilityRead(**await _facility(session, facility, staff.tenant.lg_code))


@tenant_router.post("/facilities/{facility_id}/rooms", summary="部屋・区画の追加", response_model=RoomRead,
                    status_code=201, responses=WRITE)
async def add_room(facility_id: str, body: RoomWrite, staff: Manager, _json: JsonWrite, session: DbSession) -> RoomRead:
    facility = await service.get_facility(session, facility_id)
    room = await service.add_room(session, audit.Actor.of_staff(staff), facility, service.room_values(body.form()))
    await session.commit()
    return _room(room)


@tenant_router.put("/facilities/{facility_id}/rooms/{room_id}", summary="部屋・区画の変更（名前・定員・使用料。使用料はこれからの予約に適用）",
                   response_model=RoomRead, responses=WRITE)
async def update_room(facility_id: str, room_id: str, body: RoomWrite, staff: Manager, _json: JsonWrite,
                      session: DbSession) -> RoomRead:
    facility = await service.get_facility(session, facility_id)
    room = await service.get_room(session, facility.id, room_id)
    await service.update_room(session, audit.Actor.of_staff(staff), facility, room, service.room_values(body.form()))
    await session.commit()
    return _room(room)


@tenant_router.post("/facilities/{facility_id}/rooms/{room_id}/close",
                    summary="部屋・区画の新しい予約の受付を停止する（いまある予約はそのまま）", response_model=RoomRead,
                    responses=WRITE)
async def close_room(facility_id: str, room_id: str, staff: Manager, _json: JsonWrite, session: DbSession,
                     _body: Annotated[NoFields, Body()]) -> RoomRead:
    facility = await service.get_facility(session, facility_id)
    room = await service.get_room(session, facility.id, room_id)
    await service.close_room(session, audit.Actor.of_staff(staff), facility, room)
    await session.commit()
    return _room(room)


@tenant_router.post("/facilities/{facility_id}/rooms/{room_id}/reopen", summary="部屋・区画の新しい予約の受付を再開する",
                    response_model=RoomRead, responses=WRITE)
async def reopen_room(facility_id: str, room_id: str, staff: Manager, _json: JsonWrite, session: DbSession,
                      _body: Annotated[NoFields, Body()]) -> RoomRead:
    facility = await service.get_facility(session, facility_id)
    room = await service.get_room(session, facility.id, room_id)
    await service.reopen_room(session, audit.Actor.of_staff(staff), facility, room)
    await session.commit()
    return _room(room)


@tenant_router.post("/facilities/{facility_id}/close-rooms",
                    summary="すべての部屋・区画の新しい予約の受付を停止する（施設の削除の代わりに。いまある予約はそのまま）",
                    response_model=list[RoomRead], responses=WRITE)
async def close_all_rooms(facility_id: str, staff: Manager, _json: JsonWrite, session: DbSession,
                          _body: Annotated[NoFields, Body()]) -> list[RoomRead]:
    facility = await service.get_facility(session, facility_id)
    rooms = await service.close_all_rooms(session, audit.Actor.of_staff(staff), facility)
    await session.commit()
    return [_room(r) for r in rooms]


@tenant_router.delete("/facilities/{facility_id}/rooms/{room_id}",
                      summary="部屋・区画の削除（これからの予約・抽選中の枠があるときは 409。代わりに受付を停止できます）",
                      response_model=RoomRead,
                      responses=problem_responses(409, s409="これからの予約か抽選中の枠があるため削除できません"))
async def remove_room(facility_id: str, room_id: str, staff: Manager, session: DbSession) -> RoomRead:
    facility = await service.get_facility(session, facility_id)
    room = await service.get_room(session, facility.id, room_id)
    await service.remove_room(session, audit.Actor.of_staff(staff), facility, room)
    await session.commit()
    return _room(room)


@tenant_router.get("/facilities/{facility_id}/bookings", summary="期間を指定した予約一覧（職員。氏名を含みます）",
                   response_model=BookingList, response_model_by_alias=True)
async def list_bookings(facility_id: str, staff: Reader, session: DbSession,
                        from_: Annotated[str | None, Query(alias="from", max_length=10,
                                                           description="最初の日（日本時間、例: 2026-12-01）。既定は今日")] = None,
                        to: Annotated[str | None, Query(max_length=10, description="最後の日（この日を含む）。既定は30日後")] = None,
                        status: Annotated[str | None, Query(max_length=10, description="active（既定）/ all")] = None,
                        ) -> BookingList:
    facility = await service.get_facility(session, facility_id, include_retired=True)
    period = service.booking_range({"from": from_, "to": to, "status": status})
    bookings = await service.bookings_between(session, facility, period)
    rooms = await service.rooms_by_id(session, [facility.id])
    rows = [BookingRow(**_booking(b, with_name=True).model_dump(), room_name=rooms[b.room_id].name if b.room_id in rooms else "",
                       created_at=b.created_at, cancelled_at=b.cancelled_at) for b in bookings]
    return BookingList(from_=period.first, to=period.last, status=period.status,
                       total_fee_yen=sum(b.fee_yen for b in bookings if b.status == service.ACTIVE), bookings=rows)


@tenant_router.delete("/facilities/{facility_id}", summary="施設の削除（これからの予約は取り消して通知）",
                      response_model=Cancelled)
async def delete_facility(facility_id: str, staff: Manager, session: DbSession) -> Cancelled:
    facility = await service.get_facility(session, facility_id)
    count = await service.retire_facility(session, audit.Actor.of_staff(staff), facility)
    await session.commit()
    return Cancelled(cancelled_bookings=count)


@tenant_router.post("/facilities/{facility_id}/bookings/{booking_id}/cancel", summary="予約の取消（職員）",
                    response_model=BookingRead, responses=WRITE)
async def staff_cancel(facility_id: str, booking_id: str, staff: Manager, _json: JsonWrite,
                       session: DbSession, _body: Annotated[NoFields, Body()]) -> BookingRead:
    booking = await service.get_booking(session, booking_id)
    if booking.facility_id != facility_id:
        raise NotFound("お探しの予約は見つかりませんでした。")
    await service.cancel(session, staff.tenant, booking, audit.Actor.of_staff(staff), by_staff=True)
    await session.commit()
    return _booking(booking, with_name=True)


@tenant_router.post("/facilities/{facility_id}/lotteries", summary="抽選の受付開始", response_model=LotteryRead,
                    status_code=201, responses=WRITE)
async def open_lottery(facility_id: str, body: LotteryWrite, staff: Manager, _json: JsonWrite,
                       session: DbSession) -> LotteryRead:
    facility = await service.get_facility(session, facility_id)
    form = {"title": body.title, "closes_at": body.closes_at, "slot": [f"{s.room_id}|{s.starts_at}" for s in body.slots]}
    values = lottery.lottery_values(form, facility, await service.rooms_of(session, facility.id, bookable_only=True))
    found = await lottery.open_lottery(session, audit.Actor.of_staff(staff), facility, values)
    await session.commit()
    return await _lottery(session, found)


@tenant_router.get("/facilities/{facility_id}/lotteries/{lottery_id}", summary="抽選の状況と結果（シード・当選）",
                   response_model=LotteryRead)
async def get_lottery(facility_id: str, lottery_id: str, staff: Reader, session: DbSession) -> LotteryRead:
    return await _lottery(session, await lottery.get_lottery(session, lottery_id, facility_id))


@tenant_router.post("/facilities/{facility_id}/lotteries/{lottery_id}/draw",
                    summary="締め切って抽選する（シードを確定・記録し、抽選をバックグラウンドで実行）",
                    response_model=LotteryRead, status_code=202, responses=problem_responses(409, 415))
async def draw(facility_id: str, lottery_id: str, request: Request, staff: Manager, _json: JsonWrite,
               session: DbSession, _body: Annotated[NoFields, Body()]) -> LotteryRead:
    facility = await service.get_facility(session, facility_id, include_retired=True)
    found = await lottery.get_lottery(session, lottery_id, facility.id)
    await lottery.start_draw(session, audit.Actor.of_staff(staff), found, facility)
    await session.commit()
    job_runner.wake(request.app)
    return await _lottery(session, found)


@tenant_router.get("/facility-users", summary="施設の利用者・登録団体", response_model=list[BookerRead])
async def list_users(staff: Reader, session: DbSession) -> list[BookerRead]:
    return [_booker(b) for b in await service.bookers(session)]


@tenant_router.post("/facility-users/{principal_id}/approve", summary="登録団体の承認", response_model=BookerRead,
                    responses=WRITE)
async def approve_user(principal_id: str, staff: Manager, _json: JsonWrite, session: DbSession,
                       _body: Annotated[NoFields, Body()]) -> BookerRead:
    booker = await service.approve_booker(session, audit.Actor.of_staff(staff), principal_id)
    await session.commit()
    return _booker(booker)


# -- public and residents ---------------------------------------------------------------------------------

@public_router.get("/facilities", summary="予約できる施設の一覧（だれでも）", response_model=list[FacilityRead],
                   dependencies=[PUBLIC])
async def public_facilities(tenant: CurrentTenant, session: DbSession) -> list[FacilityRead]:
    return [FacilityRead(**await _facility(session, f, tenant.lg_code)) for f in await service.facilities(session)]


@public_router.get("/facilities/{facility_id}/availability", summary="空き状況（7日分、氏名は含みません）",
                   response_model=Availability, dependencies=[PUBLIC])
async def availability(facility_id: str, tenant: CurrentTenant, request: Request, session: DbSession,
                       from_: Annotated[date | None, Query(alias="from", description="最初の日（日本時間）")] = None) -> Availability:
    from kiban.modules.reservations.web import _resident_id

    facility = await service.get_facility(session, facility_id)
    today = service.today_jst()
    first = min(max(from_ or today, today), today + timedelta(days=400))
    days = await service.availability(session, facility, first, 7, principal_id=await _resident_id(request, session))
    return Availability(facility=FacilityRead(**await _facility(session, facility, tenant.lg_code)),
                        days=[DayRead(day=d.day, slots=[SlotRead(room_id=room.id, starts_at=s.starts_at, ends_at=s.ends_at,
                                                                  state=s.state, lottery_id=s.lottery_id)
                                                         for room, slots in d.rooms for s in slots]) for d in days])


@public_router.post("/register", summary="利用者登録（マイナンバーカードでサインインした本人）", response_model=BookerRead,
                    responses=WRITE)
async def register(body: BookerWrite, tenant: CurrentTenant, resident: CurrentResident, _json: JsonWrite,
                   session: DbSession) -> BookerRead:
    booker = await service.register_booker(session, resident.principal.id, service.booker_values(body.model_dump()))
    await session.commit()
    return _booker(booker)


@public_router.get("/mine", summary="わたしの予約と抽選の申込み", response_model=Mine)
async def mine(tenant: CurrentTenant, resident: CurrentResident, session: DbSession) -> Mine:
    principal_id = resident.principal.id
    booker = await service.get_booker(session, principal_id)
    url = (f"/t/{tenant.lg_code}/reservations/feed/{principal_id}/"
           f"{service.feed_token(tenant.lg_code, principal_id, booker.feed_version)}.ics") if booker else None
    return Mine(booker=_booker(booker) if booker else None,
                bookings=[_booking(b, with_name=False) for b in await service.my_bookings(session, principal_id)],
                entries=[EntryRead(id=e.id, lottery_id=e.lottery_id, room_id=e.room_id, starts_at=e.starts_at,
                                   status=e.status) for e in await lottery.entries_of_person(session, principal_id)],
                calendar_url=url)


@public_router.post("/facilities/{facility_id}/bookings", summary="予約する（同じ枠は一人だけが予約できます）",
                    response_model=BookingRead, status_code=201, responses=SLOT_TAKEN)
async def book(facility_id: str, body: BookingWrite, tenant: CurrentTenant, resident: CurrentResident,
               _json: JsonWrite, session: DbSession) -> BookingRead:
    facility = await service.get_facility(session, facility_id)
    booking = await service.book(session, tenant, facility, body.room_id, service.parse_start(body.starts_at),
                                 resident.principal.id)
    await session.commit()
    return _booking(booking, with_name=False)


@public_router.post("/mine/{booking_id}/cancel", summary="予約の取消（取消の期限まで）", response_model=BookingRead,
                    responses=WRITE)
async def cancel(booking_id: str, tenant: CurrentTenant, resident: CurrentResident, _json: JsonWrite,
                 session: DbSession, _body: Annotated[NoFields, Body()]) -> BookingRead:
    booking = await service.get_booking(session, booking_id, principal_id=resident.principal.id)
    await service.cancel(session, tenant, booking, audit.Actor("resident", "本人", resident.principal.id))
    await session.commit()
    return _booking(booking, with_name=False)


@public_router.post("/lotteries/{lottery_id}/entries", summary="抽選に申し込む", response_model=EntryRead,
                    status_code=201, responses=problem_responses(409, 415))
async def apply(lottery_id: str, body: BookingWrite, tenant: CurrentTenant, resident: CurrentResident,
                _json: JsonWrite, session: DbSession) -> EntryRead:
    found = await lottery.get_lottery(session, lottery_id)
    facility = await service.get_facility(session, found.facility_id)
    entry = await lottery.apply(session, found, facility, resident.principal.id, body.room_id,
                                service.parse_start(body.starts_at))
    await session.commit()
    return EntryRead(id=entry.id, lottery_id=entry.lottery_id, room_id=entry.room_id, starts_at=entry.starts_at,
                     status=entry.status)
