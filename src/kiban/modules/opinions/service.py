"""意見照会: a ministry consults every local government on a draft, section by section.

* The ministry (a national body, 府省庁) writes the draft as sections, sets the period and who is
  consulted, and announces it (the sections freeze; the consulted bodies' staff are told).
* A consulted body's staff comment on sections (意見 or 質問, optionally a proposed revision),
  edit (optimistic versions: 409) and withdraw until the period closes.
* The ministry classifies each comment, writes answers (one answer may serve several comments)
  and publishes the table of comments and answers (意見と回答の一覧), which anyone may read.

Who may read a comment other than the body that wrote it is one named rule, ``READ_RULE``:
the consulting ministry (always), everyone once the table is published (the comment text,
section, answer and the body's kind, and its name only when the ministry chose to publish names;
withdrawn comments never). Each such read goes through ``unscoped(...)`` with its reason,
filtered to the one consultation.

Raises ``NotFound`` for anything not addressed to the caller (same as missing), ``InvalidInput``
(422, Japanese messages, nothing changed) and ``Conflict`` (409) for a stale version.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.audit import labels as audit_labels
from kiban.core.registry.models import MUNICIPAL_TYPES, Organization, OrgType
from kiban.core.tenancy.context import Tenant, unscoped
from kiban.kit.db import utcnow
from kiban.kit.errors import Conflict, InvalidInput, NotFound
from kiban.modules.opinions.models import Answer, Comment, Consultation, Review

# Audit labels of this module (registered here, as modules/governance does).
audit_labels.ACTION_LABELS.update({
    "opinions.consultation.created": "意見照会の作成",
    "opinions.consultation.updated": "意見照会の変更",
    "opinions.consultation.announced": "意見照会の開始（各団体への通知）",
    "opinions.consultation.published": "意見と回答の一覧の公表",
    "opinions.comment.submitted": "意見照会への意見・質問の提出",
    "opinions.comment.edited": "意見照会への意見・質問の修正",
    "opinions.comment.withdrawn": "意見照会への意見・質問の取下げ",
    "opinions.comments.read": "意見照会に寄せられた意見の閲覧",
    "opinions.comments.classified": "意見の分類と回答",
    "opinions.answer.edited": "意見への回答の修正",
})
audit_labels.TARGET_TYPE_LABELS.update({"opinion_consultation": "意見照会", "opinion_comment": "意見照会への意見",
                                        "opinion_answer": "意見への回答"})

READ_RULE = ("意見を読めるのは、意見を出した団体と照会した府省庁だけ。意見と回答の一覧を公表した後は誰でも"
             "（団体名は府省庁が公表を選んだときだけ。取り下げた意見は公表しない）")
ADDRESSED_REASON = "意見照会: 照会先の団体が、府省庁の照会（案の本文と期間）を読む"
SECRETARIAT_REASON = "意見照会: 照会した府省庁が、届いた意見を読み、分類して回答する"
PUBLISHED_REASON = "意見照会: 公表した意見と回答の一覧を誰でも読める（団体名は公表を選んだときだけ）"
NOTIFY_REASON = "意見照会: 照会の開始を照会先の団体の職員に知らせる（宛先の職員だけ読む）"
NOT_FOUND = "お探しの意見照会・意見は見つかりませんでした。"

KINDS = {"opinion": "意見", "question": "質問"}
# The headings of Japanese パブリックコメント / 意見照会 result tables (意見に対する考え方).
CATEGORIES = {
    "revised": "御意見を踏まえ修正",
    "included": "既に原案に反映済み",
    "as_is": "原案どおり",
    "reference": "今後の検討の参考",
    "answer": "質問への回答",
    "other": "その他（案の範囲外）",
}
TARGET_KINDS = {"all": "全ての地方公共団体（都道府県と市区町村）", "municipalities": "市区町村",
                "prefectures": "都道府県"}
STATUS_LABELS = {"draft": "下書き（未公開）", "upcoming": "受付開始前", "open": "意見受付中", "closed": "受付終了（整理中）",
                 "published": "意見と回答の一覧を公表済み"}
MAX_SECTIONS = 100
MAX_TEXT = 4000
MAX_SECTION_TEXT = 20_000
SECTION_HEADING = re.compile(r"^[#＃]+\s*(.*)$")
NUMBER_FIRST = re.compile(r"^(\S*[0-9０-９一二三四五六七八九十①-⑳ⅠⅡⅢⅣⅤ]\S*)\s+(.+)$")


def _id() -> str:
    return str(uuid.uuid4())


def today() -> date:
    """The date in Japan: a period that closes on 6月7日 closes at midnight JST."""
    return (utcnow() + timedelta(hours=9)).date()


def body_kind(org_type: str) -> str:
    """団体種別 shown instead of the name: 都道府県 or 市区町村."""
    return "都道府県" if org_type == OrgType.prefecture.value else "市区町村"


def is_national(tenant: Tenant) -> bool:
    return tenant.type == OrgType.national.value


def ministry_only(tenant: Tenant) -> None:
    """Authoring and the secretariat's pages exist only at a national body; elsewhere 404."""
    if not is_national(tenant):
        raise NotFound("ページが見つかりません。")


