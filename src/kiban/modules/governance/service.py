"""共通化の進め方: needs → groups → candidates (assessment) → council decisions → rollout.

Who may see what (the named rule, ``CONFIDENTIALITY_RULE``): everything here is public by
default (issue #15 §6, 「オープン」) except the figure fields a body marks 非公開 on its need or
endorsement; those are shown only to that body and to the secretariat (デジタル庁, 000019).
``may_see_confidential`` is the one place that decides it, and every public total is computed
without the hidden figures (so a hidden cost cannot be read off by subtraction).

Cross-tenant reads of needs and endorsements go through ``unscoped`` with that reason; writes are
always the bound tenant's own (a body submits and endorses only as itself).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.audit import labels as audit_labels
from kiban.core.audit import service as audit
from kiban.core.identity.service import PLATFORM_LG_CODE
from kiban.core.registry import service as registry
from kiban.core.registry.models import MUNICIPAL_TYPES, Organization, OrgType
from kiban.core.tenancy.context import Tenant, as_tenant, unscoped
from kiban.core.tenancy.repository import TenantRepository
from kiban.kit.db import utcnow
from kiban.kit.errors import Conflict, InvalidInput, NotFound
from kiban.kit.validation import MAX_YEN, parse_date
from kiban.modules.catalog import service as catalog
from kiban.modules.catalog.models import BurdenCategory, Lifecycle, Pattern
from kiban.modules.costs import service as costs
from kiban.modules.governance import grouping, notices
from kiban.modules.surveys import service as surveys
from kiban.modules.governance.models import (
    Candidate,
    Comment,
    CouncilMember,
    Decision,
    Endorsement,
    GroupMember,
    Meeting,
    Need,
    NeedGroup,
    RolloutPlan,
    StudyAnswer,
    StudyQuestion,
    StudyTask,
)

SECRETARIAT = PLATFORM_LG_CODE
CONFIDENTIALITY_RULE = ("非公開の印がある数値は、提出した団体と事務局（デジタル庁）だけが見られます。"
                        "それ以外の課題・候補・評価・決定・議事録は公開します（共通化の進め方: オープンの原則）。")
PUBLIC_READ = "共通化の課題の公開情報（非公開の数値を除く）"
CONFIDENTIAL_FIELDS = {"hours_per_year": "年間の作業時間", "annual_cost": "年間経費", "current_system": "現行システム",
                       "vendor": "事業者", "renewal_on": "更改時期", "volume": "年間件数"}
OUTCOMES = {"adopted": "採択", "continued": "継続検討", "rejected": "不採択"}
MEMBER_KINDS = {"national": "国", "association": "地方三団体の代表", "prefecture": "指定都道府県",
                "municipality": "指定市町村"}
STATUS_LABELS = {"assessing": "評価中", "adopted": "採択", "continued": "継続検討", "rejected": "不採択"}
WEIGHT_RATIO = Decimal("1.5")

audit_labels.ACTION_LABELS.update({
    "governance.need.submitted": "共通化の課題の提出",
    "governance.need.endorsed": "共通化の課題への賛同",
    "governance.group.merged": "課題のグループの統合",
    "governance.group.split": "課題のグループからの切り離し",
    "governance.candidate.created": "共通化の候補の作成",
    "governance.candidate.assessed": "共通化の候補の評価の保存",
    "governance.task.added": "実現可能性調査の作業の追加",
    "governance.council.member_added": "連絡協議会の構成員の追加",
    "governance.meeting.created": "連絡協議会の会議の登録",
    "governance.meeting.document_added": "会議資料の追加",
    "governance.meeting.commented": "連絡協議会への事前の意見",
    "governance.meeting.minutes_published": "議事録の公開",
    "governance.decision.made": "連絡協議会の決定",
    "governance.rollout.saved": "展開計画の保存",
    "governance.question.added": "実現可能性調査の質問の追加",
    "governance.question.answered": "実現可能性調査の質問への回答",
    "governance.survey.started": "実現可能性調査のアンケートの開始（調査・照会）",
})


def may_see_confidential(owner_lg_code: str, viewer_lg_code: str | None) -> bool:
    """The confidentiality rule: the submitting (or endorsing) body itself, or the secretariat."""
    if viewer_lg_code is None:
        return False
    return viewer_lg_code == owner_lg_code or viewer_lg_code == SECRETARIAT


def figures(row: Need | Endorsement, viewer_lg_code: str | None) -> dict:
    """The figure fields of a need or endorsement as ``viewer`` may see them: a hidden field is
    None and listed in ``hidden``."""
    shown = may_see_confidential(row.lg_code, viewer_lg_code)
    out: dict = {"hidden": []}
    for name in CONFIDENTIAL_FIELDS:
        if name in (row.confidential or []) and not shown:
            out[name] = None
            out["hidden"].append(name)
        else:
            out[name] = getattr(row, name)
    return out


class NeedRepository(TenantRepository[Need]):
    model = Need


class EndorsementRepository(TenantRepository[Endorsement]):
    model = Endorsement


# -- parsing forms and JSON bodies ---------------------------------------------------------------------

def _int(value, what: str, field: str, errors: dict, maximum: int = MAX_YEN) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip().replace(",", "").replace("，", "").removesuffix("円").removesuffix("時間").removesuffix("件")
    text = text.translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    if not text.isdigit():
        errors[field] = f"{what}は0以上の整数で入力してください（例: 1200）。"
        return None
    number = int(text)
    if number > maximum:
        errors[field] = f"{what}が大きすぎます。単位を確認してください。"
        return None
    return number


def parse_figures(form: dict, errors: dict) -> dict:
    values = {
        "hours_per_year": _int(form.get("hours_per_year"), "年間の作業時間", "hours_per_year", errors, 10_000_000),
        "annual_cost": _int(form.get("annual_cost"), "年間経費", "annual_cost", errors),
        "volume": _int(form.get("volume"), "年間件数", "volume", errors, 1_000_000_000),
        "current_system": str(form.get("current_system") or "").strip()[:200],
        "vendor": str(form.get("vendor") or "").strip()[:200],
    }
    try:
        values["renewal_on"] = parse_date(str(form.get("renewal_on") or ""), "更改時期")
    except InvalidInput as exc:
        errors["renewal_on"] = exc.detail
        values["renewal_on"] = None
    confidential = form.get("confidential") or []
    if isinstance(confidential, str):
        confidential = [confidential]
    unknown = [c for c in confidential if c not in CONFIDENTIAL_FIELDS]
    if unknown:
        errors["confidential"] = "非公開にできるのは、作業時間・経費・現行システム・事業者・更改時期・件数です。"
    values["confidential"] = [c for c in CONFIDENTIAL_FIELDS if c in confidential]
    return values


def parse_need(form: dict) -> dict:
    errors: dict[str, str] = {}
    values = {"title": str(form.get("title") or "").strip(), "task": str(form.get("task") or "").strip(),
              "description": str(form.get("description") or "").strip(),
              "problems": str(form.get("problems") or "").strip()}
    if not values["title"]:
        errors["title"] = "件名を入力してください。"
    elif len(values["title"]) > 200:
        errors["title"] = "件名は200文字以内で入力してください。"
    if not values["task"]:
        errors["task"] = "業務（例: 施設予約）を入力してください。"
    elif len(values["task"]) > 100:
        errors["task"] = "業務は100文字以内で入力してください。"
    if not values["description"]:
        errors["description"] = "困っていることを入力してください。"
    elif len(values["description"]) > 4000:
        errors["description"] = "困っていることは4,000文字以内で入力してください。"
    if len(values["problems"]) > 4000:
        errors["problems"] = "起きている問題は4,000文字以内で入力してください。"
    values.update(parse_figures(form, errors))
    if errors:
        raise InvalidInput("入力内容を確認してください。", errors=[{"field": k, "message": v} for k, v in errors.items()])
    return values


def parse_endorsement(form: dict) -> dict:
    errors: dict[str, str] = {}
    values = {"comment": str(form.get("comment") or "").strip()}
    if len(values["comment"]) > 2000:
        errors["comment"] = "ひとことは2,000文字以内で入力してください。"
    values.update(parse_figures(form, errors))
    if errors:
        raise InvalidInput("入力内容を確認してください。", errors=[{"field": k, "message": v} for k, v in errors.items()])
    return values


# -- needs and endorsements ---------------------------------------------------------------------------

def need_text(need: Need) -> str:
    return f"{need.title}。{need.task}。{need.description}"


async def submit_need(session: AsyncSession, actor: str, values: dict) -> Need:
    """The bound tenant's need; placed in a group at once (``place_in_group``). Sending the same
    need again (same title, task and description: a retry, a double click) returns the one
    already there instead of a second copy."""
    repo = NeedRepository(session)
    existing = await repo.first(repo.select().where(Need.title == values["title"], Need.task == values["task"],
                                                    Need.description == values["description"]))
    if existing is not None:
        return existing
    need = repo.add(Need(id=str(uuid.uuid4()), created_by=actor, created_at=utcnow(), **values))
    await session.flush()
    await place_in_group(session, need)
    return need


async def all_needs(session: AsyncSession) -> list[Need]:
    async with unscoped(session, PUBLIC_READ):
        return list((await session.scalars(select(Need).order_by(Need.created_at, Need.id))).all())


async def get_need(session: AsyncSession, need_lg_code: str, need_id: str) -> Need:
    async with unscoped(session, PUBLIC_READ):
        need = await session.get(Need, (need_lg_code, need_id))
    if need is None:
        raise NotFound("お探しの課題は見つかりませんでした。課題の一覧から選んでください。")
    return need


async def endorsements_of(session: AsyncSession, keys: list[tuple[str, str]]) -> list[Endorsement]:
    if not keys:
        return []
    async with unscoped(session, PUBLIC_READ):
        rows = (await session.scalars(select(Endorsement).where(
            Endorsement.need_id.in_([k[1] for k in keys])).order_by(Endorsement.created_at))).all()
    wanted = set(keys)
    return [r for r in rows if (r.need_lg_code, r.need_id) in wanted]


async def endorse(session: AsyncSession, tenant: Tenant, need_lg_code: str, need_id: str, actor: str,
                  values: dict) -> tuple[Endorsement, bool]:
    """「うちも同じ」 by the bound tenant, with its own figures. Saying it again updates the same
    row (a retry never counts a body twice). Returns (row, created)."""
    need = await get_need(session, need_lg_code, need_id)
    if need.lg_code == tenant.lg_code:
        raise InvalidInput("自団体が提出した課題には賛同できません。数値は課題の提出内容として登録してください。")
    repo = EndorsementRepository(session)
    row = await repo.first(repo.select().where(Endorsement.need_lg_code == need.lg_code, Endorsement.need_id == need.id))
    created = row is None
    if created:
        row = repo.add(Endorsement(need_lg_code=need.lg_code, need_id=need.id, created_by=actor, created_at=utcnow()))
    for key, value in values.items():
        setattr(row, key, value)
    await session.flush()
    return row, created


async def needs_of_tenant(session: AsyncSession) -> list[Need]:
    repo = NeedRepository(session)
    return list(await repo.all(repo.select().order_by(Need.created_at.desc())))


async def endorsements_of_tenant(session: AsyncSession) -> list[Endorsement]:
    repo = EndorsementRepository(session)
    return list(await repo.all(repo.select().order_by(Endorsement.created_at.desc())))


# -- grouping ---------------------------------------------------------------------------------------------

async def place_in_group(session: AsyncSession, need: Need) -> GroupMember:
    """Put a new need into the most similar group (grouping.THRESHOLD) or a new one."""
    needs = await all_needs(session)
    members = (await session.scalars(select(GroupMember))).all()
    merged = set((await session.scalars(select(NeedGroup.id).where(NeedGroup.merged_into.is_not(None)))).all())
    vectoriser = grouping.Vectoriser.fit([need_text(n) for n in needs])
    by_key = {(n.lg_code, n.id): n for n in needs}
    groups: dict[str, list[dict[str, float]]] = {}
    for m in members:
        other = by_key.get((m.need_lg_code, m.need_id))
        if other is not None and m.group_id not in merged:
            groups.setdefault(m.group_id, []).append(vectoriser.vector(need_text(other)))
    key, score = grouping.best_group(vectoriser.vector(need_text(need)), groups)
    if key is None or score < grouping.THRESHOLD:
        group = NeedGroup(id=str(uuid.uuid4()), title=need.title, created_at=utcnow())
        session.add(group)
        key, score = group.id, 1.0
    member = GroupMember(need_lg_code=need.lg_code, need_id=need.id, group_id=key, pinned=False,
                         similarity=round(score * 1000))
    session.add(member)
    await session.flush()
    return member


@dataclass
class Body:
    code: str
    name: str
    type: str
    prefecture_number: str | None
    population: int


@dataclass
class GroupView:
    group: NeedGroup
    needs: list[Need]
    endorsements: list[Endorsement]
    bodies: list[Body]
    candidate: Candidate | None = None

    @property
    def population(self) -> int:
        return covered_population(self.bodies)


def covered_population(bodies: list[Body]) -> int:
    """Residents behind a group: each body's registry population, except that a municipality
    inside a prefecture that also stands behind it is counted once (in the prefecture's)."""
    prefectures = {b.prefecture_number for b in bodies if b.type == "都道府県"}
    return sum(b.population for b in bodies if b.type == "都道府県" or b.prefecture_number not in prefectures)


async def _bodies(session: AsyncSession, codes: list[str]) -> list[Body]:
    if not codes:
        return []
    rows = (await session.scalars(select(Organization).where(Organization.code.in_(codes)))).all()
    by_code = {o.code: o for o in rows}
    return [Body(c, by_code[c].name, by_code[c].type, by_code[c].prefecture_number, by_code[c].population or 0)
            for c in codes if c in by_code]


async def get_group(session: AsyncSession, group_id: str) -> NeedGroup:
    group = await session.get(NeedGroup, group_id)
    if group is None or group.merged_into:
        raise NotFound("お探しの課題のグループは見つかりませんでした。")
    return group


async def group_views(session: AsyncSession, group_ids: list[str] | None = None) -> list[GroupView]:
    groups = (await session.scalars(select(NeedGroup).where(NeedGroup.merged_into.is_(None))
                                    .order_by(NeedGroup.created_at))).all()
    if group_ids is not None:
        groups = [g for g in groups if g.id in group_ids]
    members = (await session.scalars(select(GroupMember))).all()
    needs = {(n.lg_code, n.id): n for n in await all_needs(session)}
    candidates = {c.group_id: c for c in (await session.scalars(select(Candidate))).all()}
    by_group: dict[str, list[Need]] = {}
    for m in members:
        if (m.need_lg_code, m.need_id) in needs:
            by_group.setdefault(m.group_id, []).append(needs[(m.need_lg_code, m.need_id)])
    async with unscoped(session, PUBLIC_READ):
        endorsements = (await session.scalars(select(Endorsement).order_by(Endorsement.created_at))).all()
    views = []
    for group in groups:
        group_needs = sorted(by_group.get(group.id, []), key=lambda n: n.created_at)
        keys = {(n.lg_code, n.id) for n in group_needs}
        group_endorsements = [e for e in endorsements if (e.need_lg_code, e.need_id) in keys]
        codes = list(dict.fromkeys([n.lg_code for n in group_needs] + [e.lg_code for e in group_endorsements]))
        views.append(GroupView(group, group_needs, group_endorsements, await _bodies(session, codes),
                               candidates.get(group.id)))
    return [v for v in views if v.needs]


async def group_of_need(session: AsyncSession, need: Need) -> str | None:
    member = await session.get(GroupMember, (need.lg_code, need.id))
    return member.group_id if member else None


async def merge_groups(session: AsyncSession, source_id: str, target_id: str) -> NeedGroup:
    """The clerk merges ``source`` into ``target``: its needs move and stay there (pinned)."""
    if source_id == target_id:
        raise InvalidInput("同じグループどうしは統合できません。統合先を選び直してください。")
    source, target = await get_group(session, source_id), await get_group(session, target_id)
    if (await session.scalar(select(Candidate.id).where(Candidate.group_id == source.id))) is not None:
        raise Conflict("候補になったグループはほかのグループへ統合できません。統合先と元を入れ替えてください。")
    for m in (await session.scalars(select(GroupMember).where(GroupMember.group_id == source.id))).all():
        m.group_id, m.pinned = target.id, True
    for m in (await session.scalars(select(GroupMember).where(GroupMember.group_id == target.id))).all():
        m.pinned = True
    source.merged_into = target.id
    await session.flush()
    return target


async def split_need(session: AsyncSession, group_id: str, need_lg_code: str, need_id: str) -> NeedGroup:
    """The clerk takes one need out of a group into a group of its own (pinned)."""
    await get_group(session, group_id)
    member = await session.get(GroupMember, (need_lg_code, need_id))
    if member is None or member.group_id != group_id:
        raise NotFound("その課題はこのグループにありません。")
    count = len((await session.scalars(select(GroupMember).where(GroupMember.group_id == group_id))).all())
    if count < 2:
        raise InvalidInput("課題が1件だけのグループからは切り離せません。")
    need = await get_need(session, need_lg_code, need_id)
    group = NeedGroup(id=str(uuid.uuid4()), title=need.title, created_at=utcnow())
    session.add(group)
    member.group_id, member.pinned = group.id, True
    await session.flush()
    return group


# -- candidates and assessment -------------------------------------------------------------------------

async def create_candidate(session: AsyncSession, group_id: str, name: str, actor: str) -> tuple[Candidate, bool]:
    group = await get_group(session, group_id)
    existing = await session.scalar(select(Candidate).where(Candidate.group_id == group.id))
    if existing is not None:
        return existing, False
    name = (name or group.title).strip()
    if not name or len(name) > 200:
        raise InvalidInput("候補の名前を200文字以内で入力してください。",
                           errors=[{"field": "name", "message": "候補の名前を200文字以内で入力してください。"}])
    candidate = Candidate(id=str(uuid.uuid4()), group_id=group.id, name=name, updated_by=actor, updated_at=utcnow())
    session.add(candidate)
    await session.flush()
    return candidate, True


async def get_candidate(session: AsyncSession, candidate_id: str) -> Candidate:
    candidate = await session.get(Candidate, candidate_id)
    if candidate is None:
        raise NotFound("お探しの共通化の候補は見つかりませんでした。")
    return candidate


async def list_candidates(session: AsyncSession) -> list[Candidate]:
    return list((await session.scalars(select(Candidate).order_by(Candidate.updated_at.desc()))).all())


ASSESSMENT_TEXT = ("name", "domain", "common_cost_source", "hours_reduction_source", "feasibility_law",
                   "feasibility_spec", "feasibility_vendors", "perspective_1_evidence", "perspective_2_evidence",
                   "perspective_3_evidence", "judgement")


async def save_assessment(session: AsyncSession, candidate_id: str, form: dict, actor: str) -> Candidate:
    candidate = await get_candidate(session, candidate_id)
    errors: dict[str, str] = {}
    try:
        expected = int(form.get("expected_version") or 0)
    except ValueError:
        expected = -1
    if expected != candidate.version:
        raise Conflict("ほかの職員が先にこの評価を更新しました。最新の内容を確認してから、もう一度保存してください。")
    pattern = str(form.get("proposed_pattern") or "")
    if pattern not in {p.value for p in Pattern}:
        errors["proposed_pattern"] = "想定する共通化のパターンを選んでください。"
    cost = _int(form.get("common_annual_cost"), "共通サービスの想定年間総経費", "common_annual_cost", errors)
    percent = _int(form.get("hours_reduction_percent"), "作業時間の削減見込み", "hours_reduction_percent", errors, 100)
    service_id = str(form.get("catalog_service_id") or "").strip() or None
    if service_id:
        try:
            await catalog.get_service(session, service_id)
        except NotFound:
            errors["catalog_service_id"] = "カタログにないサービスです。一覧から選んでください。"
    texts = {k: str(form.get(k) or "").strip() for k in ASSESSMENT_TEXT}
    if not texts["name"]:
        errors["name"] = "候補の名前を入力してください。"
    for key, value in texts.items():
        if len(value) > (200 if key in ("name",) else 60 if key == "domain" else 300 if key.endswith("_source") else 4000):
            errors[key] = "文字数が多すぎます。短くしてください。"
    if cost is not None and not texts["common_cost_source"]:
        errors["common_cost_source"] = "想定年間総経費の出典（見積・類似サービスなど）を書いてください。"
    if percent is not None and not texts["hours_reduction_source"]:
        errors["hours_reduction_source"] = "削減見込みの根拠を書いてください。"
    checks = {f"perspective_{i}": str(form.get(f"perspective_{i}") or "") in ("1", "on", "true", "True") for i in (1, 2, 3)}
    for i in (1, 2, 3):
        if checks[f"perspective_{i}"] and not texts[f"perspective_{i}_evidence"]:
            errors[f"perspective_{i}_evidence"] = "当てはまるとした観点には根拠を書いてください。"
    if errors:
        raise InvalidInput("入力内容を確認してください。", errors=[{"field": k, "message": v} for k, v in errors.items()])
    for key, value in texts.items():
        setattr(candidate, key, value)
    for key, value in checks.items():
        setattr(candidate, key, value)
    candidate.proposed_pattern = pattern
    candidate.common_annual_cost = cost
    candidate.hours_reduction_percent = percent
    candidate.catalog_service_id = service_id
    candidate.version += 1
    candidate.updated_by = actor
    candidate.updated_at = utcnow()
    await session.flush()
    return candidate


@dataclass
class Figure:
    """A computed figure and where it comes from (shown next to it)."""

    label: str
    value: int | None
    unit: str
    source: str


@dataclass
class PatternCost:
    pattern: str
    label: str
    total: int | None
    bodies_total: int | None
    source: str
    fees: dict[str, int] = field(default_factory=dict)


@dataclass
class Assessment:
    candidate: Candidate
    view: GroupView
    confidential_shown: bool
    bodies: int
    population: int
    current_total: Figure
    hours_total: Figure
    hours_saved: Figure
    catalog_figure: Figure | None
    patterns: list[PatternCost]
    rows: list[dict]

    @property
    def expected(self) -> PatternCost | None:
        return next((p for p in self.patterns if p.pattern == self.candidate.proposed_pattern), None)

    @property
    def saving(self) -> int | None:
        chosen = self.expected
        if chosen is None or chosen.bodies_total is None or self.current_total.value is None:
            return None
        return self.current_total.value - chosen.bodies_total


async def assess(session: AsyncSession, candidate: Candidate, viewer_lg_code: str | None) -> Assessment:
    """①② computed from what the bodies gave and the catalog, each with its source. Figures a
    body marked 非公開 count only when the viewer may see them (``may_see_confidential``)."""
    (view,) = await group_views(session, [candidate.group_id]) or [None]
    if view is None:
        view = GroupView(await get_group(session, candidate.group_id), [], [], [])
    secretariat = viewer_lg_code == SECRETARIAT
    rows = []
    for row in [*view.needs, *view.endorsements]:
        shown = figures(row, viewer_lg_code)
        rows.append({"code": row.lg_code, "kind": "提出" if isinstance(row, Need) else "賛同", **shown})
    # One figure per body: its own need's, or its endorsement's.
    per_body: dict[str, dict] = {}
    for r in rows:
        per_body.setdefault(r["code"], r)
    costs_given = [r["annual_cost"] for r in per_body.values() if r["annual_cost"] is not None]
    hidden_costs = sum(1 for r in per_body.values() if "annual_cost" in r["hidden"])
    hours_given = [r["hours_per_year"] for r in per_body.values() if r["hours_per_year"] is not None]
    note = f"（非公開の {hidden_costs} 団体分を除く）" if hidden_costs else ""
    current_total = Figure("現在の年間経費の合計", sum(costs_given) if costs_given else None, "円",
                           f"課題の提出と賛同で各団体が示した年間経費 {len(costs_given)} 団体分の合計{note}")
    hidden_hours = sum(1 for r in per_body.values() if "hours_per_year" in r["hidden"])
    hours_total = Figure("現在の年間作業時間の合計", sum(hours_given) if hours_given else None, "時間",
                         f"各団体が示した年間の作業時間 {len(hours_given)} 団体分の合計"
                         + (f"（非公開の {hidden_hours} 団体分を除く）" if hidden_hours else ""))
    saved = None
    if hours_total.value is not None and candidate.hours_reduction_percent is not None:
        saved = hours_total.value * candidate.hours_reduction_percent // 100
    hours_saved = Figure("削減できる作業時間（年間）", saved, "時間",
                         f"作業時間の合計 × 削減見込み {candidate.hours_reduction_percent}%（根拠: "
                         f"{candidate.hours_reduction_source or '未記入'}）" if candidate.hours_reduction_percent is not None
                         else "削減見込みが未記入のため計算していません")
    catalog_figure = None
    if candidate.catalog_service_id:
        service = await catalog.get_service(session, candidate.catalog_service_id)
        (saving,) = await catalog.savings(session, [service])
        catalog_figure = Figure(f"カタログ「{service.name}」の利用団体の現在の年間経費", saving.current_total, "円",
                                f"共通サービスの利用状況（経費を報告した {saving.reporting} 団体。"
                                f"{catalog.MIN_GROUP} 団体未満は合計を示しません）")
    patterns = _pattern_costs(candidate, view, current_total.value)
    return Assessment(candidate, view, secretariat, len(view.bodies), view.population, current_total, hours_total,
                      hours_saved, catalog_figure, patterns, rows)


def _pattern_costs(candidate: Candidate, view: GroupView, current_total: int | None) -> list[PatternCost]:
    amount = candidate.common_annual_cost
    members = [costs.Member(b.code, b.name, b.population) for b in view.bodies if b.population]
    result = [PatternCost(Pattern.individual.value, Pattern.individual.label, current_total, current_total,
                          "各団体が個別にシステムを持ち続ける場合（現在の年間経費の合計）")]
    if amount is None:
        source = "共通サービスの想定年間総経費が未記入のため計算していません"
        for p in (Pattern.common_a, Pattern.common_b):
            result.append(PatternCost(p.value, p.label, None, None, source))
    else:
        result.append(PatternCost(Pattern.common_a.value, Pattern.common_a.label, amount, 0,
                                  f"国がシステムを所有し費用は国負担が基本（想定年間総経費 {amount:,} 円、出典: "
                                  f"{candidate.common_cost_source}）。団体の負担は0円"))
        fees: dict[str, int] = {}
        if members:
            allocation = costs.run(amount, members, costs.MethodSpec(kind="weighted", ratio=WEIGHT_RATIO))
            fees = {m.code: allocation.fee_of(m.code) for m in members}
        result.append(PatternCost(Pattern.common_b.value, Pattern.common_b.label, amount, sum(fees.values()) if fees else None,
                                  f"想定年間総経費 {amount:,} 円（出典: {candidate.common_cost_source}）を、賛同した "
                                  f"{len(members)} 団体で人口按分+重み係数（r={WEIGHT_RATIO}）により按分（費用按分の計算）",
                                  fees))
    standard = None if current_total is None else round(current_total * (1 - catalog.REDUCTION_TARGET))
    result.append(PatternCost(Pattern.standard.value, Pattern.standard.label, standard, standard,
                              f"各団体が標準準拠システムを持ち、現在の経費から{int(catalog.REDUCTION_TARGET * 100)}%削減"
                              "（標準化の削減目標）"))
    return result


SORT_KEYS = {"bodies": "団体数", "population": "人口", "current_total": "現在の年間経費", "saving": "削減見込み額",
             "hours_saved": "削減できる作業時間", "perspectives": "観点の該当数", "name": "名前"}


async def compare(session: AsyncSession, viewer_lg_code: str | None, sort: str = "population",
                  descending: bool = True) -> list[Assessment]:
    if sort not in SORT_KEYS:
        raise InvalidInput("並べ替えの項目が正しくありません。一覧から選んでください。",
                           errors=[{"field": "sort", "message": "並べ替えの項目が正しくありません。"}])
    found = [await assess(session, c, viewer_lg_code) for c in await list_candidates(session)]

    def key(a: Assessment):
        value = {"bodies": a.bodies, "population": a.population, "current_total": a.current_total.value,
                 "saving": a.saving, "hours_saved": a.hours_saved.value, "name": a.candidate.name,
                 "perspectives": sum((a.candidate.perspective_1, a.candidate.perspective_2,
                                      a.candidate.perspective_3))}[sort]
        return (value is not None, value if value is not None else 0)

    return sorted(found, key=key, reverse=descending)


# -- feasibility study tasks -------------------------------------------------------------------------------

async def add_task(session: AsyncSession, candidate_id: str, form: dict) -> StudyTask:
    candidate = await get_candidate(session, candidate_id)
    errors: dict[str, str] = {}
    title, owner = str(form.get("title") or "").strip(), str(form.get("owner") or "").strip()
    url = str(form.get("document_url") or "").strip()
    if not title or len(title) > 200:
        errors["title"] = "作業の内容を200文字以内で入力してください。"
    if not owner or len(owner) > 200:
        errors["owner"] = "担当（団体・担当者）を入力してください。"
    if url and not url.startswith(("https://", "http://")):
        errors["document_url"] = "資料の場所は https:// で始まるアドレスで入力してください。"
    try:
        due_on = parse_date(str(form.get("due_on") or ""), "期限")
    except InvalidInput as exc:
        errors["due_on"], due_on = exc.detail, None
    if errors:
        raise InvalidInput("入力内容を確認してください。", errors=[{"field": k, "message": v} for k, v in errors.items()])
    task = StudyTask(id=str(uuid.uuid4()), candidate_id=candidate.id, title=title, owner=owner, due_on=due_on,
                     document_title=str(form.get("document_title") or "").strip()[:200], document_url=url[:500],
                     created_at=utcnow())
    session.add(task)
    await session.flush()
    return task


async def tasks_of(session: AsyncSession, candidate_id: str) -> list[StudyTask]:
    return list((await session.scalars(select(StudyTask).where(StudyTask.candidate_id == candidate_id)
                                       .order_by(StudyTask.due_on, StudyTask.created_at))).all())


# -- the feasibility survey through modules/surveys -----------------------------------------------------------

SURVEY_TASK_TITLE = "実現可能性調査のアンケート（調査・照会）"


def survey_path(survey_id: str) -> str:
    return f"/t/{SECRETARIAT}/surveys/{survey_id}"


async def feasibility_survey(session: AsyncSession, candidate_id: str) -> StudyTask | None:
    """The study task that links the candidate to its survey in modules/surveys (None if not started)."""
    for task in await tasks_of(session, candidate_id):
        if task.title == SURVEY_TASK_TITLE and task.document_url.startswith(f"/t/{SECRETARIAT}/surveys/"):
            return task
    return None


def survey_id_of(task: StudyTask) -> str:
    return task.document_url.rsplit("/", 1)[1]


async def feasibility_survey_status(session: AsyncSession, candidate_id: str) -> tuple[StudyTask, object] | None:
    """(linking task, survey) for the candidate's pages. The survey is the secretariat's own row
    in modules/surveys; its title, deadline and whether it was sent or published are public facts
    of the study (open by default, like the candidate), so a public page reads them as the
    secretariat. Answers are never read here: they stay behind the surveys module's READ_RULE."""
    task = await feasibility_survey(session, candidate_id)
    if task is None:
        return None
    secretariat = await registry.tenant_for(session, SECRETARIAT)
    async with as_tenant(session, secretariat):
        survey = await surveys.get_survey(session, survey_id_of(task))
    return task, survey


async def start_survey(session: AsyncSession, candidate_id: str, form: dict, actor: str,
                       owner: str) -> tuple[StudyTask, object, bool]:
    """The secretariat starts the feasibility survey to the bodies behind the candidate: a draft
    survey in modules/surveys (its own service, in the secretariat's organisation) addressed to
    exactly those bodies, with the candidate's questionnaire questions copied in as free-text
    questions, and a study task that links the candidate to it. The survey is then edited and
    sent on the surveys pages (its burden estimate, duplicate check and relay rules apply there).
    Once per candidate: asking again returns the survey already started (created False).
    Raises InvalidInput (every field named) as the surveys service does; nothing is written then."""
    candidate = await get_candidate(session, candidate_id)
    existing = await feasibility_survey(session, candidate.id)
    if existing is not None:
        return existing, await surveys.get_survey(session, survey_id_of(existing)), False
    views = await group_views(session, [candidate.group_id])
    codes = [b.code for v in views for b in v.bodies]
    title = str(form.get("title") or "").strip() or f"実現可能性調査: {candidate.name}"[:200]
    description = str(form.get("description") or "").strip() or (
        f"共通化の候補「{candidate.name}」の実現可能性調査です。この候補の課題を提出・賛同した団体にお尋ねします。")
    settings = surveys.Settings(title=title, description=description, deadline=str(form.get("deadline") or ""),
                                minutes=str(form.get("minutes") or "30"), relayed=False, target_kind="list",
                                codes=" ".join(codes))
    survey = await surveys.create_survey(session, settings, actor=actor)
    for question in await questions_of(session, candidate.id):
        await surveys.add_question(session, survey, {"type": "text", "label": question.text[:400]},
                                   expected_version=None)
    task = StudyTask(id=str(uuid.uuid4()), candidate_id=candidate.id, title=SURVEY_TASK_TITLE, owner=owner[:200],
                     due_on=date.fromisoformat(survey.deadline), document_title=survey.title[:200],
                     document_url=survey_path(survey.id), created_at=utcnow())
    session.add(task)
    await session.flush()
    return task, survey, True


# -- the simple questionnaire of the feasibility study -------------------------------------------------------

class AnswerRepository(TenantRepository[StudyAnswer]):
    model = StudyAnswer


async def add_question(session: AsyncSession, candidate_id: str, text: str) -> StudyQuestion:
    candidate = await get_candidate(session, candidate_id)
    text = (text or "").strip()
    if not text or len(text) > 2000:
        raise InvalidInput("質問を2,000文字以内で入力してください。",
                           errors=[{"field": "question", "message": "質問を2,000文字以内で入力してください。"}])
    question = StudyQuestion(id=str(uuid.uuid4()), candidate_id=candidate.id, text=text, created_at=utcnow())
    session.add(question)
    await session.flush()
    return question


async def questions_of(session: AsyncSession, candidate_id: str) -> list[StudyQuestion]:
    return list((await session.scalars(select(StudyQuestion).where(StudyQuestion.candidate_id == candidate_id)
                                       .order_by(StudyQuestion.created_at))).all())


async def answers_to(session: AsyncSession, question_ids: list[str]) -> list[StudyAnswer]:
    """Every body's answers (the secretariat's view; answers are not public figures)."""
    if not question_ids:
        return []
    async with unscoped(session, "実現可能性調査の回答の集約（事務局）"):
        return list((await session.scalars(select(StudyAnswer).where(StudyAnswer.question_id.in_(question_ids))
                                           .order_by(StudyAnswer.answered_at))).all())


async def questions_for_body(session: AsyncSession, lg_code: str) -> list[tuple[Candidate, StudyQuestion, StudyAnswer | None]]:
    """The questions a body is asked: those of candidates it stands behind, with its own answer."""
    found = []
    repo = AnswerRepository(session)
    mine = {a.question_id: a for a in await repo.all(repo.select())}
    for view in await group_views(session):
        if view.candidate is None or lg_code not in {b.code for b in view.bodies}:
            continue
        for question in await questions_of(session, view.candidate.id):
            found.append((view.candidate, question, mine.get(question.id)))
    return found


async def answer(session: AsyncSession, tenant: Tenant, question_id: str, text: str, actor: str) -> StudyAnswer:
    """The bound tenant answers; only a body behind the candidate is asked (anyone else: 404)."""
    question = await session.get(StudyQuestion, question_id)
    if question is None or question.id not in {q.id for _, q, _ in await questions_for_body(session, tenant.lg_code)}:
        raise NotFound("お探しの質問は見つかりませんでした。")
    text = (text or "").strip()
    if not text or len(text) > 4000:
        raise InvalidInput("回答を4,000文字以内で入力してください。",
                           errors=[{"field": "answer", "message": "回答を4,000文字以内で入力してください。"}])
    repo = AnswerRepository(session)
    row = await repo.first(repo.select().where(StudyAnswer.question_id == question.id))
    if row is None:
        row = repo.add(StudyAnswer(question_id=question.id, answer=text, answered_by=actor, answered_at=utcnow()))
    else:
        row.answer, row.answered_by, row.answered_at = text, actor, utcnow()
    await session.flush()
    return row


# -- council ---------------------------------------------------------------------------------------------------

async def add_member(session: AsyncSession, form: dict) -> CouncilMember:
    errors: dict[str, str] = {}
    name, body, kind = (str(form.get(k) or "").strip() for k in ("name", "body", "kind"))
    code = str(form.get("org_code") or "").strip() or None
    if not name or len(name) > 100:
        errors["name"] = "氏名を100文字以内で入力してください。"
    if not body or len(body) > 200:
        errors["body"] = "所属（団体名）を入力してください。"
    if kind not in MEMBER_KINDS:
        errors["kind"] = "区分を選んでください。"
    org = await session.get(Organization, code) if code else None
    if code and org is None:
        errors["org_code"] = "団体コードが見つかりません。6桁の全国地方公共団体コードで入力してください。"
    elif org is not None and kind in MEMBER_KINDS and not _member_kind_fits(kind, org.type):
        errors["org_code"] = f"{org.name}（{org.type}）は区分「{MEMBER_KINDS[kind]}」の団体ではありません。"
    if errors:
        raise InvalidInput("入力内容を確認してください。", errors=[{"field": k, "message": v} for k, v in errors.items()])
    member = CouncilMember(id=str(uuid.uuid4()), name=name, body=body, kind=kind, org_code=code, created_at=utcnow())
    session.add(member)
    await session.flush()
    return member


def _member_kind_fits(kind: str, org_type: str) -> bool:
    """A member's body is of its kind: 国 a national body, the associations' representatives one of
    the three associations (全国的連合組織), a designated prefecture or municipality one of those."""
    fits = {"national": {OrgType.national.value}, "association": {OrgType.association.value},
            "prefecture": {OrgType.prefecture.value}, "municipality": {t.value for t in MUNICIPAL_TYPES}}
    return org_type in fits[kind]


async def members(session: AsyncSession) -> list[CouncilMember]:
    return list((await session.scalars(select(CouncilMember).order_by(CouncilMember.created_at))).all())


async def is_council_body(session: AsyncSession, lg_code: str) -> bool:
    if lg_code == SECRETARIAT:
        return True
    return (await session.scalar(select(CouncilMember.id).where(CouncilMember.org_code == lg_code).limit(1))) is not None


async def create_meeting(session: AsyncSession, form: dict) -> Meeting:
    errors: dict[str, str] = {}
    title = str(form.get("title") or "").strip()
    if not title or len(title) > 200:
        errors["title"] = "会議の名前を200文字以内で入力してください（例: 第1回連絡協議会）。"
    try:
        held_on = parse_date(str(form.get("held_on") or ""), "開催日")
        if held_on is None:
            errors["held_on"] = "開催日を入力してください。"
    except InvalidInput as exc:
        errors["held_on"], held_on = exc.detail, None
    agenda = form.get("agenda") or []
    if isinstance(agenda, str):
        agenda = [agenda]
    known = {c.id for c in await list_candidates(session)}
    if any(a not in known for a in agenda):
        errors["agenda"] = "議題には共通化の候補を選んでください。"
    if errors:
        raise InvalidInput("入力内容を確認してください。", errors=[{"field": k, "message": v} for k, v in errors.items()])
    meeting = Meeting(id=str(uuid.uuid4()), title=title, held_on=held_on, agenda=list(dict.fromkeys(agenda)),
                      documents=[], minutes="", created_at=utcnow())
    session.add(meeting)
    await session.flush()
    return meeting


async def get_meeting(session: AsyncSession, meeting_id: str) -> Meeting:
    meeting = await session.get(Meeting, meeting_id)
    if meeting is None:
        raise NotFound("お探しの会議は見つかりませんでした。")
    return meeting


async def meetings(session: AsyncSession) -> list[Meeting]:
    return list((await session.scalars(select(Meeting).order_by(Meeting.held_on.desc(), Meeting.created_at))).all())


async def add_document(session: AsyncSession, meeting_id: str, title: str, url: str) -> Meeting:
    meeting = await get_meeting(session, meeting_id)
    title, url = title.strip(), url.strip()
    errors = {}
    if not title or len(title) > 200:
        errors["title"] = "資料名を200文字以内で入力してください。"
    if not url.startswith(("https://", "http://")) or len(url) > 500:
        errors["url"] = "資料の場所は https:// で始まるアドレスで入力してください。"
    if errors:
        raise InvalidInput("入力内容を確認してください。", errors=[{"field": k, "message": v} for k, v in errors.items()])
    meeting.documents = [*meeting.documents, {"title": title, "url": url}]
    await session.flush()
    return meeting


async def add_comment(session: AsyncSession, meeting_id: str, candidate_id: str | None, text: str, author: str,
                      body_code: str) -> Comment:
    meeting = await get_meeting(session, meeting_id)
    if not await is_council_body(session, body_code):
        raise NotFound("お探しの会議は見つかりませんでした。")
    if meeting.minutes_published_at is not None or meeting.held_on < date.today():
        raise Conflict("この会議は開催済みのため、事前の意見は受け付けていません。")
    if candidate_id and candidate_id not in meeting.agenda:
        raise InvalidInput("議題にない候補です。議題から選んでください。",
                           errors=[{"field": "candidate_id", "message": "議題にない候補です。"}])
    text = text.strip()
    if not text or len(text) > 4000:
        raise InvalidInput("意見を4,000文字以内で入力してください。",
                           errors=[{"field": "text", "message": "意見を4,000文字以内で入力してください。"}])
    comment = Comment(id=str(uuid.uuid4()), meeting_id=meeting.id, candidate_id=candidate_id or None, author=author,
                      body_code=body_code, text=text, created_at=utcnow())
    session.add(comment)
    await session.flush()
    return comment


async def comments_of(session: AsyncSession, meeting_id: str) -> list[Comment]:
    return list((await session.scalars(select(Comment).where(Comment.meeting_id == meeting_id)
                                       .order_by(Comment.created_at))).all())


MAX_MINUTES = 50_000  # the API's limit too: at 12 bytes a character escaped, within the 1 MiB body limit


async def publish_minutes(session: AsyncSession, meeting_id: str, minutes: str) -> Meeting:
    meeting = await get_meeting(session, meeting_id)
    minutes = minutes.strip()
    if not minutes:
        raise InvalidInput("議事録を入力してください。", errors=[{"field": "minutes", "message": "議事録を入力してください。"}])
    if len(minutes) > MAX_MINUTES:
        message = f"議事録は{MAX_MINUTES:,}文字以内で入力してください（いま{len(minutes):,}文字）。"
        raise InvalidInput(message, errors=[{"field": "minutes", "message": message}])
    meeting.minutes = minutes
    meeting.minutes_published_at = utcnow()
    await session.flush()
    return meeting


async def decisions(session: AsyncSession, *, meeting_id: str | None = None,
                    candidate_id: str | None = None) -> list[Decision]:
    statement = select(Decision).order_by(Decision.decided_at)
    if meeting_id:
        statement = statement.where(Decision.meeting_id == meeting_id)
    if candidate_id:
        statement = statement.where(Decision.candidate_id == candidate_id)
    return list((await session.scalars(statement)).all())


def _service_id_for(candidate: Candidate) -> str:
    return f"kyotsuka-{candidate.id[:8]}"


async def decide(session: AsyncSession, meeting_id: str, candidate_id: str, form: dict, actor: str, *,
                 by: audit.Actor) -> Decision:
    """The council's decision. 採択 creates the catalog service (or reclassifies the one the
    candidate extends) through the catalog's ``save_service`` and makes a first rollout plan;
    every body behind the candidate gets an in-app notice of the decision (notices.py). All in
    the caller's transaction; the caller audits the decision and commits."""
    meeting = await get_meeting(session, meeting_id)
    candidate = await get_candidate(session, candidate_id)
    if candidate.id not in meeting.agenda:
        raise InvalidInput("この会議の議題にない候補です。議題に加えてから決定してください。",
                           errors=[{"field": "candidate_id", "message": "この会議の議題にない候補です。"}])
    errors: dict[str, str] = {}
    outcome, reason = str(form.get("outcome") or ""), str(form.get("reason") or "").strip()
    if outcome not in OUTCOMES:
        errors["outcome"] = "決定（採択・継続検討・不採択）を選んでください。"
    if not reason or len(reason) > 4000:
        errors["reason"] = "決定の理由を4,000文字以内で入力してください。"
    pattern = burden = lifecycle = None
    if outcome == "adopted":
        pattern, burden, lifecycle = (str(form.get(k) or "") for k in ("pattern", "burden_category", "lifecycle"))
        if pattern not in {p.value for p in Pattern}:
            errors["pattern"] = "共通化のパターンを選んでください。"
        if burden not in {b.value for b in BurdenCategory}:
            errors["burden_category"] = "費用負担の区分を選んでください。"
        if lifecycle not in {x.value for x in Lifecycle}:
            errors["lifecycle"] = "段階を選んでください。"
        if not {"pattern", "burden_category"} & errors.keys() and (problem := catalog.burden_problem(pattern, burden)):
            errors["burden_category"] = problem
    if errors:
        raise InvalidInput("入力内容を確認してください。", errors=[{"field": k, "message": v} for k, v in errors.items()])
    existing = await session.scalar(select(Decision).where(Decision.meeting_id == meeting.id,
                                                           Decision.candidate_id == candidate.id))
    if existing is not None:
        raise Conflict("この会議ではこの候補についてすでに決定しています。決定の内容は議事録の画面で確認できます。")
    service_id = None
    if outcome == "adopted":
        service_id = await _apply_to_catalog(session, candidate, pattern, burden, lifecycle, by)
        if await session.get(RolloutPlan, service_id) is None:
            this_fy = fiscal_year_of(date.today())
            session.add(RolloutPlan(service_id=service_id, candidate_id=candidate.id, pilot_fy=this_fy + 1,
                                    rollout_fy=this_fy + 2, national_fy=this_fy + 3,
                                    annual_cost=candidate.common_annual_cost, updated_by=actor, updated_at=utcnow()))
    candidate.status = outcome
    decision = Decision(id=str(uuid.uuid4()), meeting_id=meeting.id, candidate_id=candidate.id, outcome=outcome,
                        reason=reason, service_id=service_id, pattern=pattern, burden_category=burden,
                        lifecycle=lifecycle, decided_by=actor, decided_at=utcnow())
    session.add(decision)
    await session.flush()
    await _tell_the_bodies(session, decision, candidate, meeting)
    return decision


async def _tell_the_bodies(session: AsyncSession, decision: Decision, candidate: Candidate, meeting: Meeting) -> None:
    """Every body that submitted or endorsed a need in the candidate's group hears the decision."""
    views = await group_views(session, [candidate.group_id])
    codes = [b.code for v in views for b in v.bodies]
    service_name = (await catalog.get_service(session, decision.service_id)).name if decision.service_id else None
    await notices.decision_made(session, decision=decision, candidate=candidate, meeting=meeting, codes=codes,
                                outcome_label=OUTCOMES[decision.outcome], service_name=service_name)


async def _apply_to_catalog(session: AsyncSession, candidate: Candidate, pattern: str, burden: str, lifecycle: str,
                            by: audit.Actor) -> str:
    """One source of truth: the catalog, written only through its ``save_service`` (validated
    and audited there as the council's decision). A candidate that extends a service reclassifies
    it; otherwise the service named after the candidate is created, or reclassified when an
    earlier 採択 of the same candidate made it."""
    purpose = "連絡協議会の決定（採択）"
    cost = candidate.common_annual_cost
    existing_id = candidate.catalog_service_id or _service_id_for(candidate)
    existing = await catalog.find_service(session, existing_id)
    if existing is not None:
        data = catalog.ServiceInput.of(existing, pattern=pattern, burden_category=burden, lifecycle=lifecycle,
                                       annual_cost=cost if cost is not None else existing.annual_cost)
        saved, _ = await catalog.save_service(session, data, actor=by, service_id=existing.id,
                                              expected_version=existing.version, purpose=purpose)
        return saved.id
    if candidate.catalog_service_id:
        await catalog.get_service(session, candidate.catalog_service_id)  # gone since the assessment: NotFound
    description = f"連絡協議会の採択による共通化（候補: {candidate.name}）。{candidate.judgement}".strip()[:4000]
    data = catalog.ServiceInput(
        name=candidate.name[:200], domain=(candidate.domain or "共通化の候補")[:60], pattern=pattern,
        burden_category=burden, lifecycle=lifecycle, description=description, annual_cost=cost,
        owner="デジタル庁（連絡協議会の採択）" if pattern == Pattern.common_a.value else "事業者（標準仕様に準拠）"
        if pattern == Pattern.common_b.value else "各自治体（標準仕様に準拠）",
        source="国・地方デジタル共通基盤 連絡協議会の決定")
    saved, _ = await catalog.save_service(session, data, actor=by, service_id=existing_id, purpose=purpose)
    return saved.id


# -- rollout ------------------------------------------------------------------------------------------------

def fiscal_year_of(day: date) -> int:
    return day.year if day.month >= 4 else day.year - 1


PHASES = (("pilot", "実証"), ("rollout", "展開"), ("national", "全国"))


@dataclass
class RolloutRow:
    code: str
    name: str
    prefecture: str
    population: int
    renewal_fy: int | None
    renewal_source: str
    move_fy: int
    phase: str
    fee: int | None
    current_cost: int | None
    risk: bool
    renewal_hidden: bool = False  # the body marked its 更改時期 非公開: public counts leave its year out


async def get_plan(session: AsyncSession, service_id: str) -> RolloutPlan:
    plan = await session.get(RolloutPlan, service_id)
    if plan is None:
        raise NotFound("このサービスの展開計画はありません。")
    return plan


async def plans(session: AsyncSession) -> list[RolloutPlan]:
    return list((await session.scalars(select(RolloutPlan).order_by(RolloutPlan.updated_at.desc()))).all())


async def save_plan(session: AsyncSession, service_id: str, form: dict, actor: str) -> RolloutPlan:
    plan = await get_plan(session, service_id)
    errors: dict[str, str] = {}
    years = {}
    for key, label in (("pilot_fy", "実証"), ("rollout_fy", "展開"), ("national_fy", "全国")):
        value = _int(form.get(key), f"{label}の開始年度", key, errors, 2100)
        if value is None and key not in errors:
            errors[key] = f"{label}の開始年度を西暦で入力してください（例: 2027）。"
        elif value is not None and value < 2000:
            errors[key] = f"{label}の開始年度を西暦で入力してください（例: 2027）。"
        years[key] = value
    if not errors and not years["pilot_fy"] <= years["rollout_fy"] <= years["national_fy"]:
        errors["rollout_fy"] = "年度は 実証 ≦ 展開 ≦ 全国 の順にしてください。"
    cost = _int(form.get("annual_cost"), "想定年間総経費", "annual_cost", errors)
    if errors:
        raise InvalidInput("入力内容を確認してください。", errors=[{"field": k, "message": v} for k, v in errors.items()])
    plan.pilot_fy, plan.rollout_fy, plan.national_fy = years["pilot_fy"], years["rollout_fy"], years["national_fy"]
    plan.annual_cost = cost
    plan.version += 1
    plan.updated_by, plan.updated_at = actor, utcnow()
    await session.flush()
    return plan


def _phase(plan: RolloutPlan, fy: int) -> str:
    if fy < plan.rollout_fy:
        return "実証"
    if fy < plan.national_fy:
        return "展開"
    return "全国"


async def rollout_rows(session: AsyncSession, plan: RolloutPlan) -> list[RolloutRow]:
    """Each body behind the candidate (and each adopter of the service): the fiscal year it
    moves — its first renewal once the service is ready (実証 starts), the renewal taken from its
    catalog adoption of the service, else from its need or endorsement — and its expected fee
    (the plan's annual cost shared by all of them, 人口按分+重み係数). A renewal before the
    service is ready is a risk (the body must extend its current contract)."""
    candidate = await get_candidate(session, plan.candidate_id)
    (view,) = await group_views(session, [candidate.group_id]) or [None]
    renewals: dict[str, tuple[date | None, str, int | None]] = {}
    hidden: set[str] = set()
    if view is not None:
        for row in [*view.needs, *view.endorsements]:
            if row.lg_code not in renewals and "renewal_on" in (row.confidential or []):
                hidden.add(row.lg_code)
            renewals.setdefault(row.lg_code, (row.renewal_on, "課題の提出・賛同で示した更改時期", row.annual_cost))
    adopters = await catalog.adopter_populations(session, plan.service_id)
    from kiban.modules.catalog.models import Adoption  # the renewal year only; the catalog has no reader for it

    async with unscoped(session, "展開計画: 共通サービスの採用団体の更改時期（年度のみ）"):
        adoption_rows = (await session.execute(select(Adoption.lg_code, Adoption.renewal_on, Adoption.annual_cost)
                                               .where(Adoption.service_id == plan.service_id))).all()
    for code, renewal_on, cost in adoption_rows:
        if renewal_on is not None:
            renewals[code] = (renewal_on, "共通サービスの利用状況に登録した更改時期", cost)
            hidden.add(code)  # an adoption's contract dates are the body's own business
    codes = list(dict.fromkeys([*(b.code for b in (view.bodies if view else [])), *(a[0] for a in adopters)]))
    bodies = await _bodies(session, codes)
    orgs = {o.code: o for o in (await session.scalars(select(Organization).where(Organization.code.in_(codes)))).all()}
    fees: dict[str, int] = {}
    members = [costs.Member(b.code, b.name, b.population) for b in bodies if b.population]
    if plan.annual_cost and members:
        allocation = costs.run(plan.annual_cost, members, costs.MethodSpec(kind="weighted", ratio=WEIGHT_RATIO))
        fees = {m.code: allocation.fee_of(m.code) for m in members}
    rows = []
    for b in bodies:
        renewal_on, source, cost = renewals.get(b.code, (None, "更改時期が示されていません", None))
        renewal_fy = fiscal_year_of(renewal_on) if renewal_on else None
        risk = renewal_fy is not None and renewal_fy < plan.pilot_fy
        move = plan.national_fy if renewal_fy is None else max(renewal_fy, plan.pilot_fy)
        rows.append(RolloutRow(b.code, b.name, orgs[b.code].prefecture_name or "", b.population, renewal_fy, source,
                               move, _phase(plan, move), fees.get(b.code), cost, risk, b.code in hidden))
    return sorted(rows, key=lambda r: (r.move_fy, r.code))


@dataclass
class Progress:
    plan: RolloutPlan
    service_name: str
    by_year: list[tuple[int, int]]
    by_prefecture: list[tuple[str, int, int]]  # (prefecture, planned, moved)
    moved: int
    planned: int
    undisclosed: int = 0  # bodies whose year is left out of the public count (更改時期 非公開)


async def progress(session: AsyncSession, plan: RolloutPlan, rows: list[RolloutRow], *,
                   public: bool = True) -> Progress:
    """Counts by fiscal year and prefecture. In public, a body that keeps its 更改時期 非公開 (or
    whose year comes from its own adoption record) is counted as planned but not by year."""
    service = await catalog.get_service(session, plan.service_id)
    moved_codes = {a[0] for a in await catalog.adopter_populations(session, plan.service_id)}
    years: dict[int, int] = {}
    prefs: dict[str, list[int]] = {}
    undisclosed = 0
    for r in rows:
        if public and r.renewal_hidden:
            undisclosed += 1
        else:
            years[r.move_fy] = years.get(r.move_fy, 0) + 1
        pref = prefs.setdefault(r.prefecture or "（不明）", [0, 0])
        pref[0] += 1
        pref[1] += r.code in moved_codes
    return Progress(plan, service.name, sorted(years.items()), [(k, v[0], v[1]) for k, v in sorted(prefs.items())],
                    len(moved_codes), len(rows), undisclosed)


async def my_rollout(session: AsyncSession, lg_code: str) -> list[tuple[RolloutPlan, str, RolloutRow]]:
    found = []
    for plan in await plans(session):
        service = await catalog.get_service(session, plan.service_id)
        for row in await rollout_rows(session, plan):
            if row.code == lg_code:
                found.append((plan, service.name, row))
    return found
