"""``kiban backup`` and ``kiban restore``: the whole database in one file, and back.

A backup is an uncompressed tar of two members:

- ``manifest.json``: format and Kiban version, backend, Alembic revision, when it was taken, the
  payload's size and SHA-256, the row count of every table and the audit log's size, all taken
  from the same snapshot as the payload (and, with ``--encrypt``, the encryption parameters);
- the payload: on SQLite a copy of the database made with SQLite's online backup API (one
  read transaction: consistent while the server keeps writing, WAL readers never block
  writers); on PostgreSQL ``pg_dump --format=custom`` of the whole database, taken on a
  snapshot exported by the same transaction that counted the rows, with its RLS policies,
  append-only triggers and grants.

A restore refuses, before it touches the target: a damaged file (checksum), a backup of the
other backend, a schema newer than this code knows, and a target database that is not empty
(unless ``force``). After loading it compares every table's row count with the manifest and
recomputes every organisation's audit hash chain. A backup at an older revision restores as
it was; ``kiban db upgrade`` then brings it to the code's schema.

The payload holds personal data (被災者台帳 and the rest): see ``docs/backup.md``.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

import kiban
from kiban.core.audit import service as audit_service
from kiban.core.audit.models import AuditChainHead, AuditEntry
from kiban.core.tenancy import rls
from kiban.core.tenancy import safety  # noqa: F401 - unscoped() reaches PostgreSQL through its hook
from kiban.core.tenancy.context import unscoped
from kiban.kit import migrate
from kiban.kit.db import create_engine, make_sessionmaker
from kiban.ops import sealing

FORMAT = "kiban-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PAYLOADS = {"sqlite": "kiban.sqlite3", "postgresql": "kiban.pgdump"}
PASSPHRASE_ENV = "KIBAN_BACKUP_PASSPHRASE"
PERSONAL_DATA_NOTICE = (
    "このファイルには被災者台帳・職員アカウント・監査ログなどの個人情報が含まれます。"
    "暗号化して保管し（--encrypt、または暗号化された保管先）、読める人を運用担当者に限ってください。")
_COPY = 1024 * 1024


class BackupError(Exception):
    """A refusal or failure, in words an operator can act on."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


# -- results ------------------------------------------------------------------------------------

@dataclass
class BackupResult:
    path: Path
    manifest: dict[str, Any]
    size: int
    seconds: float


@dataclass
class ChainReport:
    organisations: int
    entries: int
    problems: list[audit_service.ChainProblem]

    @property
    def broken(self) -> list[str]:
        return sorted({p.lg_code for p in self.problems})

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class RestoreResult:
    manifest: dict[str, Any]
    seconds: float
    counts: dict[str, int]
    mismatches: list[tuple[str, int | None, int | None]]
    chains: ChainReport
    head: str
    notes: list[str] = field(default_factory=list)

    @property
    def upgrade_needed(self) -> bool:
        return self.manifest["alembic_revision"] != self.head

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.chains.ok


# -- backing up ---------------------------------------------------------------------------------

def backend_of(url: str) -> str:
    name = make_url(url).get_backend_name()
    if name not in PAYLOADS:
        raise BackupError(f"データベース「{name}」のバックアップには対応していません（SQLite と PostgreSQL のみ）。")
    return name


def default_name(created: datetime) -> str:
    return f"kiban-backup-{created.strftime('%Y%m%dT%H%M%SZ')}.tar"


