"""調査・照会: authoring and sending (the sender), answering (the respondent), the relay
(経由調査, the prefecture), and the sender's progress and aggregates.

Who may read a response other than its respondent is one named rule, ``READ_RULE``: the sender
(once the answer is delivered to it), and the respondent's prefecture when the survey is relayed.
Every such read goes through ``unscoped(...)`` with that reason, filtered to the one survey (and
the prefecture), and is audited on the reader's chain.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, delete, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.registry.codes import prefecture_code
from kiban.core.registry.models import MUNICIPAL_TYPES, Organization, OrgType
from kiban.core.tenancy.context import Tenant, current_tenant, unscoped
from kiban.kit.db import utcnow
from kiban.kit.errors import Conflict, InvalidInput, NotFound
from kiban.modules.surveys import disclosure
from kiban.modules.surveys import questions as qs
from kiban.modules.surveys.models import (ResponseStatus, Survey, SurveyResponse, SurveyResponseEvent, SurveyValue,
                                          SurveyVersion)

READ_RULE = "調査の回答を読めるのは、回答した団体、送付元（届いた回答）、経由調査ではその都道府県だけ"
RELAY_REASON = "経由調査: 都道府県が管内市町村の回答を確認・送付する"
SENDER_REASON = "調査の送付元が、送付先の回答状況と届いた回答を読む"
ADDRESSED_REASON = "送付された調査の定義を、送付先の団体が読む"
DUPLICATE_REASON = "重複照会の抑止: 送付済みの調査の質問と公表済みの集計は、調査を作る団体に公開"
SEND_REASON = "調査の送付: 送付元が送付先ごとの回答（未着手）を用意する"
NOT_FOUND = "お探しの調査・回答は見つかりませんでした。"

TARGET_KINDS = {"all": "全ての地方公共団体（都道府県と市区町村）", "municipalities": "市区町村（都道府県で絞り込めます）",
                "prefectures": "都道府県", "types": "団体の種類（政令市など）", "list": "団体コードの一覧"}
TARGET_TYPES = [OrgType.designated_city.value, OrgType.special_ward.value, OrgType.city.value,
                OrgType.town.value, OrgType.village.value, OrgType.prefecture.value]
EDITABLE = {ResponseStatus.not_started, ResponseStatus.draft, ResponseStatus.certified, ResponseStatus.returned}
CONFLICT_MESSAGE = ("ほかの職員がこの回答を先に保存しました（いまは第{n}版です）。画面を読み込み直して、"
                    "最新の内容を確かめてから入力し直してください。")


def _id() -> str:
    return str(uuid.uuid4())


# -- authoring ------------------------------------------------------------------------------------------

@dataclass
class Settings:
    title: str
    description: str = ""
    deadline: str = ""
    minutes: str | int = 30
    relayed: bool = False
    target_kind: str = "municipalities"
    prefectures: list[str] | None = None
    types: list[str] | None = None
    codes: str = ""


def _check_settings(data: Settings) -> tuple[dict, list[dict]]:
    errors: list[dict] = []
    title = qs.normalise_text(data.title)
    if not title:
        errors.append({"field": "title", "message": "調査の名前を入力してください。"})
    elif len(title) > 200:
        errors.append({"field": "title", "message": "調査の名前は200文字以内にしてください。"})
    deadline = None
    try:
        deadline = qs.parse_date(data.deadline)
    except ValueError:
        pass
    if deadline is None:
        errors.append({"field": "deadline", "message": "回答期限を日付（例: 2026-12-25）で入力してください。"})
    minutes = qs.normalise_text(data.minutes)
    if not minutes.isdigit() or not 1 <= int(minutes) <= 6000:
        errors.append({"field": "minutes", "message": "1団体あたりの回答時間の見込みを1〜6000（分）で入力してください。"})
    if data.target_kind not in TARGET_KINDS:
        errors.append({"field": "target_kind", "message": "送付先を選んでください。"})
    prefectures = sorted({p.zfill(2) for p in (data.prefectures or []) if p.strip()})
    if any(not (p.isdigit() and 1 <= int(p) <= 47) for p in prefectures):
        errors.append({"field": "prefectures", "message": "都道府県は01〜47の番号で選んでください。"})
    types = [t for t in (data.types or []) if t]
    if data.target_kind == "types" and (not types or any(t not in TARGET_TYPES for t in types)):
        errors.append({"field": "types", "message": f"団体の種類を「{'」「'.join(TARGET_TYPES)}」から選んでください。"})
    codes = [c for c in qs.normalise_text(data.codes).replace("、", " ").replace(",", " ").split() if c]
    if data.target_kind == "list" and not codes:
        errors.append({"field": "codes", "message": "団体コード（6桁）を空白か改行で区切って入力してください。"})
    elif any(not (len(c) == 6 and c.isdigit()) for c in codes):
        errors.append({"field": "codes", "message": "団体コードは6桁の数字で入力してください。"})
    target = {"kind": data.target_kind, "prefectures": prefectures, "types": types, "codes": codes}
    return {"title": title, "description": qs.normalise_text(data.description)[:4000],
            "deadline": deadline.isoformat() if deadline else "", "minutes": int(minutes) if minutes.isdigit() else 0,
            "relayed": bool(data.relayed), "target": target}, errors


def _check_version(obj, expected: int | None, message: str) -> None:
    if expected is not None and expected != obj.version:
        raise Conflict(message.format(n=obj.version))


async def list_surveys(session: AsyncSession) -> list[Survey]:
    return list((await session.scalars(select(Survey).order_by(Survey.created_at.desc()))).all())


async def get_survey(session: AsyncSession, survey_id: str) -> Survey:
    survey = await session.scalar(select(Survey).where(Survey.id == survey_id))
    if survey is None:
        raise NotFound(NOT_FOUND)
    return survey


async def create_survey(session: AsyncSession, data: Settings, *, actor: str) -> Survey:
    values, errors = _check_settings(data)
    if errors:
        raise InvalidInput(" ".join(e["message"] for e in errors), errors=errors)
    now = utcnow()
    survey = Survey(lg_code=tenant_code(session), id=_id(), definition={"questions": [], "rules": []}, target_codes=[], sent_version=0, version=1,
                    created_by=actor, created_at=now, updated_at=now, **values)
    session.add(survey)
    await session.flush()
    return survey


async def update_settings(session: AsyncSession, survey: Survey, data: Settings, *, expected_version: int | None) -> None:
    _check_version(survey, expected_version, "ほかの職員がこの調査を先に変更しました（いまは第{n}版）。画面を読み込み直してください。")
    values, errors = _check_settings(data)
    if survey.sent_version and values["target"] != survey.target:
        errors.append({"field": "target_kind", "message": "送付後は送付先を変えられません。"})
    if survey.sent_version and values["relayed"] != survey.relayed:
        errors.append({"field": "relayed", "message": "送付後は経由調査かどうかを変えられません。"})
    if errors:
        raise InvalidInput(" ".join(e["message"] for e in errors), errors=errors)
    for name, value in values.items():
        setattr(survey, name, value)
    _touch(survey)


def _touch(survey: Survey) -> None:
    survey.version += 1
    survey.updated_at = utcnow()


async def add_question(session: AsyncSession, survey: Survey, raw: dict, *, expected_version: int | None) -> dict:
    _check_version(survey, expected_version, "ほかの職員がこの調査を先に変更しました（いまは第{n}版）。画面を読み込み直してください。")
    definition = dict(survey.definition)
    question = qs.build_question(raw, definition.get("questions", []))
    definition["questions"] = [*definition.get("questions", []), question]
    survey.definition = definition
    _touch(survey)
    return question


async def remove_question(session: AsyncSession, survey: Survey, key: str, *, expected_version: int | None,
                          as_duplicate: bool = False, actor: str = "") -> dict:
    """Removes a question from the draft. ``as_duplicate``: the author drops it because another
    survey asked it within a year (重複照会の抑止); it is kept in the definition's ``avoided``
    list with what it repeated, so the sent version reports the overlap and the indicators count
    the answers nobody had to give."""
    _check_version(survey, expected_version, "ほかの職員がこの調査を先に変更しました（いまは第{n}版）。画面を読み込み直してください。")
    definition = dict(survey.definition)
    question = next((q for q in definition.get("questions", []) if q["key"] == key), None)
    if question is None:
        raise NotFound("この質問は見つかりませんでした。")
    repeated = (await duplicates(session, survey)).get(key, []) if as_duplicate else []
    if as_duplicate and not repeated:
        raise InvalidInput("この質問は1年以内のほかの調査と重複していません。重複として省くことはできません（通常の削除をご利用ください）。",
                           errors=[{"field": "duplicate", "message": "重複の見つからない質問です。"}])
    if any((q.get("show_if") or {}).get("q") == key for q in definition["questions"]):
        raise InvalidInput("この質問はほかの質問の表示条件に使われているため削除できません。",
                           errors=[{"field": "key", "message": "表示条件に使われている質問です。"}])
    definition["questions"] = [q for q in definition["questions"] if q["key"] != key]
    definition["rules"] = [r for r in definition.get("rules", []) if key not in (r["total"], *r["parts"])]
    if repeated:
        definition["avoided"] = [*definition.get("avoided", []), {
            "label": question["label"], "binding": question.get("binding") or "", "by": actor,
            "at": utcnow().isoformat(timespec="seconds"),
            "repeats": [{"sender": d.sender, "survey_title": d.survey_title, "sent_on": d.sent_on.isoformat(),
                         "label": d.label, "why": d.why} for d in repeated]}]
    survey.definition = definition
    _touch(survey)
    return question


async def add_rule(session: AsyncSession, survey: Survey, raw: dict, *, expected_version: int | None) -> dict:
    _check_version(survey, expected_version, "ほかの職員がこの調査を先に変更しました（いまは第{n}版）。画面を読み込み直してください。")
    definition = dict(survey.definition)
    rule = qs.build_rule(raw, definition.get("questions", []))
    definition["rules"] = [*definition.get("rules", []), rule]
    survey.definition = definition
    _touch(survey)
    return rule


# -- targets and burden -------------------------------------------------------------------------------

async def resolve_targets(session: AsyncSession, target: dict) -> list[Organization]:
    """The current local governments the target set names (wards and national bodies never)."""
    kinds = [t.value for t in MUNICIPAL_TYPES]
    statement = select(Organization).where(Organization.retired_on.is_(None))
    kind = target.get("kind")
    if kind == "all":
        statement = statement.where(Organization.type.in_([*kinds, OrgType.prefecture.value]))
    elif kind == "prefectures":
        statement = statement.where(Organization.type == OrgType.prefecture.value)
    elif kind == "municipalities":
        statement = statement.where(Organization.type.in_(kinds))
    elif kind == "types":
        statement = statement.where(Organization.type.in_(target.get("types") or ["-"]))
    elif kind == "list":
        statement = statement.where(Organization.code.in_(target.get("codes") or ["-"]),
                                    Organization.type.in_([*kinds, OrgType.prefecture.value]))
    if target.get("prefectures") and kind != "list":
        statement = statement.where(Organization.prefecture_number.in_(target["prefectures"]))
    return list((await session.scalars(statement.order_by(Organization.code))).all())


@dataclass
class Burden:
    targets: int
    minutes: int

    @property
    def total_minutes(self) -> int:
        return self.targets * self.minutes

    @property
    def text(self) -> str:
        hours = self.total_minutes / 60
        return (f"{self.targets:,} 団体 × {self.minutes:,} 分 ＝ 延べ {self.total_minutes:,} 分"
                f"（約 {hours:,.0f} 時間、約 {hours / 7.75:,.1f} 人日）")


async def burden(session: AsyncSession, survey: Survey) -> Burden:
    count = len(survey.target_codes) if survey.sent_version else len(await resolve_targets(session, survey.target))
    return Burden(count, survey.minutes)


async def unknown_codes(session: AsyncSession, survey: Survey) -> list[str]:
    if survey.target.get("kind") != "list":
        return []
    found = {o.code for o in await resolve_targets(session, survey.target)}
    return [c for c in survey.target.get("codes", []) if c not in found]


# -- duplicates (重複照会の抑止) -------------------------------------------------------------------------

@dataclass
class Duplicate:
    sender: str
    survey_title: str
    sent_on: date
    label: str
    why: str
    answers: str  # the published answers, or why there are none to show
    results_url: str | None


async def duplicates(session: AsyncSession, survey: Survey, *, within_days: int = 365) -> dict[str, list[Duplicate]]:
    """For each question of ``survey``'s draft, the questions other sent surveys asked within a
    year with the same binding or a similar wording, with their published answers."""
    questions = survey.definition.get("questions", [])
    if not questions:
        return {}
    since = utcnow() - timedelta(days=within_days)
    async with unscoped(session, DUPLICATE_REASON):
        rows = (await session.execute(
            select(SurveyVersion, Survey).join(Survey, and_(Survey.lg_code == SurveyVersion.lg_code,
                                                            Survey.id == SurveyVersion.survey_id))
            .where(SurveyVersion.number == Survey.sent_version, Survey.sent_at >= since,
                   Survey.id != survey.id))).all()
        names = {o.code: o.name for o in (await session.scalars(
            select(Organization).where(Organization.code.in_({s.lg_code for _, s in rows} or {"-"})))).all()}
        found: dict[str, list[Duplicate]] = {}
        for q in questions:
            for version, other in rows:
                for asked in version.definition.get("questions", []):
                    if q.get("binding") and q["binding"] == asked.get("binding"):
                        why = f"同じデータ（{qs.binding_label(q['binding'])}）を尋ねています"
                    else:
                        score = qs.similarity(q["label"], asked["label"])
                        if score < qs.SIMILAR:
                            continue
                        why = f"質問文が似ています（類似度 {score:.0%}）"
                    answers, url = await _published_summary(session, other, asked)
                    found.setdefault(q["key"], []).append(Duplicate(
                        sender=names.get(other.lg_code, other.lg_code), survey_title=other.title,
                        sent_on=other.sent_at.date(), label=asked["label"], why=why, answers=answers, results_url=url))
    return found


async def _published_summary(session: AsyncSession, survey: Survey, question: dict) -> tuple[str, str | None]:
    if survey.published_at is None:
        return "集計はまだ公表されていません（送付元に問い合わせてください）。", None
    url = f"/surveys/results/{survey.lg_code}/{survey.id}"
    row = (await session.execute(
        select(func.count(distinct(SurveyValue.respondent_code)), func.sum(SurveyValue.num))
        .where(SurveyValue.lg_code == survey.lg_code, SurveyValue.survey_id == survey.id,
               SurveyValue.question_key == question["key"]))).one()
    respondents, total = row
    if respondents < disclosure.MIN_RESPONDENTS:
        return "公表された集計: 回答が少ないため非公表です。", url
    if question["type"] == "number" and total is not None:
        return f"公表された集計: {respondents:,} 団体が回答、合計 {qs.number_text(total)}{question.get('unit', '')}", url
    return f"公表された集計: {respondents:,} 団体が回答", url


# -- sending ---------------------------------------------------------------------------------------------

async def _prefill_for(session: AsyncSession, definition: dict, orgs: list[Organization]) -> dict[str, dict]:
    """{lg_code: {question_key: {"value", "source", "as_of"}}} for the bound questions."""
    bound = [q for q in definition.get("questions", []) if q.get("binding")]
    if not bound:
        return {}
    codes = [o.code for o in orgs]
    adoptions: dict[str, int] = {}
    costs: dict[str, int] = {}
    if any(q["binding"].startswith("catalog.") for q in bound):
        from kiban.modules.catalog.models import Adoption

        async with unscoped(session, "一度だけの原則: 調査の回答にプラットフォームの利用登録を引用する"):
            for code, count, cost in (await session.execute(
                    select(Adoption.lg_code, func.count(), func.coalesce(func.sum(Adoption.annual_cost), 0))
                    .where(Adoption.status == "in_use", Adoption.lg_code.in_(codes)).group_by(Adoption.lg_code))).all():
                adoptions[code], costs[code] = count, int(cost)
    today = utcnow().date().isoformat()
    result: dict[str, dict] = {}
    for org in orgs:
        filled = {}
        for q in bound:
            if q["binding"] == "registry.population" and org.population is not None:
                filled[q["key"]] = {"value": org.population, "source": f"基本台帳の人口（{org.population_source or '国勢調査'}）",
                                    "as_of": (org.updated_at.date().isoformat() if org.updated_at else today)}
            elif q["binding"] == "registry.households" and org.households is not None:
                filled[q["key"]] = {"value": org.households, "source": f"基本台帳の世帯数（{org.population_source or '国勢調査'}）",
                                    "as_of": (org.updated_at.date().isoformat() if org.updated_at else today)}
            elif q["binding"] == "catalog.adoptions":
                filled[q["key"]] = {"value": adoptions.get(org.code, 0), "source": "共通サービスカタログの利用登録（利用中）",
                                    "as_of": today}
            elif q["binding"] == "catalog.annual_cost":
                filled[q["key"]] = {"value": costs.get(org.code, 0), "source": "共通サービスカタログの年間経費（利用中）",
                                    "as_of": today}
        result[org.code] = filled
    return result


async def send(session: AsyncSession, survey: Survey, *, actor: str, expected_version: int | None) -> SurveyVersion:
    """Send the draft: the first time to every target (each gets a response, bound questions
    prefilled), afterwards as a new version whose changes respondents see."""
    _check_version(survey, expected_version, "ほかの職員がこの調査を先に変更しました（いまは第{n}版）。画面を読み込み直してください。")
    questions = survey.definition.get("questions", [])
    errors = []
    if not questions:
        errors.append({"field": "questions", "message": "質問を1つ以上追加してから送付してください。"})
    if survey.deadline < utcnow().date().isoformat():
        errors.append({"field": "deadline", "message": "回答期限が過ぎています。期限を直してから送付してください。"})
    orgs = await resolve_targets(session, survey.target) if not survey.sent_version else []
    if not survey.sent_version and not orgs:
        errors.append({"field": "target_kind", "message": "送付先に当てはまる団体がありません。"})
    previous = await get_version(session, survey, survey.sent_version) if survey.sent_version else None
    changes = qs.changes_between(previous.definition, survey.definition) if previous else []
    if previous and previous.deadline != survey.deadline:
        changes.append(f"回答期限を {previous.deadline} から {survey.deadline} に変更しました。")
    if previous and not changes:
        errors.append({"field": "questions", "message": "前の版から変わったところがありません。"})
    if errors:
        raise InvalidInput(" ".join(e["message"] for e in errors), errors=errors)
    now = utcnow()
    number = survey.sent_version + 1
    version = SurveyVersion(lg_code=survey.lg_code, survey_id=survey.id, number=number, title=survey.title, definition=survey.definition,
                            deadline=survey.deadline, changes=changes, sent_by=actor, sent_at=now)
    session.add(version)
    survey.sent_version = number
    if number == 1:
        survey.sent_at = now
        survey.target_codes = [o.code for o in orgs]
    _touch(survey)
    await session.flush()
    async with unscoped(session, SEND_REASON):
        if number == 1:
            prefill = await _prefill_for(session, survey.definition, orgs)
            for org in orgs:
                filled = prefill.get(org.code, {})
                session.add(SurveyResponse(
                    lg_code=org.code, id=_id(), survey_lg_code=survey.lg_code, survey_id=survey.id,
                    prefecture_code=prefecture_code(org.code) if org.prefecture_number else "", version_number=1,
                    seen_version=0, answers={k: qs.number_text(v["value"]) for k, v in filled.items()},
                    prefill=filled, reasons={}, status=ResponseStatus.not_started.value, contact_email="",
                    certified_by="", review_comment="", version=1, updated_by="", updated_at=now))
        else:
            responses = (await session.scalars(select(SurveyResponse).where(
                SurveyResponse.survey_id == survey.id, SurveyResponse.survey_lg_code == survey.lg_code))).all()
            new_bound = [q for q in survey.definition["questions"] if q.get("binding")
                         and q["key"] not in {x["key"] for x in previous.definition["questions"]}]
            orgs_by_code = ({o.code: o for o in (await session.scalars(select(Organization).where(
                Organization.code.in_([r.lg_code for r in responses])))).all()} if new_bound else {})
            extra = await _prefill_for(session, {"questions": new_bound}, list(orgs_by_code.values())) if new_bound else {}
            for response in responses:
                response.version_number = number
                if response.lg_code in extra:
                    response.prefill = {**response.prefill, **extra[response.lg_code]}
                    response.answers = {**response.answers, **{k: qs.number_text(v["value"])
                                                               for k, v in extra[response.lg_code].items()}}
        await session.flush()
    return version


async def get_version(session: AsyncSession, survey: Survey, number: int) -> SurveyVersion:
    version = await session.scalar(select(SurveyVersion).where(SurveyVersion.survey_id == survey.id,
                                                               SurveyVersion.number == number))
    if version is None:
        raise NotFound(NOT_FOUND)
    return version


async def publish(session: AsyncSession, survey: Survey) -> None:
    if not survey.sent_version:
        raise InvalidInput("送付していない調査は公表できません。", errors=[{"field": "survey", "message": "未送付です。"}])
    survey.published_at = survey.published_at or utcnow()
    _touch(survey)


# -- answering (the respondent) --------------------------------------------------------------------

@dataclass
class Addressed:
    response: SurveyResponse
    version: SurveyVersion
    sender: str
    relayed: bool
    survey: Survey

    @property
    def definition(self) -> dict:
        return self.version.definition

    @property
    def status_label(self) -> str:
        return ResponseStatus(self.response.status).label

    @property
    def overdue(self) -> bool:
        return (self.response.status not in ("submitted", "approved")
                and self.version.deadline < utcnow().date().isoformat())

    @property
    def goes_through_prefecture(self) -> bool:
        r = self.response
        return self.relayed and bool(r.prefecture_code) and r.prefecture_code != r.lg_code


async def _addressed(session: AsyncSession, responses: list[SurveyResponse]) -> list[Addressed]:
    if not responses:
        return []
    keys = {(r.survey_lg_code, r.survey_id) for r in responses}
    async with unscoped(session, ADDRESSED_REASON):
        surveys = {(s.lg_code, s.id): s for s in (await session.scalars(select(Survey).where(
            Survey.id.in_([k[1] for k in keys])))).all()}
        versions = {(v.lg_code, v.survey_id, v.number): v for v in (await session.scalars(select(SurveyVersion).where(
            SurveyVersion.survey_id.in_([k[1] for k in keys])))).all()}
        names = {o.code: o.name for o in (await session.scalars(select(Organization).where(
            Organization.code.in_([k[0] for k in keys])))).all()}
    found = []
    for r in responses:
        survey = surveys.get((r.survey_lg_code, r.survey_id))
        version = versions.get((r.survey_lg_code, r.survey_id, r.version_number))
        if survey is None or version is None:
            continue
        found.append(Addressed(r, version, names.get(r.survey_lg_code, r.survey_lg_code), survey.relayed, survey))
    return found


async def inbox(session: AsyncSession) -> list[Addressed]:
    """The surveys addressed to the bound tenant, deadline first."""
    responses = list((await session.scalars(select(SurveyResponse).order_by(SurveyResponse.updated_at.desc()))).all())
    return sorted(await _addressed(session, responses), key=lambda a: (a.response.status in ("submitted", "approved"),
                                                                        a.version.deadline))


async def own_response(session: AsyncSession, response_id: str) -> Addressed:
    """The bound tenant's own response (another tenant's id: 404, as if it did not exist)."""
    response = await session.scalar(select(SurveyResponse).where(SurveyResponse.id == response_id))
    if response is None:
        raise NotFound(NOT_FOUND)
    found = await _addressed(session, [response])
    if not found:
        raise NotFound(NOT_FOUND)
    return found[0]


async def changes_since_seen(session: AsyncSession, item: Addressed) -> list[tuple[int, list[str]]]:
    if item.response.seen_version >= item.response.version_number or item.response.seen_version == 0:
        return []
    async with unscoped(session, ADDRESSED_REASON):
        versions = (await session.scalars(select(SurveyVersion).where(
            SurveyVersion.lg_code == item.response.survey_lg_code, SurveyVersion.survey_id == item.response.survey_id,
            SurveyVersion.number > item.response.seen_version).order_by(SurveyVersion.number))).all()
    return [(v.number, v.changes) for v in versions]


async def events(session: AsyncSession, response_id: str) -> list[SurveyResponseEvent]:
    return list((await session.scalars(select(SurveyResponseEvent).where(
        SurveyResponseEvent.response_id == response_id).order_by(SurveyResponseEvent.created_at))).all())


def _event(session: AsyncSession, response: SurveyResponse, kind: str, actor: str, body: str = "") -> None:
    session.add(SurveyResponseEvent(lg_code=response.lg_code, id=_id(), response_id=response.id, kind=kind,
                                    body=body[:4000], actor_name=actor, created_at=utcnow()))


def _editable(response: SurveyResponse) -> None:
    if ResponseStatus(response.status) not in EDITABLE:
        raise Conflict("提出済みの回答は変更できません。直すときは「提出後に修正する」で回答を再開してください。")


async def save_answers(session: AsyncSession, item: Addressed, answers: dict, *, reasons: dict | None = None,
                       actor: str, expected_version: int | None, kind: str = "saved",
                       contact_email: str | None = None) -> list[dict]:
    """Save a draft (kept even with mistakes: the problems are returned for display). A save
    on a certified response voids the 決裁. Raises Conflict when someone saved first."""
    response = item.response
    definition = item.definition
    cleaned = qs.clean_answers(definition, {**response.answers, **answers})
    new_reasons = response.reasons if reasons is None else {
        k: qs.normalise_text(v)[:400] for k, v in {**response.reasons, **reasons}.items() if qs.normalise_text(v)}
    new_email = response.contact_email if contact_email is None else qs.normalise_text(contact_email)[:254]
    if (kind == "autosave" and cleaned == response.answers and new_reasons == response.reasons
            and new_email == response.contact_email):
        # nothing typed since the last save (a change event after the typing was saved): no new version
        return qs.validate(definition, response.answers, prefill=response.prefill, reasons=response.reasons,
                           complete=False)
    _check_version(response, expected_version, CONFLICT_MESSAGE)
    _editable(response)
    response.answers, response.reasons, response.contact_email = cleaned, new_reasons, new_email
    if response.status in (ResponseStatus.not_started, ResponseStatus.certified, ResponseStatus.returned):
        response.status = ResponseStatus.draft.value
        response.certified_by, response.certified_at = "", None
    response.seen_version = response.version_number
    response.version += 1
    response.updated_by, response.updated_at = actor, utcnow()
    if kind != "autosave":
        _event(session, response, kind, actor)
    await session.flush()
    return qs.validate(definition, response.answers, prefill=response.prefill, reasons=response.reasons, complete=False)


def problems(item: Addressed) -> list[dict]:
    r = item.response
    return qs.validate(item.definition, r.answers, prefill=r.prefill, reasons=r.reasons, complete=True)


async def certify(session: AsyncSession, item: Addressed, *, actor: str, expected_version: int | None) -> None:
    response = item.response
    _check_version(response, expected_version, CONFLICT_MESSAGE)
    if response.status not in (ResponseStatus.draft, ResponseStatus.not_started):
        raise Conflict("決裁できるのは作成中の回答です。")
    errors = problems(item)
    if errors:
        raise InvalidInput(f"決裁の前に{len(errors)}点を直してください。", errors=errors)
    response.status = ResponseStatus.certified.value
    response.certified_by, response.certified_at = actor, utcnow()
    response.version += 1
    response.updated_by, response.updated_at = actor, utcnow()
    _event(session, response, "certified", actor)


async def submit(session: AsyncSession, item: Addressed, *, actor: str, expected_version: int | None) -> None:
    response = item.response
    _check_version(response, expected_version, CONFLICT_MESSAGE)
    if response.status in (ResponseStatus.submitted, ResponseStatus.approved):
        return  # a retried submission: already done, nothing twice
    if response.status != ResponseStatus.certified:
        raise Conflict("提出の前に、決裁の権限を持つ職員（課長など）の決裁が必要です。")
    errors = problems(item)
    if errors:
        raise InvalidInput(f"提出の前に{len(errors)}点を直してください。", errors=errors)
    now = utcnow()
    response.status = ResponseStatus.submitted.value
    response.submitted_at = now
    response.review_comment = ""
    response.version += 1
    response.updated_by, response.updated_at = actor, now
    _event(session, response, "submitted", actor)
    if not item.goes_through_prefecture:
        await _deliver(session, item.survey, item.version, [response])
        _event(session, response, "delivered", actor, f"{item.sender}に届きました。")


async def reopen(session: AsyncSession, item: Addressed, *, actor: str, reason: str, expected_version: int | None) -> None:
    response = item.response
    _check_version(response, expected_version, CONFLICT_MESSAGE)
    if response.status not in (ResponseStatus.submitted, ResponseStatus.approved):
        raise Conflict("再開できるのは提出済みの回答です。")
    if not qs.normalise_text(reason):
        raise InvalidInput("修正の理由を入力してください。", errors=[{"field": "reason", "message": "修正の理由を入力してください。"}])
    if response.delivered_at is not None:
        await _withdraw(session, item.survey, response)
    response.status = ResponseStatus.draft.value
    response.certified_by, response.certified_at, response.submitted_at = "", None, None
    response.version += 1
    response.updated_by, response.updated_at = actor, utcnow()
    _event(session, response, "reopened", actor, qs.normalise_text(reason))


# -- delivery to the sender --------------------------------------------------------------------------

def value_rows(definition: dict, response: SurveyResponse, org_type: str) -> list[dict]:
    rows: list[dict] = []
    base = {"lg_code": response.survey_lg_code, "survey_id": response.survey_id, "respondent_code": response.lg_code,
            "prefecture_code": response.prefecture_code, "org_type": org_type}
    answers = response.answers
    rows.append({**base, "question_key": "_", "row_no": 0, "column_key": "", "num": None, "text": ""})
    for q in definition.get("questions", []):
        value = answers.get(q["key"])
        if value in (None, "", []) or not qs.visible(q, answers):
            continue
        if q["type"] == "number":
            rows.append({**base, "question_key": q["key"], "row_no": 0, "column_key": "",
                         "num": float(qs.parse_number(value)), "text": ""})
        elif q["type"] == "multi":
            rows.extend({**base, "question_key": q["key"], "row_no": i, "column_key": "", "num": None, "text": v[:400]}
                        for i, v in enumerate(value))
        elif q["type"] == "table":
            for i, row in enumerate(value, start=1):
                for col in q["columns"]:
                    cell = row.get(col["key"], "")
                    if cell == "":
                        continue
                    num = float(qs.parse_number(cell)) if col["type"] == "number" else None
                    rows.append({**base, "question_key": q["key"], "row_no": i, "column_key": col["key"], "num": num,
                                 "text": "" if num is not None else str(cell)[:400]})
        else:
            rows.append({**base, "question_key": q["key"], "row_no": 0, "column_key": "", "num": None,
                         "text": str(value)[:400]})
    return rows


async def _deliver(session: AsyncSession, survey: Survey, version: SurveyVersion, responses: list[SurveyResponse]) -> None:
    """Copy the answers into the sender's aggregate rows (replacing any earlier delivery)."""
    if not responses:
        return
    types = {o.code: o.type for o in (await session.scalars(select(Organization).where(
        Organization.code.in_([r.lg_code for r in responses])))).all()}
    async with unscoped(session, SENDER_REASON):
        await session.execute(delete(SurveyValue).where(
            SurveyValue.lg_code == survey.lg_code, SurveyValue.survey_id == survey.id,
            SurveyValue.respondent_code.in_([r.lg_code for r in responses])))
        rows = [row for r in responses for row in value_rows(version.definition, r, types.get(r.lg_code, ""))]
        if rows:
            await session.execute(SurveyValue.__table__.insert(), rows)
        now = utcnow()
        for r in responses:
            r.delivered_at = now
        await session.flush()


