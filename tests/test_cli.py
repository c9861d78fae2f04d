"""The kiban command as an operator uses it (SQLite file in a temp folder)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from kiban.cli import app
from kiban.kit.settings import get_settings


@pytest.fixture
def kiban(tmp_path, monkeypatch):
    monkeypatch.setenv("KIBAN_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.sqlite3'}")
    monkeypatch.delenv("KIBAN_MIGRATION_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    yield run
    get_settings.cache_clear()


def test_check_before_migrating_says_what_to_do(kiban) -> None:
    result = kiban("check")
    assert result.exit_code == 1
    assert "kiban db upgrade" in result.output


def test_upgrade_seed_twice_and_check(kiban) -> None:
    assert kiban("db", "upgrade").exit_code == 0
    first = kiban("seed")
    assert first.exit_code == 0 and "追加 1974" in first.output
    second = kiban("seed")
    assert second.exit_code == 0 and "追加 0・更新 0・変更なし 1974" in second.output
    check = kiban("check")
    assert check.exit_code == 0 and "1974 団体" in check.output


def test_settings_set_show_and_clear(kiban) -> None:
    kiban("db", "upgrade")
    kiban("seed")
    result = kiban("settings", "set", "011002", "childcare.application_deadline_day", "20", "--by", "山田")
    assert result.exit_code == 0 and "第1版" in result.output
    shown = kiban("settings", "show", "011002")
    assert "この団体の設定" in shown.output and "20" in shown.output
    bad = kiban("settings", "set", "011002", "childcare.application_deadline_day", "99", "--by", "山田")
    assert bad.exit_code == 1 and "28以下" in bad.output
    assert "取り消しました" in kiban("settings", "clear", "011002", "childcare.application_deadline_day", "--by", "山田").output


def test_merge_reports_the_successor_and_refuses_bad_input(kiban) -> None:
    kiban("db", "upgrade")
    kiban("seed")
    assert "日付" in kiban("registry", "merge", "012360", "--into", "012025", "--on", "2027/04/01").output
    assert "検査数字" in kiban("registry", "merge", "012361", "--into", "012025", "--on", "2027-04-01").output
    merged = kiban("registry", "merge", "012360", "--into", "012025", "--on", "2027-04-01", "--reason", "編入")
    assert merged.exit_code == 0 and "函館市（012025）" in merged.output


def test_check_explains_an_unreachable_postgresql(monkeypatch) -> None:
    monkeypatch.setenv("KIBAN_DATABASE_URL", "postgresql+asyncpg://nobody@127.0.0.1:1/kiban")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["check"], catch_exceptions=False)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "PostgreSQL が起動しているか" in result.output