def is_target(consultation: Consultation, tenant: Tenant) -> bool:
    kind = consultation.target_kind
    if tenant.type == OrgType.prefecture.value:
        return kind in ("all", "prefectures")
    if tenant.type in {t.value for t in MUNICIPAL_TYPES}:
        return kind in ("all", "municipalities")
    return False


def status_of(c: Consultation) -> str:
    if c.published_at is not None:
        return "published"
    if c.announced_at is None:
        return "draft"
    now = today()
    if now < c.opens_on:
        return "upcoming"
    if now > c.closes_on:
        return "closed"
    return "open"


def accepting(c: Consultation) -> bool:
    return status_of(c) == "open"


# -- the draft -----------------------------------------------------------------------------------------

def parse_sections(text: str) -> list[dict]:
    """Sections from the draft as typed: a line starting with 「#」 starts a section, its heading
    optionally led by a number (「1」「2(1)」「第3」); the lines below are its text."""
    sections: list[dict] = []
    preamble: list[str] = []
    for line in (text or "").replace("\r\n", "\n").split("\n"):
        match = SECTION_HEADING.match(line.strip())
        if match:
            heading = match.group(1).strip()
            number, title = "", heading
            numbered = NUMBER_FIRST.match(heading)
            if numbered:
                number, title = numbered.group(1), numbered.group(2).strip()
            sections.append({"key": f"s{len(sections) + 1}", "number": number[:20], "heading": title, "text": ""})
        elif sections:
            sections[-1]["text"] += line + "\n"
        elif line.strip():
            preamble.append(line)
    for s in sections:
        s["text"] = s["text"].strip("\n")
    if preamble and sections:
        sections.insert(0, {"key": "s0", "number": "", "heading": "前文", "text": "\n".join(preamble).strip()})
    return sections


def sections_text(sections: list[dict]) -> str:
    """The sections back as the text the form shows (parse_sections reads it again)."""
    out = []
    for s in sections:
        out.append(f"# {s['number']} {s['heading']}".replace("#  ", "# ") if s["number"] else f"# {s['heading']}")
        if s["text"]:
            out.append(s["text"])
    return "\n".join(out)


@dataclass
class Draft:
    title: str = ""
    description: str = ""
    sections: str = ""
    opens_on: str = ""
    closes_on: str = ""
    target_kind: str = "all"
    publish_names: bool = False