async def _withdraw(session: AsyncSession, survey: Survey, response: SurveyResponse) -> None:
    async with unscoped(session, SENDER_REASON):
        await session.execute(delete(SurveyValue).where(
            SurveyValue.lg_code == survey.lg_code, SurveyValue.survey_id == survey.id,
            SurveyValue.respondent_code == response.lg_code))
    response.delivered_at = None


# -- the relay (経由調査) ---------------------------------------------------------------------------------

async def relayed_surveys(session: AsyncSession, prefecture: Tenant) -> list[tuple[Survey, dict[str, int]]]:
    """Relayed surveys that reached the prefecture's municipalities, with counts by status."""
    if not prefecture.is_prefecture:
        return []
    async with unscoped(session, RELAY_REASON):
        rows = (await session.execute(
            select(SurveyResponse.survey_lg_code, SurveyResponse.survey_id, SurveyResponse.status, func.count())
            .join(Survey, and_(Survey.lg_code == SurveyResponse.survey_lg_code, Survey.id == SurveyResponse.survey_id))
            .where(SurveyResponse.prefecture_code == prefecture.lg_code, SurveyResponse.lg_code != prefecture.lg_code,
                   Survey.relayed.is_(True))
            .group_by(SurveyResponse.survey_lg_code, SurveyResponse.survey_id, SurveyResponse.status))).all()
        counts: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
        for lg, sid, status, n in rows:
            counts[(lg, sid)][status] = n
        surveys = {(s.lg_code, s.id): s for s in (await session.scalars(
            select(Survey).where(Survey.id.in_([k[1] for k in counts] or ["-"])))).all()}
    return [(surveys[k], v) for k, v in counts.items() if k in surveys]


