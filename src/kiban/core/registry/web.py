"""自治体一覧 and detail pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.registry import service
from kiban.core.registry.codes import lg_code_problem
from kiban.core.registry.snapshot import code_query
from kiban.core.registry.models import OrgType
from kiban.core.registry.repository import OrganizationRepository
from kiban.kit.db import get_session
from kiban.kit.errors import InvalidInput
from kiban.kit.paging import PageNumber
from kiban.kit.templating import templates
from kiban.core.identity.dependencies import PUBLIC

router = APIRouter(include_in_schema=False, dependencies=[PUBLIC])

DbSession = Annotated[AsyncSession, Depends(get_session)]
PAGE_SIZE = 50
LISTED_TYPES = [t.value for t in OrgType if t is not OrgType.ward]
SORT_LABELS = {"relevance": "一致する順", "code": "団体コード順", "population_desc": "人口の多い順",
               "population_asc": "人口の少ない順", "kana": "読みの順"}


@router.get("/organizations", response_class=HTMLResponse)
async def organization_list(
    request: Request,
    session: DbSession,
    q: str | None = None,
    prefecture: str | None = None,
    type: Annotated[list[str] | None, Query()] = None,  # noqa: A002 - matches the API
    sort: str = "relevance",
    page: PageNumber = 1,
) -> HTMLResponse:
    prefecture = prefecture or None
    types = tuple(t for t in (type or ()) if t)
    form = {"q": q or "", "prefecture": prefecture or "", "types": types, "sort": sort}
    error = None
    result = None
    try:
        query = service.OrganizationQuery(q=q, prefecture=prefecture, types=types,
                                          sort=sort,
                                          limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        result = await service.list_organizations(session, query, request.app.state.registry_cache)
    except InvalidInput as exc:
        error = exc.detail
    code = code_query(q)
    # 「011003」 finds nothing: say which digit is wrong rather than just 「0 件」
    code_hint = lg_code_problem(code) if result is not None and not result.total and code and len(code) == 6 else None
    prefectures = await OrganizationRepository(session).prefectures()
    context = {
        "form": form, "result": result, "error": error, "code_hint": code_hint, "page": page, "page_size": PAGE_SIZE,
        "prefectures": prefectures, "types": LISTED_TYPES, "sort_labels": SORT_LABELS,
    }
    partial = request.headers.get("HX-Request") == "true" and request.headers.get("HX-Target") == "results"
    name = "registry/_results.html" if partial else "registry/list.html"
    return templates.TemplateResponse(request, name, context, status_code=422 if error and not partial else 200)


@router.get("/organizations/{code}", response_class=HTMLResponse)
async def organization_detail(code: str, request: Request, session: DbSession) -> HTMLResponse:
    digits = code_query(code)
    if digits is None or len(digits) == 5:
        # a name or a code without its check digit, typed into the address bar or linked:
        # the page of what it names, or a page saying why it names nothing (or several)
        resolved = await service.resolve_lg_code_input(session, code, allow_wards=True,
                                                       cache=request.app.state.registry_cache)
        return RedirectResponse(f"/organizations/{resolved}", status_code=303)
    detail = await service.get_detail(session, code)
    return templates.TemplateResponse(request, "registry/detail.html", {"org": detail})
