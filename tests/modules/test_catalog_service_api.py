"""The catalog's one way to create and classify a service (``catalog.service.save_service``):
デジタル庁's page and its JSON twin, validated (every field at once, the cost-burden rule of each
pattern), audited on デジタル庁's chain, refused to everyone else (401/403/404), and the council's
採択 in modules/governance writing the catalog through it instead of writing rows itself."""

from __future__ import annotations

from sqlalchemy import func, select

from kiban.core.audit.models import AuditEntry
from kiban.core.tenancy.context import unscoped
from kiban.modules.catalog import service
from kiban.modules.catalog.models import CatalogService
from tests.factories import DIGITAL_AGENCY, SAPPORO

PROBLEM = "application/problem+json"
API = f"/api/v1/t/{DIGITAL_AGENCY}/catalog/services"
NEW = {"id": "shiken-sodai-gomi", "name": "粗大ごみ受付（試験）", "domain": "環境", "pattern": "common_b",
       "burden_category": "common_saas", "lifecycle": "candidate", "owner": "事業者（標準仕様に準拠）",
       "description": "オンラインで申込と手数料の決済をする。", "annual_cost": 20_000_000, "source": "試験"}


def _problem(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:400])
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["detail"]
    return body


async def _entries(session, action: str, target_id: str) -> list[AuditEntry]:
    async with unscoped(session, "test: the audit entries written"):
        return list((await session.scalars(select(AuditEntry).where(AuditEntry.action == action,
                                                                    AuditEntry.target_id == target_id))).all())


async def _count(session) -> int:
    return await session.scalar(select(func.count()).select_from(CatalogService))


async def test_the_operator_registers_and_reclassifies_a_service_through_the_api_audited(staff, session, client) -> None:
    operator = await staff(DIGITAL_AGENCY, "admin", name="デジタル庁 担当")
    made = await operator.client.post(API, json=NEW)
    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["id"], body["pattern_label"], body["burden_label"], body["lifecycle_label"]) == (
        NEW["id"], "共通化B", "共通SaaS", "候補")
    assert body["version"] == 1 and "デジタル庁 担当" in body["updated_by"]
    public = (await client.get(f"/api/v1/catalog/services/{NEW['id']}")).json()
    assert public["name"] == NEW["name"] and public["annual_cost"] == 20_000_000
    assert NEW["name"] in (await client.get("/catalog")).text
    (created,) = await _entries(session, "catalog.service.created", NEW["id"])
    assert created.lg_code == DIGITAL_AGENCY and created.details["pattern"] == "common_b"

    _problem(await operator.client.post(API, json=NEW), 409)  # the id is taken: nothing is overwritten

    changed = await operator.client.put(f"{API}/{NEW['id']}", json={
        **{k: v for k, v in NEW.items() if k != "id"}, "pattern": "common_a", "burden_category": "dpi",
        "lifecycle": "pilot", "expected_version": 1})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["pattern"], changed.json()["version"]) == ("common_a", 2)
    (classified,) = await _entries(session, "catalog.service.classified", NEW["id"])
    assert classified.details["changes"]["pattern"] == ["common_b", "common_a"]
    assert classified.details["changes"]["lifecycle"] == ["candidate", "pilot"]

    stale = await operator.client.put(f"{API}/{NEW['id']}", json={
        **{k: v for k, v in NEW.items() if k != "id"}, "expected_version": 1})
    _problem(stale, 409)
    item = await session.get(CatalogService, NEW["id"])
    await session.refresh(item)
    assert (item.pattern, item.version) == ("common_a", 2)
    _problem(await operator.client.put(f"{API}/no-such-service", json={
        **{k: v for k, v in NEW.items() if k != "id"}, "expected_version": 1}), 404)


async def test_bad_input_names_every_field_and_writes_nothing(staff, session) -> None:
    operator = await staff(DIGITAL_AGENCY, "admin")
    before = await _count(session)
    schema = _problem(await operator.client.post(API, json={**NEW, "id": "Bad ID", "name": " ", "pattern": "x",
                                                            "annual_cost": -1}), 422)
    assert {"id", "name", "pattern", "annual_cost"} <= {e["field"].split(".")[-1] for e in schema["errors"]}
    # The cost-burden rule: a system each municipality owns is paid by the municipality, a shared one never.
    rule = _problem(await operator.client.post(API, json={**NEW, "pattern": "standard"}), 422)
    assert [e["field"] for e in rule["errors"]] == ["burden_category"] and "自治体システム" in rule["detail"] + str(rule["errors"])
    rule = _problem(await operator.client.post(API, json={**NEW, "burden_category": "municipal"}), 422)
    assert [e["field"] for e in rule["errors"]] == ["burden_category"]
    assert await _count(session) == before
    assert await _entries(session, "catalog.service.created", NEW["id"]) == []