async def relayed_survey(session: AsyncSession, prefecture: Tenant, survey_lg_code: str, survey_id: str
                         ) -> tuple[Survey, SurveyVersion, list[tuple[SurveyResponse, Organization]]]:
    if not prefecture.is_prefecture:
        raise NotFound(NOT_FOUND)
    async with unscoped(session, RELAY_REASON):
        survey = await session.scalar(select(Survey).where(Survey.lg_code == survey_lg_code, Survey.id == survey_id,
                                                           Survey.relayed.is_(True)))
        if survey is None:
            raise NotFound(NOT_FOUND)
        version = await get_version(session, survey, survey.sent_version)
        rows = (await session.execute(
            select(SurveyResponse, Organization).join(Organization, Organization.code == SurveyResponse.lg_code)
            .where(SurveyResponse.survey_id == survey.id, SurveyResponse.survey_lg_code == survey.lg_code,
                   SurveyResponse.prefecture_code == prefecture.lg_code, SurveyResponse.lg_code != prefecture.lg_code)
            .order_by(SurveyResponse.lg_code))).all()
    if not rows:
        raise NotFound(NOT_FOUND)
    return survey, version, [(r, o) for r, o in rows]


async def relayed_response(session: AsyncSession, prefecture: Tenant, respondent_code: str, response_id: str
                           ) -> tuple[Addressed, Organization]:
    """A municipality's response, for its own prefecture on a relayed survey only (else 404)."""
    if not prefecture.is_prefecture or respondent_code == prefecture.lg_code:
        raise NotFound(NOT_FOUND)
    async with unscoped(session, RELAY_REASON):
        response = await session.scalar(select(SurveyResponse).where(
            SurveyResponse.lg_code == respondent_code, SurveyResponse.id == response_id,
            SurveyResponse.prefecture_code == prefecture.lg_code))
    if response is None:
        raise NotFound(NOT_FOUND)
    found = await _addressed(session, [response])
    if not found or not found[0].relayed:
        raise NotFound(NOT_FOUND)
    org = await session.get(Organization, respondent_code)
    return found[0], org


