"""``kiban backup`` / ``kiban restore`` on the backend under test (KIBAN_TEST_DATABASE): a database
with data made by the services (several audit chains) is backed up while another connection
holds an open write, restored into a fresh database, and compared table by table; the audit
chains are recomputed. Damaged, newer-schema and encrypted backups, and non-empty targets."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import sqlite3
import tarfile
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import text
from typer.testing import CliRunner

from kiban.cli import app
from kiban.core.audit import service as audit
from kiban.core.identity import service as identity_service
from kiban.core.registry import service as registry
from kiban.core.registry.seed import seed_registry
from kiban.core.tenancy import rls, settings_service
from kiban.core.tenancy.context import as_tenant
from kiban.core.tenancy.settings_definitions import CHILDCARE_DEADLINE_DAY, CONTACT_DESK
from kiban.kit import migrate
from kiban.kit.db import create_engine, make_sessionmaker
from kiban.kit.settings import get_settings
from kiban.modules.disaster.demo import REGISTERING, load_demo
from kiban.ops import backup as ops
from kiban.ops import sealing
from tests.conftest import APP_ROLE, BACKEND, _admin, _pg_url

pytestmark = pytest.mark.skipif(BACKEND not in ("sqlite", "postgresql"), reason="unknown backend")


@dataclass
class Database:
    url: str
    name: str


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def new_database(tmp_path_factory) -> AsyncIterator[Callable]:
    """``await new_database()``: an empty database of the backend under test, dropped at the end."""
    made: list[Database] = []
    folder = tmp_path_factory.mktemp("backup-databases")

    async def make() -> Database:
        if BACKEND == "sqlite":
            path = folder / f"db-{uuid.uuid4().hex[:8]}.sqlite3"
            database = Database(f"sqlite+aiosqlite:///{path}", str(path))
        else:
            name = f"kiban_test_backup_{uuid.uuid4().hex[:10]}"
            try:
                await asyncio.wait_for(_admin(f'CREATE DATABASE "{name}"'), timeout=15)
            except Exception as exc:  # noqa: BLE001 - conftest's session database skips or fails first
                pytest.skip(f"PostgreSQL is unreachable: {exc}")
            database = Database(_pg_url("postgres", name), name)
        made.append(database)
        return database

    yield make
    if BACKEND == "postgresql":
        await asyncio.gather(*(_admin(f'DROP DATABASE IF EXISTS "{d.name}" WITH (FORCE)') for d in made))


async def _migrate(url: str, revision: str = "head") -> None:
    await asyncio.to_thread(migrate.upgrade, url, revision)
    if BACKEND == "postgresql":
        engine = create_engine(url, pool=False)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(rls.create_app_role, APP_ROLE)
                await connection.run_sync(rls.grant_app_role, APP_ROLE)
        finally:
            await engine.dispose()


async def _fill(url: str) -> None:
    """Data through the services: the registry, a disaster with shelters and 30 registrations
    by seven municipalities, settings of two tenants, staff of two organisations, and reads of
    the records audited on each registering municipality's chain: eight audit chains."""
    engine = create_engine(url, pool=False)
    try:
        async with make_sessionmaker(engine)() as session:
            await seed_registry(session)
            await session.commit()
            await load_demo(session, registrations=30)
            await session.commit()
            for lg_code, key, value in (("011002", CHILDCARE_DEADLINE_DAY.key, 20), ("011002", CONTACT_DESK.key, "窓口"),
                                        ("012025", CHILDCARE_DEADLINE_DAY.key, 10)):
                tenant = await registry.tenant_for(session, lg_code)
                async with as_tenant(session, tenant):
                    await settings_service.set_setting(session, key, value, actor="試験", reason="バックアップの試験")
            for lg_code in ("011002", "172014"):  # argon2id per account: keep them few
                await identity_service.create_staff(
                    session, username=f"backup-{lg_code}", display_name=f"職員 {lg_code}",
                    password="correct horse battery staple", lg_code=lg_code, role="staff", granted_by="試験")
            for lg_code in REGISTERING:
                tenant = await registry.tenant_for(session, lg_code)
                async with as_tenant(session, tenant):
                    for seq in range(3):
                        await audit.record(session, audit.SYSTEM, "disaster.record.read", target_type="victim_record",
                                           target_id=f"r{seq}", purpose="バックアップの試験")
            await session.commit()
    finally:
        await engine.dispose()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def source(new_database) -> Database:
    """Built once for the module; no test changes it."""
    database = await new_database()
    await _migrate(database.url)
    await _fill(database.url)
    return database


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def backup_file(source, tmp_path_factory) -> Path:
    file = tmp_path_factory.mktemp("backups") / "kiban.tar"
    await ops.backup(source.url, file)
    return file