async def test_only_the_operator_may_register_or_classify(staff, client) -> None:
    _problem(await client.post(API, json=NEW), 401)
    _problem(await client.put(f"{API}/vrs", json={**NEW, "expected_version": 1}), 401)
    clerk = await staff(DIGITAL_AGENCY, "staff")  # デジタル庁 staff without the catalog-editing permission
    _problem(await clerk.client.post(API, json=NEW), 403)
    sapporo = await staff(SAPPORO, "admin")  # every permission, but not the platform operator
    _problem(await sapporo.client.post(f"/api/v1/t/{SAPPORO}/catalog/services", json=NEW), 404)
    _problem(await sapporo.client.put(f"/api/v1/t/{SAPPORO}/catalog/services/vrs",
                                      json={**{k: v for k, v in NEW.items() if k != "id"}, "expected_version": 1}), 404)
    _problem(await sapporo.client.post(API, json=NEW), 404)
    assert (await sapporo.client.get(f"/t/{SAPPORO}/catalog/new")).status_code == 404
    assert (await clerk.client.get(f"/t/{DIGITAL_AGENCY}/catalog/new")).status_code == 403
    assert (await client.get(f"/t/{DIGITAL_AGENCY}/catalog/new", follow_redirects=False)).status_code in (303, 401)


async def test_the_registration_page_shows_every_error_at_once_keeps_the_input_and_saves(staff, session) -> None:
    operator = await staff(DIGITAL_AGENCY, "admin", name="デジタル庁 担当")
    listing = await operator.client.get("/catalog")
    assert f'href="/t/{DIGITAL_AGENCY}/catalog/new"' in listing.text
    form = await operator.client.get(f"/t/{DIGITAL_AGENCY}/catalog/new")
    assert form.status_code == 200 and "共通サービスの登録" in form.text
    data = {"service_id": "shiken-page", "name": "", "domain": "環境", "pattern": "individual",
            "burden_category": "common_saas", "lifecycle": "candidate", "owner": "各自治体",
            "annual_cost": "たくさん", "description": "入力を残す説明", "csrf_token": operator.csrf}
    before = await _count(session)
    refused = await operator.client.post(f"/t/{DIGITAL_AGENCY}/catalog/new", data=data)
    assert refused.status_code == 422
    for message in ("サービス名を入力してください", "自治体システム", "円単位の整数"):
        assert message in refused.text
    assert "入力を残す説明" in refused.text and 'value="shiken-page"' in refused.text
    from tests.core.test_japanese_only import foreign_words, read

    for response in (form, refused, listing):
        assert not foreign_words(read(response)[0]), foreign_words(read(response)[0])
    assert await _count(session) == before
    saved = await operator.client.post(f"/t/{DIGITAL_AGENCY}/catalog/new", data={
        **data, "name": "試験の個別システム", "burden_category": "municipal", "annual_cost": "1,200,000"})
    assert saved.status_code == 303 and saved.headers["location"] == "/catalog/shiken-page"
    item = await session.get(CatalogService, "shiken-page")
    assert (item.pattern, item.burden_category, item.annual_cost, item.seeded) == ("individual", "municipal", 1_200_000, False)

    # The edit page reclassifies too; a pattern that breaks the burden rule is refused with the input kept.
    edit = f"/t/{DIGITAL_AGENCY}/catalog/shiken-page/edit"
    page = await operator.client.get(edit)
    assert page.status_code == 200 and "費用負担の区分" in page.text
    wrong = await operator.client.post(edit, data={"pattern": "common_a", "burden_category": "municipal",
                                                   "lifecycle": "pilot", "owner": "デジタル庁", "description": "残す",
                                                   "annual_cost": "", "expected_version": "1",
                                                   "csrf_token": operator.csrf})
    assert wrong.status_code == 422 and "共通のシステム" in wrong.text and ">残す</textarea>" in wrong.text
    moved = await operator.client.post(edit, data={"pattern": "common_a", "burden_category": "dpi", "lifecycle": "pilot",
                                                   "owner": "デジタル庁", "description": "", "annual_cost": "",
                                                   "expected_version": "1", "csrf_token": operator.csrf})
    assert moved.status_code == 303
    await session.refresh(item)
    assert (item.pattern, item.burden_category, item.version) == ("common_a", "dpi", 2)
    assert len(await _entries(session, "catalog.service.classified", "shiken-page")) == 1


async def test_save_service_is_the_one_writer_and_keeps_an_existing_service_on_a_bad_update(session) -> None:
    from kiban.core.audit import service as audit
    from kiban.core.registry import service as registry
    from kiban.core.tenancy.context import as_tenant
    from kiban.kit.errors import InvalidInput

    tenant = await registry.tenant_for(session, DIGITAL_AGENCY)
    actor = audit.Actor("staff", "試験 担当（デジタル庁）")
    async with as_tenant(session, tenant):
        vrs = await service.get_service(session, "vrs")
        version = vrs.version
        try:
            await service.save_service(session, service.ServiceInput.of(vrs, burden_category="municipal"), actor=actor,
                                       service_id="vrs", expected_version=version)
        except InvalidInput as exc:
            assert [e["field"] for e in exc.errors] == ["burden_category"]
        else:
            raise AssertionError("a shared service paid by each municipality was accepted")
        await session.refresh(vrs)
        assert vrs.version == version and vrs.burden_category != "municipal"
