"""テナント設定: municipality over prefecture over national default, every change versioned."""

from __future__ import annotations

import pytest

from kiban.core.registry import service as registry_service
from kiban.core.tenancy import settings_service
from kiban.core.tenancy.context import as_tenant, bind_tenant
from kiban.core.tenancy.settings_definitions import CHILDCARE_DEADLINE_DAY, SMALL_CELL_THRESHOLD
from kiban.kit.errors import Conflict, InvalidInput, NotFound
from tests.factories import HAKODATE, HOKKAIDO, ICHINOMIYA, SAPPORO

KEY = CHILDCARE_DEADLINE_DAY.key


async def _set(session, lg_code, key, value, actor="担当者A", **kwargs):
    tenant = await registry_service.tenant_for(session, lg_code)
    async with as_tenant(session, tenant):
        return await settings_service.set_setting(session, key, value, actor=actor, **kwargs)


async def _effective(client, lg_code, key=KEY) -> dict:
    response = await client.get(f"/api/v1/t/{lg_code}/settings")
    assert response.status_code == 200, response.text
    return next(item for item in response.json()["items"] if item["key"] == key)


async def test_national_default_applies_when_nobody_decided(client) -> None:
    item = await _effective(client, SAPPORO)
    assert (item["value"], item["source"], item["source_code"]) == (10, "国の既定値", None)


async def test_prefecture_value_overrides_national_default_for_its_municipalities(client, session) -> None:
    await _set(session, HOKKAIDO, KEY, 15)
    await session.commit()
    for code in (SAPPORO, HAKODATE):
        item = await _effective(client, code)
        assert (item["value"], item["source"], item["source_code"]) == (15, "都道府県の設定", HOKKAIDO)
    other_prefecture = await _effective(client, ICHINOMIYA)
    assert other_prefecture["value"] == 10


async def test_municipal_value_overrides_its_prefecture(client, session) -> None:
    await _set(session, HOKKAIDO, KEY, 15)
    await _set(session, SAPPORO, KEY, 20)
    await session.commit()
    sapporo = await _effective(client, SAPPORO)
    assert (sapporo["value"], sapporo["source"], sapporo["version"]) == (20, "この団体の設定", 1)
    assert (await _effective(client, HAKODATE))["value"] == 15


async def test_changes_are_versioned_with_who_when_old_and_new(client, session, staff) -> None:
    admin = await staff(SAPPORO, "admin")
    await _set(session, SAPPORO, KEY, 20, actor="札幌 太郎", reason="区役所の体制")
    await _set(session, SAPPORO, KEY, 12, actor="札幌 花子")
    tenant = await registry_service.tenant_for(session, SAPPORO)
    async with as_tenant(session, tenant):
        assert await settings_service.clear_setting(session, KEY, actor="札幌 次郎", reason="道に合わせる")
    await session.commit()
    history = (await admin.client.get(f"/api/v1/t/{SAPPORO}/settings/history")).json()["items"]
    assert [(h["version"], h["old_value"], h["new_value"], h["changed_by"]) for h in history] == [
        (3, 12, None, "札幌 次郎"),
        (2, 20, 12, "札幌 花子"),
        (1, None, 20, "札幌 太郎"),
    ]
    assert all(h["changed_at"] for h in history)
    assert (await _effective(client, SAPPORO))["source"] == "国の既定値"
    page = await admin.client.get(f"/t/{SAPPORO}/settings")
    assert "札幌 花子" in page.text and "（上位の値を継承）" in page.text
    assert "札幌 花子" not in (await client.get(f"/t/{SAPPORO}/settings")).text  # not to the public


async def test_setting_the_same_value_again_writes_no_new_version(session) -> None:
    first = await _set(session, SAPPORO, KEY, 20)
    again = await _set(session, SAPPORO, KEY, "２０")  # full-width digits from a form
    assert first.version == again.version == 1


async def test_a_stale_version_is_refused_instead_of_overwriting(session) -> None:
    await _set(session, SAPPORO, KEY, 20)
    with pytest.raises(Conflict):
        await _set(session, SAPPORO, KEY, 25, expected_version=0)
    updated = await _set(session, SAPPORO, KEY, 25, expected_version=1)
    assert updated.version == 2


@pytest.mark.parametrize(("key", "value", "fragment"), [
    (KEY, "abc", "整数"),
    (KEY, 29, "28以下"),
    (KEY, 0, "1以上"),
    (SMALL_CELL_THRESHOLD.key, 5, "10以上"),  # a tenant may not publish smaller cells than the nation
])
async def test_invalid_values_are_refused_in_japanese_and_change_nothing(session, key, value, fragment) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        await _set(session, SAPPORO, key, value)
    tenant = await registry_service.tenant_for(session, SAPPORO)
    async with as_tenant(session, tenant):
        assert await settings_service.history(session) == []


async def test_unknown_key_and_missing_actor_are_refused(session) -> None:
    with pytest.raises(NotFound):
        await _set(session, SAPPORO, "no.such.key", 1)
    with pytest.raises(InvalidInput, match="変更者"):
        await _set(session, SAPPORO, KEY, 20, actor=" ")


async def test_settings_routes_refuse_bad_codes_and_non_tenants(client) -> None:
    assert (await client.get("/api/v1/t/011003/settings")).status_code == 422
    assert (await client.get("/api/v1/t/019992/settings")).status_code in (404, 422)
    ward = await client.get("/api/v1/t/011011/settings")  # 札幌市中央区 is a ward, not a tenant
    assert ward.status_code == 404
    assert ward.headers["content-type"].startswith("application/problem+json")


async def test_one_tenants_settings_route_never_shows_another_tenants_values(client, session, staff) -> None:
    await _set(session, HAKODATE, KEY, 7, actor="函館 職員")
    await session.commit()
    sapporo_admin = await staff(SAPPORO, "admin")
    sapporo = await sapporo_admin.client.get(f"/api/v1/t/{SAPPORO}/settings/history")
    assert sapporo.json()["items"] == []
    assert (await _effective(client, SAPPORO))["value"] == 10
    page = await client.get(f"/t/{SAPPORO}/settings")
    assert "函館 職員" not in page.text


async def test_settings_service_needs_a_bound_tenant(session) -> None:
    from kiban.core.tenancy.context import TenantContextMissing

    with pytest.raises(TenantContextMissing):
        await settings_service.set_setting(session, KEY, 20, actor="x")
    tenant = await registry_service.tenant_for(session, SAPPORO)
    await bind_tenant(session, tenant)
    assert (await settings_service.set_setting(session, KEY, 20, actor="x")).lg_code == SAPPORO