async def backup(url: str, output: Path | str | None = None, *, passphrase: str | None = None) -> BackupResult:
    """Write a backup of the database at ``url`` (the owner's connection on PostgreSQL)."""
    started = time.perf_counter()
    backend = backend_of(url)
    created = datetime.now(UTC)
    path = Path(output or default_name(created)).expanduser().resolve()
    if path.exists():
        raise BackupError(f"{path} は既にあります。上書きはしません。", "別のファイル名を --output で指定してください。")
    if passphrase is not None and (problem := sealing.passphrase_problem(passphrase)):
        raise BackupError(problem)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Work files sit next to the output (same file system, private 0700 folder), not in /tmp.
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".kiban-backup-") as work:
        payload = Path(work) / PAYLOADS[backend]
        if backend == "sqlite":
            contents = await asyncio.to_thread(_sqlite_snapshot, url, payload)
        else:
            contents = await _pg_dump(url, payload)
        encryption = None
        stored = payload
        if passphrase is not None:
            encryption = sealing.new_parameters()
            stored = Path(work) / "sealed"
            await asyncio.to_thread(_seal, payload, stored, passphrase, encryption)
            payload.unlink()
        digest, size = await asyncio.to_thread(_sha256, stored)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kiban_version": kiban.__version__,
            "backend": backend,
            "alembic_revision": contents.pop("revision"),
            "created_at": created.isoformat(timespec="seconds"),
            "payload": {"name": PAYLOADS[backend], "size": size, "sha256": digest, "encryption": encryption},
            **contents,
        }
        await asyncio.to_thread(_write_archive, path, manifest, stored)
    return BackupResult(path, manifest, path.stat().st_size, time.perf_counter() - started)


def _seal(source: Path, target: Path, passphrase: str, parameters: dict) -> None:
    with source.open("rb") as plain, target.open("wb") as sealed:
        sealing.encrypt(plain, sealed, passphrase, parameters)


def _sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(_COPY):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _write_archive(path: Path, manifest: dict, payload: Path) -> None:
    """manifest.json then the payload, written under a temporary name with mode 0600 and renamed
    into place once complete and synced: a backup file that exists is a whole one."""
    partial = path.with_name(path.name + ".part")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
                encoded = json.dumps(manifest, ensure_ascii=False, indent=2).encode("utf-8")
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mtime, info.mode = len(encoded), int(time.time()), 0o600
                tar.addfile(info, io.BytesIO(encoded))
                info = tarfile.TarInfo(manifest["payload"]["name"])
                info.size, info.mtime, info.mode = payload.stat().st_size, int(time.time()), 0o600
                with payload.open("rb") as f:
                    tar.addfile(info, f)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


# -- SQLite ---------------------------------------------------------------------------------------

def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("メモリ上の SQLite データベースはバックアップ・復元できません。",
                          "KIBAN_DATABASE_URL にファイルの SQLite を指定してください。")
    return Path(database).expanduser().resolve()


def _sqlite_connect_existing(path: Path, mode: str = "rw") -> sqlite3.Connection:
    # mode=rw never creates a missing file (a plain connect would make an empty database).
    return sqlite3.connect(f"{path.as_uri()}?mode={mode}", uri=True, timeout=30)


def _sqlite_tables(connection: sqlite3.Connection) -> list[str]:
    return [name for (name,) in connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")]


def _sqlite_contents(connection: sqlite3.Connection) -> dict[str, Any]:
    tables = _sqlite_tables(connection)
    if "alembic_version" not in tables:
        raise BackupError("このデータベースには Kiban の移行が適用されていません（バックアップするものがありません）。",
                          "KIBAN_DATABASE_URL が正しいか確認してください（kiban check）。")
    counts = {t: connection.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    revision = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    return {"revision": revision[0] if revision else None, "tables": counts,
            "audit": _audit_summary(counts), "source": {"sqlite_version": sqlite3.sqlite_version}}


def _audit_summary(counts: dict[str, int]) -> dict[str, int]:
    return {"organisations": counts.get(AuditChainHead.__tablename__, 0),
            "entries": counts.get(AuditEntry.__tablename__, 0)}


def _sqlite_snapshot(url: str, target: Path) -> dict[str, Any]:
    path = _sqlite_path(url)
    if not path.exists():
        raise BackupError(f"データベースのファイル {path} がありません。",
                          "KIBAN_DATABASE_URL が正しいか確認してください（kiban check）。")
    try:
        with closing(_sqlite_connect_existing(path)) as source, closing(sqlite3.connect(target)) as copy:
            # One step (pages=-1): the whole copy is read inside one read transaction, so it is
            # a single consistent snapshot even while the server writes (WAL).
            source.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")  # a self-contained file, no -wal beside it
            check = copy.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise BackupError(f"バックアップの写しの検査で問題が見つかりました（{check}）。",
                                  "元のデータベースを PRAGMA integrity_check で確認してください。")
            return _sqlite_contents(copy)
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite のバックアップに失敗しました（{exc}）。",
                          "ファイルが読めるか、ディスクに空きがあるか確認してください。") from exc


def _sqlite_restore(payload: Path, url: str, force: bool) -> None:
    target = _sqlite_path(url)
    if target.exists() and target.stat().st_size > 0:
        with closing(_sqlite_connect_existing(target)) as existing:
            tables = _sqlite_tables(existing)
        if tables and not force:
            raise _not_empty(str(target), tables)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with closing(_sqlite_connect_existing(payload, "ro")) as source, \
                closing(sqlite3.connect(target, timeout=30)) as destination:
            if (check := source.execute("PRAGMA quick_check").fetchone()[0]) != "ok":
                raise BackupError(f"バックアップの中のデータベースが壊れています（{check}）。")
            # The backup API writes through SQLite's own pager: an existing file, its -wal and
            # other connections all see the restored content, never a torn mix.
            source.backup(destination)
            destination.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite への復元に失敗しました（{exc}）。",
                          "kiban serve を止めてから、もう一度実行してください。") from exc


