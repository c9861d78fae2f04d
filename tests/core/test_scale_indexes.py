"""The audit log's pages at national scale (migration 0020, docs/scaling.md): a page is found in
an index led by lg_code whatever its depth, and the filter form's choices by skipping through an
index; the answers are those of the plain queries they replace, and the plans use the indexes."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import inspect, select, text

from kiban.core.audit import service as audit
from kiban.core.audit.models import AuditEntry
from kiban.core.audit.service import AuditFilter, AuditRepository
from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import as_tenant
from kiban.kit.db import utcnow
from tests.factories import HAKODATE, SAPPORO

ACTIONS = ("identity.staff.sign_in", "tenancy.setting.updated", "catalog.adoption.saved", "audit.log.exported")


async def _write_chains(session) -> tuple[list[audit.Actor], audit.Actor]:
    """About a hundred entries in 札幌市's chain (staff, a renamed clerk, a failed sign-in of a known
    account, residents and a business) and a few in 函館市's, which must never show."""
    clerk_id = str(uuid.uuid4())
    staff = [audit.Actor("staff", "札幌 一郎", str(uuid.uuid4())), audit.Actor("staff", "札幌 旧姓", clerk_id),
             audit.Actor("api_client", "庁内連携", uuid.uuid4().hex)]
    renamed = audit.Actor("staff", "札幌 新姓", clerk_id)
    residents = [audit.Actor("resident", "住民（本人）", str(uuid.uuid4())) for _ in range(5)]
    business = audit.Actor("business", "事業者（GビズID）", str(uuid.uuid4()))
    sapporo = await registry_service.tenant_for(session, SAPPORO)
    async with as_tenant(session, sapporo):
        for i in range(96):
            if i % 7 == 3:
                actor = residents[i % 5]
            elif i % 11 == 5:
                actor = business
            elif i % 13 == 6:
                actor = audit.Actor("anonymous", "札幌 一郎", staff[0].id)  # a wrong password for a known name
            else:
                actor = staff[i % 3]
            await audit.record(session, actor, ACTIONS[i % 4], outcome="failure" if i % 5 == 0 else "success",
                               details={"i": i})
        await audit.record(session, renamed, "tenancy.setting.updated")
    hakodate = await registry_service.tenant_for(session, HAKODATE)
    async with as_tenant(session, hakodate):
        for i in range(5):
            await audit.record(session, audit.Actor("staff", "函館 職員", str(uuid.uuid4())), "identity.staff.sign_in",
                               details={"i": i})
    await session.flush()
    return staff, renamed


async def _all_entries(session, lg_code: str) -> list[AuditEntry]:
    return list((await session.scalars(select(AuditEntry).where(AuditEntry.lg_code == lg_code)
                                       .order_by(AuditEntry.seq.desc()))).all())


def _matches(entry: AuditEntry, where: AuditFilter) -> bool:
    return ((where.since is None or entry.occurred_at >= where.since)
            and (where.until is None or entry.occurred_at < where.until)
            and (not where.actor_id or (entry.actor_id == where.actor_id and entry.actor_kind not in ("resident", "business")))
            and (not where.action or entry.action == where.action)
            and (not where.outcome or entry.outcome == where.outcome))


async def test_pages_and_counts_are_those_of_the_plain_query(session) -> None:
    staff, _ = await _write_chains(session)
    tenant = await registry_service.tenant_for(session, SAPPORO)
    async with as_tenant(session, tenant):
        everything = await _all_entries(session, SAPPORO)
        repo = AuditRepository(session)
        now = utcnow()
        filters = [AuditFilter(), AuditFilter(action="tenancy.setting.updated"), AuditFilter(actor_id=staff[0].id),
                   AuditFilter(outcome="failure"), AuditFilter(action="identity.staff.sign_in", outcome="success"),
                   AuditFilter(since=now - timedelta(hours=1), until=now + timedelta(hours=1), action="audit.log.exported"),
                   AuditFilter(since=now + timedelta(days=1))]
        for where in filters:
            expected = [e.seq for e in everything if _matches(e, where)]
            assert await repo.count_matching(where) == len(expected), where
            for offset in (0, 10, len(expected) - 3, len(expected) + 5):
                page = await repo.recent(limit=10, offset=max(offset, 0), where=where)
                assert [e.seq for e in page] == expected[max(offset, 0):max(offset, 0) + 10], (where, offset)
        # The actor filter counts a known account's failed sign-ins (recorded as anonymous) as theirs.
        assert any(e.actor_kind == "anonymous" for e in await repo.recent(limit=100, where=AuditFilter(actor_id=staff[0].id)))


async def test_the_filter_choices_are_the_distinct_values_and_named_actors_with_their_latest_label(session) -> None:
    staff, renamed = await _write_chains(session)
    tenant = await registry_service.tenant_for(session, SAPPORO)
    async with as_tenant(session, tenant):
        everything = await _all_entries(session, SAPPORO)
        repo = AuditRepository(session)
        assert await repo.actions() == sorted({e.action for e in everything})
        actors = dict(await repo.actors())
    assert actors[renamed.id] == "札幌 新姓"
    assert actors[staff[0].id] == "札幌 一郎" and staff[2].id in actors
    named = {e.actor_id for e in everything if e.actor_id and e.actor_kind not in ("resident", "business")}
    assert set(actors) == named
    assert not {e.actor_id for e in everything if e.actor_kind in ("resident", "business")} & set(actors)
    assert "函館 職員" not in actors.values()