def _date(value: str, field_name: str, label: str, errors: list[dict]) -> date | None:
    value = (value or "").strip()
    if not value:
        errors.append({"field": field_name, "message": f"{label}を入力してください（例: 2026-06-07）。"})
        return None
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        errors.append({"field": field_name, "message": f"{label}は 2026-06-07 の形で入力してください。"})
        return None
    if not date(2000, 1, 1) <= parsed <= date(2100, 12, 31):
        errors.append({"field": field_name, "message": f"{label}は 2000年から2100年までの日付を入力してください。"})
        return None
    return parsed


def check_draft(data: Draft) -> dict:
    """The values to store, or InvalidInput naming every field that is wrong."""
    errors: list[dict] = []
    title = (data.title or "").strip()
    if not title:
        errors.append({"field": "title", "message": "件名を入力してください。"})
    elif len(title) > 200:
        errors.append({"field": "title", "message": "件名は200文字以内で入力してください。"})
    description = (data.description or "").strip()
    if len(description) > MAX_TEXT:
        errors.append({"field": "description", "message": f"説明は{MAX_TEXT:,}文字以内で入力してください。"})
    sections = parse_sections(data.sections)
    if not sections:
        errors.append({"field": "sections", "message": "本文を「# 1 見出し」の行で始まる節に分けて入力してください。"})
    elif len(sections) > MAX_SECTIONS:
        errors.append({"field": "sections", "message": f"節は{MAX_SECTIONS}個までです。"})
    elif any(not s["heading"] or len(s["heading"]) > 200 for s in sections):
        errors.append({"field": "sections", "message": "見出しは1文字以上200文字以内で入力してください。"})
    elif any(len(s["text"]) > MAX_SECTION_TEXT for s in sections):
        errors.append({"field": "sections", "message": f"1つの節の本文は{MAX_SECTION_TEXT:,}文字以内で入力してください。"})
    opens_on = _date(data.opens_on, "opens_on", "受付開始日", errors)
    closes_on = _date(data.closes_on, "closes_on", "締切日", errors)
    if opens_on and closes_on and closes_on < opens_on:
        errors.append({"field": "closes_on", "message": "締切日は受付開始日と同じか後の日にしてください。"})
    if data.target_kind not in TARGET_KINDS:
        errors.append({"field": "target_kind", "message": "照会先を選んでください。"})
    if errors:
        raise InvalidInput(" ".join(e["message"] for e in errors), errors=errors)
    return {"title": title, "description": description, "sections": sections, "opens_on": opens_on,
            "closes_on": closes_on, "target_kind": data.target_kind, "publish_names": bool(data.publish_names)}


def _check_version(row, expected: int | None, message: str) -> None:
    if expected is not None and expected != row.version:
        raise Conflict(message.format(n=row.version), extra={"current_version": row.version})


async def create_consultation(session: AsyncSession, ministry: Tenant, data: Draft, *, actor: str) -> Consultation:
    ministry_only(ministry)
    values = check_draft(data)
    now = utcnow()
    row = Consultation(lg_code=ministry.lg_code, id=_id(), **values, version=1, created_by=actor, created_at=now,
                       updated_at=now)
    session.add(row)
    await session.flush()
    return row


async def update_consultation(session: AsyncSession, row: Consultation, data: Draft, *,
                              expected_version: int | None) -> Consultation:
    """Change the draft. After announcement only the period's end and publish_names may change
    (the sections the bodies comment on stay as they were)."""
    _check_version(row, expected_version, "ほかの職員がこの意見照会を先に変更しました（いまは第{n}版）。画面を読み込み直してください。")
    if row.published_at is not None:
        raise InvalidInput("公表した意見照会は変えられません。", errors=[{"field": "title", "message": "公表済みです。"}])
    values = check_draft(data)
    if row.announced_at is not None:
        changed = [k for k in ("title", "description", "sections", "opens_on", "target_kind") if values[k] != getattr(row, k)]
        if changed:
            raise InvalidInput("公開した後は、締切日と団体名の公表のほかは変えられません（意見はこの本文に対して出されています）。",
                               errors=[{"field": changed[0], "message": "公開した後は変えられません。"}])
    for key, value in values.items():
        setattr(row, key, value)
    row.version += 1
    row.updated_at = utcnow()
    await session.flush()
    return row


