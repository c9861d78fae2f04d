"""``kiban``: the command line for operators and newcomers.

    kiban demo          upgrade + seed + demo data + serve (the one command to try Kiban)
    kiban db upgrade    apply migrations
    kiban seed          load the base registry (idempotent)
    kiban serve         run the web server
    kiban check         configuration and database status, with what to do about problems
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import signal
import socket
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import text
from sqlalchemy.engine import make_url

from kiban.kit.settings import get_settings

app = typer.Typer(help="Kiban 国・地方デジタル共通基盤", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="データベース（移行・ロール）", no_args_is_help=True)
registry_app = typer.Typer(help="ベース・レジストリ（団体）", no_args_is_help=True)
settings_app = typer.Typer(help="テナント設定", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(registry_app, name="registry")
app.add_typer(settings_app, name="settings")
audit_app = typer.Typer(help="監査ログ", no_args_is_help=True)
staff_app = typer.Typer(help="職員アカウント", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(staff_app, name="staff")
card_app = typer.Typer(help="開発用認証局と仮想マイナンバーカード（開発・デモ専用）", no_args_is_help=True)
app.add_typer(card_app, name="card")
console = Console()
err = Console(stderr=True)


def _fail(message: str, hint: str | None = None) -> None:
    err.print(f"[bold red]エラー:[/] {message}")
    if hint:
        err.print(f"[yellow]対処:[/] {hint}")
    raise typer.Exit(1)


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


# -- database ---------------------------------------------------------------------------------

def _upgrade() -> None:
    from kiban.kit import migrate

    settings = get_settings()
    url = settings.effective_migration_url
    console.print(f"移行を適用します: {_safe_url(url)}")
    try:
        migrate.upgrade(url)
    except Exception as exc:  # noqa: BLE001 - turned into an actionable message
        _fail(f"移行に失敗しました（{type(exc).__name__}: {exc}）",
              "データベースが起動しているか、KIBAN_DATABASE_URL / KIBAN_MIGRATION_DATABASE_URL が正しいか確認してください（kiban check）。")
    asyncio.run(_grant_app_role_if_present())
    console.print("[green]移行は最新です。[/]")


async def _grant_app_role_if_present() -> None:
    from kiban.core.tenancy import rls
    from kiban.kit.db import create_engine

    settings = get_settings()
    if settings.is_sqlite:
        return
    engine = create_engine(settings.effective_migration_url, pool=False)
    try:
        async with engine.begin() as connection:
            if await connection.run_sync(rls.role_exists, settings.app_db_role):
                await connection.run_sync(rls.grant_app_role, settings.app_db_role)
                console.print(f"アプリケーション用ロール {settings.app_db_role} に権限を付与しました。")
            else:
                console.print(f"[yellow]アプリケーション用ロール {settings.app_db_role} がありません。"
                              "`kiban db create-app-role` で作成してください。[/]")
    finally:
        await engine.dispose()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """移行（マイグレーション）を最新まで適用する。"""
    _upgrade()


@db_app.command("create-app-role")
def db_create_app_role() -> None:
    """PostgreSQL にアプリケーション用ロール（所有者でなく BYPASSRLS なし）を作り、権限を付与する。"""
    from kiban.core.tenancy import rls
    from kiban.kit.db import create_engine

    settings = get_settings()
    if settings.is_sqlite:
        _fail("SQLite ではロールは不要です。")

    async def run() -> None:
        engine = create_engine(settings.effective_migration_url, pool=False)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(rls.create_app_role, settings.app_db_role)
                await connection.run_sync(rls.grant_app_role, settings.app_db_role)
        finally:
            await engine.dispose()

    asyncio.run(run())
    console.print(f"[green]ロール {settings.app_db_role} を用意しました。[/] パスワードは ALTER ROLE で別途設定してください。")


# -- registry ---------------------------------------------------------------------------------

async def _seed() -> None:
    from kiban.core.registry.seed import registry_rows, seed_registry
    from kiban.modules.catalog.seed import seed_catalog
    from kiban.kit.db import create_engine, make_sessionmaker

    settings = get_settings()
    engine = create_engine(settings.effective_migration_url, pool=False)
    try:
        async with make_sessionmaker(engine)() as session:
            with Progress(TextColumn("[bold]団体を登録中"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=console) as progress:
                task = progress.add_task("seed", total=len(registry_rows()))
                report = await seed_registry(session, progress=lambda n: progress.advance(task, n))
            await session.commit()
            catalog_report = await seed_catalog(session)
            await session.commit()
    finally:
        await engine.dispose()
    console.print(f"[green]ベース・レジストリ:[/] {report.summary()}")
    console.print(f"[green]共通サービスカタログ:[/] {catalog_report.summary()}")


@app.command()
def seed() -> None:
    """ベース・レジストリ（全団体）と共通サービスカタログを登録する。何度実行しても結果は同じ。"""
    from kiban.core.registry.seed import SeedError

    try:
        asyncio.run(_seed())
    except SeedError as exc:
        _fail(str(exc))


@registry_app.command("merge")
def registry_merge(
    code: Annotated[str, typer.Argument(help="廃止される団体のコード")],
    into: Annotated[str, typer.Option("--into", help="合併先（存続・新設）団体のコード")],
    on: Annotated[str, typer.Option("--on", help="合併の日（YYYY-MM-DD）")],
    reason: Annotated[str, typer.Option(help="理由（合併・編入など）")] = "合併",
) -> None:
    """合併・編入を登録する（廃止された団体のコードは履歴として残る）。"""
    from kiban.core.registry import service
    from kiban.kit.db import create_engine, make_sessionmaker
    from kiban.kit.errors import KibanError

    try:
        effective_on = date.fromisoformat(on)
    except ValueError:
        _fail(f"日付「{on}」は YYYY-MM-DD の形式で指定してください。")

    async def run() -> str:
        engine = create_engine(get_settings().effective_migration_url, pool=False)
        try:
            async with make_sessionmaker(engine)() as session:
                org = await service.merge(session, code, into, effective_on, reason)
                detail = await service.get_detail(session, org.code)
                await session.commit()
                return detail.retirement.message
        finally:
            await engine.dispose()

    try:
        console.print(asyncio.run(run()))
    except KibanError as exc:
        _fail(exc.detail)


# -- tenant settings --------------------------------------------------------------------------

async def _with_tenant(lg_code: str, action):
    from kiban.core.registry import service as registry_service
    from kiban.core.tenancy.context import bind_tenant
    from kiban.kit.db import create_engine, make_sessionmaker

    engine = create_engine(get_settings().database_url, pool=False)
    try:
        async with make_sessionmaker(engine)() as session:
            tenant = await registry_service.tenant_for(session, lg_code)
            await bind_tenant(session, tenant)
            result = await action(session, tenant)
            await session.commit()
            return result
    finally:
        await engine.dispose()


@settings_app.command("show")
def settings_show(lg_code: Annotated[str, typer.Argument(help="団体コード")]) -> None:
    """団体に適用される設定と決定元を表示する。"""
    from kiban.core.tenancy import settings_service
    from kiban.kit.errors import KibanError

    async def action(session, tenant):
        return tenant, await settings_service.effective_settings(session, tenant)

    try:
        tenant, effective = asyncio.run(_with_tenant(lg_code, action))
    except KibanError as exc:
        _fail(exc.detail)
    table = Table(title=f"テナント設定: {tenant.name}（{tenant.lg_code}）")
    for column in ("キー", "項目", "値", "決定元"):
        table.add_column(column)
    for s in effective:
        table.add_row(s.definition.key, s.definition.label, s.display, s.source)
    console.print(table)


@settings_app.command("set")
def settings_set(
    lg_code: Annotated[str, typer.Argument(help="団体コード")],
    key: Annotated[str, typer.Argument(help="設定キー（kiban settings show で確認）")],
    value: Annotated[str, typer.Argument(help="値")],
    by: Annotated[str, typer.Option("--by", help="変更者（氏名・所属など。履歴に残ります）")],
    reason: Annotated[str, typer.Option(help="変更の理由")] = "",
) -> None:
    """団体の設定を変更する（変更は版として履歴に残る）。"""
    from kiban.core.tenancy import settings_service
    from kiban.kit.errors import KibanError

    async def action(session, tenant):
        row = await settings_service.set_setting(session, key, value, actor=by, reason=reason)
        return tenant, row.version

    try:
        tenant, version = asyncio.run(_with_tenant(lg_code, action))
    except KibanError as exc:
        _fail(exc.detail)
    console.print(f"[green]{tenant.name} の {key} を「{value}」にしました（第{version}版）。[/]")


@settings_app.command("clear")
def settings_clear(
    lg_code: Annotated[str, typer.Argument(help="団体コード")],
    key: Annotated[str, typer.Argument(help="設定キー")],
    by: Annotated[str, typer.Option("--by", help="変更者")],
    reason: Annotated[str, typer.Option(help="変更の理由")] = "",
) -> None:
    """団体独自の値を取り消し、都道府県・国の値を継承する。"""
    from kiban.core.tenancy import settings_service
    from kiban.kit.errors import KibanError

    async def action(session, tenant):
        return await settings_service.clear_setting(session, key, actor=by, reason=reason)

    try:
        cleared = asyncio.run(_with_tenant(lg_code, action))
    except KibanError as exc:
        _fail(exc.detail)
    console.print("[green]独自の値を取り消しました。[/]" if cleared else "独自の値はありませんでした（変更なし）。")


# -- audit ------------------------------------------------------------------------------------

@audit_app.command("verify")
def audit_verify() -> None:
    """監査ログのハッシュチェーンを検証し、改ざん・削除・並べ替えがあれば場所を示す。"""
    from kiban.core.audit import service as audit_service
    from kiban.core.tenancy.context import unscoped
    from kiban.kit.db import create_engine, make_sessionmaker

    async def run():
        engine = create_engine(get_settings().effective_migration_url, pool=False)
        try:
            async with make_sessionmaker(engine)() as session:
                async with unscoped(session, "監査ログの全件検証（運用者）"):
                    return await audit_service.verify_all(session)
        finally:
            await engine.dispose()

    organisations, entries, problems = asyncio.run(run())
    if not problems:
        console.print(f"[green]✓ 監査ログは完全です[/]（{organisations} 団体・{entries} 件）")
        return
    for problem in problems:
        err.print(f"[bold red]✗[/] 団体 {problem.lg_code}: {problem.message}")
    err.print(f"{organisations} 団体・{entries} 件を検証し、{len(problems)} 件の問題が見つかりました。")
    raise typer.Exit(1)


# -- backup / restore (kiban.ops.backup; docs/backup.md) -------------------------------------

def _backup_passphrase(confirm: bool) -> str:
    from kiban.ops.backup import PASSPHRASE_ENV

    return os.environ.get(PASSPHRASE_ENV) or typer.prompt(
        "パスフレーズ（12文字以上）", hide_input=True, confirmation_prompt=confirm)


@app.command("backup")
def backup_command(
    output: Annotated[str | None, typer.Option("--output", "-o", help="書き出すファイル（省略時は ./kiban-backup-日時.tar）")] = None,
    encrypt: Annotated[bool, typer.Option("--encrypt", help="パスフレーズで暗号化する（環境変数 KIBAN_BACKUP_PASSPHRASE、なければ対話で入力）")] = False,
) -> None:
    """データベースを止めずに、1つのファイルへバックアップする（個人情報を含むので暗号化して保管する）。"""
    from kiban.ops import backup as ops

    url = get_settings().effective_migration_url
    passphrase = _backup_passphrase(confirm=True) if encrypt else None
    console.print(f"バックアップします: {_safe_url(url)}")
    try:
        result = asyncio.run(ops.backup(url, output, passphrase=passphrase))
    except ops.BackupError as exc:
        _fail(exc.message, exc.hint)
    for line in ops.describe_backup(result):
        console.print(line, soft_wrap=True)


@app.command("restore")
def restore_command(
    file: Annotated[str, typer.Argument(help="kiban backup で作ったファイル")],
    force: Annotated[bool, typer.Option("--force", help="復元先が空でなくても、今の中身を消して復元する")] = False,
) -> None:
    """バックアップを空のデータベースへ復元し、行数と全団体の監査ログのハッシュチェーンを検証する。"""
    from kiban.ops import backup as ops

    settings = get_settings()
    url = settings.effective_migration_url
    try:
        passphrase = _backup_passphrase(confirm=False) if ops.is_encrypted(ops.read_manifest(file)) else None
        console.print(f"復元します: {file} → {_safe_url(url)}")
        result = asyncio.run(ops.restore(file, url, force=force, passphrase=passphrase,
                                         app_role=settings.app_db_role, on_stage=lambda s: console.print(f"  {s}…")))
    except ops.BackupError as exc:
        _fail(exc.message, exc.hint)
    out, errors = ops.describe_restore(result)
    for line in out:
        console.print(line, soft_wrap=True)
    for line in errors:
        err.print(line, soft_wrap=True)
    if not result.ok:
        raise typer.Exit(1)


# -- staff ------------------------------------------------------------------------------------

@staff_app.command("create")
def staff_create(
    username: Annotated[str, typer.Argument(help="ユーザー名")],
    lg_code: Annotated[str, typer.Option("--org", help="所属団体のコード")],
    name: Annotated[str, typer.Option("--name", help="氏名（画面と監査ログに表示）")],
    role: Annotated[str, typer.Option(help="admin（団体管理者）/ staff（職員）/ viewer（閲覧者）")] = "staff",
    by: Annotated[str, typer.Option("--by", help="作成者（監査ログに記録）")] = "運用担当",
) -> None:
    """職員アカウントを作る。パスワードは対話で入力し、二要素認証は初回サインイン時に登録する。"""
    from kiban.core.identity import service as identity_service
    from kiban.kit.db import create_engine, make_sessionmaker
    from kiban.kit.errors import KibanError

    password = typer.prompt("パスワード（12文字以上）", hide_input=True, confirmation_prompt=True)

    async def run() -> None:
        engine = create_engine(get_settings().database_url, pool=False)
        try:
            async with make_sessionmaker(engine)() as session:
                await identity_service.create_staff(session, username=username, display_name=name,
                                                    password=password, lg_code=lg_code, role=role,
                                                    granted_by=by)
                await session.commit()
        finally:
            await engine.dispose()

    try:
        asyncio.run(run())
    except KibanError as exc:
        _fail(exc.detail)
    console.print(f"[green]{name}（{username}）を作成しました。[/] 初回サインイン時に二要素認証を登録します。")


# -- development CA and virtual cards ---------------------------------------------------------

def _dev_ca():
    from kiban.core.identity.jpki import dev_ca

    return dev_ca()


@card_app.command("init-ca")
def card_init_ca() -> None:
    """開発用認証局を作る（既にあれば何もしない）。"""
    ca = _dev_ca()
    ca.init()
    console.print(f"開発用認証局: {ca.cert_path}")
    if not get_settings().jpki_dev_ca_enabled:
        console.print("[yellow]注意:[/] 使うには KIBAN_JPKI_DEV_CA_ENABLED=1 を設定してください（本番では設定しないこと）。")


@card_app.command("issue")
def card_issue(name: Annotated[str, typer.Argument(help="仮想カードの名前（例: taro）")]) -> None:
    """仮想カード（利用者証明用電子証明書と秘密鍵）を発行する。"""
    ca = _dev_ca()
    ca.init()
    console.print(f"仮想カードを発行しました: {ca.issue(name)}")


@card_app.command("sign")
def card_sign(name: Annotated[str, typer.Argument(help="仮想カードの名前")],
              challenge: Annotated[str, typer.Argument(help="画面に表示された認証用の文字列")]) -> None:
    """仮想カードで認証用の文字列に署名し、証明書と署名を表示する（画面に貼り付けて使う）。"""
    from kiban.core.identity.devca import load_card

    path = _dev_ca().card_path(name)
    if not path.exists():
        _fail(f"仮想カード「{name}」がありません。", f"kiban card issue {name}")
    card = load_card(path)
    console.print(card.certificate_pem, end="", soft_wrap=True, highlight=False)
    console.print(card.sign(challenge), soft_wrap=True, highlight=False)


@card_app.command("revoke")
def card_revoke(name: Annotated[str, typer.Argument(help="仮想カードの名前")]) -> None:
    """仮想カードの証明書を失効させ、失効リスト（CRL）を更新する。"""
    path = _dev_ca().card_path(name)
    if not path.exists():
        _fail(f"仮想カード「{name}」がありません。")
    serial = _dev_ca().revoke(name)
    console.print(f"失効させました（シリアル番号 {serial:x}）。")


# -- serve / demo / check ---------------------------------------------------------------------

# -- background jobs (core/jobs) --------------------------------------------------------------

jobs_app = typer.Typer(help="背景で進める処理（名簿の取り込みなど）", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


@jobs_app.command("run")
def jobs_run(
    once: Annotated[bool, typer.Option("--once", help="いま進められる処理を終えたら止まる")] = False,
    workers: Annotated[int, typer.Option(help="同時に進める処理の数")] = 1,
    parent: Annotated[int | None, typer.Option(
        help="このプロセス番号の親（kiban serve）がいなくなったら止まる（kiban serve が付ける）")] = None,
    nice: Annotated[int, typer.Option(
        min=0, max=19, help="CPU の優先度をこれだけ下げる（0〜19。画面の応答を先にする。kiban serve が付ける）")] = 0,
) -> None:
    """背景の処理（名簿の取り込みなど）をこのプロセスで進める。kiban serve は自分の横でこれを
    起動する（KIBAN_JOBS_PROCESS）。別のマシンで進めたいときや、serve の各プロセスに進めさせない
    ときに使う（KIBAN_JOBS_KINDS で進める種類を絞れる）。SIGTERM / Ctrl+C では、進めている
    まとまりを終えてから、途中の処理を次に動くプロセスに引き渡して止まる。"""

    import kiban.main  # noqa: F401 - imports every module, so every kind of job is registered
    from kiban.core.jobs.runner import Runner
    from kiban.kit.db import create_engine, make_sessionmaker
    from kiban.ops.jobs_process import parent_gone

    settings = get_settings()
    if workers < 1:
        _fail("同時に進める処理の数（--workers）は1以上で指定してください。")
    if nice:
        os.nice(nice)

    async def run() -> int:
        # A connection per loop and one for the tickers, a few more at peaks: what it adds to a
        # server's PostgreSQL connections is small (docs/production.md, max_connections).
        engine = create_engine(settings.database_url, pool_size=workers + 1, max_overflow=4)
        kinds = [k.strip() for k in settings.jobs_kinds.split(",") if k.strip()] or None
        runner = Runner(make_sessionmaker(engine), concurrency=workers, kinds=kinds,
                        pause_ratio=settings.effective_jobs_pause_ratio)
        try:
            if once:
                ran = await runner.run_until_idle()
                await runner.tick()  # e.g. chain the audit entries recorded as pending
                return ran
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            runner.start()
            console.print("背景の処理を待っています（終了は Ctrl+C。途中の処理は次に動くプロセスが続けます）")
            while not stop.is_set():
                if parent is not None and parent_gone(parent):
                    console.print("起動した kiban serve が終了したため、止まります。")
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 2.0)
            return 0
        finally:
            await runner.stop()
            await engine.dispose()

    ran = asyncio.run(run())
    if once:
        console.print(f"{ran} 件の処理を終えました。")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="待ち受けるアドレス")] = None,
    port: Annotated[int | None, typer.Option(help="ポート番号")] = None,
    workers: Annotated[int, typer.Option(help="ワーカープロセス数（2以上は PostgreSQL と共有状態が必要。docs/production.md）")] = 1,
    forwarded_allow_ips: Annotated[str | None, typer.Option(
        help="X-Forwarded-For を信じるリバースプロキシのアドレス（カンマ区切り。既定は KIBAN_FORWARDED_ALLOW_IPS、127.0.0.1）")] = None,
) -> None:
    """Web サーバーを起動する。"""
    import uvicorn

    settings = get_settings()
    if workers < 1:
        _fail("ワーカー数（--workers）は1以上で指定してください。")
    shared = _serve_shared_state(settings, workers)
    host = host or settings.host
    port = port or settings.port
    proxies = forwarded_allow_ips or settings.forwarded_allow_ips
    console.print(f"[bold green]Kiban を起動しました: http://{host}:{port}/[/]  （終了は Ctrl+C）")
    if workers > 1:
        console.print(f"ワーカー {workers} プロセス。共有状態: {shared}。X-Forwarded-For を信じる相手: {proxies}")
    jobs = _start_jobs_process(settings)
    try:
        uvicorn.run("kiban.main:create_app", factory=True, host=host, port=port, workers=workers,
                    proxy_headers=True, forwarded_allow_ips=proxies,
                    # A worker answers the supervisor's ping only once started; a busy machine can
                    # take longer than uvicorn's 5 s to import Kiban, and the worker was killed.
                    timeout_worker_healthcheck=30,
                    log_level=settings.log_level.lower(), access_log=False)
    finally:
        if jobs is not None:
            jobs.stop()


def _start_jobs_process(settings):
    """With KIBAN_JOBS_PROCESS (the default), the background jobs run in a process of their own
    (ops/jobs_process.py) and the web workers claim none; None when the web workers run them."""
    from kiban.ops.jobs_process import JobsProcess

    if not settings.jobs_process or settings.jobs_workers < 1:
        return None
    jobs = JobsProcess(settings.jobs_workers, nice=0 if settings.is_sqlite else settings.jobs_nice)
    jobs.start()
    # uvicorn hands a SIGTERM it caught back to the handler before it, once it has shut down:
    # by default that ends this process at once, leaving the jobs process to notice alone.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # The web workers (this process with --workers 1, spawned ones otherwise) read their
    # settings from the environment: they keep their tickers and claim no job.
    os.environ["KIBAN_JOBS_WORKERS"] = "0"
    get_settings.cache_clear()
    console.print(f"背景の処理（名簿の取り込みなど）は別のプロセス（{jobs.process.pid}）で進めます。")
    return jobs


def _serve_shared_state(settings, workers: int) -> str:
    """Refuse a topology that would not share what must be shared; the store's label."""
    from kiban.kit.shared import open_shared_state

    try:
        shared = open_shared_state(settings)
    except ValueError as exc:
        _fail(str(exc))
    if workers > 1 and settings.is_sqlite:
        _fail(f"組み込みの SQLite では --workers {workers} は使えません。SQLite に書き込めるのは一度に1プロセスだけで、"
              "ワーカーを増やしても待ち合うだけです（サインインの保護などの共有もこの構成を前提にしていません）。",
              "複数のワーカーには PostgreSQL を使ってください（KIBAN_DATABASE_URL=postgresql+asyncpg://…、docs/production.md）。"
              "SQLite のままなら --workers 1 で起動してください。")
    if workers > 1 and not shared.shared_across_processes:
        _fail(f"KIBAN_SHARED_STATE={settings.shared_state} では、サインインの失敗回数や API キーの利用回数をワーカーごとに"
              f"別々に数えるため、--workers {workers} では {workers} 倍の試行を許してしまいます。",
              "KIBAN_SHARED_STATE を auto（既定: データベース）にするか、KIBAN_REDIS_URL で Redis を指定してください。")
    if shared.kind == "redis":
        try:
            asyncio.run(_ping_and_close(shared))
        except Exception as exc:  # noqa: BLE001 - reported as advice
            cause = exc.__cause__ or exc
            _fail(f"共有状態の Redis に接続できません（{shared.label}）: {type(cause).__name__}: {cause}",
                  "redis-server が起動しているか、KIBAN_REDIS_URL のホスト・ポート・番号を確認してください。")
    if workers > 1 and not settings.secret_key:
        from kiban.kit.secrets import secret_key

        secret_key()  # made once here, before the workers would race to create it
        console.print("[yellow]![/] KIBAN_SECRET_KEY が未設定のため ./var/secret.key を使います。"
                      "本番では KIBAN_SECRET_KEY を設定してください（複数のサーバーでは全台で同じ値）。")
    return shared.label


