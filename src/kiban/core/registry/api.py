"""JSON twins of the registry pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.registry import service
from kiban.core.registry.models import OrgType
from kiban.core.registry.schemas import OrganizationDetail, OrganizationPage
from kiban.kit.db import get_session
from kiban.kit.paging import MAX_OFFSET
from kiban.core.identity.dependencies import PUBLIC

router = APIRouter(prefix="/api/v1", tags=["ベース・レジストリ（団体）"], dependencies=[PUBLIC])

# The service checks these and says in Japanese what is wrong; the document states the same
# bounds (json_schema_extra, so that the service's words, not pydantic's, reach the caller).
PREFECTURE_PATTERN = "^(0[1-9]|[1-3][0-9]|4[0-7])?$"  # empty: every prefecture (the list page's form sends it)

DbSession = Annotated[AsyncSession, Depends(get_session)]


@router.get("/organizations", summary="団体の一覧と検索", response_model=OrganizationPage)
async def list_organizations(
    request: Request,
    session: DbSession,
    q: Annotated[str | None, Query(description="名称・読み（ひらがな・カタカナ・半角カナ可、異体字やケ/ヶ/がは同一視）、行政区名、または団体コード（6桁・5桁・先頭の数桁）")] = None,
    prefecture: Annotated[str | None, Query(description="2桁の都道府県番号（01〜47）",
                                            json_schema_extra={"pattern": PREFECTURE_PATTERN})] = None,
    type: Annotated[list[str] | None, Query(description="団体の種類（複数指定可）",  # noqa: A002 - public API name
                                            json_schema_extra={"items": {"enum": [t.value for t in OrgType]}})] = None,
    include_retired: Annotated[bool, Query(description="合併などで廃止された団体も含める")] = False,
    include_wards: Annotated[bool, Query(description="政令市の行政区も含める")] = False,
    sort: Annotated[str, Query(description="relevance（名称・コードが一致、先頭が一致、途中に含む の順。既定）/ code / population_desc / population_asc / kana",
                               json_schema_extra={"enum": list(service.SORTS)})] = "relevance",
    limit: Annotated[int, Query(description="1〜2000", json_schema_extra={"minimum": 1, "maximum": service.MAX_LIMIT})] = 50,
    offset: Annotated[int, Query(description="何件目から（0 から）", json_schema_extra={"minimum": 0, "maximum": MAX_OFFSET})] = 0,
) -> Response:
    query = service.OrganizationQuery(q=q, prefecture=prefecture, types=tuple(type or ()),
                                      include_retired=include_retired, include_wards=include_wards,
                                      sort=sort, limit=limit, offset=offset)
    body = await service.list_organizations_json(session, query, request.app.state.registry_cache)
    return Response(body, media_type="application/json")


@router.get("/organizations/{code}", summary="団体の詳細", response_model=OrganizationDetail,
            responses={404: {"description": "登録されていないコード"},
                       422: {"description": "桁数・検査数字・文字種の誤り（理由を日本語で返します）"}})
async def get_organization(code: str, session: DbSession) -> OrganizationDetail:
    return await service.get_detail(session, code)
