"""Where each indicator's figures come from: one SQL subquery per indicator over the owning
module's tables, with the same columns (``code`` the local government, ``category``, ``period``,
``value``, ``person``), so that every table is one GROUP BY over it (nothing is loaded row by row).

These are read-only aggregates across tenants; the caller runs them inside ``unscoped(...)``
with a reason. They read the other modules' tables directly (read-only) because none of their
services offers these GROUP BYs yet; each could move into its module's service unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, String, and_, cast, func, literal, literal_column, select, union_all

from kiban.modules.catalog.models import Adoption, AdoptionStatus, CatalogService
from kiban.modules.costs.models import FeeStatement
from kiban.modules.disaster.models import VictimRecord
from kiban.modules.surveys.models import ResponseStatus, Survey, SurveyResponse, SurveyVersion

GRAINS = {"fy": "年度", "month": "月"}
ACTIVE = (AdoptionStatus.in_use.value, AdoptionStatus.pilot.value)
ANSWERED = (ResponseStatus.submitted.value, ResponseStatus.approved.value)


def period(column, grain: str, dialect: str, *, timestamp: bool):
    """The column's month (``2026-04``) or fiscal year (``2026``: April to March), in Japan time."""
    if dialect == "postgresql":
        moment = func.timezone("Asia/Tokyo", column) if timestamp else column
        if grain == "month":
            return func.to_char(moment, "YYYY-MM")
        return func.to_char(moment - literal_column("interval '3 months'"), "YYYY")
    shift = ["+9 hours"] if timestamp else []
    if grain == "month":
        return func.strftime("%Y-%m", column, *shift)
    return func.strftime("%Y", column, *shift, "-3 months")


def _adoptions(grain: str, dialect: str):
    return (select(Adoption.lg_code.label("code"), CatalogService.pattern.label("category"),
                   period(Adoption.since, grain, dialect, timestamp=False).label("period"),
                   literal(1).label("value"), cast(literal(None), String).label("person"))
            .join(CatalogService, CatalogService.id == Adoption.service_id)
            .where(Adoption.status.in_(ACTIVE)))


def _savings(grain: str, dialect: str):
    return (select(Adoption.lg_code.label("code"), CatalogService.pattern.label("category"),
                   period(Adoption.since, grain, dialect, timestamp=False).label("period"),
                   (Adoption.replaced_annual_cost - Adoption.annual_cost).label("value"),
                   cast(literal(None), String).label("person"))
            .join(CatalogService, CatalogService.id == Adoption.service_id)
            .where(Adoption.status.in_(ACTIVE), Adoption.replaced_annual_cost.is_not(None),
                   Adoption.annual_cost.is_not(None)))


def _fees(grain: str, dialect: str):
    # 負担金 are decided per fiscal year: the series is by 年度 whatever the grain asked for.
    return (select(FeeStatement.lg_code.label("code"), FeeStatement.service_name.label("category"),
                   cast(FeeStatement.fiscal_year, String).label("period"), FeeStatement.fee.label("value"),
                   cast(literal(None), String).label("person"))
            .where(FeeStatement.cancelled_at.is_(None)))


def _disasters(grain: str, dialect: str):
    # A person is their person_id after 名寄せ, or the registration itself while linked to
    # nothing (an unlinked record's id is never another record's person_id).
    return select(VictimRecord.lg_code.label("code"), VictimRecord.disaster_id.label("category"),
                  period(VictimRecord.created_at, grain, dialect, timestamp=True).label("period"),
                  literal(1).label("value"),
                  func.coalesce(VictimRecord.person_id, VictimRecord.id).label("person"))


def _json_keys(column, dialect: str):
    if dialect == "postgresql":
        return func.json_object_keys(column).table_valued("key").render_derived()
    return func.json_each(column).table_valued("key")


