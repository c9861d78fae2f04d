"""The audit log's hash chain: intact logs verify; edits, deletions and reorderings made
directly in the database are found and located."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from kiban.core.audit import service as audit
from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import bind_tenant, unscoped
from kiban.kit.db import create_engine
from kiban.ops.provision import build_database
from tests.factories import HAKODATE, SAPPORO

# The chains tampered with below belong to two tenants no other test writes to: browser tests commit
# entries to 札幌市's and 函館市's chains in the same database, which would shift these sequence numbers.
CHAIN_A, CHAIN_B = "022012", "022021"  # 青森市, 弘前市


async def _write_log(session, n=4):
    for lg_code in (CHAIN_A, CHAIN_B):
        tenant = await registry_service.tenant_for(session, lg_code)
        await bind_tenant(session, tenant)
        for i in range(n):
            await audit.record(session, audit.Actor("staff", f"職員{i}", None), "test.action",
                               target_type="thing", target_id=str(i), purpose="テスト",
                               details={"i": i, "名前": "髙橋"})


async def _verify(session):
    async with unscoped(session, "test: verify"):
        return await audit.verify_all(session)


async def _tamper(session, sql: str, params: dict) -> None:
    """Change the table behind the application's back, as someone with database access would:
    the append-only trigger has to be disabled first."""
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        await connection.execute(text("SET LOCAL session_replication_role = replica"))
    else:
        for op in ("update", "delete"):
            await connection.execute(text(f"DROP TRIGGER IF EXISTS append_only_{op}_audit_entry"))
    await connection.execute(text(sql), params)


@pytest.fixture
async def owner_session(test_database):
    """An owner connection (tampering needs more than the app role may do), rolled back."""
    from sqlalchemy.ext.asyncio import AsyncSession

    engine = create_engine(test_database.owner_url, pool=False)
    async with engine.connect() as connection:
        transaction = await connection.begin()
        async with AsyncSession(bind=connection, join_transaction_mode="create_savepoint") as session:
            yield session
        await transaction.rollback()
    await engine.dispose()


async def test_an_untouched_log_verifies(owner_session) -> None:
    await _write_log(owner_session)
    organisations, entries, problems = await _verify(owner_session)
    assert problems == []
    assert entries >= 8


async def test_an_edited_entry_is_pinpointed(owner_session) -> None:
    await _write_log(owner_session)
    await _tamper(owner_session, "UPDATE audit_entry SET actor_label = '別人' WHERE lg_code = :c AND seq = 3",
                  {"c": CHAIN_A})
    _, _, problems = await _verify(owner_session)
    assert [(p.lg_code, p.seq) for p in problems] == [(CHAIN_A, 3)]
    assert "変更されています" in problems[0].message


async def test_a_deleted_entry_is_pinpointed(owner_session) -> None:
    await _write_log(owner_session)
    await _tamper(owner_session, "DELETE FROM audit_entry WHERE lg_code = :c AND seq = 2", {"c": CHAIN_B})
    _, _, problems = await _verify(owner_session)
    assert [(p.lg_code, p.seq) for p in problems] == [(CHAIN_B, 3)]
    assert "#2 が欠落" in problems[0].message


async def test_a_deleted_last_entry_is_caught_by_the_chain_head(owner_session) -> None:
    await _write_log(owner_session)
    await _tamper(owner_session, "DELETE FROM audit_entry WHERE lg_code = :c AND seq = 4", {"c": CHAIN_A})
    _, _, problems = await _verify(owner_session)
    assert [(p.lg_code, p.seq) for p in problems] == [(CHAIN_A, 4)]


async def test_reordered_entries_are_caught(owner_session) -> None:
    await _write_log(owner_session)
    # Swap the contents of #2 and #3 by renumbering them (hashes then no longer link up).
    await _tamper(owner_session, "UPDATE audit_entry SET seq = 99 WHERE lg_code = :c AND seq = 2", {"c": CHAIN_A})
    await _tamper(owner_session, "UPDATE audit_entry SET seq = 2 WHERE lg_code = :c AND seq = 3", {"c": CHAIN_A})
    await _tamper(owner_session, "UPDATE audit_entry SET seq = 3 WHERE lg_code = :c AND seq = 99", {"c": CHAIN_A})
    _, _, problems = await _verify(owner_session)
    assert problems and problems[0].lg_code == CHAIN_A and problems[0].seq == 2


async def test_the_application_role_cannot_change_or_delete_entries(session) -> None:
    await _write_log(session, n=1)
    connection = await session.connection()
    for statement in ("UPDATE audit_entry SET actor_label = 'x'", "DELETE FROM audit_entry"):
        nested = await connection.begin_nested()
        with pytest.raises(Exception, match="append-only|permission denied"):
            await connection.execute(text(statement))
        await nested.rollback()


def test_kiban_audit_verify_command_reports_tampering(tmp_path, monkeypatch) -> None:
    """End to end on a file database: write entries, tamper with sqlite3, run the command."""
    import asyncio
    import sqlite3

    from typer.testing import CliRunner

    from kiban.cli import app
    from kiban.kit.db import make_sessionmaker
    from kiban.kit.settings import get_settings

    path = tmp_path / "audit.sqlite3"
    url = f"sqlite+aiosqlite:///{path}"

    async def prepare() -> None:
        await build_database(url)
        engine = create_engine(url, pool=False)
        async with make_sessionmaker(engine)() as session:
            await _write_log(session, n=3)
            await session.commit()
        await engine.dispose()

    asyncio.run(prepare())
    monkeypatch.setenv("KIBAN_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        assert runner.invoke(app, ["audit", "verify"]).exit_code == 0
        with sqlite3.connect(path) as raw:
            raw.execute("DROP TRIGGER append_only_update_audit_entry")
            raw.execute("UPDATE audit_entry SET purpose = '改ざん' WHERE lg_code = ? AND seq = 2", (CHAIN_B,))
        result = runner.invoke(app, ["audit", "verify"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert f"団体 {CHAIN_B}: 記録 #2（test.action）の内容が記録後に変更されています" in result.output


async def test_admins_browse_and_export_their_own_log_only(staff) -> None:
    admin = await staff(SAPPORO, "admin", name="札幌 管理者")
    page = await admin.client.get(f"/t/{SAPPORO}/audit")
    assert page.status_code == 200 and "職員の登録" in page.text
    assert "identity.membership.granted" not in re.sub(r"<[^>]+>", " ", page.text)  # words, not codes
    export = await admin.client.get(f"/t/{SAPPORO}/audit.csv")
    assert export.status_code == 200
    assert export.content.startswith("\ufeff".encode())  # Excel reads UTF-8 with a BOM
    assert "操作者" in export.text.splitlines()[0]
    assert (await admin.client.get(f"/t/{HAKODATE}/audit")).status_code == 404
    clerk = await staff(SAPPORO, "staff")
    assert (await clerk.client.get(f"/t/{SAPPORO}/audit")).status_code == 403


async def test_concurrent_first_entries_of_an_organisation_both_land_in_one_chain(app_engine) -> None:
    """Found by bench/auth.py: two requests creating an organisation's chain at once. Committed
    to the test database, on a tenant no other test uses (島根県美郷町)."""
    import asyncio

    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import AsyncSession

    from kiban.core.audit.models import AuditEntry

    lg_code = "324485"

    async def append(n: int) -> None:
        async with AsyncSession(app_engine) as session:
            tenant = await registry_service.tenant_for(session, lg_code)
            await bind_tenant(session, tenant)
            await audit.record(session, audit.Actor("system", f"並行 {n}"), "test.concurrent")
            await session.commit()

    await asyncio.gather(*(append(n) for n in range(4)))
    async with AsyncSession(app_engine) as session:
        await bind_tenant(session, await registry_service.tenant_for(session, lg_code))
        entries = (await session.scalars(select(AuditEntry).order_by(AuditEntry.seq))).all()
        head = (await session.scalars(select(audit.AuditChainHead))).one()
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert audit.verify_entries(lg_code, entries, head) == []
