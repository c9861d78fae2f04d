"""施設予約: facilities, bookings that never collide, lotteries drawn reproducibly, iCalendar feeds."""
