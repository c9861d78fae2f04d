"""JSON twins of the 電子申請 pages: the published form (public), the postal-code lookup
(public), and under ``/api/v1/t/{lg_code}/forms`` building, publishing, sharing, copying, the
inbox and its actions. Errors are problem+json with every field named."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from kiban.core.audit import service as audit
from kiban.core.exports import service as exports_service
from kiban.core.exports.api import api_base as exports_api_base
from kiban.core.exports.schemas import ExportRead, export_read
from kiban.core.identity.api_admin import WRITE_ERRORS, JsonWrite
from kiban.core.identity.dependencies import PUBLIC, StaffContext, require
from kiban.core.identity.permissions import Permission
from kiban.core.tenancy.dependencies import DbSession, tenant_from_path
from kiban.kit.errors import InvalidInput, NotFound
from kiban.kit.openapi import problem_responses
from kiban.kit.paging import PageNumber
from kiban.modules.forms import fields as fieldkit
from kiban.modules.forms import exports as form_exports
from kiban.modules.forms import service, signing, uploads
from kiban.modules.forms.models import STATUS_LABELS, EventKind, SubmissionStatus

public = APIRouter(prefix="/api/v1", tags=["電子申請（公開）"], dependencies=[PUBLIC])
tenant = APIRouter(prefix="/api/v1/t/{lg_code}/forms", tags=["電子申請（団体）"])
FormManager = Annotated[StaffContext, require(Permission.forms_form_manage)]
SubmissionReader = Annotated[StaffContext, require(Permission.forms_submission_read)]
SubmissionProcessor = Annotated[StaffContext, require(Permission.forms_submission_process)]
SubmissionCreator = Annotated[StaffContext, require(Permission.forms_submission_create)]


class Body(BaseModel):
    """A request body as its JSON Schema says: no 「"1"」 for a number or 「1」 for a boolean."""

    model_config = ConfigDict(strict=True)


class SubfieldDef(Body):
    key: str | None = Field(None, description="s1, s2 …（列の順に付け直します）")
    label: str = Field(max_length=100)
    type: str = Field("text", description="text / number / date / tel / email")
    required: bool = False


class FieldDef(Body):
    key: str | None = Field(None, description="q1, q2 …（新しい項目は省略）")
    type: str = Field(description="text / textarea / number / date / choice / checkboxes / email / tel / address / file / group")
    label: str = Field(max_length=200)
    hint: str = Field("", max_length=400)
    required: bool = False
    options: list[str] = Field([], max_length=fieldkit.MAX_OPTIONS)
    min: int | None = None
    max: int | None = None
    max_length: int | None = None
    pattern: str = Field("", description="'' / katakana / digits")
    show_if: dict[str, str] | None = Field(None, description='{"field": "q2", "equals": "はい"}: その選択肢のときだけ質問する')
    subfields: list[SubfieldDef] = Field([], max_length=fieldkit.MAX_GROUP_COLUMNS,
                                         description="繰り返しの項目（group）の列。回答は行の配列 [{\"s1\": …}]")
    min_items: int | None = Field(None, ge=0, le=fieldkit.MAX_GROUP_ROWS, description="group の最小の行数")
    max_items: int | None = Field(None, ge=1, le=fieldkit.MAX_GROUP_ROWS, description="group の最大の行数")
    max_mb: int | None = Field(None, ge=1, le=fieldkit.MAX_FILE_MB, description="添付ファイル（file）の最大サイズ（MB）")
    accept: list[str] = Field([], max_length=3, description="file が受け付ける種類: pdf / jpeg / png（中身で判定）。"
                                                        "回答は {\"name\": …, \"content_base64\": …}")


class PublishedForm(BaseModel):
    lg_code: str
    organization: str
    slug: str
    title: str
    description: str
    contact: str
    version: int
    is_open: bool
    identity_required: bool
    fields: list[FieldDef]
    url: str


@public.get("/forms/{lg_code}/{slug}", summary="公開中の申請フォーム（最新の版）", response_model=PublishedForm)
async def published_form(lg_code: str, session: DbSession,
                         slug: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{1,59}$",
                                                   description="フォームの URL 名（英小文字・数字・ハイフン）")]) -> PublishedForm:
    tenant_ = await tenant_from_path(lg_code, session)
    form, version = await service.published_form(session, slug)
    return PublishedForm(lg_code=tenant_.lg_code, organization=tenant_.name, slug=form.slug, title=version.title,
                         description=version.description, contact=version.contact, version=version.number,
                         is_open=form.is_open, identity_required=version.identity_required,
                         fields=[FieldDef(**f) for f in version.fields], url=f"/f/{tenant_.lg_code}/{form.slug}")


class PostalAddress(BaseModel):
    postal: str
    prefecture: str
    city: str
    town: str
    prefecture_kana: str
    city_kana: str
    town_kana: str


@public.get("/postal-codes/{code}", summary="郵便番号から住所（都道府県・市区町村・町域）", response_model=PostalAddress)
async def postal_code(code: str) -> PostalAddress:
    found = fieldkit.lookup_postal(code)
    if found is None:
        raise NotFound(f"郵便番号「{code[:10]}」は見つかりません。7桁の数字で指定してください。")
    return PostalAddress(**found)


# -- building ---------------------------------------------------------------------------------------

class FormSummary(BaseModel):
    id: str
    slug: str
    title: str
    published_version: int
    is_open: bool
    shared: bool
    submissions: int


class FormDetail(BaseModel):
    id: str
    slug: str
    title: str
    description: str
    contact: str
    identity_required: bool
    is_open: bool
    shared: bool
    shared_summary: str
    copied_from: str
    published_version: int
    unpublished_changes: bool
    version: int = Field(description="変更のときに expected_version として送る値")
    fields: list[FieldDef]
    url: str | None


async def _detail(session, staff, form) -> FormDetail:
    published = await service.get_version(session, form.id, form.published_version) if form.published_version else None
    return FormDetail(id=form.id, slug=form.slug, title=form.title, description=form.description, contact=form.contact,
                      identity_required=form.identity_required, is_open=form.is_open, shared=form.shared,
                      shared_summary=form.shared_summary, copied_from=form.copied_from,
                      published_version=form.published_version,
                      unpublished_changes=service.has_unpublished_changes(form, published), version=form.version,
                      fields=[FieldDef(**f) for f in form.fields],
                      url=f"/f/{staff.tenant.lg_code}/{form.slug}" if form.published_version else None)


@tenant.get("", summary="団体の申請フォーム一覧", response_model=list[FormSummary])
async def list_forms(session: DbSession, staff: SubmissionReader) -> list[FormSummary]:
    return [FormSummary(id=f.id, slug=f.slug, title=f.title, published_version=f.published_version, is_open=f.is_open,
                        shared=f.shared, submissions=n) for f, n in await service.list_forms(session)]


class FormWrite(Body):
    title: str = Field(max_length=200)
    slug: str = Field(max_length=60)
    description: str = Field("", max_length=4000)
    contact: str = Field("", max_length=400)
    identity_required: bool = False
    is_open: bool = True
    shared_summary: str = Field("", max_length=400)
    fields: list[FieldDef] | None = Field(None, max_length=fieldkit.MAX_FIELDS, description="質問の一覧（省略すると変えない）")
    expected_version: int | None = Field(None, description="変更のとき: 読み取った version")


def _settings(body: FormWrite) -> service.FormSettings:
    return service.FormSettings(title=body.title, slug=body.slug, description=body.description, contact=body.contact,
                                identity_required=body.identity_required, is_open=body.is_open,
                                shared_summary=body.shared_summary)


@tenant.post("", summary="申請フォームの作成（下書き）", response_model=FormDetail, status_code=201)
async def create_form(body: FormWrite, session: DbSession, staff: FormManager) -> FormDetail:
    form = await service.create_form(session, _settings(body), actor=staff.label)
    if body.fields:
        await service.replace_fields(session, form, [f.model_dump() for f in body.fields], actor=staff.label,
                                     expected_version=None)
    await audit.record(session, audit.Actor.of_staff(staff), "forms.form.created", target_type="form",
                       target_id=form.id, details={"form_title": form.title})
    await session.commit()
    return await _detail(session, staff, form)


@tenant.get("/templates", summary="ほかの団体が共有しているテンプレート", response_model=list[dict[str, Any]])
async def shared_templates(session: DbSession, staff: FormManager) -> list[dict[str, Any]]:
    return [{"lg_code": t.lg_code, "organization": t.organization, "form_id": t.form_id, "title": t.title,
             "summary": t.summary, "version": t.version, "fields": t.fields}
            for t in await service.shared_templates(session)]


class CopyRequest(Body):
    title: str | None = Field(None, max_length=200, description="省略するとテンプレートの名前")
    slug: str | None = Field(None, max_length=60)


@tenant.post("/templates/{source_lg_code}/{form_id}/copy", summary="共有テンプレートをコピーして下書きを作る",
             response_model=FormDetail, status_code=201)
async def copy_template(source_lg_code: str, form_id: str, body: CopyRequest, session: DbSession,
                        staff: FormManager) -> FormDetail:
    form = await service.copy_template(session, source_lg_code, form_id, actor=staff.label, title=body.title,
                                       slug=body.slug)
    await audit.record(session, audit.Actor.of_staff(staff), "forms.form.copied", target_type="form",
                       target_id=form.id, details={"form_title": form.title, "name": form.copied_from})
    await session.commit()
    return await _detail(session, staff, form)


@tenant.get("/{form_id}", summary="申請フォーム（下書きと公開の状態）", response_model=FormDetail)
async def get_form(form_id: str, session: DbSession, staff: FormManager) -> FormDetail:
    return await _detail(session, staff, await service.get_form(session, form_id))


@tenant.put("/{form_id}", summary="申請フォームの変更（設定と質問。公開中の版は変わらない）", response_model=FormDetail,
            responses=problem_responses(409))
async def put_form(form_id: str, body: FormWrite, session: DbSession, staff: FormManager) -> FormDetail:
    form = await service.get_form(session, form_id)
    await service.update_settings(session, form, _settings(body), actor=staff.label,
                                  expected_version=body.expected_version)
    if body.fields is not None:
        await service.replace_fields(session, form, [f.model_dump() for f in body.fields], actor=staff.label,
                                     expected_version=None)
    await audit.record(session, audit.Actor.of_staff(staff), "forms.form.updated", target_type="form",
                       target_id=form.id, details={"form_title": form.title})
    await session.commit()
    return await _detail(session, staff, form)


class VersionRequest(Body):
    expected_version: int | None = None


@tenant.post("/{form_id}/publish", summary="下書きを次の版として公開", response_model=FormDetail,
             responses=problem_responses(409))
async def publish(form_id: str, body: VersionRequest, session: DbSession, staff: FormManager) -> FormDetail:
    form = await service.get_form(session, form_id)
    version = await service.publish(session, form, actor=staff.label, expected_version=body.expected_version)
    await audit.record(session, audit.Actor.of_staff(staff), "forms.form.published", target_type="form",
                       target_id=form.id, details={"form_title": form.title, "form_version": version.number})
    await session.commit()
    return await _detail(session, staff, form)


class ShareRequest(Body):
    shared: bool
    expected_version: int | None = None


@tenant.put("/{form_id}/shared", summary="テンプレートとしての共有（公開中の版を共有）", response_model=FormDetail,
            responses=problem_responses(409))
async def share(form_id: str, body: ShareRequest, session: DbSession, staff: FormManager) -> FormDetail:
    form = await service.get_form(session, form_id)
    await service.set_shared(session, form, body.shared, actor=staff.label, expected_version=body.expected_version)
    if body.shared:
        await audit.record(session, audit.Actor.of_staff(staff), "forms.form.shared", target_type="form",
                           target_id=form.id, details={"form_title": form.title})
    else:
        await audit.record(session, audit.Actor.of_staff(staff), "forms.form.unshared", target_type="form",
                           target_id=form.id, details={"form_title": form.title})
    await session.commit()
    return await _detail(session, staff, form)


# -- submissions ------------------------------------------------------------------------------------

class SubmissionWrite(Body):
    answers: dict[str, Any] = Field(description="質問の記号（q1 …）ごとの回答。住所は {postal, prefecture, city, town, line}、複数選択は配列")
    form_token: str = Field(min_length=16, max_length=64, description="二重送信を防ぐ一度限りの値（同じ値の再送は同じ受付になる）")


class SubmissionRead(BaseModel):
    receipt_no: str
    form_id: str
    version_number: int
    status: str
    status_label: str
    assignee_id: str | None
    assignee_name: str
    email: str
    submitted_at: datetime
    answers: dict[str, Any]
    version: int


def _submission(s) -> SubmissionRead:
    return SubmissionRead(receipt_no=s.receipt_no, form_id=s.form_id, version_number=s.version_number, status=s.status,
                          status_label=STATUS_LABELS[SubmissionStatus(s.status)], assignee_id=s.assignee_id,
                          assignee_name=s.assignee_name, email=s.email, submitted_at=s.submitted_at,
                          answers=s.answers, version=s.version)


@tenant.post("/{form_id}/submissions", summary="申請の代理送信（外部システム。検証は画面と同じ）",
             response_model=SubmissionRead, status_code=201)
async def create_submission(form_id: str, body: SubmissionWrite, session: DbSession,
                            staff: SubmissionCreator) -> SubmissionRead:
    form = await service.get_form(session, form_id)
    if not form.published_version or not form.is_open:
        raise InvalidInput("公開中で受付中のフォームにだけ申請できます。")
    version = await service.get_version(session, form.id, form.published_version)
    if version.identity_required:
        raise InvalidInput("本人確認が必要な手続きは、住民がマイナンバーカードでサインインし、署名して申請します（代理送信はできません）。")
    # Attachments come as {"name": ..., "content_base64": ...}: checked by content, kept with the
    # submission (nothing is kept when any answer has a problem: the request is rolled back).
    raw = await uploads.store(session, form, version.fields, body.answers)
    answers, problems = fieldkit.validate(version.fields, raw)
    if problems:
        raise InvalidInput(" ".join(problems.values()),
                           errors=[{"field": f"answers.{k}", "message": m} for k, m in problems.items()])
    submission, _ = await service.submit(session, staff.tenant, form, version, answers, body.form_token)
    await session.commit()
    return _submission(submission)


class InboxRead(BaseModel):
    items: list[SubmissionRead]
    total: int
    page: int
    page_size: int
    counts: dict[str, int]


@tenant.get("/{form_id}/submissions", summary="受付一覧（状況で絞り込み、新しい順）", response_model=InboxRead)
async def inbox(form_id: str, session: DbSession, staff: SubmissionReader, page: PageNumber = 1,
                status: Annotated[str | None, Query(description="received / reviewing / completed / returned")] = None
                ) -> InboxRead:
    form = await service.get_form(session, form_id)
    result = await service.inbox(session, form.id, status=service.parse_status(status), page=page)
    return InboxRead(items=[_submission(s) for s in result.rows], total=result.total, page=result.page,
                     page_size=result.page_size, counts=result.counts)


class EventRead(BaseModel):
    kind: str
    kind_label: str
    body: str
    from_status: str
    to_status: str
    actor_name: str
    created_at: datetime


class SignatureRead(BaseModel):
    signed: bool = Field(description="マイナンバーカードの電子署名があるか（本人確認が必要な手続き）")
    valid: bool = Field(description="保存された申請の内容・電子証明書・署名で検証できたか")
    detail: str


class SubmissionDetail(SubmissionRead):
    events: list[EventRead]
    signature: SignatureRead


async def _full(session, submission) -> SubmissionDetail:
    events = [EventRead(kind=e.kind, kind_label=EventKind(e.kind).label, body=e.body, from_status=e.from_status,
                        to_status=e.to_status, actor_name=e.actor_name, created_at=e.created_at)
              for e in await service.events_of(session, submission.id)]
    verdict = signing.verify_stored(submission.lg_code, submission)
    return SubmissionDetail(**_submission(submission).model_dump(), events=events,
                            signature=SignatureRead(signed=verdict.signed, valid=verdict.valid, detail=verdict.detail))


@tenant.get("/{form_id}/submissions/{receipt_no}/files/{upload_id}", summary="申請の添付ファイル（閲覧は監査ログへ）",
            response_class=Response,
            responses={200: {"description": "添付ファイル（PDF・JPEG・PNG）", "content": {
                "application/pdf": {"schema": {"type": "string", "format": "binary"}},
                "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}}}}})
async def attachment(form_id: str, receipt_no: str, upload_id: str, session: DbSession,
                     staff: SubmissionReader) -> Response:
    form = await service.get_form(session, form_id)
    submission = await service.get_submission(session, form.id, receipt_no)
    found = await service.read_attachment(session, staff, submission, upload_id)
    await session.commit()
    return Response(found.data, media_type=found.media_type, headers={
        "Content-Disposition": uploads.content_disposition(found.filename), "Cache-Control": "no-store"})


@tenant.get("/{form_id}/submissions/{receipt_no}", summary="申請の詳細と経過", response_model=SubmissionDetail)
async def get_submission(form_id: str, receipt_no: str, session: DbSession, staff: SubmissionReader) -> SubmissionDetail:
    form = await service.get_form(session, form_id)
    return await _full(session, await service.get_submission(session, form.id, receipt_no))


class StatusChange(Body):
    status: Literal["received", "reviewing", "completed", "returned"] = Field(
        description="reviewing（審査中）/ completed（完了）/ returned（差戻し）")
    note: str = Field("", max_length=2000)
    expected_version: int | None = None


@tenant.post("/{form_id}/submissions/{receipt_no}/status", summary="状況の変更（受付 → 審査中 → 完了 / 差戻し）",
             response_model=SubmissionDetail, responses=problem_responses(409))
async def change_status(form_id: str, receipt_no: str, body: StatusChange, session: DbSession,
                        staff: SubmissionProcessor) -> SubmissionDetail:
    form = await service.get_form(session, form_id)
    submission = await service.get_submission(session, form.id, receipt_no)
    before = submission.status
    await service.change_status(session, submission, body.status, actor=staff.label, note=body.note,
                                expected_version=body.expected_version)
    await audit.record(session, audit.Actor.of_staff(staff), "forms.submission.status_changed",
                       target_type="form_submission", target_id=submission.id,
                       details={"receipt_no": receipt_no, "form_status": submission.status, "from": before})
    await session.commit()
    return await _full(session, submission)


class Assignment(Body):
    assignee_id: str | None = Field(None, description="職員の principal id。null で担当なし")
    expected_version: int | None = None


@tenant.post("/{form_id}/submissions/{receipt_no}/assign", summary="担当者の割り当て", response_model=SubmissionDetail,
             responses=problem_responses(409))
async def assign(form_id: str, receipt_no: str, body: Assignment, session: DbSession,
                 staff: SubmissionProcessor) -> SubmissionDetail:
    form = await service.get_form(session, form_id)
    submission = await service.get_submission(session, form.id, receipt_no)
    await service.assign(session, submission, body.assignee_id or "", actor=staff.label,
                         expected_version=body.expected_version)
    await audit.record(session, audit.Actor.of_staff(staff), "forms.submission.assigned", target_type="form_submission",
                       target_id=submission.id, details={"receipt_no": receipt_no, "name": submission.assignee_name})
    await session.commit()
    return await _full(session, submission)


class NoteWrite(Body):
    body: str = Field(max_length=4000)


@tenant.post("/{form_id}/submissions/{receipt_no}/comments", summary="内部メモ（職員だけが見る）",
             response_model=SubmissionDetail, status_code=201)
async def comment(form_id: str, receipt_no: str, body: NoteWrite, session: DbSession,
                  staff: SubmissionProcessor) -> SubmissionDetail:
    form = await service.get_form(session, form_id)
    submission = await service.get_submission(session, form.id, receipt_no)
    await service.add_note(session, submission, EventKind.comment, body.body, actor=staff.label)
    await audit.record(session, audit.Actor.of_staff(staff), "forms.submission.commented",
                       target_type="form_submission", target_id=submission.id, details={"receipt_no": receipt_no})
    await session.commit()
    return await _full(session, submission)


@tenant.post("/{form_id}/submissions/{receipt_no}/messages", summary="申請者へのメッセージ（メールで送信）",
             response_model=SubmissionDetail, status_code=201)
async def message(form_id: str, receipt_no: str, body: NoteWrite, session: DbSession,
                  staff: SubmissionProcessor) -> SubmissionDetail:
    form = await service.get_form(session, form_id)
    submission = await service.get_submission(session, form.id, receipt_no)
    await service.add_note(session, submission, EventKind.message, body.body, actor=staff.label)
    await audit.record(session, audit.Actor.of_staff(staff), "forms.submission.messaged",
                       target_type="form_submission", target_id=submission.id, details={"receipt_no": receipt_no})
    await session.commit()
    return await _full(session, submission)


class SubmissionsExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["received", "reviewing", "completed", "returned"] | None = Field(
        None, description="状況で絞り込む（空: すべて）")


@tenant.post("/{form_id}/submissions/exports", summary="申請一覧の書き出しを依頼する（件数に上限なし。背景で作成、CSV）",
             description="受け付けて 202 を返します。Location の URL（書き出しの状態）で state が ready になったら、"
                         "download_url から受け取れます（依頼した本人だけ、7日間）。",
             status_code=202, response_model=ExportRead,
             responses={202: {"description": "受け付けました", "headers": {"Location": {
                 "description": "書き出しの状態の URL", "schema": {"type": "string"}}}}, **WRITE_ERRORS})
async def export_submissions(form_id: str, body: SubmissionsExportRequest, request: Request, response: Response,
                             staff: SubmissionReader, _json: JsonWrite, session: DbSession) -> ExportRead:
    form = await service.get_form(session, form_id)
    status = service.parse_status(body.status)
    export, job = await exports_service.request_export(
        session, staff, form_exports.SUBMISSIONS.name, {"form_id": form.id, "status": body.status},
        description=form.title + (f"・{STATUS_LABELS[status]}" if status else ""))
    await session.commit()
    await exports_service.start(request.app, session, job)
    export = await exports_service.own(session, staff, export.id)
    read = export_read(export, await exports_service.job_of(session, export), exports_api_base(staff))
    response.headers["Location"] = read.location
    return read
