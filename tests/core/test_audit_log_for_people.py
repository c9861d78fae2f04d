"""The audit log as administrators read it: actions in Japanese, actors and targets by name,
filters by period, person, action and result, paging; sign-ins and failed sign-ins in the
account's own organisation's log, with nothing an anonymous visitor typed; a CSV with real
date-time values, Japanese labels and no cell that a spreadsheet would run as a formula."""

from __future__ import annotations

import ast
import csv
import io
import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

import kiban
from kiban.core.audit import service as audit
from kiban.core.audit.labels import ACTION_LABELS, action_label
from kiban.core.audit.models import AuditEntry
from kiban.core.identity import credentials
from kiban.core.identity import service as identity_service
from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import as_tenant, unscoped
from kiban.kit.db import utcnow
from kiban.kit.wareki import JST
from tests.conftest import password_step
from tests.factories import DIGITAL_AGENCY, HAKODATE, SAPPORO

PASSWORD = "correct horse battery staple"
SRC = Path(kiban.__file__).parent


# -- every action code in the code base has a Japanese label ---------------------------------

# Action codes built at run time: the f-string as written, and every value it can take.
DYNAMIC_ACTIONS = {
    "disaster.match.{decision}": ("confirmed", "rejected", "auto"),  # service.decide accepts these
}


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[list[str], dict[str, ast.expr]]:
    """Positional parameter names, and the default of every parameter that has one."""
    positional = [a.arg for a in fn.args.posonlyargs + fn.args.args]
    defaults = dict(zip(positional[len(positional) - len(fn.args.defaults):], fn.args.defaults, strict=True))
    defaults.update({a.arg: d for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults, strict=True) if d is not None})
    return positional, defaults


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        # ``x.record(...)`` is the audit log's only as ``audit.record``; other names are ours.
        if call.func.attr == "record" and not (isinstance(call.func.value, ast.Name) and call.func.value.id == "audit"):
            return None
        return call.func.attr
    return None


def _action_argument(call: ast.Call, name: str, index: int | None) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    if index is not None and index < len(call.args):
        return call.args[index]
    return None