async def _ping_and_close(shared) -> None:
    try:
        await shared.ping()
    finally:
        await shared.close()


async def _demo_catalog() -> int:
    from kiban.kit.db import create_engine, make_sessionmaker
    from kiban.modules.catalog.demo import load_demo
    from kiban.modules.disaster.demo import load_demo as load_disaster_demo
    from kiban.modules.forms.demo import load_demo as load_forms_demo
    from kiban.modules.reservations.demo import load_demo as load_reservations_demo

    engine = create_engine(get_settings().database_url, pool=False)
    try:
        async with make_sessionmaker(engine)() as session:
            added = await load_demo(session)
            await session.commit()
            added += await load_disaster_demo(session)
            await session.commit()
            added += await load_forms_demo(session)  # 豊田市's shared 粗大ごみ form
            await session.commit()
            for module in ("childcare", "surveys", "governance", "opinions"):
                demo = importlib.import_module(f"kiban.modules.{module}.demo")
                added += await demo.load_demo(session)
                await session.commit()
            added += await load_reservations_demo(session)  # 一宮市's facilities (binds the session to 一宮市: last)
            await session.commit()
            return added
    finally:
        await engine.dispose()


async def _demo_settings() -> None:
    from kiban.core.tenancy import settings_service
    from kiban.core.tenancy.settings_definitions import CHILDCARE_DEADLINE_DAY, CONTACT_DESK

    demo = [
        ("010006", CHILDCARE_DEADLINE_DAY.key, 15, "北海道の方針に合わせる"),
        ("011002", CHILDCARE_DEADLINE_DAY.key, 20, "区役所の受付体制に合わせる"),
        ("011002", CONTACT_DESK.key, "札幌市 デジタル戦略推進局", "問い合わせ先の表示"),
    ]
    for lg_code, key, value, reason in demo:
        async def action(session, tenant, key=key, value=value, reason=reason):
            await settings_service.set_setting(session, key, value, actor=DEMO_AUTHOR, reason=reason)
        await _with_tenant(lg_code, action)


