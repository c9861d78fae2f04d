"""A slot is never booked twice, with real concurrency: many sessions, each on its own engine and
connection, book the same slot and commit at once. On SQLite a copy of the test database (real
file locking); on PostgreSQL the test database itself (real row locks on the partial unique
index), cleaned afterwards. Exactly one wins; every other one gets ``SlotTaken`` (409, Japanese)."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import bind_tenant, unscoped
from kiban.kit.db import create_engine, make_sessionmaker, utcnow
from kiban.modules.reservations import service
from kiban.modules.reservations.models import Booker, Booking, Facility, Room
from kiban.core.identity.models import Principal

CONTENDERS = 12
# A tenant no other test writes to: what this test commits (bookings, their notices and counts)
# stays out of every other test's figures. The PostgreSQL test database is dropped after the run.
NAHA = "472018"


@pytest.fixture
async def committed_url(test_database, tmp_path):
    if not test_database.is_postgres:
        target = tmp_path / "reservations.sqlite3"
        with sqlite3.connect(test_database.name) as source, sqlite3.connect(target) as copy:
            source.backup(copy)
        yield f"sqlite+aiosqlite:///{target}", None
        return
    yield test_database.app_url, f"concurrency-{uuid.uuid4().hex[:8]}"
    # The bookings' confirmation e-mails wait in the outbox of this shared database: a later test's
    # delivery run (tests/modules/test_surveys_web.py counts what reaches its SMTP server) would
    # send them. They go, with their delivery jobs and counts.
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import AsyncSession

    engine = create_engine(test_database.owner_url, pool=False)
    try:
        async with AsyncSession(engine) as session:
            await session.execute(text("DELETE FROM job WHERE kind = 'notify.deliver' AND lg_code = :c"), {"c": NAHA})
            for table in ("notify_notice", "notification", "usage_event_key", "usage_counter"):
                await session.execute(text(f"DELETE FROM {table} WHERE lg_code = :c"), {"c": NAHA})
            await session.commit()
    finally:
        await engine.dispose()


async def _setup(url: str, marker: str) -> tuple[str, str, list[str]]:
    engine = create_engine(url, pool=False)
    try:
        async with make_sessionmaker(engine)() as session:
            await bind_tenant(session, await registry_service.tenant_for(session, NAHA))
            now = utcnow()
            facility = Facility(id=str(uuid.uuid4()), name=marker, kind="gym", address="", description="",
                                eligibility="anyone", slot_minutes=60,
                                opening_hours={str(d): ["09:00", "21:00"] for d in range(7)}, booking_window_days=30,
                                cancel_deadline_hours=0, max_active_per_person=5, created_by="test", created_at=now,
                                updated_at=now)
            service.FacilityRepository(session).add(facility)
            room = service.RoomRepository(session).add(Room(id=str(uuid.uuid4()), facility_id=facility.id, name="全面",
                                                            fee_yen=0, created_at=now))
            people = [str(uuid.uuid4()) for _ in range(CONTENDERS)]
            for principal_id in people:
                session.add(Principal(id=principal_id, kind="resident", display_name="住民", created_at=now))
                service.BookerRepository(session).add(Booker(principal_id=principal_id, kind="resident", name=marker,
                                                             group_name="", email="x@example.jp", status="active",
                                                             feed_version=1, created_at=now))
            await session.commit()
            return facility.id, room.id, people
    finally:
        await engine.dispose()


async def test_concurrent_bookings_of_one_slot_leave_exactly_one(committed_url) -> None:
    url, marker = committed_url
    marker = marker or "concurrency"
    facility_id, room_id, people = await _setup(url, marker)
    starts_at = service.parse_start(f"{service.today_jst() + timedelta(days=2):%Y-%m-%d}T10:00")
    engines = [create_engine(url) for _ in people]
    gate = asyncio.Event()

    async def attempt(engine, principal_id: str) -> str:
        async with make_sessionmaker(engine)() as session:
            tenant = await registry_service.tenant_for(session, NAHA)
            await bind_tenant(session, tenant)
            facility = await service.get_facility(session, facility_id)
            await gate.wait()  # everyone is connected and ready: go at once
            try:
                await service.book(session, tenant, facility, room_id, starts_at, principal_id)
                await session.commit()
                return "booked"
            except service.SlotTaken as exc:
                await session.rollback()
                assert "この枠はすでに予約されています" in exc.detail and exc.status == 409
                return "refused"

    try:
        tasks = [asyncio.create_task(attempt(engine, p)) for engine, p in zip(engines, people, strict=True)]
        await asyncio.sleep(0.5)
        gate.set()
        outcomes = await asyncio.wait_for(asyncio.gather(*tasks), 90)
    finally:
        for engine in engines:
            await engine.dispose()
    assert outcomes.count("booked") == 1 and outcomes.count("refused") == CONTENDERS - 1
    engine = create_engine(url, pool=False)
    try:
        async with make_sessionmaker(engine)() as session:
            async with unscoped(session, "test: count the slot's bookings"):
                rows = (await session.scalars(select(Booking).where(Booking.facility_id == facility_id))).all()
    finally:
        await engine.dispose()
    assert [(b.room_id, b.status) for b in rows] == [(room_id, "active")]


async def test_the_database_itself_refuses_a_second_active_booking(committed_url) -> None:
    """Even a writer that skips the service's checks cannot put two active bookings on a slot;
    a cancelled one does not count."""
    url, marker = committed_url
    facility_id, room_id, people = await _setup(url, marker or "index")
    engine = create_engine(url, pool=False)
    now = utcnow()

    def row(principal_id: str, status: str) -> Booking:
        return Booking(id=str(uuid.uuid4()), facility_id=facility_id, room_id=room_id, starts_at=now + timedelta(days=3),
                       ends_at=now + timedelta(days=3, hours=1), principal_id=principal_id, booker_name="x",
                       status=status, fee_yen=0, source="direct", created_at=now)

    from sqlalchemy.exc import IntegrityError

    try:
        async with make_sessionmaker(engine)() as session:
            await bind_tenant(session, await registry_service.tenant_for(session, NAHA))
            repo = service.BookingRepository(session)
            repo.add(row(people[0], "cancelled"))
            repo.add(row(people[1], "active"))
            await session.commit()
            repo.add(row(people[2], "active"))
            with pytest.raises(IntegrityError):
                await session.commit()
    finally:
        await engine.dispose()


async def test_one_person_booking_many_slots_at_once_stays_within_the_limit(committed_url) -> None:
    """The per-person limit holds under concurrency: one resident asks for eight different slots at
    once on a facility allowing five; exactly five are booked, the rest refused in Japanese."""
    url, marker = committed_url
    facility_id, room_id, people = await _setup(url, (marker or "limit") + "-limit")
    person = people[0]
    day = service.today_jst() + timedelta(days=3)
    slots = [service.parse_start(f"{day:%Y-%m-%d}T{9 + i:02d}:00") for i in range(8)]
    engines = [create_engine(url) for _ in slots]
    gate = asyncio.Event()

    async def attempt(engine, starts_at) -> str:
        async with make_sessionmaker(engine)() as session:
            tenant = await registry_service.tenant_for(session, NAHA)
            await bind_tenant(session, tenant)
            facility = await service.get_facility(session, facility_id)
            await gate.wait()
            try:
                await service.book(session, tenant, facility, room_id, starts_at, person)
                await session.commit()
                return "booked"
            except service.BookingRefused as exc:
                await session.rollback()
                assert "1人5件まで" in exc.detail
                return "refused"

    try:
        tasks = [asyncio.create_task(attempt(engine, s)) for engine, s in zip(engines, slots, strict=True)]
        await asyncio.sleep(0.5)
        gate.set()
        outcomes = await asyncio.wait_for(asyncio.gather(*tasks), 90)
    finally:
        for engine in engines:
            await engine.dispose()
    assert outcomes.count("booked") == 5 and outcomes.count("refused") == 3
    engine = create_engine(url, pool=False)
    try:
        async with make_sessionmaker(engine)() as session:
            async with unscoped(session, "test: count the person's bookings"):
                rows = (await session.scalars(select(Booking).where(Booking.facility_id == facility_id,
                                                                    Booking.principal_id == person))).all()
    finally:
        await engine.dispose()
    assert len(rows) == 5