async def _relay_write(session: AsyncSession, item: Addressed, change) -> None:
    async with unscoped(session, RELAY_REASON):
        change(item.response)
        await session.flush()


async def send_back(session: AsyncSession, item: Addressed, *, actor: str, comment: str,
                    expected_version: int | None) -> None:
    comment = qs.normalise_text(comment)
    if not comment:
        raise InvalidInput("差し戻す理由（直してほしい点）を入力してください。",
                           errors=[{"field": "comment", "message": "差し戻す理由を入力してください。"}])
    _check_version(item.response, expected_version, "この回答は先に更新されています（いまは第{n}版）。画面を読み込み直してください。")
    if item.response.status not in (ResponseStatus.submitted, ResponseStatus.approved) or item.response.delivered_at:
        raise Conflict("差し戻せるのは、提出済みでまだ国へ送付していない回答です。")

    def change(r: SurveyResponse) -> None:
        r.status, r.review_comment = ResponseStatus.returned.value, comment[:4000]
        r.certified_by, r.certified_at = "", None
        r.version += 1
        r.updated_by, r.updated_at = actor, utcnow()
        _event(session, r, "returned", actor, comment)

    await _relay_write(session, item, change)


async def approve(session: AsyncSession, item: Addressed, *, actor: str, comment: str = "",
                  expected_version: int | None) -> None:
    _check_version(item.response, expected_version, "この回答は先に更新されています（いまは第{n}版）。画面を読み込み直してください。")
    if item.response.status == ResponseStatus.approved:
        return
    if item.response.status != ResponseStatus.submitted:
        raise Conflict("確認できるのは提出済みの回答です。")

    def change(r: SurveyResponse) -> None:
        r.status = ResponseStatus.approved.value
        r.version += 1
        r.updated_by, r.updated_at = actor, utcnow()
        _event(session, r, "approved", actor, qs.normalise_text(comment))

    await _relay_write(session, item, change)