@pytest.fixture
def kiban(monkeypatch):
    """Run the real command against ``url`` (in a thread: the command runs its own event loop)."""
    runner = CliRunner()

    async def run(url: str, *args: str):
        monkeypatch.setenv("KIBAN_DATABASE_URL", url)
        monkeypatch.setenv("KIBAN_MIGRATION_DATABASE_URL", url)
        monkeypatch.setenv("KIBAN_APP_DB_ROLE", APP_ROLE)
        get_settings.cache_clear()
        try:
            return await asyncio.to_thread(runner.invoke, app, list(args), catch_exceptions=False)
        finally:
            get_settings.cache_clear()

    yield run
    get_settings.cache_clear()


async def _hold_uncommitted_write(url: str):
    """Another connection inserts a row and keeps its transaction open; returns a closer."""
    if BACKEND == "sqlite":
        connection = sqlite3.connect(Path(url.split("///", 1)[1]), isolation_level=None, timeout=5)
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO tenant_setting (lg_code, key, value, version, updated_by, updated_at) "
                           "VALUES ('011002', 'test.uncommitted', '\"x\"', 1, 'test', '2026-01-01 00:00:00')")

        async def close() -> None:
            connection.execute("ROLLBACK")
            connection.close()
        return close
    engine = create_engine(url, pool=False)
    connection = await engine.connect()
    await connection.execute(text(
        "INSERT INTO tenant_setting (lg_code, key, value, version, updated_by, updated_at) "
        "VALUES ('011002', 'test.uncommitted', '\"x\"', 1, 'test', now())"))

    async def close() -> None:
        await connection.rollback()
        await connection.close()
        await engine.dispose()
    return close


async def test_backup_while_writing_then_restore_into_a_fresh_database(source, new_database, kiban, tmp_path) -> None:
    file = tmp_path / "kiban.tar"
    release = await _hold_uncommitted_write(source.url)
    try:
        made = await kiban(source.url, "backup", "--output", str(file))
    finally:
        await release()
    assert made.exit_code == 0, made.output
    assert "個人情報" in made.output and file.stat().st_mode & 0o077 == 0

    manifest = ops.read_manifest(file)
    expected = await ops.table_counts(source.url)
    assert manifest["tables"] == expected  # the snapshot: without the uncommitted row
    assert manifest["backend"] == BACKEND and manifest["alembic_revision"] == migrate.head_revision()
    assert expected["victim_record"] == 30 and manifest["audit"]["organisations"] == 8

    target = await new_database()
    restored = await kiban(target.url, "restore", str(file))
    assert restored.exit_code == 0, restored.output
    assert "行数がバックアップ時と一致" in restored.output and "監査ログは完全です" in restored.output
    assert await ops.table_counts(target.url) == expected
    chains = await ops.verify_audit_chains(target.url)
    assert chains.ok and chains.entries == expected["audit_entry"] == 7 * 3 + 2
    assert chains.organisations == expected["audit_chain_head"]

    if BACKEND == "postgresql":
        await _check_security_came_back(source.url, target)

    # History rewritten behind the triggers' back (an edited entry, a removed last entry) is
    # carried by a backup as it is, and the restore says so and fails.
    await _rewrite_history(target.url)
    tampered = tmp_path / "tampered.tar"
    await ops.backup(target.url, tampered)
    reported = await kiban(target.url, "restore", str(tampered), "--force")
    assert reported.exit_code == 1
    assert "団体 011002: 記録 #1" in reported.output and "団体 172014: 最後の記録" in reported.output
    assert "チェーン正常 6・破損 2" in reported.output


