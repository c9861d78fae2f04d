"""JSON shapes of the exports API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from kiban.core.exports.models import ExportFile
from kiban.core.jobs import service as jobs
from kiban.core.jobs.models import Job


class ExportRead(BaseModel):
    id: str
    title: str = Field(description="何の書き出しか（例: 監査ログ（期間 2026-04-01〜））")
    state: str = Field(description="building（作成中） / ready（受け取れます） / failed（作成できませんでした）")
    state_label: str
    rows: int = Field(description="これまでに書き出した件数")
    total: int | None = Field(description="書き出す件数（数えられる場合）")
    percent: int | None
    size: int = Field(description="ファイルの大きさ（バイト）")
    message: str
    filename: str
    created_at: datetime
    finished_at: datetime | None
    expires_at: datetime = Field(description="この日時を過ぎると消えます（依頼から7日）")
    location: str = Field(description="この書き出しの状態の URL")
    download_url: str | None = Field(description="受け取れるときの URL（依頼した本人だけが受け取れます）")


class ExportList(BaseModel):
    lg_code: str
    items: list[ExportRead]


def export_read(export: ExportFile, job: Job | None, api_base: str) -> ExportRead:
    location = f"{api_base}/{export.id}"
    return ExportRead(
        id=export.id, title=export.title, state=export.state, state_label=export.state_label,
        rows=job.progress_done if job is not None and export.state == "building" else export.rows,
        total=job.progress_total if job is not None else export.rows,
        percent=jobs.percent(job) if job is not None else None, size=export.size, message=export.message,
        filename=export.filename, created_at=export.created_at, finished_at=export.finished_at,
        expires_at=export.expires_at, location=location,
        download_url=f"{location}/download" if export.state == "ready" else None)