def _prefill(grain: str, dialect: str):
    """Per answered response: prefilled answers kept as the platform had them (確認のみ) and
    those the respondent corrected with a reason (修正), unpivoted into two categories."""
    prefilled = _json_keys(SurveyResponse.prefill, dialect)
    reasons = _json_keys(SurveyResponse.reasons, dialect)
    n = select(func.count()).select_from(prefilled).scalar_subquery()
    corrected = (select(func.count()).select_from(reasons)
                 .where(reasons.c.key.in_(select(_json_keys(SurveyResponse.prefill, dialect).c.key)))
                 .scalar_subquery())
    per = (select(SurveyResponse.lg_code.label("code"),
                  period(SurveyResponse.submitted_at, grain, dialect, timestamp=True).label("period"),
                  n.label("n"), corrected.label("c"))
           .where(SurveyResponse.status.in_(ANSWERED), SurveyResponse.submitted_at.is_not(None))
           .subquery("per_response"))
    kept = select(per.c.code, literal("confirmed").label("category"), per.c.period,
                  (per.c.n - per.c.c).label("value"), cast(literal(None), String).label("person")
                  ).where(per.c.n - per.c.c > 0)
    fixed = select(per.c.code, literal("corrected").label("category"), per.c.period,
                   per.c.c.label("value"), cast(literal(None), String).label("person")).where(per.c.c > 0)
    return union_all(kept, fixed)


def _avoided(grain: str, dialect: str):
    """Per body a sent survey was addressed to: the questions its author dropped as asked by
    another survey within a year (重複照会の抑止), which that body therefore never answered. From
    the version in force (a later version that drops more counts those too)."""
    if dialect == "postgresql":
        n = func.json_array_length(SurveyVersion.definition.op("->")(literal("avoided")))
    else:
        n = func.json_array_length(SurveyVersion.definition, "$.avoided")
    count = func.coalesce(n, 0)
    return (select(SurveyResponse.lg_code.label("code"), literal("avoided").label("category"),
                   period(SurveyVersion.sent_at, grain, dialect, timestamp=True).label("period"),
                   count.label("value"), cast(literal(None), String).label("person"))
            .join(Survey, and_(Survey.lg_code == SurveyResponse.survey_lg_code, Survey.id == SurveyResponse.survey_id))
            .join(SurveyVersion, and_(SurveyVersion.lg_code == Survey.lg_code, SurveyVersion.survey_id == Survey.id,
                                      SurveyVersion.number == Survey.sent_version))
            .where(count > 0))


@dataclass(frozen=True)
class Source:
    build: object  # (grain, dialect) -> a select or union with the five columns
    by_person: bool = False  # contributors are persons (else local governments)


SOURCES = {
    "adoptions": Source(_adoptions),
    "savings": Source(_savings),
    "fees": Source(_fees),
    "disasters": Source(_disasters, by_person=True),
    "prefill": Source(_prefill),
    "avoided": Source(_avoided),
}


def subquery(key: str, grain: str, dialect: str):
    built = SOURCES[key].build(grain, dialect)
    return built.subquery(f"src_{key}")


def contributors(src, by_person: bool):
    return func.count(func.distinct(src.c.person if by_person else src.c.code))


def grouped(src, by_person: bool, *keys, where=None) -> Select:
    """(keys..., Σ value, contributors) grouped by ``keys`` (none: one row)."""
    statement = select(*keys, func.sum(src.c.value), contributors(src, by_person)).select_from(src)
    if where is not None:
        statement = statement.where(where)
    return statement.group_by(*keys) if keys else statement


def area_key(src, prefecture_number: str | None):
    """Nationally the prefecture (its 2-digit number), within a prefecture the local government."""
    return func.substr(src.c.code, 1, 2) if prefecture_number is None else src.c.code


def scope_condition(src, prefecture_number: str | None):
    if prefecture_number is None:
        # local governments only (national bodies' codes begin with 00)
        return and_(func.substr(src.c.code, 1, 2) >= "01", func.substr(src.c.code, 1, 2) <= "47")
    return func.substr(src.c.code, 1, 2) == prefecture_number