async def _rewrite_history(url: str) -> None:
    if BACKEND == "sqlite":
        lift = ["DROP TRIGGER append_only_update_audit_entry", "DROP TRIGGER append_only_delete_audit_entry"]
    else:
        lift = ["ALTER TABLE audit_entry DISABLE TRIGGER append_only"]
    engine = create_engine(url, pool=False)
    try:
        async with engine.begin() as connection:
            for statement in lift:
                await connection.execute(text(statement))
            await connection.execute(text(
                "UPDATE audit_entry SET actor_label = '書き換え' WHERE lg_code = '011002' AND seq = 1"))
            await connection.execute(text(
                "DELETE FROM audit_entry WHERE lg_code = '172014' "
                "AND seq = (SELECT max(seq) FROM audit_entry WHERE lg_code = '172014')"))
    finally:
        await engine.dispose()


async def _check_security_came_back(source_url: str, target: Database) -> None:
    """Policies, the append-only trigger and the application role's grants, as in the source."""
    query = ("SELECT (SELECT count(*) FROM pg_policies), (SELECT count(*) FROM pg_class WHERE relrowsecurity), "
             "(SELECT count(*) FROM pg_trigger WHERE tgname = 'append_only'), "
             "(SELECT count(*) FROM information_schema.role_table_grants WHERE grantee = :role)")
    found = []
    for url in (source_url, target.url):
        engine = create_engine(url, pool=False)
        try:
            async with engine.connect() as connection:
                found.append(tuple((await connection.execute(text(query), {"role": APP_ROLE})).one()))
        finally:
            await engine.dispose()
    assert found[0] == found[1] and found[1][0] > 10 and found[1][2] == 1
    app_engine = create_engine(_pg_url(APP_ROLE, target.name), pool=False)
    try:
        async with app_engine.connect() as connection:
            # Row-level security: no tenant bound, no rows.
            assert (await connection.execute(text("SELECT count(*) FROM victim_record"))).scalar() == 0
            await connection.execute(text("SELECT set_config('kiban.lg_code', '170003', false)"))
            with pytest.raises(Exception, match="permission denied|append-only"):
                await connection.execute(text("DELETE FROM audit_entry"))
    finally:
        await app_engine.dispose()