def _not_empty(where: str, objects: list[str]) -> BackupError:
    shown = "、".join(objects[:5]) + (f" ほか {len(objects) - 5} 件" if len(objects) > 5 else "")
    return BackupError(
        f"復元先のデータベース（{where}）は空ではありません（{shown}）。"
        "復元は空のデータベースにするものです。既存のデータに重ねると、どちらの記録か区別できなくなり、"
        "監査ログのハッシュチェーンも二重になるため、そのままでは復元しません。",
        "新しい空のデータベースを用意して KIBAN_DATABASE_URL（PostgreSQL では KIBAN_MIGRATION_DATABASE_URL）を"
        "そこに向けてください。今の中身を消してよい場合に限り --force を付けます（サーバーは止めてから）。")


# -- PostgreSQL -----------------------------------------------------------------------------------

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
_SYSTEM_SCHEMAS = ("n.nspname NOT IN ('pg_catalog', 'information_schema') "
                   "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'")
_NOT_EXTENSION_MEMBER = ("NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = {catalog}::regclass "
                         "AND d.objid = {oid} AND d.deptype = 'e')")


def _libpq(url: str) -> tuple[dict[str, str], str]:
    """Environment for pg_dump/pg_restore from a SQLAlchemy URL (the password never on the
    command line) and the database name."""
    u = make_url(url)
    env = dict(os.environ)
    query = {k: (v[0] if isinstance(v, tuple) else v) for k, v in u.query.items()}
    for variable, value in (("PGHOST", u.host or query.get("host")), ("PGPORT", u.port or query.get("port")),
                            ("PGUSER", u.username), ("PGPASSWORD", u.password)):
        if value:
            env[variable] = str(value)
    ssl = query.get("sslmode") or query.get("ssl")
    if ssl:
        env["PGSSLMODE"] = {"true": "require", "1": "require", "false": "disable", "0": "disable"}.get(ssl.lower(), ssl)
    env.setdefault("PGCONNECT_TIMEOUT", "15")
    env["PGAPPNAME"] = "kiban-backup"
    if not u.database:
        raise BackupError("接続先の URL にデータベース名がありません。", "例: postgresql+asyncpg://kiban@db/kiban")
    return env, u.database


def _tool_major(path: str) -> int | None:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return None
    match = _VERSION.search(out)
    return int(match[1]) if match else None


def pg_tool(name: str, at_least: int, prefer: int | None = None) -> tuple[str, int]:
    """The ``pg_dump``/``pg_restore`` to use: the server's own major version where installed
    side by side (Debian/Ubuntu ``/usr/lib/postgresql/N``, RHEL ``/usr/pgsql-N``), else PATH;
    refused when older than ``at_least``."""
    major = prefer or at_least
    candidates = [f"/usr/lib/postgresql/{major}/bin/{name}", f"/usr/pgsql-{major}/bin/{name}", shutil.which(name)]
    found: list[tuple[str, int]] = []
    for candidate in dict.fromkeys(c for c in candidates if c):
        if os.access(candidate, os.X_OK) and (version := _tool_major(candidate)) is not None:
            if version >= at_least:
                return candidate, version
            found.append((candidate, version))
    install = f"PostgreSQL {major} のクライアント（Debian/Ubuntu: apt install postgresql-client-{major}）を入れてください。"
    if not found:
        raise BackupError(f"{name} が見つかりません。", install)
    path, version = found[0]
    raise BackupError(f"{name} の版（{version}）が古すぎます: PostgreSQL {at_least} 以上の {name} が必要です（{path}）。", install)


