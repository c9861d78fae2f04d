"""The top page."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.registry import service as registry_service
from kiban.kit.db import get_session
from kiban.kit.templating import templates
from kiban.core.identity.dependencies import PUBLIC

router = APIRouter(include_in_schema=False, dependencies=[PUBLIC])

EXAMPLE_TENANT = ("011002", "札幌市")
SIMULATOR_EXAMPLE = ("232033", "一宮市")


@router.get("/", response_class=HTMLResponse)
async def index(request: Request, session: Annotated[AsyncSession, Depends(get_session)]) -> HTMLResponse:
    counts = await registry_service.summary(session)
    return templates.TemplateResponse(request, "index.html", {
        "counts": counts, "today": date.today(),
        "example": {"code": EXAMPLE_TENANT[0], "name": EXAMPLE_TENANT[1]},
        "simulator": {"code": SIMULATOR_EXAMPLE[0], "name": SIMULATOR_EXAMPLE[1]},
    })