async def written(session: AsyncSession) -> list[Consultation]:
    """The consultations the bound tenant (a ministry) wrote, newest first."""
    return list((await session.scalars(select(Consultation).order_by(Consultation.created_at.desc()))).all())


async def own_consultation(session: AsyncSession, consultation_id: str) -> Consultation:
    row = await session.scalar(select(Consultation).where(Consultation.id == consultation_id))
    if row is None:
        raise NotFound(NOT_FOUND)
    return row


async def announce(session: AsyncSession, row: Consultation, *, expected_version: int | None) -> None:
    _check_version(row, expected_version, "ほかの職員がこの意見照会を先に変更しました（いまは第{n}版）。画面を読み込み直してください。")
    if row.announced_at is not None:
        raise InvalidInput("この意見照会はすでに公開しています。", errors=[{"field": "announce", "message": "公開済みです。"}])
    if row.closes_on < today():
        raise InvalidInput("締切日が過ぎています。締切日を直してから公開してください。",
                           errors=[{"field": "closes_on", "message": "締切日が過ぎています。"}])
    row.announced_at = utcnow()
    row.version += 1
    row.updated_at = row.announced_at
    await session.flush()


async def target_bodies(session: AsyncSession, row: Consultation) -> list[Organization]:
    kinds = [t.value for t in MUNICIPAL_TYPES]
    allowed = {"all": [*kinds, OrgType.prefecture.value], "municipalities": kinds,
               "prefectures": [OrgType.prefecture.value]}[row.target_kind]
    return list((await session.scalars(select(Organization).where(
        Organization.type.in_(allowed), Organization.retired_on.is_(None)).order_by(Organization.code))).all())


# -- a consulted body ---------------------------------------------------------------------------------

async def addressed(session: AsyncSession, body: Tenant) -> list[Consultation]:
    """The announced consultations that consult ``body``, open ones first."""
    if is_national(body):
        return []
    async with unscoped(session, ADDRESSED_REASON):
        rows = (await session.scalars(select(Consultation).where(Consultation.announced_at.is_not(None))
                                      .order_by(Consultation.closes_on.desc()))).all()
    order = {"open": 0, "upcoming": 1, "closed": 2, "published": 3}
    return sorted((r for r in rows if is_target(r, body)), key=lambda r: order.get(status_of(r), 4))


async def addressed_one(session: AsyncSession, body: Tenant, consultation_id: str) -> Consultation:
    """The consultation ``body`` may read: its own (a ministry's) or one that consults it."""
    own = await session.scalar(select(Consultation).where(Consultation.id == consultation_id))
    if own is not None:
        return own
    async with unscoped(session, ADDRESSED_REASON):
        row = await session.scalar(select(Consultation).where(Consultation.id == consultation_id,
                                                              Consultation.announced_at.is_not(None)))
    if row is None or not is_target(row, body):
        raise NotFound(NOT_FOUND)
    return row


async def ministry_names(session: AsyncSession, codes: list[str]) -> dict[str, str]:
    if not codes:
        return {}
    return {o.code: o.name for o in (await session.scalars(select(Organization).where(
        Organization.code.in_(sorted(set(codes)))))).all()}


async def own_comments(session: AsyncSession, consultation: Consultation) -> list[Comment]:
    """The bound tenant's own comments on ``consultation`` (withdrawn ones too), oldest first."""
    return list((await session.scalars(select(Comment).where(
        Comment.consultation_lg_code == consultation.lg_code, Comment.consultation_id == consultation.id)
        .order_by(Comment.created_at))).all())


