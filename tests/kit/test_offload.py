"""``kit.offload``: work runs in another process (not a thread of this one), its errors come
back as they were raised, a process that died is replaced; and ``JSONDocument`` stores JSON text
made there as it is, read back as the document."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select

from kiban.kit import offload
from kiban.kit.db import EncodedJSON, JSONDocument
from kiban.kit.errors import InvalidInput


def _refuse(text: str) -> None:
    raise InvalidInput(f"「{text}」は読めません。")


def _die() -> None:
    os._exit(3)


@pytest.fixture
def work_process():
    offload.shutdown()
    yield
    offload.shutdown()


async def test_work_runs_in_another_process_kept_for_the_next_call(work_process):
    first = await offload.run(os.getpid)
    assert first != os.getpid()
    assert await offload.run(os.getpid) == first  # the same process, started once


async def test_errors_come_back_as_raised(work_process):
    with pytest.raises(InvalidInput) as raised:
        await offload.run(_refuse, "髙")
    assert raised.value.detail == "「髙」は読めません。"
    assert await offload.run(os.getpid) != os.getpid()  # and the process goes on serving


async def test_a_process_that_died_is_replaced(work_process):
    before = await offload.run(os.getpid)
    with pytest.raises(BrokenProcessPool):
        await offload.run(_die)
    after = await offload.run(os.getpid)
    assert after not in (before, os.getpid())


KILLED_SERVER = """
import asyncio, os, signal
from kiban.kit import offload
print(asyncio.run(offload.run(os.getpid)), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended; reaping it is its new parent's business


def test_the_work_process_of_a_server_that_was_killed_ends_too():
    """A server killed outright (SIGKILL: no atexit, no shutdown) leaves its work process
    behind; it must not wait for work forever (each kept ~120 MB: found after bench runs)."""
    server = subprocess.run([sys.executable, "-c", KILLED_SERVER], capture_output=True, text=True, timeout=60)
    assert server.returncode == -signal.SIGKILL, server.stderr
    worker = int(server.stdout.split()[0])
    deadline = time.monotonic() + 30
    while _running(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(worker)


async def test_json_document_stores_encoded_text_as_it_is_and_reads_the_document(connection):
    table = Table("offload_probe", MetaData(), Column("id", Integer, primary_key=True), Column("doc", JSONDocument),
                  prefixes=["TEMPORARY"])  # the app's role may not create tables
    await connection.run_sync(table.create)
    made_elsewhere = EncodedJSON(json.dumps({"rows": [{"line": 2, "name": "髙橋"}]}, ensure_ascii=False))
    await connection.execute(insert(table), [{"id": 1, "doc": made_elsewhere}, {"id": 2, "doc": {"rows": []}}])
    docs = dict((await connection.execute(select(table.c.id, table.c.doc))).all())
    assert docs == {1: {"rows": [{"line": 2, "name": "髙橋"}]}, 2: {"rows": []}}
