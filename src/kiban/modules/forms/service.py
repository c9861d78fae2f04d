"""電子申請: the rules. Forms and their versions, submissions (idempotent per form token, a
receipt number unique per tenant), the inbox (status, assignment, comments, messages), shared
templates, and what a submission sets off (the receipt e-mail, the metering count).

No commit here: routes commit, so an action and its audit entry, notification and usage count
commit or roll back together.
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.identity.models import Membership, Principal
from kiban.core.metering import service as metering
from kiban.core.notify import service as notify
from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import Tenant, current_tenant, unscoped
from kiban.core.tenancy.repository import TenantRepository
from kiban.kit.db import utcnow
from kiban.kit.errors import Conflict, InvalidInput, NotFound
from kiban.kit.wareki import JST
from kiban.core.audit import service as audit
from kiban.modules.forms import fields as fieldkit
from kiban.modules.forms import uploads
from kiban.modules.forms.models import (
    STATUS_LABELS,
    TRANSITIONS,
    EventKind,
    Form,
    FormSubmission,
    FormSubmissionEvent,
    FormVersion,
    SubmissionStatus,
)


#: The catalog's 電子申請 service: usage and notifications are counted against it.
METERED_SERVICE = "aichi-e-shinsei"
PAGE_SIZE = 50
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,59}$")
NOT_FOUND = "お探しの申請フォームは見つかりませんでした。"

RECEIPT_TEMPLATE = "forms.receipt"
STATUS_TEMPLATE = "forms.status"
MESSAGE_TEMPLATE = "forms.message"


def _register_templates() -> None:
    common = ("form_title", "receipt_no", "organization", "contact")
    notify.register_template(notify.TemplateDef(
        key=RECEIPT_TEMPLATE, label="電子申請の受付通知",
        subject="【{organization}】{form_title}を受け付けました（受付番号 {receipt_no}）",
        body="{form_title}を受け付けました。\n\n受付番号: {receipt_no}\n受付日時: {submitted_at}\n\n"
             "お問い合わせの際は受付番号をお知らせください。\n{contact}\n\n{organization}",
        placeholders=(*common, "submitted_at")))
    notify.register_template(notify.TemplateDef(
        key=STATUS_TEMPLATE, label="電子申請の処理結果の通知",
        subject="【{organization}】{form_title}（受付番号 {receipt_no}）: {status}",
        body="受付番号 {receipt_no} の{form_title}は「{status}」となりました。\n\n{note}\n\n"
             "お問い合わせ先: {contact}\n{organization}",
        placeholders=(*common, "status", "note")))
    notify.register_template(notify.TemplateDef(
        key=MESSAGE_TEMPLATE, label="電子申請の担当者からの連絡",
        subject="【{organization}】{form_title}（受付番号 {receipt_no}）についてのご連絡",
        body="受付番号 {receipt_no} の{form_title}について、担当者からのご連絡です。\n\n{message}\n\n"
             "お問い合わせ先: {contact}\n{organization}",
        placeholders=(*common, "message")))


_register_templates()


class FormRepository(TenantRepository[Form]):
    model = Form


class VersionRepository(TenantRepository[FormVersion]):
    model = FormVersion


class SubmissionRepository(TenantRepository[FormSubmission]):
    model = FormSubmission


class EventRepository(TenantRepository[FormSubmissionEvent]):
    model = FormSubmissionEvent


# -- forms --------------------------------------------------------------------------------------

async def list_forms(session: AsyncSession) -> list[tuple[Form, int]]:
    """The tenant's forms with their number of submissions, newest first."""
    repo = FormRepository(session)
    counts = dict((await session.execute(
        select(FormSubmission.form_id, func.count()).where(FormSubmission.lg_code == repo.tenant.lg_code)
        .group_by(FormSubmission.form_id))).all())
    forms = await repo.all(repo.select().order_by(Form.created_at.desc(), Form.id))
    return [(f, counts.get(f.id, 0)) for f in forms]


async def get_form(session: AsyncSession, form_id: str) -> Form:
    repo = FormRepository(session)
    form = await repo.first(repo.select().where(Form.id == form_id))
    if form is None:
        raise NotFound(NOT_FOUND)
    return form