async def test_every_audit_index_but_the_residents_own_leads_with_lg_code(session) -> None:
    connection = await session.connection()
    indexes = await connection.run_sync(lambda c: inspect(c).get_indexes("audit_entry"))
    names = {ix["name"]: ix["column_names"] for ix in indexes}
    assert {"ix_audit_entry_lg_code_action_seq", "ix_audit_entry_lg_code_outcome_seq",
            "ix_audit_entry_lg_code_named_actor", "ix_audit_entry_lg_code_occurred_at"} <= set(names)
    assert "ix_audit_entry_actor_id" not in names and "ix_audit_entry_lg_code_action" not in names
    # 「わたしの情報の利用記録」 reads one person's entries across every organisation by design.
    assert all(columns[0] == "lg_code" for name, columns in names.items() if name != "ix_audit_entry_subject_id")


async def _plan(session, statement) -> str:
    """SQLite's plan (its planner picks an index by rule, so a test can ask which). PostgreSQL's
    planner costs the choice from statistics, and on a test's handful of rows any index, or none,
    is as good: its plans are checked on national-scale data (bench/national_pages.py --explain,
    docs/scaling.md)."""
    connection = await session.connection()
    if connection.dialect.name != "sqlite":
        pytest.skip("plans by rule: SQLite only (PostgreSQL: bench/national_pages.py --explain)")
    sql = str(statement.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    rows = (await connection.execute(text("EXPLAIN QUERY PLAN " + sql))).all()
    return "\n".join(str(r[-1]) for r in rows)


@pytest.mark.parametrize(("where", "index"), [
    (AuditFilter(action="tenancy.setting.updated"), "ix_audit_entry_lg_code_action_seq"),
    (AuditFilter(outcome="failure"), "ix_audit_entry_lg_code_outcome_seq"),
    (AuditFilter(actor_id="00000000-0000-4000-8000-000000000000"), "ix_audit_entry_lg_code_named_actor"),
])
async def test_a_filtered_page_is_found_in_its_index(session, where, index) -> None:
    tenant = await registry_service.tenant_for(session, SAPPORO)
    async with as_tenant(session, tenant):
        plan = await _plan(session, AuditRepository(session).page_of_sequence_numbers(50, 5000, where))
    assert index in plan, plan
    assert not re.search(r"SCAN audit_entry(?! USING)", plan), plan


@pytest.mark.parametrize(("choices", "index"), [("actions", "ix_audit_entry_lg_code_action_seq"),
                                                ("actors", "ix_audit_entry_lg_code_named_actor")])
async def test_the_filter_choices_skip_through_an_index(session, choices, index) -> None:
    tenant = await registry_service.tenant_for(session, SAPPORO)
    async with as_tenant(session, tenant):
        repo = AuditRepository(session)
        statement = repo.latest_of_each_action() if choices == "actions" else repo.latest_of_each_actor()
        plan = await _plan(session, statement)
    assert index in plan, plan
    assert "(lg_code=? AND seq=?)" in plan, plan  # each value's latest entry, by primary key
    assert not re.search(r"SCAN audit_entry(?! USING)", plan), plan


async def test_record_many_appends_a_whole_page_of_reads_with_a_few_statements(session) -> None:
    from sqlalchemy import event

    tenant = await registry_service.tenant_for(session, HAKODATE)
    reader = audit.Actor("staff", "札幌 閲覧者", str(uuid.uuid4()))
    targets = [audit.Target("victim_record", str(uuid.uuid4()), subject_id=str(uuid.uuid4()) if i % 3 else None)
               for i in range(30)]
    async with as_tenant(session, tenant):
        await audit.record(session, reader, "disaster.record.read", target_type="victim_record", target_id="before")
        await session.flush()
    statements: list[str] = []
    engine = (await session.connection()).engine.sync_engine

    def count(conn, cursor, statement, *args) -> None:  # noqa: ARG001
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        made = await audit.record_many(session, reader, "disaster.record.read", targets, purpose="援護",
                                       legal_basis="第90条の4", details={"reader": SAPPORO}, tenant=tenant)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    writes = [s for s in statements if not s.lstrip().upper().startswith("SELECT SET_CONFIG")]
    assert len(writes) <= 4, writes  # advance the head, insert the rows, set the head's hash
    async with as_tenant(session, tenant):
        await audit.record(session, reader, "disaster.record.read", target_type="victim_record", target_id="after")
        chain = await _all_entries(session, HAKODATE)
        checked, problems = await audit.verify_chain(session, HAKODATE)
    assert problems == [] and checked == len(chain)
    assert [e.target_id for e in chain[:32]][::-1] == ["before", *(t.id for t in targets), "after"]
    assert [e.seq for e in made] == list(range(made[0].seq, made[0].seq + 30))
    assert all(e.purpose == "援護" and e.details == {"reader": SAPPORO} for e in made)
    assert [e.subject_id for e in made] == [t.subject_id for t in targets]