async def forward(session: AsyncSession, prefecture: Tenant, survey: Survey, version: SurveyVersion, *,
                  actor: str) -> int:
    """Send the approved municipal answers (and the prefecture's own submitted one) to the sender."""
    async with unscoped(session, RELAY_REASON):
        ready = list((await session.scalars(select(SurveyResponse).where(
            SurveyResponse.survey_id == survey.id, SurveyResponse.survey_lg_code == survey.lg_code,
            SurveyResponse.prefecture_code == prefecture.lg_code, SurveyResponse.delivered_at.is_(None),
            ((SurveyResponse.status == ResponseStatus.approved.value)
             | ((SurveyResponse.lg_code == prefecture.lg_code)
                & (SurveyResponse.status == ResponseStatus.submitted.value))))
            .order_by(SurveyResponse.lg_code))).all())
        if not ready:
            raise InvalidInput("送付できる回答がありません。先に市町村の回答を確認してください。",
                               errors=[{"field": "survey", "message": "確認済みの回答がありません。"}])
        await _deliver(session, survey, version, ready)
        for r in ready:
            _event(session, r, "forwarded", actor, f"{prefecture.name}から送付元へ送付しました。")
        await session.flush()
    return len(ready)


# -- the sender's view ------------------------------------------------------------------------------------