def _check_slug(slug: str) -> str:
    slug = fieldkit._fold(slug).lower()
    if not _SLUG.match(slug):
        raise InvalidInput("URL に使う名前は、半角の英小文字・数字・ハイフンで2〜60文字にしてください（例: sodai-gomi）。",
                           errors=[{"field": "slug", "message": "半角の英小文字・数字・ハイフンで2〜60文字にしてください。"}])
    return slug


async def _slug_free(session: AsyncSession, slug: str, form_id: str | None = None) -> bool:
    repo = FormRepository(session)
    found = await repo.first(repo.select().where(Form.slug == slug))
    return found is None or found.id == form_id


@dataclass
class FormSettings:
    title: str
    slug: str
    description: str = ""
    contact: str = ""
    identity_required: bool = False
    is_open: bool = True
    shared_summary: str = ""


def _check_settings(data: FormSettings) -> FormSettings:
    errors = []
    title = data.title.strip()
    if not title or len(title) > 200:
        errors.append({"field": "title", "message": "フォームの名前を200文字以内で入力してください。"})
    try:
        slug = _check_slug(data.slug)
    except InvalidInput as exc:
        errors.extend(exc.errors)
        slug = data.slug
    if len(data.description) > 4000:
        errors.append({"field": "description", "message": "説明は4,000文字以内で入力してください。"})
    if len(data.contact) > 400:
        errors.append({"field": "contact", "message": "問い合わせ先は400文字以内で入力してください。"})
    if len(data.shared_summary) > 400:
        errors.append({"field": "shared_summary", "message": "テンプレートの紹介文は400文字以内で入力してください。"})
    if errors:
        raise InvalidInput("入力内容を確認してください。", errors=errors)
    return FormSettings(title, slug, data.description.strip(), data.contact.strip(), data.identity_required,
                        data.is_open, data.shared_summary.strip())


async def create_form(session: AsyncSession, data: FormSettings, *, actor: str,
                      fields: list[dict] | None = None, copied_from: str = "") -> Form:
    data = _check_settings(data)
    if not await _slug_free(session, data.slug):
        raise InvalidInput("この URL の名前はすでに使われています。別の名前にしてください。",
                           errors=[{"field": "slug", "message": "この名前はすでに使われています。"}])
    now = utcnow()
    form = Form(id=str(uuid.uuid4()), slug=data.slug, title=data.title, description=data.description,
                contact=data.contact, fields=list(fields or []), identity_required=data.identity_required,
                is_open=data.is_open, shared_summary=data.shared_summary, copied_from=copied_from,
                published_version=0, shared=False, version=1, created_by=actor, created_at=now,
                updated_by=actor, updated_at=now)
    FormRepository(session).add(form)
    await session.flush()
    return form


def _bump(form: Form, actor: str, expected_version: int | None) -> None:
    if expected_version is not None and expected_version != form.version:
        raise Conflict("ほかの職員がこのフォームを先に変更しました。画面を開き直して、もう一度操作してください。")
    form.version += 1
    form.updated_by, form.updated_at = actor, utcnow()


async def update_settings(session: AsyncSession, form: Form, data: FormSettings, *, actor: str,
                          expected_version: int | None) -> Form:
    data = _check_settings(data)
    if not await _slug_free(session, data.slug, form.id):
        raise InvalidInput("この URL の名前はすでに使われています。",
                           errors=[{"field": "slug", "message": "この名前はすでに使われています。"}])
    if form.published_version and data.slug != form.slug:
        raise InvalidInput("公開したフォームの URL は変えられません（案内した URL が使えなくなるため）。",
                           errors=[{"field": "slug", "message": "公開したフォームの URL は変えられません。"}])
    _bump(form, actor, expected_version)
    form.title, form.slug, form.description, form.contact = data.title, data.slug, data.description, data.contact
    form.identity_required, form.is_open, form.shared_summary = data.identity_required, data.is_open, data.shared_summary
    await session.flush()
    return form


async def add_field(session: AsyncSession, form: Form, raw: dict, *, actor: str, expected_version: int | None) -> dict:
    field, problems = fieldkit.clean_field(raw, form.fields)
    if problems:
        raise InvalidInput("項目を追加できませんでした。", errors=[{"field": "field", "message": p} for p in problems])
    if len(form.fields) >= fieldkit.MAX_FIELDS:
        raise InvalidInput(f"項目は{fieldkit.MAX_FIELDS}個までです。")
    _bump(form, actor, expected_version)
    form.fields = [*form.fields, field]
    await session.flush()
    return field