async def own_comment(session: AsyncSession, consultation: Consultation, comment_id: str) -> Comment:
    row = await session.scalar(select(Comment).where(Comment.id == comment_id,
                                                     Comment.consultation_lg_code == consultation.lg_code,
                                                     Comment.consultation_id == consultation.id))
    if row is None:
        raise NotFound(NOT_FOUND)
    return row


def _check_comment(consultation: Consultation, section_key: str, kind: str, body: str, proposal: str) -> dict:
    errors: list[dict] = []
    if section_key not in {s["key"] for s in consultation.sections}:
        errors.append({"field": "section_key", "message": "意見を出す節を選んでください。"})
    if kind not in KINDS:
        errors.append({"field": "kind", "message": "「意見」か「質問」を選んでください。"})
    body = (body or "").strip()
    proposal = (proposal or "").strip()
    if not body:
        errors.append({"field": "body", "message": "意見・質問の内容を入力してください。"})
    elif len(body) > MAX_TEXT:
        errors.append({"field": "body", "message": f"内容は{MAX_TEXT:,}文字以内で入力してください（いま{len(body):,}文字）。"})
    if len(proposal) > MAX_TEXT:
        errors.append({"field": "proposal", "message": f"修正案は{MAX_TEXT:,}文字以内で入力してください。"})
    if kind == "question" and proposal:
        errors.append({"field": "proposal", "message": "修正案は「意見」のときだけ書けます。"})
    if errors:
        raise InvalidInput(" ".join(e["message"] for e in errors), errors=errors)
    return {"section_key": section_key, "kind": kind, "body": body, "proposal": proposal}


def _accepting_or_refuse(consultation: Consultation) -> None:
    status = status_of(consultation)
    if status == "open":
        return
    message = {"upcoming": f"意見の受付は {consultation.opens_on.isoformat()} からです。",
               "closed": f"意見の受付は {consultation.closes_on.isoformat()} で締め切りました。",
               "published": "意見と回答の一覧を公表したため、意見の受付は終わっています。"}.get(status, NOT_FOUND)
    raise InvalidInput(message, errors=[{"field": "body", "message": message}])


async def add_comment(session: AsyncSession, body_tenant: Tenant, consultation: Consultation, *, section_key: str,
                      kind: str, body: str, proposal: str = "", actor: str) -> Comment:
    if consultation.lg_code == body_tenant.lg_code or not is_target(consultation, body_tenant):
        raise NotFound(NOT_FOUND)
    values = _check_comment(consultation, section_key, kind, body, proposal)
    _accepting_or_refuse(consultation)
    now = utcnow()
    row = Comment(lg_code=body_tenant.lg_code, id=_id(), consultation_lg_code=consultation.lg_code,
                  consultation_id=consultation.id, **values, status="submitted", version=1, submitted_by=actor,
                  created_at=now, updated_at=now)
    session.add(row)
    await session.flush()
    return row


COMMENT_CONFLICT = ("ほかの職員がこの意見を先に変更しました（いまは第{n}版です）。画面を読み込み直して、"
                    "最新の内容を確かめてから直してください。")


async def edit_comment(session: AsyncSession, consultation: Consultation, row: Comment, *, section_key: str, kind: str,
                       body: str, proposal: str = "", expected_version: int | None, actor: str) -> Comment:
    _check_version(row, expected_version, COMMENT_CONFLICT)
    values = _check_comment(consultation, section_key, kind, body, proposal)
    if row.status == "withdrawn":
        raise InvalidInput("取り下げた意見は直せません。", errors=[{"field": "body", "message": "取り下げ済みです。"}])
    _accepting_or_refuse(consultation)
    for key, value in values.items():
        setattr(row, key, value)
    row.version += 1
    row.submitted_by = actor
    row.updated_at = utcnow()
    await session.flush()
    return row


