"""Attachments of 電子申請: stored when the confirmation page is shown, claimed by the
submission they were sent with, read by staff (audited), and purged when never sent.

A file is checked before it is kept: not empty, within the field's size limit, and one of the
kinds the field accepts, recognised by its first bytes (a renamed program is not a PDF). What
``fields.validate`` then sees is the stored file's reference, or the problem found, so every
problem of the page is shown at once with the rest of the answers kept.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import unicodedata
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.jobs import runner as job_runner
from kiban.core.tenancy.context import unscoped
from kiban.core.tenancy.repository import TenantRepository
from kiban.kit.db import utcnow
from kiban.kit.errors import NotFound
from kiban.modules.forms import fields as fieldkit
from kiban.modules.forms.models import Form, FormSubmission, FormUpload

MIB = 1024 * 1024
KEEP_UNCLAIMED = timedelta(days=1)
READ_CHUNK = 64 * 1024


class UploadRepository(TenantRepository[FormUpload]):
    model = FormUpload


def _safe_name(name: str) -> str:
    """The file's own name, without any folder a browser sent and without control characters."""
    base = unicodedata.normalize("NFC", str(name or "")).replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c for c in base if unicodedata.category(c)[0] != "C").strip()
    return (cleaned or "添付ファイル")[:200]


async def _read_limited(upload: Any, limit: int) -> bytes:
    """At most ``limit`` + 1 bytes of an uploaded file (enough to know it is too large)."""
    data = bytearray()
    while len(data) <= limit:
        chunk = await upload.read(min(READ_CHUNK, limit + 1 - len(data)))
        if not chunk:
            break
        data.extend(chunk)
    return bytes(data)


def _problem(field: dict, data: bytes, limit: int) -> str | None:
    label = field["label"]
    if not data:
        return f"「{label}」のファイルが空です。ファイルを選び直してください。"
    if len(data) > limit:
        return f"「{label}」のファイルは{field.get('max_mb')} MB 以下にしてください。"
    if fieldkit.sniff(data[:16], field.get("accept") or []) is None:
        return f"「{label}」は {fieldkit.accept_text(field)} のファイルを選んでください（ファイルの中身で確かめています）。"
    return None


async def _keep(session: AsyncSession, form: Form, field: dict, name: str, data: bytes) -> dict:
    kind = fieldkit.sniff(data[:16], field.get("accept") or []) or ""
    digest = hashlib.sha256(data).hexdigest()
    row = UploadRepository(session).add(FormUpload(
        id=str(uuid.uuid4()), form_id=form.id, field_key=field["key"], submission_id=None, filename=_safe_name(name),
        kind=kind, media_type=fieldkit.FILE_KINDS[kind][1], size=len(data), sha256=digest, data=data,
        created_at=utcnow()))
    return {"upload": row.id, "name": row.filename, "size": row.size, "kind": kind, "sha256": digest}


async def _kept(session: AsyncSession, form: Form, field: dict, upload_id: str) -> dict:
    """A reference carried from the confirmation page: still there, for this form and question."""
    repo = UploadRepository(session)
    row = await repo.first(repo.select().where(FormUpload.id == str(upload_id)[:36], FormUpload.form_id == form.id,
                                               FormUpload.field_key == field["key"]))
    if row is None:
        return {"problem": f"「{field['label']}」のファイルの受付期限が過ぎました。ファイルを選び直してください。"}
    return {"upload": row.id, "name": row.filename, "size": row.size, "kind": row.kind, "sha256": row.sha256}


async def store(session: AsyncSession, form: Form, fields: list[dict], raw: dict) -> dict:
    """``raw`` with each attachment question's value replaced by the stored file's reference (or
    the problem found). Values: an uploaded file (the form page), ``{"upload": id}`` (carried
    from the confirmation page), or ``{"name": ..., "content_base64": ...}`` (the API)."""
    out = dict(raw)
    for field in fields:
        if field["type"] != "file" or not fieldkit.is_shown(field, raw):
            continue
        value = raw.get(field["key"])
        limit = int(field.get("max_mb") or 5) * MIB
        if hasattr(value, "read"):
            data = await _read_limited(value, limit)
            problem = _problem(field, data, limit)
            out[field["key"]] = {"problem": problem} if problem else await _keep(
                session, form, field, getattr(value, "filename", "") or "", data)
        elif isinstance(value, dict) and "content_base64" in value:
            try:
                data = base64.b64decode(str(value.get("content_base64") or ""), validate=True)
            except (binascii.Error, ValueError):
                out[field["key"]] = {"problem": f"「{field['label']}」の content_base64 が Base64 として読めません。"}
                continue
            problem = _problem(field, data, limit)
            out[field["key"]] = {"problem": problem} if problem else await _keep(
                session, form, field, str(value.get("name") or ""), data)
        elif isinstance(value, dict) and value.get("upload"):
            out[field["key"]] = await _kept(session, form, field, str(value["upload"]))
        else:
            out[field["key"]] = ""
    await session.flush()
    return out


async def claim(session: AsyncSession, submission: FormSubmission, fields: list[dict], answers: dict) -> None:
    """The files sent with ``submission`` become its own (a file already claimed stays with the
    submission that claimed it: a reference cannot move a file to another application)."""
    ids = [answers[f["key"]]["upload"] for f in fields
           if f["type"] == "file" and isinstance(answers.get(f["key"]), dict) and answers[f["key"]].get("upload")]
    if ids:
        repo = UploadRepository(session)
        await session.execute(update(FormUpload).where(
            FormUpload.lg_code == repo.tenant.lg_code, FormUpload.id.in_(ids), FormUpload.form_id == submission.form_id,
            FormUpload.submission_id.is_(None)).values(submission_id=submission.id)
            .execution_options(synchronize_session=False))


async def of_submission(session: AsyncSession, submission: FormSubmission, upload_id: str) -> FormUpload:
    repo = UploadRepository(session)
    found = await repo.first(repo.select().where(FormUpload.id == upload_id, FormUpload.submission_id == submission.id))
    if found is None:
        raise NotFound("この添付ファイルは見つかりませんでした。")
    return found


async def purge_unclaimed(session: AsyncSession, now: datetime) -> int:
    """Deletes attachments never sent with a submission, a day after they were chosen."""
    async with unscoped(session, "forms: delete attachments never sent, a day after they were chosen"):
        result = await session.execute(delete(FormUpload).where(
            FormUpload.submission_id.is_(None), FormUpload.created_at < now - KEEP_UNCLAIMED)
            .execution_options(synchronize_session=False))
    return result.rowcount or 0


job_runner.register_pruner(purge_unclaimed)


def content_disposition(name: str) -> str:
    """``attachment`` with the name in RFC 5987 form (Japanese names survive every browser)."""
    from urllib.parse import quote

    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in name) or "file"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


async def files_of(session: AsyncSession, submission_id: str) -> list[FormUpload]:
    repo = UploadRepository(session)
    return list(await repo.all(repo.select().where(FormUpload.submission_id == submission_id)
                               .order_by(FormUpload.created_at)))