DEMO_PASSWORD = "kiban-demo-password"
#: Who the demo's settings and memberships name as their author: screens show it as it is, so
#: it says in Japanese that the data is invented (the same words the demo's costs carry).
DEMO_AUTHOR = "デモデータ作成（架空）"
DEMO_STAFF = [
    ("demo-sapporo", "札幌 太郎", "011002", "admin"),
    ("demo-sapporo-clerk", "札幌 花子", "011002", "staff"),
    ("demo-hakodate", "函館 次郎", "012025", "admin"),
    ("demo-ichinomiya", "一宮 三郎", "232033", "admin"),
    ("demo-misato", "美郷 四郎", "054348", "admin"),
    ("demo-yamaguchi", "山口 五郎", "350001", "admin"),
    ("demo-digital", "デジタル 六子", "000019", "admin"),
    ("demo-aichi", "愛知 七子", "230006", "admin"),
    ("demo-ishikawa", "石川 八郎", "170003", "admin"),
    ("demo-wajima", "輪島 九子", "172049", "staff"),
    ("demo-kanazawa", "金沢 十郎", "172014", "staff"),
    ("demo-cabinet", "内閣府 防災", "000035", "viewer"),
]


async def _demo_staff() -> list[tuple[str, str, str, str]]:
    """Demo accounts with TOTP enrolled from a secret derived from the deployment key, so the
    demo can print a current code (``kiban staff demo-code``). Idempotent."""
    from kiban.core.identity import service as identity_service
    from kiban.core.identity.repository import StaffRepository
    from kiban.kit.db import create_engine, make_sessionmaker

    engine = create_engine(get_settings().database_url, pool=False)
    made = []
    try:
        async with make_sessionmaker(engine)() as session:
            for username, name, lg_code, role in DEMO_STAFF:
                if await StaffRepository(session).by_username(username) is None:
                    await identity_service.create_staff(
                        session, username=username, display_name=name, password=DEMO_PASSWORD,
                        lg_code=lg_code, role=role, granted_by=DEMO_AUTHOR,
                        totp_secret=_demo_totp_secret(username))
                made.append((username, name, lg_code, role))
            await session.commit()
    finally:
        await engine.dispose()
    return made