async def update_field(session: AsyncSession, form: Form, key: str, raw: dict, *, actor: str,
                       expected_version: int | None) -> dict:
    index = next((i for i, f in enumerate(form.fields) if f["key"] == key), None)
    if index is None:
        raise NotFound("この項目は見つかりませんでした。")
    field, problems = fieldkit.clean_field(raw, form.fields[:index], key=key)
    if problems:
        raise InvalidInput("項目を保存できませんでした。", errors=[{"field": "field", "message": p} for p in problems])
    _bump(form, actor, expected_version)
    form.fields = [*form.fields[:index], field, *form.fields[index + 1:]]
    await session.flush()
    return field


async def remove_field(session: AsyncSession, form: Form, key: str, *, actor: str, expected_version: int | None) -> None:
    if not any(f["key"] == key for f in form.fields):
        raise NotFound("この項目は見つかりませんでした。")
    dependants = [f["label"] for f in form.fields if (f.get("show_if") or {}).get("field") == key]
    if dependants:
        raise InvalidInput(f"この項目は「{'」「'.join(dependants)}」の表示の条件に使われています。先に条件を外してください。")
    _bump(form, actor, expected_version)
    form.fields = [f for f in form.fields if f["key"] != key]
    await session.flush()


async def move_field(session: AsyncSession, form: Form, key: str, direction: str, *, actor: str,
                     expected_version: int | None) -> None:
    keys = [f["key"] for f in form.fields]
    if key not in keys or direction not in ("up", "down"):
        raise NotFound("この項目は見つかりませんでした。")
    index = keys.index(key)
    other = index - 1 if direction == "up" else index + 1
    if not 0 <= other < len(keys):
        return
    moved = list(form.fields)
    moved[index], moved[other] = moved[other], moved[index]
    if fieldkit.check_definition(moved):
        raise InvalidInput("表示の条件に使う項目より前には動かせません。")
    _bump(form, actor, expected_version)
    form.fields = moved
    await session.flush()


async def replace_fields(session: AsyncSession, form: Form, fields: list[dict], *, actor: str,
                         expected_version: int | None) -> Form:
    """The whole list at once (the API's builder)."""
    cleaned: list[dict] = []
    problems: list[str] = []
    for number, raw in enumerate(fields, start=1):
        field, issues = fieldkit.clean_field(raw, cleaned, key=raw.get("key") or fieldkit.new_key(cleaned))
        problems.extend(f"{number}番目の項目: {p}" for p in issues)
        cleaned.append(field)
    problems.extend(p for p in fieldkit.check_definition(cleaned) if p not in problems)
    if problems:
        raise InvalidInput(" ".join(problems), errors=[{"field": "fields", "message": p} for p in problems])
    _bump(form, actor, expected_version)
    form.fields = cleaned
    await session.flush()
    return form


async def publish(session: AsyncSession, form: Form, *, actor: str, expected_version: int | None) -> FormVersion:
    """Freeze the draft as the next version; the public URL serves it from now on. Earlier
    versions stay, with the submissions made on them."""
    if not form.fields:
        raise InvalidInput("項目が1つもないフォームは公開できません。")
    problems = fieldkit.check_definition(form.fields)
    if problems:
        raise InvalidInput(" ".join(problems))
    _bump(form, actor, expected_version)
    number = form.published_version + 1
    version = FormVersion(form_id=form.id, number=number, title=form.title, description=form.description,
                          contact=form.contact, fields=list(form.fields), identity_required=form.identity_required,
                          published_by=actor, published_at=utcnow())
    VersionRepository(session).add(version)
    form.published_version = number
    await session.flush()
    return version


def has_unpublished_changes(form: Form, version: FormVersion | None) -> bool:
    if version is None:
        return True
    return (form.fields, form.title, form.description, form.contact, form.identity_required) != (
        version.fields, version.title, version.description, version.contact, version.identity_required)


async def get_version(session: AsyncSession, form_id: str, number: int) -> FormVersion | None:
    repo = VersionRepository(session)
    return await repo.first(repo.select().where(FormVersion.form_id == form_id, FormVersion.number == number))


async def versions_of(session: AsyncSession, form_id: str) -> list[FormVersion]:
    repo = VersionRepository(session)
    return list(await repo.all(repo.select().where(FormVersion.form_id == form_id).order_by(FormVersion.number)))


