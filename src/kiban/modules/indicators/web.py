"""The public page of indicators the platform computes from its own data: /indicators (全国, a
prefecture's local governments, one local government; 年度 or 月), and each table as CSV through
kit/export. JSON twins: api.py."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from kiban.core.identity.dependencies import PUBLIC
from kiban.core.tenancy.dependencies import DbSession
from kiban.kit import export
from kiban.kit.errors import InvalidInput, NotFound
from kiban.kit.templating import templates
from kiban.modules.indicators import service, sources
from kiban.modules.indicators.api import query_string

router = APIRouter(include_in_schema=False, dependencies=[PUBLIC])
VIEWS = {"area": "地域別", "series": "時系列"}


@router.get("/indicators", response_class=HTMLResponse)
async def page(request: Request, session: DbSession, prefecture: str | None = None, lg_code: str | None = None,
               grain: str | None = None) -> HTMLResponse:
    form = {"prefecture": prefecture or "", "lg_code": lg_code or "", "grain": grain or "fy"}
    context = {"form": form, "prefectures": await service.prefectures(session), "grains": sources.GRAINS,
               "definitions": service.DEFINITIONS, "items": [], "scope": None, "error": None, "errors": []}
    try:
        scope = await service.scope_of(session, prefecture, lg_code, grain)
    except InvalidInput as exc:
        context.update(error="指定の内容に誤りがあります。直してからもう一度表示してください。", errors=exc.errors)
        return templates.TemplateResponse(request, "indicators/page.html", context, status_code=exc.status)
    context.update(scope=scope, items=await service.indicators(session, scope), query=query_string(scope),
                   demo_note=await service.demo_note(session))
    return templates.TemplateResponse(request, "indicators/page.html", context)


@router.get("/indicators/{key}.csv")
async def download(key: str, session: DbSession, prefecture: str | None = None, lg_code: str | None = None,
                   grain: str | None = None, view: str = "area") -> Response:
    if key not in service.DEFINITIONS:
        raise NotFound("お探しの指標はありません。")
    if view not in VIEWS:
        raise InvalidInput("表の種類は地域別か時系列を指定してください。",
                           errors=[{"field": "view", "message": "表の種類は地域別か時系列を指定してください。"}])
    scope = await service.scope_of(session, prefecture, lg_code, grain)
    item = await service.indicator(session, key, scope)
    header, rows = service.csv_rows(item, view)
    suffix = scope.organization.code if scope.organization else (scope.prefecture.code if scope.prefecture else "all")
    return export.attachment(export.csv_bytes(rows, header), f"indicators_{key}_{view}_{suffix}.csv")