def _demo_totp_secret(username: str) -> bytes:
    from kiban.kit.secrets import derived_key

    return derived_key(f"demo-totp:{username}")[:20]


@staff_app.command("demo-code")
def staff_demo_code(username: Annotated[str, typer.Argument(help="デモ用アカウント（demo- で始まる）")]) -> None:
    """デモ用アカウントの現在の確認コード（TOTP）を表示する。実アカウントには使えない。"""
    from kiban.core.identity import credentials

    if not username.startswith("demo-"):
        _fail("確認コードを表示できるのはデモ用アカウント（demo- で始まるもの）だけです。")
    console.print(credentials.totp_code(_demo_totp_secret(username)))


@app.command()
def demo(
    host: Annotated[str | None, typer.Option(help="待ち受けるアドレス")] = None,
    port: Annotated[int | None, typer.Option(help="ポート番号")] = None,
    no_dev_card: Annotated[bool, typer.Option("--no-dev-card", help="開発用認証局（仮想カード）を有効にしない")] = False,
) -> None:
    """移行・登録・デモデータ作成のあと、Web サーバーを起動する。"""
    _upgrade()
    seed()
    asyncio.run(_demo_settings())
    console.print("デモ用のテナント設定（北海道・札幌市）を用意しました。")
    added = asyncio.run(_demo_catalog())
    console.print(f"デモ用の共通サービス利用状況と架空の災害（合成データの被災者）を用意しました（追加 {added} 件）。")
    accounts = asyncio.run(_demo_staff())
    table = Table(title="デモ用の職員アカウント（パスワードはすべて " + DEMO_PASSWORD + "）")
    for column in ("ユーザー名", "氏名", "団体", "役割"):
        table.add_column(column)
    for username, name, lg_code, role in accounts:
        table.add_row(username, name, lg_code, role)
    console.print(table)
    if not no_dev_card:
        # The demo explicitly enables the development CA for this server only.
        os.environ["KIBAN_JPKI_DEV_CA_ENABLED"] = "1"
        get_settings.cache_clear()
        ca = _dev_ca()
        ca.init()
        card = ca.card_path("demo-resident")
        if not card.exists():
            ca.issue("demo-resident")
        console.print(f"住民のサインイン（開発用の仮想カード・本番では無効）: /signin/card で {card} を選びます。")
    console.print("サインイン: /signin → ユーザー名とパスワード → 確認コードは別の端末で "
                  "[bold].venv/bin/kiban staff demo-code demo-sapporo[/] を実行して表示します。")
    _demo_mail_server()
    serve(host=host, port=port, workers=1)


