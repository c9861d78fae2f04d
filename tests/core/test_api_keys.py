"""API keys for systems: shown once, stored hashed, scoped, revocable, test keys never touch
live data, rate limited with 429 and Retry-After."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from kiban.core.identity.apikeys import RateLimited, RateLimiter
from kiban.core.identity.models import ApiKey
from kiban.core.tenancy.context import unscoped
from tests.factories import HAKODATE, SAPPORO

HISTORY = f"/api/v1/t/{SAPPORO}/settings/history"


async def _create(admin, *, kind="live", permissions=("tenancy.setting.read",), rate=600) -> str:
    page = await admin.client.post(f"/t/{SAPPORO}/apikeys", data={
        "name": "基幹連携", "kind": kind, "permissions": list(permissions),
        "rate_limit_per_minute": str(rate), "csrf_token": admin.csrf})
    assert page.status_code == 200, page.text
    return re.search(r'<code id="new-api-key">([^<]+)</code>', page.text).group(1)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_live_key_reads_what_it_was_granted_and_nothing_else(staff, client, session) -> None:
    admin = await staff(SAPPORO)
    token = await _create(admin)
    assert (await client.get(HISTORY, headers=_bearer(token))).status_code == 200
    assert (await client.get(f"/t/{SAPPORO}/audit", headers=_bearer(token))).status_code == 403
    who = (await client.get(f"/api/v1/t/{SAPPORO}/whoami", headers=_bearer(token))).json()
    assert who == {"lg_code": SAPPORO, "organisation": "札幌市", "key_name": "基幹連携", "kind": "live",
                   "permissions": ["tenancy.setting.read"]}
    async with unscoped(session, "test: inspect stored key"):
        stored = (await session.scalars(select(ApiKey))).all()
    assert all(token.split("_")[-1] not in (k.secret_hash or "") for k in stored)  # only a hash is kept
    page = await admin.client.get(f"/t/{SAPPORO}/apikeys")
    assert token not in page.text  # shown once


async def test_a_test_key_authenticates_but_never_touches_live_data(staff, client) -> None:
    admin = await staff(SAPPORO)
    token = await _create(admin, kind="test")
    assert (await client.get(f"/api/v1/t/{SAPPORO}/whoami", headers=_bearer(token))).json()["kind"] == "test"
    refused = await client.get(HISTORY, headers=_bearer(token))
    assert refused.status_code == 403 and "テスト用のキー" in refused.json()["detail"]


async def test_wrong_revoked_and_other_tenants_keys_are_refused(staff, client, session) -> None:
    admin = await staff(SAPPORO)
    token = await _create(admin)
    wrong = token[:-4] + "0000"
    assert (await client.get(HISTORY, headers=_bearer(wrong))).status_code == 401
    other_tenant = await client.get(f"/api/v1/t/{HAKODATE}/settings/history", headers=_bearer(token))
    assert other_tenant.status_code == 401
    assert other_tenant.headers["www-authenticate"] == "Bearer"
    key_id = token.split("_")[3]
    revoked = await admin.client.post(f"/t/{SAPPORO}/apikeys/{key_id}/revoke", data={"csrf_token": admin.csrf})
    assert revoked.status_code == 303
    assert (await client.get(HISTORY, headers=_bearer(token))).status_code == 401


async def test_exceeding_the_rate_limit_answers_429_with_retry_after(staff, client) -> None:
    admin = await staff(SAPPORO)
    token = await _create(admin, rate=3)
    statuses = [(await client.get(HISTORY, headers=_bearer(token))).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = await client.get(HISTORY, headers=_bearer(token))
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["content-type"].startswith("application/problem+json")


def test_the_bucket_refills_over_time() -> None:
    limiter = RateLimiter()
    for _ in range(60):
        limiter.check("k", 60, now=0.0)
    with pytest.raises(RateLimited):
        limiter.check("k", 60, now=0.0)
    limiter.check("k", 60, now=1.0)  # one more token a second at 60/min


@pytest.mark.parametrize(("data", "fragment"), [
    ({"name": "", "kind": "live", "permissions": ["tenancy.setting.read"]}, "名前"),
    ({"name": "x", "kind": "prod", "permissions": ["tenancy.setting.read"]}, "種類"),
    ({"name": "x", "kind": "live", "permissions": ["identity.membership.manage"]}, "権限"),
    ({"name": "x", "kind": "live"}, "権限"),
])
async def test_bad_key_requests_are_explained(staff, data, fragment) -> None:
    admin = await staff(SAPPORO)
    page = await admin.client.post(f"/t/{SAPPORO}/apikeys", data={**data, "csrf_token": admin.csrf})
    assert page.status_code == 422 and fragment in page.text


async def test_only_admins_manage_keys(staff) -> None:
    clerk = await staff(SAPPORO, "staff")
    assert (await clerk.client.get(f"/t/{SAPPORO}/apikeys")).status_code == 403
    hakodate = await staff(HAKODATE)
    assert (await hakodate.client.get(f"/t/{SAPPORO}/apikeys")).status_code == 404


def _visible(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def _revocations(session, key_id: str):
    from kiban.core.audit.models import AuditEntry
    from kiban.core.registry import service as registry_service
    from kiban.core.tenancy.context import as_tenant

    async with as_tenant(session, await registry_service.tenant_for(session, SAPPORO)):
        return (await session.scalars(select(AuditEntry).where(AuditEntry.action == "identity.apikey.revoked",
                                                              AuditEntry.target_id == key_id))).all()


async def test_revoking_a_key_asks_first_then_reports_what_happened(staff, client, session) -> None:
    admin = await staff(SAPPORO)
    token = await _create(admin)
    key_id = token.split("_")[3]
    listing = await admin.client.get(f"/t/{SAPPORO}/apikeys")
    assert f"/t/{SAPPORO}/apikeys/{key_id}/revoke/confirm" in listing.text
    assert f'action="/t/{SAPPORO}/apikeys/{key_id}/revoke"' not in listing.text  # no one-click revoke
    text = _visible(listing.text)
    assert "テナント設定と変更履歴の閲覧" in text and "tenancy.setting.read" not in text

    confirm = await admin.client.get(f"/t/{SAPPORO}/apikeys/{key_id}/revoke/confirm")
    assert confirm.status_code == 200
    text = _visible(confirm.text)
    assert "API キー「基幹連携」（本番）を失効させます。" in text
    assert "すぐに API を呼び出せなくなります" in text and "元に戻せません" in text
    assert ">失効させる</button>" in confirm.text and f'href="/t/{SAPPORO}/apikeys">戻る</a>' in confirm.text
    assert (await client.get(HISTORY, headers=_bearer(token))).status_code == 200  # still works

    revoked = await admin.client.post(f"/t/{SAPPORO}/apikeys/{key_id}/revoke", data={"csrf_token": admin.csrf})
    assert revoked.status_code == 303
    result = await admin.client.get(revoked.headers["location"])
    assert "API キー「基幹連携」（本番）を失効させました。" in _visible(result.text)
    assert (await client.get(HISTORY, headers=_bearer(token))).status_code == 401
    again = await admin.client.get(f"/t/{SAPPORO}/apikeys/{key_id}/revoke/confirm")
    assert "すでに失効しています" in again.text and "<button" not in again.text.split("<main", 1)[1]
    entries = await _revocations(session, key_id)
    assert len(entries) == 1 and entries[0].actor_kind == "staff"


async def test_revoking_keys_is_for_this_organisations_admins_only(staff, client) -> None:
    admin = await staff(SAPPORO)
    token = await _create(admin)
    key_id = token.split("_")[3]
    hakodate = await staff(HAKODATE)
    clerk = await staff(SAPPORO, "staff")
    confirm = f"/t/{SAPPORO}/apikeys/{key_id}/revoke/confirm"
    assert (await hakodate.client.get(confirm)).status_code == 404
    assert (await hakodate.client.post(f"/t/{SAPPORO}/apikeys/{key_id}/revoke",
                                       data={"csrf_token": hakodate.csrf})).status_code == 404
    assert (await clerk.client.get(confirm)).status_code == 403
    assert (await clerk.client.post(f"/t/{SAPPORO}/apikeys/{key_id}/revoke",
                                    data={"csrf_token": clerk.csrf})).status_code == 403
    # Our key under their URL: not theirs, so not there.
    assert (await hakodate.client.get(f"/t/{HAKODATE}/apikeys/{key_id}/revoke/confirm")).status_code == 404
    assert (await hakodate.client.post(f"/t/{HAKODATE}/apikeys/{key_id}/revoke",
                                       data={"csrf_token": hakodate.csrf})).status_code == 404
    assert (await client.get(HISTORY, headers=_bearer(token))).status_code == 200  # nothing was revoked


def test_every_permission_has_a_japanese_label() -> None:
    from kiban.core.identity.permissions import PERMISSION_LABELS, Permission

    assert set(PERMISSION_LABELS) == set(Permission)


# -- the key form: every error at once, the input kept ------------------------------------------

async def test_the_key_form_shows_every_error_at_once_and_keeps_what_was_typed(staff, session) -> None:
    admin = await staff(SAPPORO)
    page = await admin.client.post(f"/t/{SAPPORO}/apikeys", data={
        "name": "", "kind": "live", "permissions": ["audit.entry.read"], "rate_limit_per_minute": "たくさん",
        "csrf_token": admin.csrf})
    assert page.status_code == 422  # a word in the number field is explained, not a bare 422 page
    assert "キーの名前（用途が分かるもの）を入力してください。" in page.text
    assert "1分あたりの上限は、1〜10000の数字で入力してください。" in page.text
    assert re.search(r'<input[^>]*value="live"[^>]*checked', page.text)
    assert re.search(r'<input[^>]*value="audit.entry.read"[^>]*checked', page.text)
    assert not re.search(r'<input[^>]*value="tenancy.setting.read"[^>]*checked', page.text)
    assert re.search(r'<input[^>]*name="rate_limit_per_minute"[^>]*value="たくさん"', page.text)

    page = await admin.client.post(f"/t/{SAPPORO}/apikeys", data={
        "name": "基幹連携", "kind": "prod", "rate_limit_per_minute": "20000", "csrf_token": admin.csrf})
    assert page.status_code == 422
    for message in ("種類は「本番」か「テスト」を選んでください。", "権限を一つ以上", "1〜10000の範囲で入力してください（いま20000）"):
        assert message in page.text, message
    assert re.search(r'<input[^>]*name="name"[^>]*value="基幹連携"', page.text)
    async with unscoped(session, "test: no key was made"):
        assert (await session.scalars(select(ApiKey).where(ApiKey.name == "基幹連携"))).all() == []


async def test_a_full_width_limit_is_read_as_typed(staff, session) -> None:
    admin = await staff(SAPPORO)
    page = await admin.client.post(f"/t/{SAPPORO}/apikeys", data={
        "name": "全角の上限", "kind": "test", "permissions": ["tenancy.setting.read"],
        "rate_limit_per_minute": "１，２００", "csrf_token": admin.csrf})
    assert page.status_code == 200, page.text
    async with unscoped(session, "test: the key just made"):
        key = (await session.scalars(select(ApiKey).where(ApiKey.name == "全角の上限"))).one()
    assert key.rate_limit_per_minute == 1200