async def published_form(session: AsyncSession, slug: str) -> tuple[Form, FormVersion]:
    """The form a resident opens at ``/f/{lg_code}/{slug}``: published and open, else 404."""
    repo = FormRepository(session)
    form = await repo.first(repo.select().where(Form.slug == slug))
    if form is None or not form.published_version:
        raise NotFound(NOT_FOUND)
    version = await get_version(session, form.id, form.published_version)
    return form, version


async def set_shared(session: AsyncSession, form: Form, shared: bool, *, actor: str,
                     expected_version: int | None) -> Form:
    if shared and not form.published_version:
        raise InvalidInput("テンプレートとして共有できるのは、公開したフォームだけです。先に公開してください。")
    _bump(form, actor, expected_version)
    form.shared = shared
    await session.flush()
    return form


# -- shared templates (the one deliberate cross-tenant read of this module) -----------------------

@dataclass
class SharedTemplate:
    lg_code: str
    organization: str
    form_id: str
    title: str
    summary: str
    version: int
    fields: list[dict]
    description: str


async def shared_templates(session: AsyncSession) -> list[SharedTemplate]:
    """Every form some municipality shares, as its latest published version. Shared forms are
    public by their owner's choice (their definition only, never submissions)."""
    async with unscoped(session, "forms: shared templates are published to every municipality"):
        rows = (await session.execute(
            select(Form, FormVersion).join(FormVersion, (FormVersion.lg_code == Form.lg_code)
                                           & (FormVersion.form_id == Form.id)
                                           & (FormVersion.number == Form.published_version))
            .where(Form.shared.is_(True)).order_by(Form.title, Form.lg_code))).all()
    names = await registry_service.organizations_by_code(session, sorted({f.lg_code for f, _ in rows}))
    return [SharedTemplate(f.lg_code, _org_name(names, f.lg_code), f.id, v.title, f.shared_summary, v.number,
                           v.fields, v.description) for f, v in rows]


def _org_name(names: Any, code: str) -> str:
    org = names.get(code) if isinstance(names, dict) else None
    return getattr(org, "name", None) or code


async def shared_template(session: AsyncSession, lg_code: str, form_id: str) -> SharedTemplate:
    for template in await shared_templates(session):
        if template.lg_code == lg_code and template.form_id == form_id:
            return template
    raise NotFound("このテンプレートは見つかりませんでした（共有が止められた可能性があります）。")


async def copy_template(session: AsyncSession, source_lg_code: str, form_id: str, *, actor: str,
                        title: str | None = None, slug: str | None = None) -> Form:
    """One step: the shared version's questions become a draft of this tenant's own form, to
    adapt (title, contact, settings) and publish. The source is named on the copy."""
    template = await shared_template(session, source_lg_code, form_id)
    tenant = current_tenant(session)
    if tenant.lg_code == source_lg_code:
        raise InvalidInput("自分の団体のフォームはコピーせずにそのまま編集してください。")
    async with unscoped(session, "forms: the slug of a shared template, to suggest for the copy"):
        source_slug = await session.scalar(select(Form.slug).where(Form.lg_code == source_lg_code, Form.id == form_id))
    base = _check_slug(slug) if slug else source_slug
    candidate, n = base, 1
    while not await _slug_free(session, candidate):
        n += 1
        candidate = f"{base[:55]}-{n}"
    return await create_form(session, FormSettings(title=title or template.title, slug=candidate,
                                                   description=template.description), actor=actor,
                             fields=template.fields,
                             copied_from=f"{template.organization}「{template.title}」第{template.version}版")


# -- submissions --------------------------------------------------------------------------------

def new_form_token() -> str:
    return secrets.token_urlsafe(24)


def _receipt_no(now: datetime) -> str:
    """「20261130-4821-0937」: the day in Japan, then 8 random digits (no row every submission
    of a tenant would queue on; unique per tenant by constraint, drawn again on a clash)."""
    digits = f"{secrets.randbelow(10**8):08d}"
    return f"{now.astimezone(JST):%Y%m%d}-{digits[:4]}-{digits[4:]}"


async def submission_by_token(session: AsyncSession, form_token: str) -> FormSubmission | None:
    repo = SubmissionRepository(session)
    return await repo.first(repo.select().where(FormSubmission.form_token == form_token))