def _audit_action_codes() -> tuple[set[str], list[str]]:
    """Every action code that reaches ``audit.record`` from ``src/``, following helpers that
    pass the action on (``_audit_sign_in``, ``audit_reads(..., what=...)``), and the places
    whose action the walk cannot work out (each must be handled here, never skipped)."""
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in sorted(SRC.rglob("*.py"))}
    functions = [(path, node) for path, tree in trees.items() for node in ast.walk(tree)
                 if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
    # audit.record(session, actor, action), audit.record_many(session, actor, action, targets) and
    # audit.record_pending(session, actor, action, owned)
    recorders: dict[str, tuple[str, int | None]] = {"record": ("action", 2), "record_many": ("action", 2),
                                                    "record_pending": ("action", 2)}
    forwarded: set[tuple[Path, int]] = set()
    changed = True
    while changed:  # a helper that passes its parameter on as the action is a recorder too
        changed = False
        for path, fn in functions:
            positional, _ = _params(fn)
            names = positional + [a.arg for a in fn.args.kwonlyargs]
            for call in (n for n in ast.walk(fn) if isinstance(n, ast.Call)):
                called = _called_name(call)
                if called not in recorders or fn.name in recorders or fn.name == called:
                    continue
                argument = _action_argument(call, *recorders[called])
                if isinstance(argument, ast.Name) and argument.id in names:
                    index = positional.index(argument.id) if argument.id in positional else None
                    recorders[fn.name] = (argument.id, index)
                    forwarded.add((path, call.lineno))
                    changed = True
    codes: set[str] = set()
    unresolved: list[str] = []

    def resolve(expr: ast.expr | None, where: str) -> None:
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            codes.add(expr.value)
        elif isinstance(expr, ast.IfExp):
            resolve(expr.body, where)
            resolve(expr.orelse, where)
        elif isinstance(expr, ast.JoinedStr):
            written = "".join(v.value if isinstance(v, ast.Constant) else "{" + ast.unparse(v.value) + "}"
                              for v in expr.values)
            if written in DYNAMIC_ACTIONS:
                codes.update(written.replace("{" + written.split("{")[1].split("}")[0] + "}", value)
                             for value in DYNAMIC_ACTIONS[written])
            else:
                unresolved.append(f"{where}: f\"{written}\" (list its values in DYNAMIC_ACTIONS)")
        else:
            unresolved.append(f"{where}: {ast.unparse(expr) if expr is not None else 'no action argument'}")

    with_default: set[str] = set()
    for path, fn in functions:
        positional, defaults = _params(fn)
        if fn.name in recorders and fn.name != "record" and recorders[fn.name][0] in defaults:
            with_default.add(fn.name)
            resolve(defaults[recorders[fn.name][0]], f"{path.relative_to(SRC)}:{fn.lineno}")
    for path, tree in trees.items():
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            called = _called_name(call)
            if called not in recorders or (path, call.lineno) in forwarded:
                continue
            if path.name == "service.py" and path.parent.name == "audit":
                continue  # the recorder itself
            argument = _action_argument(call, *recorders[called])
            if argument is None and called in with_default:
                continue  # the helper's default, resolved above
            resolve(argument, f"{path.relative_to(SRC)}:{call.lineno}")
    return codes, unresolved


def test_every_audit_action_in_the_code_base_has_a_japanese_label() -> None:
    codes, unresolved = _audit_action_codes()
    assert unresolved == [], "actions the walk cannot read; make them literals or list them here"
    # The walk itself must work: these are written in different ways (literal, conditional,
    # helper default, helper argument, f-string).
    assert {"identity.membership.revoked", "tenancy.setting.cleared", "disaster.record.read",
            "disaster.record.match_viewed", "identity.staff.sign_in", "disaster.match.confirmed"} <= codes
    missing = sorted(code for code in codes if code not in ACTION_LABELS)
    assert missing == [], f"add Japanese labels to kiban/core/audit/labels.py: {missing}"
    for code in codes:
        label = ACTION_LABELS[code]
        assert label and not re.search(r"[a-z_]\.[a-z_]", label), (code, label)


def test_the_label_table_is_importable_for_other_pages() -> None:
    """「わたしの情報の利用記録」 and any other page use the same words."""
    assert action_label("identity.membership.revoked") == "職員の利用停止"
    assert action_label("disaster.record.read") == "被災者の記録の閲覧（他団体）"
    assert action_label("no.such.code") == "その他の操作"  # never the code itself
    from kiban.core.audit import web  # noqa: F401 - registers the template filter
    from kiban.kit.templating import templates

    assert templates.env.from_string("{{ 'identity.membership.revoked' | action_label }}").render() == "職員の利用停止"


# -- helpers -----------------------------------------------------------------------------------

def _visible(html: str) -> str:
    """The text a person sees: no tags, no attribute values (option values may hold codes)."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _rows(html: str) -> list[str]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in html else ""
    return [_visible(row) for row in body.split("<tr>")[1:]]


async def _account(session, lg_code=SAPPORO, name="札幌 次郎") -> tuple[str, str, bytes]:
    username = f"people-{uuid.uuid4().hex[:8]}"
    secret = credentials.new_totp_secret()
    principal = await identity_service.create_staff(session, username=username, display_name=name, password=PASSWORD,
                                                    lg_code=lg_code, role="staff", granted_by="test",
                                                    totp_secret=secret)
    await session.commit()
    return username, principal.id, secret


async def _entries(session, lg_code: str, **where) -> list[AuditEntry]:
    tenant = await registry_service.tenant_for(session, lg_code)
    async with as_tenant(session, tenant):
        statement = select(AuditEntry).order_by(AuditEntry.seq)
        for column, value in where.items():
            statement = statement.where(getattr(AuditEntry, column) == value)
        return list((await session.scalars(statement)).all())


# -- the page ----------------------------------------------------------------------------------

async def test_the_log_shows_actions_actors_and_targets_by_name_in_japanese(session, staff) -> None:
    admin = await staff(SAPPORO, "admin", name="札幌 管理者")
    _, clerk_id, _ = await _account(session, name="札幌 停止される人")
    tenant = await registry_service.tenant_for(session, SAPPORO)
    async with as_tenant(session, tenant):
        from kiban.core.identity.models import Principal

        actor_principal = await session.get(Principal, admin.principal_id)
        await identity_service.revoke_membership(session, audit.Actor("staff", actor_principal.display_name,
                                                                      admin.principal_id), clerk_id)
    await session.commit()
    page = await admin.client.get(f"/t/{SAPPORO}/audit", params={"actor": admin.principal_id})
    assert page.status_code == 200
    text = _visible(page.text)
    assert "identity." not in text and "principal" not in text and clerk_id not in text
    revoked = next(row for row in _rows(page.text) if "職員の利用停止" in row)
    assert "札幌 管理者" in revoked and "札幌 停止される人" in revoked
    signed_in = next(row for row in _rows(page.text) if "職員のサインイン" in row)
    assert "成功" in signed_in
    # 函館市's administrators see none of it, and the page is theirs only.
    assert (await admin.client.get(f"/t/{HAKODATE}/audit")).status_code == 404


async def test_a_failed_sign_in_is_in_the_log_of_the_accounts_organisation(session, staff, new_client) -> None:
    admin = await staff(SAPPORO, "admin")
    username, principal_id, _ = await _account(session, name="札幌 失敗する人")
    before_hakodate = len(await _entries(session, HAKODATE))
    refused = await password_step(new_client(), username, "not the password!!")
    assert refused.status_code == 401
    page = await admin.client.get(f"/t/{SAPPORO}/audit", params={"actor": principal_id, "outcome": "failure"})
    rows = _rows(page.text)
    assert len(rows) == 1
    assert "職員のサインイン" in rows[0] and "失敗" in rows[0] and "札幌 失敗する人" in rows[0]
    assert "パスワードの誤り" in rows[0]
    assert len(await _entries(session, HAKODATE)) == before_hakodate


async def test_unknown_user_names_are_written_to_no_log(session, new_client) -> None:
    """An anonymous visitor must not be able to put text of their choosing (here a spreadsheet
    formula) into any organisation's log; an existing name's failures go to its own log."""
    typed = f'=HYPERLINK("http://evil.example/{uuid.uuid4().hex[:6]}","x")'
    refused = await password_step(new_client(), typed, PASSWORD)
    assert refused.status_code == 401
    async with unscoped(session, "test: every log"):
        entries = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "identity.staff.sign_in",
                                                                  AuditEntry.outcome == "failure"))).all()
    assert entries, "the failed attempt is still counted on the platform's log"
    assert not [e for e in entries if "evil.example" in e.actor_label or "evil.example" in str(e.details)]
    platform = await _entries(session, DIGITAL_AGENCY, action="identity.staff.sign_in", outcome="failure")
    assert platform[-1].details.get("reason") == "unknown_user" and platform[-1].actor_id is None


async def test_filters_by_period_actor_action_and_result(session, staff) -> None:
    admin = await staff(SAPPORO, "admin", name="札幌 絞り込み")
    url = f"/t/{SAPPORO}/audit"
    today = utcnow().astimezone(JST).date()
    mine = {"actor": admin.principal_id}
    everything = _rows((await admin.client.get(url, params=mine)).text)
    assert everything and all("札幌 絞り込み" in row for row in everything)
    by_action = _rows((await admin.client.get(url, params={**mine, "action": "identity.staff.sign_in"})).text)
    assert by_action and all("職員のサインイン" in row for row in by_action)
    assert len(by_action) < len(everything) or all("職員のサインイン" in row for row in everything)
    assert _rows((await admin.client.get(url, params={**mine, "outcome": "failure"})).text) == []
    # Period: dates are days in Japan, both ends included; full-width digits are fine.
    full_width = str(today).translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    assert len(_rows((await admin.client.get(url, params={**mine, "since": full_width, "until": str(today)})).text)) \
        == len(everything)
    tomorrow = today + timedelta(days=1)
    empty = await admin.client.get(url, params={**mine, "since": str(tomorrow)})
    assert _rows(empty.text) == [] and "条件に合う記録はありません" in empty.text
    assert _rows((await admin.client.get(url, params={**mine, "until": str(today - timedelta(days=1))})).text) == []


async def test_bad_filters_are_all_explained_and_what_was_typed_is_kept(staff) -> None:
    admin = await staff(SAPPORO, "admin")
    page = await admin.client.get(f"/t/{SAPPORO}/audit", params={
        "since": "2026-13-45", "until": "きのう", "action": "identity.nothing", "outcome": "maybe"})
    assert page.status_code == 422
    text = _visible(page.text)
    assert "開始日は「2026-04-01」のように" in text and "終了日は「2026-04-30」のように" in text
    assert "操作は一覧から選んでください" in text and "結果は一覧から選んでください" in text
    assert 'value="2026-13-45"' in page.text and 'value="きのう"' in page.text
    reversed_period = await admin.client.get(f"/t/{SAPPORO}/audit", params={"since": "2026-05-01", "until": "2026-04-01"})
    assert reversed_period.status_code == 422 and "終了日は開始日と同じか" in reversed_period.text


async def test_the_log_pages_through_entries_and_keeps_the_filter(session, staff) -> None:
    admin = await staff(SAPPORO, "admin", name="札幌 頁送り")
    robot = audit.Actor("system", "一括処理（試験）", str(uuid.uuid4()))
    tenant = await registry_service.tenant_for(session, SAPPORO)
    async with as_tenant(session, tenant):
        for i in range(60):
            await audit.record(session, robot, "tenancy.setting.updated", target_type="tenant_setting",
                               target_id="childcare.application_deadline_day", details={"value": i})
    await session.commit()
    first = await admin.client.get(f"/t/{SAPPORO}/audit", params={"actor": robot.id})
    assert len(_rows(first.text)) == 50
    assert "60 件中 1〜50 件目" in _visible(first.text)
    assert "テナント設定の変更" in _rows(first.text)[0]
    assert f"actor={robot.id}" in first.text and "page=2" in first.text
    second = await admin.client.get(f"/t/{SAPPORO}/audit", params={"actor": robot.id, "page": 2})
    assert len(_rows(second.text)) == 10 and "60 件中 51〜60 件目" in _visible(second.text)
    seqs = [int(row.split()[0]) for row in _rows(first.text) + _rows(second.text)]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 60


# -- the CSV -----------------------------------------------------------------------------------

async def test_the_csv_has_date_times_japanese_labels_and_no_formulas(session, staff) -> None:
    admin = await staff(SAPPORO, "admin", name="=1+2 札幌")  # a name a spreadsheet would compute
    export = await admin.client.get(f"/t/{SAPPORO}/audit.csv", params={"actor": admin.principal_id})
    assert export.status_code == 200 and export.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(export.content.decode("utf-8-sig"))))
    header, body = rows[0], rows[1:]
    assert header[:6] == ["番号", "日時（日本時間）", "操作者", "操作者の種別", "操作", "結果"]
    assert body and all(re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", row[1]) for row in body)
    sign_in = next(row for row in body if row[4] == "職員のサインイン")
    assert sign_in[2] == "'=1+2 札幌" and sign_in[3] == "職員" and sign_in[5] == "成功"
    assert sign_in[6] == "職員" and sign_in[7] == "'=1+2 札幌"
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in body for cell in row)
    assert not any(re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", cell) for row in body for cell in row[2:9])
    # The export is itself recorded.
    exported = await _entries(session, SAPPORO, action="audit.log.exported", actor_id=admin.principal_id)
    assert len(exported) == 1


@pytest.mark.parametrize("since", ["2026/4/1", "２０２６年４月１日", "20260401"])
def test_dates_are_read_as_people_write_them(since) -> None:
    from kiban.core.audit.web import _parse_day

    assert str(_parse_day(since)) == "2026-04-01"
