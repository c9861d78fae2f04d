"""JSON twin of the exports pages (/t/{lg_code}/exports): one's own exports, their progress,
the file, and removing one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from fastapi.responses import StreamingResponse

from kiban.core.exports import service
from kiban.core.exports.schemas import ExportList, ExportRead, export_read
from kiban.core.identity.dependencies import DbSession, StaffContext, require
from kiban.core.identity.permissions import Permission
from kiban.kit.openapi import problem_responses

router = APIRouter(prefix="/api/v1/t/{lg_code}/exports", tags=["書き出し"])
Receiver = Annotated[StaffContext, require(Permission.exports_file_read)]


def api_base(staff: StaffContext) -> str:
    return f"/api/v1/t/{staff.tenant.lg_code}/exports"


@router.get("", summary="自分が依頼した書き出し（新しい順。7日を過ぎたものは消えます）", response_model=ExportList)
async def my_exports(staff: Receiver, session: DbSession) -> ExportList:
    items = []
    for export in await service.mine(session, staff):
        items.append(export_read(export, await service.job_of(session, export), api_base(staff)))
    return ExportList(lg_code=staff.tenant.lg_code, items=items)


@router.get("/{export_id}", summary="書き出しの状態（作成中は進み具合）", response_model=ExportRead)
async def export_status(export_id: str, staff: Receiver, session: DbSession) -> ExportRead:
    export = await service.own(session, staff, export_id)
    return export_read(export, await service.job_of(session, export), api_base(staff))


@router.get("/{export_id}/download", summary="書き出したファイル（CSV、Excel 向け UTF-8）",
            response_class=StreamingResponse,
            responses={200: {"description": "ファイル", "content": {"text/csv": {"schema": {"type": "string"}}}},
                       **problem_responses(409, s409="まだできあがっていないか、作成できませんでした")})
async def download(export_id: str, staff: Receiver, session: DbSession) -> StreamingResponse:
    export = await service.prepare_download(session, staff, export_id)
    await session.commit()
    return file_response(session, staff, export)


def file_response(session, staff: StaffContext, export) -> StreamingResponse:
    from urllib.parse import quote

    return StreamingResponse(service.stream(session, staff.tenant, export),
                             media_type=export.media_type,
                             headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(export.filename)}",
                                      "Content-Length": str(export.size)})


@router.delete("/{export_id}", summary="書き出したファイルを消す", status_code=204, response_class=Response,
               responses={204: {"description": "消しました"}})
async def delete_export(export_id: str, staff: Receiver, session: DbSession) -> Response:
    # no JSON rule: a page on another site cannot make a browser send DELETE (forms send GET and POST)
    await service.remove(session, staff, export_id)
    await session.commit()
    return Response(status_code=204)