async def submit(session: AsyncSession, tenant: Tenant, form: Form, version: FormVersion, answers: dict,
                 form_token: str, *, principal_id: str | None = None, signer_certificate: str | None = None,
                 signature: str | None = None) -> tuple[FormSubmission, bool]:
    """Store one submission, or find the one already made with ``form_token`` (a double
    submit, a retried request): (submission, created). ``answers`` must already be validated.
    On creation the receipt e-mail is queued and the submission counted, in this transaction."""
    if not form_token or len(form_token) > 64:
        raise InvalidInput("送信の確認用の情報がありません。確認画面からもう一度送信してください。")
    existing = await submission_by_token(session, form_token)
    if existing is not None:
        if existing.form_id != form.id:
            raise InvalidInput("送信の確認用の情報が正しくありません。フォームを開き直してください。")
        return existing, False
    now = utcnow()
    email = fieldkit.email_of(version.fields, answers)
    for _ in range(5):
        submission = FormSubmission(
            id=str(uuid.uuid4()), form_id=form.id, version_number=version.number, receipt_no=_receipt_no(now),
            form_token=form_token, answers=answers, email=email, principal_id=principal_id,
            signer_certificate=signer_certificate, signature=signature, status=SubmissionStatus.received.value, submitted_at=now, updated_at=now, version=1)
        try:
            async with session.begin_nested():
                SubmissionRepository(session).add(submission)
                await session.flush()
            break
        except IntegrityError:
            session.expunge(submission) if submission in session else None
            existing = await submission_by_token(session, form_token)
            if existing is not None:  # the same token won a race with us
                return existing, False
    else:  # pragma: no cover - five clashes of 8 random digits on one day
        raise Conflict("受付番号を発行できませんでした。もう一度送信してください。")
    await uploads.claim(session, submission, version.fields, answers)
    await metering.count(session, tenant, METERED_SERVICE, "submission", key=submission.id)
    if email or principal_id:
        await notify.send(session, tenant, template=RECEIPT_TEMPLATE,
                          to=notify.Recipient(email=email or None, principal_id=principal_id),
                          context={"form_title": version.title, "receipt_no": submission.receipt_no,
                                   "organization": tenant.name, "contact": version.contact,
                                   "submitted_at": _when(now)},
                          service=METERED_SERVICE, dedupe_key=f"forms.receipt:{submission.id}")
    return submission, True


def _when(at: datetime) -> str:
    from kiban.kit.wareki import datetime_ja

    return datetime_ja(at)


@dataclass
class InboxPage:
    rows: list[FormSubmission]
    total: int
    page: int
    page_size: int
    counts: dict[str, int]

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def parse_status(value: str | None) -> SubmissionStatus | None:
    if not value:
        return None
    try:
        return SubmissionStatus(value)
    except ValueError:
        raise InvalidInput("状況は一覧から選んでください。",
                           errors=[{"field": "status", "message": "状況は 受付・審査中・完了・差戻し から選んでください。"}]) from None


async def inbox(session: AsyncSession, form_id: str, *, status: SubmissionStatus | None, page: int,
                page_size: int = PAGE_SIZE, assignee: str | None = None) -> InboxPage:
    """One page of a form's submissions, newest first, paged in SQL."""
    repo = SubmissionRepository(session)
    query = repo.select().where(FormSubmission.form_id == form_id)
    if status is not None:
        query = query.where(FormSubmission.status == status.value)
    if assignee:
        query = query.where(FormSubmission.assignee_id == assignee)
    total = await repo.count(query)
    rows = await repo.all(query.order_by(FormSubmission.submitted_at.desc(), FormSubmission.id)
                          .offset((page - 1) * page_size).limit(page_size))
    counts = dict((await session.execute(
        select(FormSubmission.status, func.count()).where(FormSubmission.lg_code == repo.tenant.lg_code,
                                                          FormSubmission.form_id == form_id)
        .group_by(FormSubmission.status))).all())
    return InboxPage(list(rows), total, page, page_size, {s.value: counts.get(s.value, 0) for s in SubmissionStatus})


async def get_submission(session: AsyncSession, form_id: str, receipt_no: str) -> FormSubmission:
    repo = SubmissionRepository(session)
    found = await repo.first(repo.select().where(FormSubmission.form_id == form_id,
                                                 FormSubmission.receipt_no == receipt_no))
    if found is None:
        raise NotFound("この受付番号の申請は見つかりませんでした。")
    return found