async def withdraw_comment(session: AsyncSession, consultation: Consultation, row: Comment, *,
                           expected_version: int | None) -> Comment:
    _check_version(row, expected_version, COMMENT_CONFLICT)
    if row.status == "withdrawn":
        raise InvalidInput("この意見はすでに取り下げています。", errors=[{"field": "confirm", "message": "取り下げ済みです。"}])
    _accepting_or_refuse(consultation)
    row.status = "withdrawn"
    row.withdrawn_at = row.updated_at = utcnow()
    row.version += 1
    await session.flush()
    return row


# -- the ministry: reading, classifying, answering -------------------------------------------------------

@dataclass
class Row:
    """One comment as the ministry (or, once published, the public) sees it."""

    number: int
    comment: Comment
    section: dict
    body_name: str
    body_kind: str
    review: Review | None = None
    answer: Answer | None = None

    @property
    def ref(self) -> str:
        return f"{self.comment.lg_code}/{self.comment.id}"

    @property
    def kind_label(self) -> str:
        return KINDS.get(self.comment.kind, "")

    @property
    def category_label(self) -> str:
        return CATEGORIES.get(self.review.category, "") if self.review else ""

    @property
    def changed_since_review(self) -> bool:
        return bool(self.review and self.comment.updated_at > self.review.reviewed_at)

    @property
    def section_label(self) -> str:
        return f"{self.section.get('number', '')} {self.section.get('heading', '')}".strip()


@dataclass
class Table:
    consultation: Consultation
    rows: list[Row] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        opinions = sum(1 for r in self.rows if r.comment.kind == "opinion")
        return {"opinions": opinions, "questions": len(self.rows) - opinions,
                "bodies": len({r.comment.lg_code for r in self.rows}),
                "unreviewed": sum(1 for r in self.rows if r.review is None),
                "unanswered": sum(1 for r in self.rows if r.answer is None)}

    def by_category(self) -> list[tuple[str, int]]:
        counts = {k: 0 for k in CATEGORIES}
        for r in self.rows:
            if r.review:
                counts[r.review.category] = counts.get(r.review.category, 0) + 1
        return [(CATEGORIES[k], n) for k, n in counts.items() if n]


async def _table(session: AsyncSession, consultation: Consultation, reason: str) -> Table:
    """Every comment still standing on ``consultation`` in the draft's order (section, then
    arrival), numbered 1.. as the published table numbers them."""
    async with unscoped(session, reason):
        comments = (await session.scalars(select(Comment).where(
            Comment.consultation_lg_code == consultation.lg_code, Comment.consultation_id == consultation.id,
            Comment.status == "submitted").order_by(Comment.created_at, Comment.lg_code, Comment.id))).all()
        reviews = {(r.comment_lg_code, r.comment_id): r for r in (await session.scalars(select(Review).where(
            Review.lg_code == consultation.lg_code, Review.consultation_id == consultation.id))).all()}
        answers = {a.id: a for a in (await session.scalars(select(Answer).where(
            Answer.lg_code == consultation.lg_code, Answer.consultation_id == consultation.id))).all()}
    orgs = {o.code: o for o in (await session.scalars(select(Organization).where(
        Organization.code.in_(sorted({c.lg_code for c in comments}) or ["-"])))).all()}
    position = {s["key"]: i for i, s in enumerate(consultation.sections)}
    sections = {s["key"]: s for s in consultation.sections}
    ordered = sorted(comments, key=lambda c: (position.get(c.section_key, 10**6), c.created_at, c.lg_code, c.id))
    rows = []
    for i, c in enumerate(ordered, start=1):
        org = orgs.get(c.lg_code)
        review = reviews.get((c.lg_code, c.id))
        rows.append(Row(i, c, sections.get(c.section_key, {"key": c.section_key, "number": "", "heading": ""}),
                        org.name if org else c.lg_code, body_kind(org.type if org else ""), review,
                        answers.get(review.answer_id) if review and review.answer_id else None))
    return Table(consultation, rows)