@dataclass
class PrefectureProgress:
    code: str
    name: str
    targets: int
    counts: dict[str, int]
    delivered: int

    @property
    def submitted(self) -> int:
        return sum(self.counts.get(s, 0) for s in ("submitted", "approved"))

    @property
    def rate(self) -> float:
        return self.delivered / self.targets if self.targets else 0.0


async def progress(session: AsyncSession, survey: Survey) -> list[PrefectureProgress]:
    async with unscoped(session, SENDER_REASON):
        rows = (await session.execute(
            select(SurveyResponse.prefecture_code, SurveyResponse.status,
                   func.count(), func.count(SurveyResponse.delivered_at))
            .where(SurveyResponse.survey_id == survey.id, SurveyResponse.survey_lg_code == survey.lg_code)
            .group_by(SurveyResponse.prefecture_code, SurveyResponse.status))).all()
    by_pref: dict[str, PrefectureProgress] = {}
    prefs = {o.code: o.name for o in (await session.scalars(select(Organization).where(
        Organization.type == OrgType.prefecture.value))).all()}
    for code, status, n, delivered in rows:
        p = by_pref.setdefault(code, PrefectureProgress(code, prefs.get(code, "（都道府県なし）"), 0, {}, 0))
        p.targets += n
        p.counts[status] = p.counts.get(status, 0) + n
        p.delivered += delivered
    return sorted(by_pref.values(), key=lambda p: p.code)