async def _run(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(*argv, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, errors = await process.communicate()
    return process.returncode, (errors or out).decode("utf-8", "replace").strip()


def _tail(message: str, lines: int = 6) -> str:
    return "\n".join(message.splitlines()[-lines:])


def _connect_failure(url: str, exc: Exception) -> BackupError:
    u = make_url(url)
    cause = getattr(exc, "orig", None) or exc
    detail = f"{type(cause).__name__}: {str(cause).strip().splitlines()[0] if str(cause).strip() else ''}"
    if "does not exist" in detail and f'"{u.database}"' in detail:
        return BackupError(f"データベース {u.database} がありません（{detail}）。",
                           f"先に空のデータベースを作ってください。例: createdb -h {u.host or 'localhost'} "
                           f"-O {u.username or '所有者のロール'} {u.database}")
    return BackupError(f"データベースに接続できません（{u.render_as_string(hide_password=True)}: {detail}）。",
                       "PostgreSQL が起動しているか、KIBAN_MIGRATION_DATABASE_URL（なければ KIBAN_DATABASE_URL）が"
                       "正しいか確認してください（kiban check）。")


@asynccontextmanager
async def _connected(engine, url: str) -> AsyncIterator[AsyncConnection]:
    try:
        connection = await engine.connect()
    except (OSError, DBAPIError) as exc:
        raise _connect_failure(url, exc) from exc
    try:
        yield connection
    finally:
        await connection.close()


async def _server_version(connection) -> tuple[int, str]:
    number = int((await connection.execute(text("SHOW server_version_num"))).scalar())
    return number // 10000, (await connection.execute(text("SHOW server_version"))).scalar()


async def _pg_tables(connection) -> list[str]:
    # Partitions are counted through their parent.
    return list((await connection.execute(text(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1"))).scalars())


async def _pg_counts(connection) -> dict[str, int]:
    quote = connection.dialect.identifier_preparer.quote
    return {t: (await connection.execute(text(f"SELECT count(*) FROM public.{quote(t)}"))).scalar()
            for t in await _pg_tables(connection)}


async def _pg_dump(url: str, target: Path) -> dict[str, Any]:
    env, database = _libpq(url)
    engine = create_engine(url, pool=False)
    try:
        async with _connected(engine, url) as connection:
            major, version = await _server_version(connection)
            await connection.commit()
            tool, tool_major = await asyncio.to_thread(pg_tool, "pg_dump", major)
            # One REPEATABLE READ transaction exports its snapshot to pg_dump, so the row counts
            # in the manifest and the dump are the same instant even while the server writes.
            snapshot_connection = await connection.execution_options(isolation_level="REPEATABLE READ",
                                                                     postgresql_readonly=True)
            async with snapshot_connection.begin():
                snapshot = (await snapshot_connection.execute(text("SELECT pg_export_snapshot()"))).scalar()
                await snapshot_connection.execute(text("SELECT set_config('kiban.unscoped', 'on', true)"))
                if not (await snapshot_connection.execute(text("SELECT to_regclass('public.alembic_version')"))).scalar():
                    raise BackupError("このデータベースには Kiban の移行が適用されていません（バックアップするものがありません）。",
                                      "KIBAN_MIGRATION_DATABASE_URL が正しいか確認してください（kiban check）。")
                revision = (await snapshot_connection.execute(text("SELECT version_num FROM alembic_version"))).scalar()
                counts = await _pg_counts(snapshot_connection)
                grantees = list((await snapshot_connection.execute(text(
                    "SELECT DISTINCT grantee FROM information_schema.role_table_grants "
                    "WHERE table_schema = 'public' AND grantee <> 'PUBLIC' AND grantee <> current_user "
                    "AND grantee NOT IN (SELECT tableowner FROM pg_tables WHERE schemaname = 'public') "
                    "ORDER BY 1"))).scalars())
                code, message = await _run([tool, "--format=custom", f"--snapshot={snapshot}", "--no-password",
                                            f"--file={target}", f"--dbname={database}"], env)
        if code != 0:
            hint = "バックアップはテーブルの所有者の接続（KIBAN_MIGRATION_DATABASE_URL）で実行してください。" \
                if "row-level security" in message or "permission denied" in message else None
            raise BackupError(f"pg_dump が失敗しました（終了コード {code}）:\n{_tail(message)}", hint)
    except OperationalError as exc:
        raise _connect_failure(url, exc) from exc
    finally:
        await engine.dispose()
    return {"revision": revision, "tables": counts, "audit": _audit_summary(counts), "grantees": grantees,
            "source": {"server_version": version, "server_major": major, "pg_dump_major": tool_major}}


async def _pg_objects(connection) -> list[str]:
    """What makes a database non-empty: relations, routines and types outside the system
    schemas that no extension brought."""
    rows = await connection.execute(text(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE {_SYSTEM_SCHEMAS} AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') "
        f"AND {_NOT_EXTENSION_MEMBER.format(catalog=repr('pg_class'), oid='c.oid')} "
        "UNION ALL SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        f"WHERE {_SYSTEM_SCHEMAS} AND {_NOT_EXTENSION_MEMBER.format(catalog=repr('pg_proc'), oid='p.oid')} "
        "ORDER BY 1"))
    return list(rows.scalars())


async def _pg_clear(connection) -> None:
    """``--force``: drop every table, view, sequence, routine and type the earlier contents
    left (they are owned by the connecting owner), in one transaction."""
    statements = [
        ("TABLE", "c.relkind IN ('r', 'p') AND NOT c.relispartition"), ("VIEW", "c.relkind = 'v'"),
        ("MATERIALIZED VIEW", "c.relkind = 'm'"), ("SEQUENCE", "c.relkind = 'S'"), ("FOREIGN TABLE", "c.relkind = 'f'"),
    ]
    for kind, where in statements:
        names = (await connection.execute(text(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c "
            f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {_SYSTEM_SCHEMAS} AND {where} "
            f"AND {_NOT_EXTENSION_MEMBER.format(catalog=repr('pg_class'), oid='c.oid')}"))).scalars().all()
        for name in names:
            await connection.execute(text(f"DROP {kind} IF EXISTS {name} CASCADE"))
    routines = (await connection.execute(text(
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        f"WHERE {_SYSTEM_SCHEMAS} AND {_NOT_EXTENSION_MEMBER.format(catalog=repr('pg_proc'), oid='p.oid')}"))).scalars().all()
    for routine in routines:
        await connection.execute(text(f"DROP ROUTINE IF EXISTS {routine} CASCADE"))
    types = (await connection.execute(text(
        "SELECT t.oid::regtype::text FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
        f"WHERE {_SYSTEM_SCHEMAS} AND t.typtype IN ('e', 'd', 'r', 'm') "
        f"AND {_NOT_EXTENSION_MEMBER.format(catalog=repr('pg_type'), oid='t.oid')}"))).scalars().all()
    for name in types:
        await connection.execute(text(f"DROP TYPE IF EXISTS {name} CASCADE"))


async def _pg_restore(payload: Path, url: str, manifest: dict, force: bool, app_role: str | None) -> list[str]:
    env, database = _libpq(url)
    notes: list[str] = []
    source = manifest.get("source", {})
    engine = create_engine(url, pool=False)
    try:
        async with _connected(engine, url) as connection:
            major, _version = await _server_version(connection)
            if major < int(source.get("server_major", 0)):
                raise BackupError(
                    f"このバックアップは PostgreSQL {source['server_major']} から取ったもので、"
                    f"復元先の PostgreSQL {major} には戻せません（古い版への復元は保証されません）。",
                    f"PostgreSQL {source['server_major']} 以上のサーバーに復元してください。")
            # pg_restore reads archives from its own major version and older ones.
            dumped_by = int(source.get("pg_dump_major") or major)
            tool, _tool_version = await asyncio.to_thread(pg_tool, "pg_restore", dumped_by, max(dumped_by, major))
            code, message = await _run([tool, "--list", str(payload)], env)
            if code != 0:
                raise BackupError(f"バックアップの中のダンプを pg_restore が読めません:\n{_tail(message)}")
            existing = await _pg_objects(connection)
            await connection.commit()
            if existing and not force:
                raise _not_empty(f"{database}", existing)
            if existing:
                async with connection.begin():
                    await _pg_clear(connection)
                notes.append(f"--force: 復元先にあった {len(existing)} 個のテーブル・関数などを削除してから復元しました。")
        # Objects become the connecting owner's (--no-owner); grants are given afresh below to
        # the application role, which may not exist under that name on this server.
        code, message = await _run([tool, "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
                                    "--no-password", f"--dbname={database}", str(payload)], env)
        if code != 0:
            raise BackupError(f"pg_restore が失敗しました（終了コード {code}）。復元先は元のままです"
                              f"（1 つのトランザクションで復元しています）:\n{_tail(message)}",
                              "復元先に接続しているロールがテーブルを作れるか（データベースの所有者か）確認してください。")
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("ANALYZE"))  # pg_restore leaves the planner without statistics
        if app_role:
            async with engine.begin() as connection:
                if await connection.run_sync(rls.role_exists, app_role):
                    await connection.run_sync(rls.grant_app_role, app_role)
                    notes.append(f"アプリケーション用ロール {app_role} に権限を付与しました。")
                else:
                    notes.append(f"アプリケーション用ロール {app_role} がありません。"
                                 "`kiban db create-app-role` で作成してください（作成時に権限も付与されます）。")
        others = [g for g in manifest.get("grantees", []) if g != app_role]
        if others:
            notes.append(f"元のデータベースでは {', '.join(others)} にも権限がありました。"
                         "必要なら GRANT し直してください（復元では付与していません）。")
    except OperationalError as exc:
        raise _connect_failure(url, exc) from exc
    finally:
        await engine.dispose()
    return notes


# -- restoring ------------------------------------------------------------------------------------

def read_manifest(path: Path | str) -> dict[str, Any]:
    """The manifest of a backup file, checked for shape (not yet the payload's checksum)."""
    with _open(Path(path)) as tar:
        return _manifest(tar)[0]


def is_encrypted(manifest: dict) -> bool:
    return bool(manifest["payload"].get("encryption"))


def _open(path: Path) -> tarfile.TarFile:
    if not path.is_file():
        raise BackupError(f"バックアップのファイル {path} がありません。")
    try:
        return tarfile.open(path, "r:")
    except (tarfile.TarError, OSError) as exc:
        raise _damaged(path, exc) from exc


def _damaged(path: Path, detail: Any) -> BackupError:
    return BackupError(f"{path} は Kiban のバックアップとして読めません（壊れているか、別の形式です: {detail}）。",
                       "別の世代のバックアップを使ってください。")


def _manifest(tar: tarfile.TarFile) -> tuple[dict[str, Any], tarfile.TarInfo]:
    path = Path(tar.name or "")
    try:
        members = tar.getmembers()
        if len(members) != 2 or members[0].name != MANIFEST or not all(m.isfile() for m in members):
            raise ValueError("manifest.json と本体の 2 つが入っていません")
        manifest = json.loads(tar.extractfile(members[0]).read().decode("utf-8"))
        if manifest.get("format") != FORMAT:
            raise ValueError("Kiban のバックアップではありません")
    except (tarfile.TarError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise _damaged(path, exc) from exc
    if not isinstance(manifest.get("format_version"), int) or manifest["format_version"] > FORMAT_VERSION:
        raise BackupError(f"このバックアップは新しい形式（第{manifest.get('format_version')}版）で、"
                          f"この版の Kiban（{kiban.__version__}）では読めません。",
                          "バックアップを取った版以上の Kiban で復元してください。")
    payload = members[1]
    try:
        expected = manifest["payload"]
        if manifest["backend"] not in PAYLOADS or not payload.name == expected["name"] == PAYLOADS[manifest["backend"]]:
            raise ValueError("本体の名前が記載と違います")
        if payload.size != expected["size"] or not isinstance(manifest.get("tables"), dict):
            raise ValueError("本体の大きさが記載と違います")
    except (KeyError, TypeError, ValueError) as exc:
        raise _damaged(path, exc) from exc
    return manifest, payload


def _unpack(path: Path, work: Path, passphrase: str | None) -> tuple[dict[str, Any], Path]:
    """Check the payload's SHA-256 while copying it out, then decrypt it if sealed."""
    with _open(path) as tar:
        manifest, member = _manifest(tar)
        stored = work / "stored"
        digest = hashlib.sha256()
        try:
            with tar.extractfile(member) as source, stored.open("wb") as target:
                while chunk := source.read(_COPY):
                    digest.update(chunk)
                    target.write(chunk)
        except (tarfile.TarError, OSError) as exc:
            raise _damaged(path, exc) from exc
    if digest.hexdigest() != manifest["payload"]["sha256"]:
        raise BackupError(f"{path} の本体のチェックサム（SHA-256）が記載と一致しません。"
                          "ファイルが壊れているか、取得後に変更されています。復元しません。",
                          "別の世代のバックアップを使ってください。")
    encryption = manifest["payload"].get("encryption")
    if not encryption:
        return manifest, stored
    if passphrase is None:
        raise BackupError("このバックアップは暗号化されています。パスフレーズが必要です。",
                          f"対話で入力するか、環境変数 {PASSPHRASE_ENV} に設定してください。")
    plain = work / manifest["payload"]["name"]
    try:
        with stored.open("rb") as source, plain.open("wb") as target:
            sealing.decrypt(source, target, passphrase, encryption)
    except sealing.SealingError as exc:
        raise BackupError(str(exc), "パスフレーズを確かめてください。") from exc
    stored.unlink()
    return manifest, plain


def _check_revision(revision: str | None) -> str:
    """The code's head; refuses a backup whose schema this code does not know (a newer Kiban)."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    head = scripts.get_current_head()
    known = False
    if revision:
        try:
            known = scripts.get_revision(revision) is not None
        except CommandError:
            known = False
    if not known:
        raise BackupError(f"このバックアップのスキーマ（移行 {revision}）は、この版の Kiban（最新の移行 {head}）が"
                          "知らない新しいものです。古い版では正しく扱えないため復元しません。",
                          f"バックアップを取った版（{kiban.__version__} より新しい Kiban）に更新してから復元してください。")
    return head


async def restore(path: Path | str, url: str, *, force: bool = False, passphrase: str | None = None,
                  app_role: str | None = None,
                  on_stage: Callable[[str], None] | None = None) -> RestoreResult:
    """Restore a backup into the (empty) database at ``url``, then check row counts and every
    audit chain. Everything that can be checked is checked before the target is touched."""
    started = time.perf_counter()
    stage = on_stage or (lambda _message: None)
    path = Path(path).expanduser().resolve()
    backend = backend_of(url)
    with tempfile.TemporaryDirectory(prefix="kiban-restore-") as work:
        stage("チェックサムを確認しています")
        manifest, payload = await asyncio.to_thread(_unpack, path, Path(work), passphrase)
        if manifest["backend"] != backend:
            names = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
            raise BackupError(f"このバックアップは {names[manifest['backend']]} のもので、"
                              f"{names[backend]} には復元できません。",
                              "同じ種類のデータベースに復元してください。")
        head = _check_revision(manifest.get("alembic_revision"))
        stage("復元しています")
        if backend == "sqlite":
            await asyncio.to_thread(_sqlite_restore, payload, url, force)
            notes = []
        else:
            notes = await _pg_restore(payload, url, manifest, force, app_role)
    stage("件数と監査ログを検証しています")
    counts = await table_counts(url)
    expected = manifest["tables"]
    mismatches = [(t, expected.get(t), counts.get(t)) for t in sorted(set(expected) | set(counts))
                  if expected.get(t) != counts.get(t)]
    chains = await verify_audit_chains(url)
    return RestoreResult(manifest, time.perf_counter() - started, counts, mismatches, chains, head, notes)


# -- verification ---------------------------------------------------------------------------------

async def table_counts(url: str) -> dict[str, int]:
    """Rows per table (the owner's view: every tenant's rows)."""
    engine = create_engine(url, pool=False)
    try:
        async with engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                connection = await connection.execution_options(sqlite_deferred=True)
                tables = (await connection.execute(text(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
                ))).scalars().all()
                return {t: (await connection.execute(text(f'SELECT count(*) FROM "{t}"'))).scalar() for t in tables}
            await connection.execute(text("SELECT set_config('kiban.unscoped', 'on', true)"))
            return await _pg_counts(connection)
    finally:
        await engine.dispose()


async def verify_audit_chains(url: str) -> ChainReport:
    """Recompute every organisation's audit hash chain, as ``kiban audit verify`` does."""
    engine = create_engine(url, pool=False)
    try:
        async with make_sessionmaker(engine)() as session:
            async with unscoped(session, "復元・バックアップしたデータベースの監査ログの全件検証（運用者）"):
                organisations, entries, problems = await audit_service.verify_all(session)
    finally:
        await engine.dispose()
    return ChainReport(organisations, entries, list(problems))


# -- what the command prints ----------------------------------------------------------------------

def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def describe_backup(result: BackupResult) -> list[str]:
    m = result.manifest
    rows = sum(m["tables"].values())
    lines = [f"[green]✓ バックアップしました:[/] {result.path}",
             f"  {human_size(result.size)}・{len(m['tables'])} テーブル・{rows:,} 行"
             f"（監査ログ {m['audit']['entries']:,} 件・{m['audit']['organisations']:,} 団体）・"
             f"移行 {m['alembic_revision']}・{result.seconds:.1f} 秒",
             f"  SHA-256（本体）: {m['payload']['sha256']}"]
    if is_encrypted(m):
        lines.append("  パスフレーズで暗号化しました（AES-256-GCM）。パスフレーズを失うと復元できません。")
    lines.append(f"[yellow]注意:[/] {PERSONAL_DATA_NOTICE}")
    return lines


def describe_restore(result: RestoreResult) -> tuple[list[str], list[str]]:
    """(lines for stdout, lines for stderr)."""
    m = result.manifest
    out = [f"[green]✓ 復元しました[/]（{m['created_at']} に取ったバックアップ・Kiban {m['kiban_version']}・"
           f"移行 {m['alembic_revision']}・{result.seconds:.1f} 秒）"]
    out += [f"  {note}" for note in result.notes]
    errors: list[str] = []
    if result.mismatches:
        for table, expected, actual in result.mismatches:
            errors.append(f"[bold red]✗[/] テーブル {table}: バックアップ時 {expected if expected is not None else 'なし'}"
                          f" 行、復元後 {actual if actual is not None else 'なし'} 行")
    else:
        out.append(f"[green]✓[/] 全 {len(result.counts)} テーブルの行数がバックアップ時と一致しました"
                   f"（{sum(result.counts.values()):,} 行）。")
    chains = result.chains
    if chains.ok:
        out.append(f"[green]✓ 監査ログは完全です[/]（{chains.organisations} 団体・{chains.entries:,} 件を検証、"
                   f"チェーン正常 {chains.organisations}・破損 0）")
    else:
        for problem in chains.problems:
            errors.append(f"[bold red]✗[/] 団体 {problem.lg_code}: {problem.message}")
        errors.append(f"監査ログ: {chains.organisations} 団体・{chains.entries:,} 件を検証、"
                      f"チェーン正常 {chains.organisations - len(chains.broken)}・破損 {len(chains.broken)}。")
    if result.upgrade_needed:
        out.append(f"[yellow]次に:[/] このバックアップは移行 {m['alembic_revision']} の時点のものです。"
                   f"`kiban db upgrade` で最新（{result.head}）まで移行してください。")
    out.append(f"[yellow]注意:[/] {PERSONAL_DATA_NOTICE}")
    return out, errors