async def secretariat_table(session: AsyncSession, consultation: Consultation) -> Table:
    """The ministry's view: every standing comment with its body's name (``consultation`` must be
    the bound tenant's own: own_consultation)."""
    return await _table(session, consultation, SECRETARIAT_REASON)


async def answers_of(session: AsyncSession, consultation: Consultation) -> list[Answer]:
    return list((await session.scalars(select(Answer).where(Answer.consultation_id == consultation.id)
                                       .order_by(Answer.created_at))).all())


def _refs(raw: list[str]) -> list[tuple[str, str]]:
    out = []
    for ref in raw:
        code, _, comment_id = (ref or "").partition("/")
        if re.fullmatch(r"\d{6}", code) and 0 < len(comment_id) <= 36:
            out.append((code, comment_id))
    return out


async def classify(session: AsyncSession, consultation: Consultation, *, refs: list[str], category: str,
                   answer_text: str = "", answer_id: str = "", actor: str) -> tuple[list[Row], Answer | None]:
    """Classify the chosen comments as ``category`` and give them one answer: a new one
    (``answer_text``) or one already written (``answer_id``); neither keeps their answer."""
    if consultation.announced_at is None:
        raise NotFound(NOT_FOUND)
    errors: list[dict] = []
    if consultation.published_at is not None:
        errors.append({"field": "category", "message": "公表した後は分類と回答を変えられません。"})
    chosen = _refs(refs)
    if not chosen:
        errors.append({"field": "refs", "message": "分類する意見を1つ以上選んでください。"})
    if category not in CATEGORIES:
        errors.append({"field": "category", "message": "分類を選んでください。"})
    answer_text = (answer_text or "").strip()
    if len(answer_text) > MAX_TEXT:
        errors.append({"field": "answer_text", "message": f"回答は{MAX_TEXT:,}文字以内で入力してください。"})
    if answer_text and answer_id:
        errors.append({"field": "answer_text", "message": "新しい回答を書くか、書いた回答から選ぶか、どちらか一方にしてください。"})
    answer = None
    if answer_id:
        answer = await session.scalar(select(Answer).where(Answer.id == answer_id,
                                                           Answer.consultation_id == consultation.id))
        if answer is None:
            errors.append({"field": "answer_id", "message": "選んだ回答が見つかりません。"})
    table = await secretariat_table(session, consultation)
    by_ref = {(r.comment.lg_code, r.comment.id): r for r in table.rows}
    picked = [by_ref[ref] for ref in chosen if ref in by_ref]
    if chosen and len(picked) != len(chosen):
        errors.append({"field": "refs", "message": "選んだ意見のうち、取り下げられたか見つからないものがあります。"})
    if errors:
        raise InvalidInput(" ".join(e["message"] for e in errors), errors=errors)
    now = utcnow()
    if answer_text:
        answer = Answer(lg_code=consultation.lg_code, id=_id(), consultation_id=consultation.id, text=answer_text,
                        version=1, created_by=actor, created_at=now, updated_at=now)
        session.add(answer)
    for row in picked:
        review = row.review
        if review is None:
            review = Review(lg_code=consultation.lg_code, comment_lg_code=row.comment.lg_code,
                            comment_id=row.comment.id, consultation_id=consultation.id)
            session.add(review)
        review.category = category
        if answer is not None:
            review.answer_id = answer.id
        review.reviewed_by = actor
        review.reviewed_at = now
        row.review = review
        row.answer = answer if answer is not None else row.answer
    await session.flush()
    return picked, answer