async def responses_of(session: AsyncSession, survey: Survey, prefecture: str | None = None
                       ) -> list[tuple[SurveyResponse, Organization]]:
    async with unscoped(session, SENDER_REASON):
        statement = (select(SurveyResponse, Organization).join(Organization, Organization.code == SurveyResponse.lg_code)
                     .where(SurveyResponse.survey_id == survey.id, SurveyResponse.survey_lg_code == survey.lg_code))
        if prefecture:
            statement = statement.where(SurveyResponse.prefecture_code == prefecture)
        return [(r, o) for r, o in (await session.execute(statement.order_by(SurveyResponse.lg_code))).all()]


async def delivered_response(session: AsyncSession, survey: Survey, respondent_code: str) -> tuple[Addressed, Organization]:
    """A delivered answer, for its sender."""
    async with unscoped(session, SENDER_REASON):
        response = await session.scalar(select(SurveyResponse).where(
            SurveyResponse.lg_code == respondent_code, SurveyResponse.survey_id == survey.id,
            SurveyResponse.survey_lg_code == survey.lg_code, SurveyResponse.delivered_at.is_not(None)))
    if response is None:
        raise NotFound("この団体の回答はまだ届いていません。")
    found = await _addressed(session, [response])
    return found[0], await session.get(Organization, respondent_code)


@dataclass
class Aggregates:
    delivered: int
    numbers: dict[str, dict]  # key -> {count, sum, avg, min, max}
    choices: dict[str, list[tuple[str, int]]]
    by_type: dict[str, list[tuple[str, int, float]]]  # key -> [(type, count, sum)]
    columns: dict[str, dict[str, dict]]  # table key -> column key -> {count, sum}