def _rewrite(file: Path, target: Path, change_manifest=None, change_payload=None) -> None:
    """A copy of a backup with its manifest or payload changed (and, for the manifest, a
    consistent checksum: what a newer Kiban would have written)."""
    with tarfile.open(file) as tar:
        manifest_member, payload_member = tar.getmembers()
        manifest = json.loads(tar.extractfile(manifest_member).read())
        payload = tar.extractfile(payload_member).read()
    if change_payload:
        payload = change_payload(payload)
    if change_manifest:
        change_manifest(manifest)
        manifest["payload"].update(size=len(payload), sha256=hashlib.sha256(payload).hexdigest())
    with tarfile.open(target, "w") as tar:
        for name, data in ((manifest_member.name, json.dumps(manifest).encode()), (payload_member.name, payload)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


async def test_only_a_whole_known_unlocked_backup_reaches_the_target(
        source, backup_file, new_database, kiban, tmp_path, monkeypatch) -> None:
    """Damaged, truncated, newer-schema and other-backend backups, and a sealed one without its
    passphrase, are refused before the target is touched; then the sealed one restores."""
    file = backup_file
    target = await new_database()

    flipped = tmp_path / "flipped.tar"
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit in the payload
    flipped.write_bytes(bytes(data))
    refused = await kiban(target.url, "restore", str(flipped))
    assert refused.exit_code == 1 and "チェックサム" in refused.output

    newer = tmp_path / "newer.tar"
    _rewrite(file, newer, change_manifest=lambda m: m.update(alembic_revision="9999_from_the_future"))
    refused = await kiban(target.url, "restore", str(newer))
    assert refused.exit_code == 1 and "新しい" in refused.output and "9999_from_the_future" in refused.output

    other = "postgresql" if BACKEND == "sqlite" else "sqlite"
    crossed = tmp_path / "crossed.tar"
    _rewrite(file, crossed, change_manifest=lambda m: m.update(backend=other, payload={**m["payload"], "name": ops.PAYLOADS[other]}))
    with tarfile.open(crossed) as tar:  # the member must carry the other backend's name too
        assert tar.getmembers()[1].name == ops.PAYLOADS[BACKEND]
    with pytest.raises(ops.BackupError, match="読めません"):
        await ops.restore(crossed, target.url)

    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(file.read_bytes()[:5000])
    refused = await kiban(target.url, "restore", str(truncated))
    assert refused.exit_code == 1 and "読めません" in refused.output

    monkeypatch.setattr(sealing, "SCRYPT_N", 2**12)  # the real cost is for real backups, not this test
    sealed = tmp_path / "sealed.tar"
    with pytest.raises(ops.BackupError, match="12 文字以上"):
        await ops.backup(source.url, sealed, passphrase="short")
    await ops.backup(source.url, sealed, passphrase="correct horse battery staple")
    manifest = ops.read_manifest(sealed)
    assert ops.is_encrypted(manifest)
    with tarfile.open(sealed) as tar:  # the payload is not readable as it is
        payload = tar.extractfile(tar.getmembers()[1]).read()
    assert b"SQLite format 3" not in payload[:100] and b"PGDMP" not in payload[:100]
    with pytest.raises(ops.BackupError, match="パスフレーズが必要"):
        await ops.restore(sealed, target.url)
    with pytest.raises(ops.BackupError, match="パスフレーズが違う"):
        await ops.restore(sealed, target.url, passphrase="wrong horse battery staple")

    assert await ops.table_counts(target.url) == {}  # still empty
    result = await ops.restore(sealed, target.url, passphrase="correct horse battery staple", app_role=APP_ROLE)
    assert result.ok and result.counts == manifest["tables"]


async def test_an_older_revision_restores_then_upgrades_and_a_non_empty_target_is_refused_unless_forced(
        source, backup_file, new_database, kiban, tmp_path) -> None:
    older = "0015"
    assert older != migrate.head_revision()
    old = await new_database()
    await _migrate(old.url, older)
    engine = create_engine(old.url, pool=False)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE leftover (id integer)"))
    finally:
        await engine.dispose()
    old_file = tmp_path / "old.tar"
    await ops.backup(old.url, old_file)

    # A restore never lands on top of existing data...
    refused = await kiban(source.url, "restore", str(old_file))
    assert refused.exit_code == 1 and "空ではありません" in refused.output and "--force" in refused.output
    # ...unless told to replace it: nothing of the earlier contents stays.
    forced = await kiban(old.url, "restore", str(backup_file), "--force")
    assert forced.exit_code == 0, forced.output
    counts = await ops.table_counts(old.url)
    assert "leftover" not in counts and counts == ops.read_manifest(backup_file)["tables"]

    # A backup at an older revision comes back as it was, then migrates to the code's head.
    fresh = await new_database()
    result = await ops.restore(old_file, fresh.url, app_role=APP_ROLE)
    assert result.ok and result.upgrade_needed and "leftover" in result.counts
    assert any("kiban db upgrade" in line for line in ops.describe_restore(result)[0])
    await asyncio.to_thread(migrate.upgrade, fresh.url)
    engine = create_engine(fresh.url, pool=False)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(migrate.current_revision) == migrate.head_revision()
    finally:
        await engine.dispose()


@pytest.mark.parametrize("size", [0, 10, sealing.CHUNK, 2 * sealing.CHUNK + 5])
def test_sealed_payloads_detect_truncation_reordering_and_edits(size) -> None:
    parameters = {**sealing.new_parameters(), "n": 2**10}  # a cheap key for the test
    plain = bytes(range(256)) * (size // 256) + bytes(size % 256)
    sealed = io.BytesIO()
    sealing.encrypt(io.BytesIO(plain), sealed, "passphrase-for-tests", parameters)
    opened = io.BytesIO()
    sealing.decrypt(io.BytesIO(sealed.getvalue()), opened, "passphrase-for-tests", parameters)
    assert opened.getvalue() == plain
    frame = sealing.NONCE + sealing.CHUNK + sealing.TAG
    data = sealed.getvalue()
    damaged = [data[:-1], data[:len(data) - 1] + bytes([data[-1] ^ 1])]
    if len(data) > frame:
        damaged += [data[:frame], data[frame:2 * frame] + data[:frame] + data[2 * frame:]]
    for bad in damaged:
        with pytest.raises(sealing.SealingError):
            sealing.decrypt(io.BytesIO(bad), io.BytesIO(), "passphrase-for-tests", parameters)