async def edit_answer(session: AsyncSession, consultation: Consultation, answer_id: str, text: str, *,
                      expected_version: int | None) -> Answer:
    answer = await session.scalar(select(Answer).where(Answer.id == answer_id, Answer.consultation_id == consultation.id))
    if answer is None:
        raise NotFound(NOT_FOUND)
    _check_version(answer, expected_version, "ほかの職員がこの回答を先に変更しました（いまは第{n}版）。画面を読み込み直してください。")
    text = (text or "").strip()
    errors = []
    if consultation.published_at is not None:
        errors.append({"field": "text", "message": "公表した後は回答を変えられません。"})
    if not text:
        errors.append({"field": "text", "message": "回答を入力してください。"})
    elif len(text) > MAX_TEXT:
        errors.append({"field": "text", "message": f"回答は{MAX_TEXT:,}文字以内で入力してください。"})
    if errors:
        raise InvalidInput(" ".join(e["message"] for e in errors), errors=errors)
    answer.text = text
    answer.version += 1
    answer.updated_at = utcnow()
    await session.flush()
    return answer


async def publish(session: AsyncSession, consultation: Consultation, *, publish_names: bool,
                  expected_version: int | None) -> Table:
    """Publish the table of comments and answers; ends the period. Refused while a standing
    comment has no classification or no answer (the table would have holes)."""
    _check_version(consultation, expected_version, "ほかの職員がこの意見照会を先に変更しました（いまは第{n}版）。画面を読み込み直してください。")
    errors = []
    if consultation.announced_at is None:
        errors.append({"field": "publish", "message": "公開していない意見照会の結果は公表できません。"})
    if consultation.published_at is not None:
        errors.append({"field": "publish", "message": "すでに公表しています。"})
    table = await secretariat_table(session, consultation)
    counts = table.counts()
    if counts["unreviewed"] or counts["unanswered"]:
        errors.append({"field": "publish", "message": f"分類していない意見が {counts['unreviewed']} 件、回答のない意見が "
                                                      f"{counts['unanswered']} 件あります。すべてに分類と回答を付けてから公表してください。"})
    if errors:
        raise InvalidInput(" ".join(e["message"] for e in errors), errors=errors)
    consultation.publish_names = publish_names
    consultation.published_at = utcnow()
    consultation.version += 1
    consultation.updated_at = consultation.published_at
    await session.flush()
    return table


# -- the public table --------------------------------------------------------------------------------

async def published(session: AsyncSession) -> list[Consultation]:
    async with unscoped(session, PUBLISHED_REASON):
        return list((await session.scalars(select(Consultation).where(Consultation.published_at.is_not(None))
                                           .order_by(Consultation.published_at.desc()))).all())


async def published_table(session: AsyncSession, consultation_id: str) -> Table:
    async with unscoped(session, PUBLISHED_REASON):
        consultation = await session.scalar(select(Consultation).where(Consultation.id == consultation_id,
                                                                       Consultation.published_at.is_not(None)))
    if consultation is None:
        raise NotFound(NOT_FOUND)
    return await _table(session, consultation, PUBLISHED_REASON)


def public_row(row: Row, publish_names: bool) -> dict:
    """One line of the published table (open data): the body's name only when chosen."""
    return {"number": row.number, "section_number": row.section.get("number", ""),
            "section_heading": row.section.get("heading", ""), "kind": row.comment.kind, "kind_label": row.kind_label,
            "body_kind": row.body_kind, "body_name": row.body_name if publish_names else None,
            "comment": row.comment.body, "proposal": row.comment.proposal,
            "category": row.review.category if row.review else None, "category_label": row.category_label,
            "answer": row.answer.text if row.answer else ""}


CSV_HEADER = ["番号", "節の番号", "節の見出し", "種別", "団体種別", "団体名", "意見・質問", "修正案", "対応の分類", "回答"]


def csv_rows(table: Table) -> list[list]:
    out = []
    for row in table.rows:
        p = public_row(row, table.consultation.publish_names)
        out.append([p["number"], p["section_number"], p["section_heading"], p["kind_label"], p["body_kind"],
                    p["body_name"] or "", p["comment"], p["proposal"], p["category_label"], p["answer"]])
    return out


def counts_by_kind(table: Table) -> tuple[int, int]:
    c = table.counts()
    return c["opinions"], c["questions"]


def stamp(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
