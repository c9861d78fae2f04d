"""The exports pages: what one asked for, how far it has come, the file, and removing it.
Each page's JSON twin is in ``api.py``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kiban.core.exports import service
from kiban.core.exports.api import file_response
from kiban.core.identity.dependencies import DbSession, StaffContext, require
from kiban.core.identity.permissions import Permission
from kiban.core.jobs import service as jobs
from kiban.kit.csrf import verify_csrf
from kiban.kit.templating import templates

router = APIRouter(prefix="/t/{lg_code}/exports", include_in_schema=False)
Receiver = Annotated[StaffContext, require(Permission.exports_file_read)]


def _progress(job) -> dict | None:
    if job is None:
        return None
    return {"done": job.progress_done, "total": job.progress_total, "percent": jobs.percent(job), "message": job.message}


@router.get("", response_class=HTMLResponse)
async def my_exports(request: Request, staff: Receiver, session: DbSession) -> HTMLResponse:
    exports = await service.mine(session, staff)
    return templates.TemplateResponse(request, "exports/list.html", {"tenant": staff.tenant, "exports": exports})


@router.get("/{export_id}", response_class=HTMLResponse)
async def export_page(export_id: str, request: Request, staff: Receiver, session: DbSession,
                      progress: str = "") -> HTMLResponse:
    """While the file is made, the page polls ``?progress=1`` (htmx) for the progress line only,
    and reloads itself once the file is ready (or could not be made)."""
    export = await service.own(session, staff, export_id)
    context = {"tenant": staff.tenant, "export": export, "progress": _progress(await service.job_of(session, export))}
    if progress and request.headers.get("HX-Request"):
        response = templates.TemplateResponse(request, "exports/_progress.html", context)
        if export.state != "building":
            response.headers["HX-Refresh"] = "true"
        return response
    return templates.TemplateResponse(request, "exports/export.html", context)


@router.get("/{export_id}/download")
async def download(export_id: str, staff: Receiver, session: DbSession) -> Response:
    export = await service.prepare_download(session, staff, export_id)
    await session.commit()
    return file_response(session, staff, export)


@router.get("/{export_id}/delete", response_class=HTMLResponse)
async def confirm_delete(export_id: str, request: Request, staff: Receiver, session: DbSession) -> HTMLResponse:
    export = await service.own(session, staff, export_id)
    base = f"/t/{staff.tenant.lg_code}/exports"
    return templates.TemplateResponse(request, "identity/confirm.html", {
        "tenant": staff.tenant, "page_title": "書き出したファイルの削除",
        "breadcrumbs": [(staff.tenant.name, f"/t/{staff.tenant.lg_code}/"), ("書き出したファイル", base)],
        "summary": f"「{export.title}」を消します。",
        "consequences": ["消したファイルは元に戻せません。必要になったら、もう一度書き出しを依頼してください。"],
        "action": f"{base}/{export.id}/delete", "confirm_label": "消す", "back_url": f"{base}/{export.id}"})


@router.post("/{export_id}/delete", dependencies=[Depends(verify_csrf)])
async def delete_export(export_id: str, staff: Receiver, session: DbSession) -> Response:
    await service.remove(session, staff, export_id)
    await session.commit()
    return RedirectResponse(f"/t/{staff.tenant.lg_code}/exports", status_code=303)
