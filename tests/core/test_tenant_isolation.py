"""Tenant A never sees tenant B's rows: through the repository, through the safety net (a bare
ORM query), and on PostgreSQL through row-level security alone (raw SQL as the app role).
Parametrized over every tenant-owned model."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, inspect, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import (
    TenantContextMissing,
    TenantMismatch,
    as_tenant,
    bind_tenant,
    unscoped,
)
from kiban.core.tenancy.models import tenant_owned_models
from kiban.core.tenancy.repository import TenantRepository
from kiban.models import metadata
from tests.factories import APPEND_ONLY, FACTORIES

# Two tenants no browser test commits to (the surveys story commits staff, audit entries and answers
# in 札幌市 and 函館市 to the shared test database, which these row-by-row checks would see).
SAPPORO, HAKODATE = "032018", "032026"  # 盛岡市, 宮古市

MODELS = tenant_owned_models()


def test_every_tenant_owned_model_has_a_factory() -> None:
    assert MODELS, "there should be tenant-owned models"
    missing = [m.__name__ for m in MODELS if m not in FACTORIES]
    assert not missing, f"add a factory in tests/factories.py for {missing}"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__tablename__)
def test_lg_code_is_non_null_indexed_and_leads_every_key(model) -> None:
    table = model.__table__
    assert table.c.lg_code.nullable is False
    assert list(table.primary_key.columns)[0].name == "lg_code"
    for constraint in table.constraints:
        if constraint.__class__.__name__ == "UniqueConstraint":
            assert "lg_code" in constraint.columns, f"{constraint.name} lacks lg_code"
    for index in table.indexes:
        if index.unique:
            assert "lg_code" in index.columns, f"{index.name} lacks lg_code"


def test_every_table_with_lg_code_is_tenant_owned() -> None:
    owned = {m.__tablename__ for m in MODELS}
    with_lg_code = {t.name for t in metadata.sorted_tables if "lg_code" in t.c}
    assert with_lg_code == owned


async def _two_tenants(session: AsyncSession, model):
    sapporo = await registry_service.tenant_for(session, SAPPORO)
    hakodate = await registry_service.tenant_for(session, HAKODATE)
    factory = FACTORIES[model]
    await bind_tenant(session, sapporo)
    session.add(await factory(session, SAPPORO, "sapporo"))
    await session.flush()
    async with as_tenant(session, hakodate):
        session.add(await factory(session, HAKODATE, "hakodate"))
        await session.flush()
    session.expunge_all()
    return sapporo, hakodate


class _Repo(TenantRepository):
    pass


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__tablename__)
async def test_repository_returns_only_the_bound_tenants_rows(session: AsyncSession, model) -> None:
    await _two_tenants(session, model)
    repo = type("Repo", (_Repo,), {"model": model})(session)
    rows = await repo.all(repo.select())
    assert rows and {r.lg_code for r in rows} == {SAPPORO}


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__tablename__)
async def test_safety_net_scopes_a_bare_query_to_the_bound_tenant(session: AsyncSession, model) -> None:
    _, hakodate = await _two_tenants(session, model)
    rows = (await session.scalars(select(model))).all()
    assert rows and {r.lg_code for r in rows} == {SAPPORO}
    # Even asking for the other tenant by name finds nothing.
    assert (await session.scalars(select(model).where(model.lg_code == HAKODATE))).all() == []
    # Counting and bulk changes are scoped too.
    count = (await session.execute(select(func.count()).select_from(model))).scalar_one()
    assert count == len(rows)
    if model not in APPEND_ONLY:
        result = await session.execute(update(model).values(lg_code=model.lg_code))
        assert result.rowcount == len(rows)
        result = await session.execute(delete(model))
        assert result.rowcount == len(rows)
    async with as_tenant(session, hakodate):
        assert len((await session.scalars(select(model))).all()) == 1


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__tablename__)
async def test_safety_net_refuses_a_query_with_no_tenant(session: AsyncSession, model) -> None:
    with pytest.raises(TenantContextMissing):
        await session.scalars(select(model))
    with pytest.raises(TenantContextMissing):
        _Repo.model = model
        _Repo(session)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__tablename__)
async def test_writing_another_tenants_row_is_refused(session: AsyncSession, model) -> None:
    sapporo = await registry_service.tenant_for(session, SAPPORO)
    await bind_tenant(session, sapporo)
    session.add(await FACTORIES[model](session, HAKODATE, "intruder"))
    with pytest.raises(TenantMismatch):
        await session.flush()


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__tablename__)
async def test_unscoped_is_the_one_way_to_see_every_tenant(session: AsyncSession, model) -> None:
    await _two_tenants(session, model)
    async with unscoped(session, "test: national aggregate"):
        codes = {r.lg_code for r in (await session.scalars(select(model))).all()}
    assert {SAPPORO, HAKODATE} <= codes


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__tablename__)
async def test_row_level_security_alone_hides_other_tenants(session: AsyncSession, model, test_database) -> None:
    if not test_database.is_postgres:
        pytest.skip("row-level security exists on PostgreSQL only")
    await _two_tenants(session, model)
    table = model.__tablename__
    connection = await session.connection()
    role = (await connection.execute(text("SELECT current_user"))).scalar()
    assert role == "kiban_app", "the suite must connect as the application role"

    async def visible(lg_code: str, unscoped_flag: str = "") -> set[str]:
        await connection.execute(text("SELECT set_config('kiban.lg_code', :c, true), "
                                      "set_config('kiban.unscoped', :u, true)"),
                                 {"c": lg_code, "u": unscoped_flag})
        rows = await connection.execute(text(f'SELECT lg_code FROM "{table}"'))
        return {r[0] for r in rows}

    assert await visible(SAPPORO) == {SAPPORO}
    assert await visible(HAKODATE) == {HAKODATE}
    assert await visible("") == set(), "no tenant set: RLS must fail closed"
    assert {SAPPORO, HAKODATE} <= await visible("", "on")
    # Writing a row for another tenant is refused by the policy's WITH CHECK.
    await connection.execute(text("SELECT set_config('kiban.lg_code', :c, true), set_config('kiban.unscoped', '', true)"),
                             {"c": SAPPORO})
    columns = [c.name for c in inspect(model).columns if c.name != "lg_code"]
    nested = await connection.begin_nested()
    with pytest.raises(Exception, match="row-level security"):
        await connection.execute(text(
            f'INSERT INTO "{table}" (lg_code, {", ".join(columns)}) '
            f'SELECT :other, {", ".join(columns)} FROM "{table}" LIMIT 1'), {"other": HAKODATE})
    await nested.rollback()


async def test_app_role_neither_owns_tables_nor_bypasses_rls(session: AsyncSession, test_database) -> None:
    if not test_database.is_postgres:
        pytest.skip("PostgreSQL only")
    connection = await session.connection()
    row = (await connection.execute(text(
        "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"))).one()
    assert (row.rolsuper, row.rolbypassrls) == (False, False)
    owned = (await connection.execute(text(
        "SELECT count(*) FROM pg_tables WHERE schemaname='public' AND tableowner = current_user"))).scalar()
    assert owned == 0
    for model in MODELS:
        enabled = (await connection.execute(text(
            "SELECT relrowsecurity FROM pg_class WHERE relname = :t"), {"t": model.__tablename__})).scalar()
        assert enabled, f"RLS is not enabled on {model.__tablename__}"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__tablename__)
async def test_core_query_on_a_tenant_table_is_refused_even_with_a_tenant(session: AsyncSession, model) -> None:
    await _two_tenants(session, model)
    with pytest.raises(TenantContextMissing, match="Core"):
        await session.execute(select(model.__table__))
    async with unscoped(session, "test: operator tooling"):
        rows = (await session.execute(select(model.__table__))).all()
    assert {SAPPORO, HAKODATE} <= {r.lg_code for r in rows}