async def events_of(session: AsyncSession, submission_id: str) -> list[FormSubmissionEvent]:
    repo = EventRepository(session)
    return list(await repo.all(repo.select().where(FormSubmissionEvent.submission_id == submission_id)
                               .order_by(FormSubmissionEvent.created_at, FormSubmissionEvent.id)))


def _event(submission: FormSubmission, kind: EventKind, actor: str, **values: str) -> FormSubmissionEvent:
    return FormSubmissionEvent(id=str(uuid.uuid4()), submission_id=submission.id, kind=kind.value,
                               actor_name=actor, created_at=utcnow(), **values)


def _touch(submission: FormSubmission, expected_version: int | None) -> None:
    if expected_version is not None and expected_version != submission.version:
        raise Conflict("ほかの職員がこの申請を先に更新しました。画面を開き直して、もう一度操作してください。")
    submission.version += 1
    submission.updated_at = utcnow()


async def _notify_applicant(session: AsyncSession, submission: FormSubmission, version: FormVersion | None,
                            template: str, dedupe_key: str, **context: str) -> bool:
    if not (submission.email or submission.principal_id):
        return False
    tenant = current_tenant(session)
    await notify.send(session, tenant, template=template,
                      to=notify.Recipient(email=submission.email or None, principal_id=submission.principal_id),
                      context={"form_title": version.title if version else "", "receipt_no": submission.receipt_no,
                               "organization": tenant.name, "contact": version.contact if version else "", **context},
                      service=METERED_SERVICE, dedupe_key=dedupe_key)
    return True


async def change_status(session: AsyncSession, submission: FormSubmission, to: str, *, actor: str, note: str = "",
                        expected_version: int | None = None) -> FormSubmissionEvent:
    target = parse_status(to)
    if target is None:
        raise InvalidInput("変更後の状況を選んでください。", errors=[{"field": "status", "message": "変更後の状況を選んでください。"}])
    current = SubmissionStatus(submission.status)
    if target not in TRANSITIONS[current]:
        allowed = "・".join(s.label for s in TRANSITIONS[current]) or "なし（完了した申請です）"
        raise InvalidInput(f"「{current.label}」から「{target.label}」には変えられません。変えられる状況: {allowed}",
                           errors=[{"field": "status", "message": f"「{current.label}」から「{target.label}」には変えられません。"}])
    note = note.strip()
    if len(note) > 2000:
        raise InvalidInput("理由・連絡事項は2,000文字以内で入力してください。",
                           errors=[{"field": "note", "message": "2,000文字以内で入力してください。"}])
    if target is SubmissionStatus.returned and not note:
        raise InvalidInput("差戻しの理由を入力してください（申請者に伝わります）。",
                           errors=[{"field": "note", "message": "差戻しの理由を入力してください。"}])
    _touch(submission, expected_version)
    submission.status = target.value
    event = _event(submission, EventKind.status, actor, body=note, from_status=current.value, to_status=target.value)
    EventRepository(session).add(event)
    await session.flush()
    if target in (SubmissionStatus.completed, SubmissionStatus.returned):
        version = await get_version(session, submission.form_id, submission.version_number)
        await _notify_applicant(session, submission, version, STATUS_TEMPLATE,
                                f"forms.status:{submission.id}:{event.id}", status=target.label,
                                note=note or "手続きは以上で完了です。")
    return event


async def staff_members(session: AsyncSession) -> list[tuple[str, str]]:
    """(principal id, name) of the tenant's active staff, for assignment."""
    tenant = current_tenant(session)
    rows = (await session.execute(
        select(Principal.id, Principal.display_name).join(Membership, Membership.principal_id == Principal.id)
        .where(Membership.lg_code == tenant.lg_code, Membership.revoked_at.is_(None))
        .order_by(Principal.display_name))).all()
    return [(r[0], r[1]) for r in rows]


async def assign(session: AsyncSession, submission: FormSubmission, principal_id: str, *, actor: str,
                 expected_version: int | None = None) -> FormSubmissionEvent:
    members = dict(await staff_members(session))
    if principal_id and principal_id not in members:
        raise InvalidInput("担当者は一覧から選んでください。", errors=[{"field": "assignee", "message": "担当者は一覧から選んでください。"}])
    _touch(submission, expected_version)
    submission.assignee_id = principal_id or None
    submission.assignee_name = members.get(principal_id, "")
    event = _event(submission, EventKind.assigned, actor, body=submission.assignee_name or "（担当者なし）")
    EventRepository(session).add(event)
    await session.flush()
    return event