async def aggregates(session: AsyncSession, survey: Survey) -> Aggregates:
    """Sums, distributions and per-type breakdowns, in SQL over the sender's own rows: two
    grouped scans (numbers by question, column and type of local government; answers by text)."""
    base = (SurveyValue.survey_id == survey.id,)
    delivered = await session.scalar(select(func.count(SurveyValue.respondent_code)).where(
        *base, SurveyValue.question_key == "_", SurveyValue.row_no == 0)) or 0
    numbers: dict[str, dict] = {}
    by_type: dict[str, list] = defaultdict(list)
    columns: dict[str, dict] = defaultdict(dict)
    for key, col, kind, n, total, lo, hi in (await session.execute(
            select(SurveyValue.question_key, SurveyValue.column_key, SurveyValue.org_type, func.count(),
                   func.sum(SurveyValue.num), func.min(SurveyValue.num), func.max(SurveyValue.num))
            .where(*base, SurveyValue.num.is_not(None))
            .group_by(SurveyValue.question_key, SurveyValue.column_key, SurveyValue.org_type))).all():
        if col:
            found = columns[key].setdefault(col, {"count": 0, "sum": 0.0})
            found["count"] += n
            found["sum"] += total or 0
            continue
        by_type[key].append((kind, n, total))
        found = numbers.setdefault(key, {"count": 0, "sum": 0.0, "min": lo, "max": hi})
        found["count"] += n
        found["sum"] += total or 0
        found["min"], found["max"] = min(found["min"], lo), max(found["max"], hi)
    for found in numbers.values():
        found["avg"] = found["sum"] / found["count"] if found["count"] else None
    choices: dict[str, list] = defaultdict(list)
    for key, text, n in (await session.execute(
            select(SurveyValue.question_key, SurveyValue.text, func.count())
            .where(*base, SurveyValue.column_key == "", SurveyValue.num.is_(None), SurveyValue.question_key != "_")
            .group_by(SurveyValue.question_key, SurveyValue.text)
            .order_by(SurveyValue.question_key, func.count().desc()))).all():
        choices[key].append((text, n))
    return Aggregates(delivered, numbers, dict(choices), dict(by_type), dict(columns))


async def export_rows(session: AsyncSession, survey: Survey, version: SurveyVersion) -> tuple[list[str], list[list]]:
    """The delivered answers, one row per respondent, with 全国地方公共団体コード."""
    questions = version.definition.get("questions", [])
    values: dict[str, dict] = defaultdict(dict)
    for v in (await session.scalars(select(SurveyValue).where(SurveyValue.survey_id == survey.id)
                                    .order_by(SurveyValue.respondent_code, SurveyValue.question_key,
                                              SurveyValue.row_no))).all():
        cell = values[v.respondent_code]
        if v.column_key:
            cell.setdefault(v.question_key, set()).add(v.row_no)
        elif v.num is not None:
            cell[v.question_key] = v.num if v.num != int(v.num) else int(v.num)
        elif v.question_key in cell:
            cell[v.question_key] = f"{cell[v.question_key]}、{v.text}"
        else:
            cell[v.question_key] = v.text
    orgs = {o.code: o for o in (await session.scalars(select(Organization).where(
        Organization.code.in_(list(values) or ["-"])))).all()}
    header = ["全国地方公共団体コード", "団体名", "都道府県", "団体の種類",
              *[f"{q['label']}{'（' + q['unit'] + '）' if q.get('unit') else ''}" for q in questions]]
    rows = []
    for code in sorted(values):
        org = orgs.get(code)
        cells = []
        for q in questions:
            got = values[code].get(q["key"], "")
            cells.append(f"{len(got)}行" if isinstance(got, set) else got)
        rows.append([code, org.name if org else "", (org.prefecture_name or "") if org else "", org.type if org else "",
                     *cells])
    return header, rows


# -- public results (disclosure control) -----------------------------------------------------------------

PUBLIC_TYPES = [OrgType.prefecture.value, OrgType.designated_city.value, OrgType.city.value,
                OrgType.special_ward.value, OrgType.town.value, OrgType.village.value]


async def public_table(session: AsyncSession, survey: Survey, question_key: str) -> disclosure.Table:
    """Sum of a number question by prefecture × type of local government, suppressed."""
    cells: dict[tuple, tuple[float, int]] = {}
    for pref, kind, total, n in (await session.execute(
            select(SurveyValue.prefecture_code, SurveyValue.org_type, func.sum(SurveyValue.num),
                   func.count(distinct(SurveyValue.respondent_code)))
            .where(SurveyValue.survey_id == survey.id, SurveyValue.question_key == question_key,
                   SurveyValue.num.is_not(None))
            .group_by(SurveyValue.prefecture_code, SurveyValue.org_type))).all():
        cells[(pref, kind)] = (float(total or 0), n)
    rows = sorted({p for p, _ in cells})
    cols = [t for t in PUBLIC_TYPES if any(k == t for _, k in cells)]
    return disclosure.suppress(disclosure.Table(rows, cols, cells))


async def published(session: AsyncSession, survey_id: str) -> tuple[Survey, SurveyVersion]:
    survey = await session.scalar(select(Survey).where(Survey.id == survey_id, Survey.published_at.is_not(None)))
    if survey is None:
        raise NotFound("公表されている調査結果は見つかりませんでした。")
    return survey, await get_version(session, survey, survey.sent_version)


async def prefecture_names(session: AsyncSession) -> dict[str, str]:
    return {o.code: o.name for o in (await session.scalars(select(Organization).where(
        Organization.type == OrgType.prefecture.value).order_by(Organization.code))).all()}


def tenant_code(session: AsyncSession) -> str:
    tenant = current_tenant(session)
    return tenant.lg_code if tenant else ""


def as_of(moment: datetime | None) -> str:
    return moment.date().isoformat() if moment else ""


async def replace_definition(session: AsyncSession, survey: Survey, questions: list[dict], rules: list[dict], *,
                             expected_version: int | None) -> None:
    """The whole draft at once (the API): every question and rule checked as on the page."""
    _check_version(survey, expected_version, "ほかの職員がこの調査を先に変更しました（いまは第{n}版）。画面を読み込み直してください。")
    built: list[dict] = []
    errors: list[dict] = []
    for i, raw in enumerate(questions):
        try:
            built.append(qs.build_question(raw, built))
        except InvalidInput as exc:
            errors.extend({"field": f"questions[{i}].{e['field']}", "message": f"{i + 1}問目: {e['message']}"}
                          for e in exc.errors)
    checked_rules: list[dict] = []
    if not errors:
        for i, raw in enumerate(rules):
            try:
                checked_rules.append(qs.build_rule(raw, built))
            except InvalidInput as exc:
                errors.extend({"field": f"rules[{i}].{e['field']}", "message": e["message"]} for e in exc.errors)
    if errors:
        raise InvalidInput(" ".join(e["message"] for e in errors), errors=errors)
    survey.definition = {**survey.definition, "questions": built, "rules": checked_rules}  # "avoided" stays
    _touch(survey)
