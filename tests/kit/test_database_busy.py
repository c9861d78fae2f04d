"""Which database failures a request answers as 503 「混み合っています」 (kit.errors.database_busy):
the ones where the request changed nothing and trying again later can succeed."""

from __future__ import annotations

import sqlite3

from sqlalchemy import exc as sa_exc

from kiban.kit.errors import database_busy


def test_busy_failures_are_the_ones_a_retry_can_cure() -> None:
    locked = sa_exc.OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked"))
    assert database_busy(locked)
    assert database_busy(sa_exc.TimeoutError("QueuePool limit of size 20 overflow 10 reached"))
    dropped = sa_exc.DBAPIError("SELECT 1", {}, ConnectionResetError("connection was closed"), connection_invalidated=True)
    assert database_busy(dropped)


def test_other_failures_stay_unexpected_errors() -> None:
    assert not database_busy(sa_exc.OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: x")))
    assert not database_busy(sa_exc.DBAPIError("SELECT 1", {}, ValueError("bad value")))
    assert not database_busy(sa_exc.IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not database_busy(RuntimeError("database is locked"))  # a message alone is not the database's answer
