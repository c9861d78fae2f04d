"""iCalendar (RFC 5545) feeds: a facility's busy slots (public: no names, no booking ids) and a
resident's own bookings (behind a secret URL)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from icalendar import Calendar, Event

from kiban.kit.db import utcnow


def _calendar(name: str) -> Calendar:
    calendar = Calendar()
    calendar.add("prodid", "-//Kiban//施設予約//JA")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", name)
    calendar.add("x-wr-timezone", "Asia/Tokyo")
    return calendar


def _event(uid: str, start: datetime, end: datetime, summary: str, stamp: datetime, location: str | None = None) -> Event:
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", stamp)
    event.add("dtstart", start.astimezone(timezone.utc))
    event.add("dtend", end.astimezone(timezone.utc))
    event.add("summary", summary)
    event.add("transp", "OPAQUE")
    if location:
        event.add("location", location)
    return event


def facility_feed(lg_code: str, facility, rooms: dict, bookings: Sequence) -> bytes:
    """Busy slots only: the room and the time, nothing about who booked."""
    stamp = utcnow()
    calendar = _calendar(f"{facility.name}（予約状況）")
    for booking in bookings:
        room = rooms.get(booking.room_id)
        # The uid is derived from the slot, not the booking, so it reveals nothing new.
        uid = f"{lg_code}-{booking.room_id}-{booking.starts_at:%Y%m%dT%H%M%SZ}@kiban"
        calendar.add_component(_event(uid, booking.starts_at, booking.ends_at,
                                      f"予約済み（{room.name if room else '—'}）", stamp, facility.address or None))
    return calendar.to_ical()


def personal_feed(lg_code: str, tenant_name: str, bookings: Sequence, facilities: dict, rooms: dict) -> bytes:
    stamp = utcnow()
    calendar = _calendar(f"{tenant_name}の施設予約（わたしの予約）")
    for booking in bookings:
        facility, room = facilities.get(booking.facility_id), rooms.get(booking.room_id)
        name = f"{facility.name if facility else '施設'}（{room.name if room else '—'}）"
        calendar.add_component(_event(f"{lg_code}-{booking.id}@kiban", booking.starts_at, booking.ends_at, name, stamp,
                                      facility.address if facility and facility.address else None))
    return calendar.to_ical()