async def add_note(session: AsyncSession, submission: FormSubmission, kind: EventKind, body: str, *,
                   actor: str) -> FormSubmissionEvent:
    """An internal comment (staff only) or a message to the applicant (sent by e-mail and kept)."""
    body = body.strip()
    if not body:
        raise InvalidInput("本文を入力してください。", errors=[{"field": "body", "message": "本文を入力してください。"}])
    if len(body) > 4000:
        raise InvalidInput("本文は4,000文字以内で入力してください。", errors=[{"field": "body", "message": "4,000文字以内で入力してください。"}])
    if kind is EventKind.message and not (submission.email or submission.principal_id):
        raise InvalidInput("この申請には連絡先（メールアドレス）がないため、メッセージを送れません。",
                           errors=[{"field": "body", "message": "申請者の連絡先がありません。"}])
    submission.updated_at = utcnow()
    event = _event(submission, kind, actor, body=body)
    EventRepository(session).add(event)
    await session.flush()
    if kind is EventKind.message:
        version = await get_version(session, submission.form_id, submission.version_number)
        await _notify_applicant(session, submission, version, MESSAGE_TEMPLATE, f"forms.message:{event.id}",
                                message=body)
    return event


# -- export -------------------------------------------------------------------------------------

async def export_columns(session: AsyncSession, form: Form) -> list[tuple[str, dict]]:
    """One column per question, in the order of the newest version, questions of older versions after them."""
    versions = {v.number: v for v in await versions_of(session, form.id)}
    columns: list[tuple[str, dict]] = []
    seen: set[str] = set()
    for number in sorted(versions, reverse=True):
        for field in versions[number].fields:
            if field["key"] not in seen:
                seen.add(field["key"])
                columns.append((field["key"], field))
    return columns


def export_header(columns: list[tuple[str, dict]]) -> list[str]:
    return ["受付番号", "受付日時", "版", "状況", "担当者", *(f["label"] for _, f in columns)]


def _export_query(form: Form, status: SubmissionStatus | None, repo: SubmissionRepository):
    query = repo.select().where(FormSubmission.form_id == form.id)
    if status is not None:
        query = query.where(FormSubmission.status == status.value)
    return query


async def export_rows(session: AsyncSession, form: Form, columns: list[tuple[str, dict]], *,
                      status: SubmissionStatus | None = None, after: tuple[str, str] | None = None,
                      limit: int | None = None) -> list[tuple[FormSubmission, list[Any]]]:
    """Submissions in the order they arrived, after the keyset ``after`` (submitted_at ISO, id)."""
    repo = SubmissionRepository(session)
    query = _export_query(form, status, repo)
    if after is not None:
        at = datetime.fromisoformat(after[0])
        query = query.where(or_(FormSubmission.submitted_at > at,
                                and_(FormSubmission.submitted_at == at, FormSubmission.id > after[1])))
    query = query.order_by(FormSubmission.submitted_at, FormSubmission.id)
    if limit is not None:
        query = query.limit(limit)
    return [(s, [s.receipt_no, s.submitted_at.astimezone(JST).replace(tzinfo=None), s.version_number,
                 STATUS_LABELS[SubmissionStatus(s.status)], s.assignee_name,
                 *(fieldkit.answer_text(f, s.answers.get(k)) for k, f in columns)])
            for s in await repo.all(query)]


async def export_count(session: AsyncSession, form: Form, status: SubmissionStatus | None = None) -> int:
    repo = SubmissionRepository(session)
    return await repo.count(_export_query(form, status, repo))


async def export_table(session: AsyncSession, form: Form, *, status: SubmissionStatus | None = None
                       ) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of every submission (all versions), for a download while staff wait."""
    columns = await export_columns(session, form)
    return export_header(columns), [row for _, row in await export_rows(session, form, columns, status=status)]


async def read_attachment(session: AsyncSession, staff, submission: FormSubmission, upload_id: str):
    """One attachment of ``submission`` for staff, the reading recorded in the audit log."""
    found = await uploads.of_submission(session, submission, upload_id)
    await audit.record(session, audit.Actor.of_staff(staff), "forms.attachment.read", target_type="form_upload",
                       target_id=found.id, details={"receipt_no": submission.receipt_no, "filename": found.filename,
                                                    "sha256": found.sha256})
    return found
