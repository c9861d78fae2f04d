"""A code field takes what a clerk types: a code in either width, five digits, or a name."""

from __future__ import annotations

import pytest

from kiban.core.registry import service
from kiban.core.registry.snapshot import load_snapshot
from kiban.kit.errors import InvalidInput


@pytest.mark.parametrize("typed", [
    "172014", "１７２０１４", "17201", "１７２０１", " 172014 ",
    "金沢市", "石川県金沢市", "かなざわし", "カナザワシ", "ｶﾅｻﾞﾜｼ", "金沢", "石川県 金沢市",
])
async def test_a_code_or_a_name_resolves_to_kanazawa(session, typed) -> None:
    assert await service.resolve_lg_code_input(session, typed) == "172014"


@pytest.mark.parametrize(("typed", "code"), [
    ("檜原村", "133078"), ("桧原村", "133078"),      # 東京都檜原村
    ("梼原町", "394050"), ("檮原町", "394050"),      # 高知県梼原町
    ("竜ヶ崎市", "082082"), ("龍が崎市", "082082"),   # 茨城県龍ケ崎市
    ("札幌市", "011002"), ("北海道", "010006"), ("なはし", "472018"),
])
async def test_variants_and_ke_are_folded_in_names(session, typed, code) -> None:
    assert await service.resolve_lg_code_input(session, typed) == code


async def test_an_ambiguous_name_lists_the_candidates_with_their_prefectures(session) -> None:
    with pytest.raises(InvalidInput) as caught:
        await service.resolve_lg_code_input(session, "府中市", field="grantee_code", label="相手の団体コード")
    message = caught.value.detail
    assert "相手の団体コード「府中市」" in message
    assert "東京都・132063" in message and "広島県・342084" in message
    assert "府中町" not in message  # a whole name does not also match another type
    assert caught.value.errors == [{"field": "grantee_code", "message": message}]


@pytest.mark.parametrize(("typed", "fragment"), [
    ("172015", "6桁目は 4 です"),
    ("１７２０１５", "6桁目は 4 です"),
    ("1720", "4桁です"),
    ("１７２０１４４", "7桁です"),
    ("99999", "登録されていません"),
    ("どこにもない市", "見つかりません"),
    ("17201a", "数字以外"),
    ("", "を入力してください"),
])
async def test_what_cannot_be_resolved_is_refused_in_japanese(session, typed, fragment) -> None:
    with pytest.raises(InvalidInput) as caught:
        await service.resolve_lg_code_input(session, typed, label="住所地の団体コード")
    assert fragment in caught.value.detail
    assert caught.value.detail.startswith("住所地の団体コード")


async def test_a_ward_names_its_city_unless_wards_are_allowed(session) -> None:
    with pytest.raises(InvalidInput) as caught:
        await service.resolve_lg_code_input(session, "札幌市中央区")
    assert "札幌市（011002）" in caught.value.detail
    assert await service.resolve_lg_code_input(session, "札幌市中央区", allow_wards=True) == "011011"


async def test_a_retired_organisation_names_its_successor(session) -> None:
    await service.merge(session, "012360", "012025", __import__("datetime").date(2027, 4, 1))
    with pytest.raises(InvalidInput) as caught:
        await service.resolve_lg_code_input(session, "012360")
    assert "函館市（012025）" in caught.value.detail


async def test_the_sync_variant_answers_from_a_snapshot(session) -> None:
    snapshot = await load_snapshot(session)
    assert service.resolve_lg_code_input_sync(snapshot, "輪島市") == "172049"


# Through HTTP: the access-grant form's 相手の団体コード takes what a clerk types.

async def _grant(admin, grantee: str):
    from tests.factories import SAPPORO

    data = {"grantee_code": grantee, "permission": "tenancy.setting.read", "purpose": "道内の保育施策の調整",
            "legal_basis": "地方自治法第245条の4（技術的な助言）", "expires_on": "", "csrf_token": admin.csrf}
    return await admin.client.post(f"/t/{SAPPORO}/grants", data=data)


@pytest.mark.parametrize("typed", ["北海道", "ほっかいどう", "０１０００６", "01000"])
async def test_a_grant_to_the_prefecture_by_name_or_full_width_code(staff, typed) -> None:
    from tests.factories import HOKKAIDO, SAPPORO

    hokkaido = await staff(HOKKAIDO, "staff")
    sapporo_admin = await staff(SAPPORO)
    assert (await _grant(sapporo_admin, typed)).status_code == 303
    assert (await hokkaido.client.get(f"/api/v1/t/{SAPPORO}/settings/history")).status_code == 200


async def test_a_grant_to_an_ambiguous_name_lists_the_candidates_and_grants_nothing(staff) -> None:
    from tests.factories import SAPPORO

    sapporo_admin = await staff(SAPPORO)
    response = await _grant(sapporo_admin, "府中市")
    assert response.status_code == 422
    assert "相手の団体「府中市」" in response.text and "東京都・132063" in response.text
    listing = await sapporo_admin.client.get(f"/t/{SAPPORO}/grants")
    assert listing.status_code == 200 and "府中市" not in listing.text