def _demo_mail_server() -> None:
    """Notifications need an SMTP server: unless one is configured, the demo starts a local one
    (aiosmtpd, 127.0.0.1 only) that keeps every message in the Maildir var/demo-mail, so a
    receipt or a booking confirmation can be opened there as a resident would receive it."""
    if get_settings().smtp_host:
        return
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Mailbox

    mail_dir = Path("var/demo-mail").resolve()
    mail_dir.parent.mkdir(parents=True, exist_ok=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        mail_port = probe.getsockname()[1]
    controller = Controller(Mailbox(mail_dir), hostname="127.0.0.1", port=mail_port)
    controller.start()
    os.environ["KIBAN_SMTP_HOST"], os.environ["KIBAN_SMTP_PORT"] = "127.0.0.1", str(mail_port)
    get_settings.cache_clear()
    console.print(f"デモ用のメールサーバー（この端末の中だけ）: 通知のメールは {mail_dir}/new に届きます。")


@app.command()
def check() -> None:
    """設定とデータベースの状態を表示する。問題があれば対処方法も示す。"""
    ok = asyncio.run(_check())
    raise typer.Exit(0 if ok else 1)


async def _check() -> bool:
    from kiban.kit import migrate
    from kiban.kit.db import create_engine

    settings = get_settings()
    console.print(f"データベース: {_safe_url(settings.database_url)}"
                  f"（{'SQLite（組み込み）' if settings.is_sqlite else 'PostgreSQL'}）")
    if settings.migration_database_url:
        console.print(f"移行用: {_safe_url(settings.migration_database_url)}")
    engine = create_engine(settings.database_url, pool=False)
    ok = True
    try:
        async with engine.connect() as connection:
            revision = await connection.run_sync(migrate.current_revision)
            head = migrate.head_revision()
            if revision == head:
                console.print(f"[green]✓[/] 接続できました。移行は最新です（{revision}）。")
            else:
                ok = False
                console.print(f"[red]✗[/] 移行が最新ではありません（現在 {revision or 'なし'}、最新 {head}）。"
                              " [yellow]対処:[/] kiban db upgrade")
            if revision:
                count = (await connection.execute(text("SELECT count(*) FROM organization"))).scalar()
                if count:
                    console.print(f"[green]✓[/] ベース・レジストリ: {count} 団体")
                else:
                    ok = False
                    console.print("[red]✗[/] ベース・レジストリが空です。 [yellow]対処:[/] kiban seed")
            if connection.dialect.name == "postgresql":
                ok = await _check_rls_role(connection) and ok
        ok = await _check_shared_state(settings) and ok
    except Exception as exc:  # noqa: BLE001 - every failure becomes advice
        ok = False
        console.print(f"[red]✗[/] データベースに接続できません: {type(exc).__name__}: {exc}")
        if settings.is_sqlite:
            console.print("[yellow]対処:[/] ./var/ に書き込めるか確認してください。")
        else:
            console.print("[yellow]対処:[/] PostgreSQL が起動しているか（pg_isready -h 127.0.0.1）、"
                          "KIBAN_DATABASE_URL のホスト・ポート・ユーザー・データベース名が正しいか確認してください。")
    finally:
        await engine.dispose()
    return ok


async def _check_shared_state(settings) -> bool:
    """Where the counters every worker must share live (kit/shared.py), and whether it answers."""
    from kiban.kit.shared import open_shared_state

    try:
        shared = open_shared_state(settings)
    except ValueError as exc:
        console.print(f"[red]✗[/] 共有状態: {exc}")
        return False
    try:
        await shared.ping()
    except Exception as exc:  # noqa: BLE001 - every failure becomes advice
        cause = exc.__cause__ or exc
        console.print(f"[red]✗[/] 共有状態: {shared.label} に接続できません（{type(cause).__name__}: {cause}）。"
                      " [yellow]対処:[/] redis-server が起動しているか、KIBAN_REDIS_URL を確認してください。")
        return False
    finally:
        await shared.close()
    if not shared.shared_across_processes:
        console.print(f"[yellow]![/] 共有状態: {shared.label}。kiban serve --workers 1 でだけ使えます。")
    elif settings.is_sqlite:
        console.print(f"[green]✓[/] 共有状態: {shared.label}（SQLite は kiban serve --workers 1 で動かします）")
    else:
        console.print(f"[green]✓[/] 共有状態: {shared.label}。kiban serve --workers N の全ワーカーで共有されます。")
    return True


async def _check_rls_role(connection) -> bool:
    row = (await connection.execute(text(
        "SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"))).one()
    owns = (await connection.execute(text(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user"))).scalar()
    if row.rolsuper or row.rolbypassrls or owns:
        console.print(f"[yellow]![/] 接続ロール {row.rolname} では行レベルセキュリティが効きません"
                      f"（superuser={row.rolsuper}, bypassrls={row.rolbypassrls}, 所有テーブル={owns}）。"
                      " [yellow]対処:[/] kiban db create-app-role を実行し、KIBAN_DATABASE_URL をそのロールに、"
                      "KIBAN_MIGRATION_DATABASE_URL を所有者にしてください。")
        return True  # a warning: development setups often connect as the owner
    console.print(f"[green]✓[/] 接続ロール {row.rolname} には行レベルセキュリティが適用されます。")
    return True


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
