"""Seeding the registry from the shipped CSVs (see ``data/SOURCES.md``).

Idempotent: rows are matched on their code and only changed fields are written, so running it
twice leaves the same registry and says "0 added, 0 changed". A merge recorded in the registry
(``retired_on``/``successor_code``) is history, and seeding never undoes it. Every code's check
digit is verified before anything is written; one bad code aborts the whole seed.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.registry.codes import lg_code_problem, prefecture_code
from kiban.core.registry.models import Organization, OrgType
from kiban.core.registry.repository import OrganizationRepository
from kiban.kit.textnorm import search_key, to_katakana

DATA_DIR = Path(__file__).resolve().parent / "data"
CENSUS_SOURCE = "令和2年国勢調査"
JUKI_WARD_SOURCE = "住民基本台帳（2022年1月1日）"

SEEDED_FIELDS = ("name", "kana", "type", "prefecture_number", "prefecture_name", "parent_code",
                 "population", "households", "population_source", "area_km2",
                 "habitable_area_km2", "search_key", "sort_order")


class SeedError(Exception):
    pass


@dataclass
class SeedReport:
    total: int = 0
    added: int = 0
    changed: int = 0
    unchanged: int = 0

    def summary(self) -> str:
        return f"{self.total} 件（追加 {self.added}・更新 {self.changed}・変更なし {self.unchanged}）"


def _read(name: str) -> list[dict[str, str]]:
    with (DATA_DIR / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _int(value: str) -> int | None:
    return int(value) if value not in ("", None) else None


def _float(value: str) -> float | None:
    return float(value) if value not in ("", None) else None


def registry_rows() -> list[dict[str, Any]]:
    """Every organisation to seed, parents before children, each code checked."""
    kana = {r["code"]: r for r in _read("lg_codes_kana.csv")}
    rows: list[dict[str, Any]] = []
    order = 0
    for file, kind in (("national_bodies.csv", OrgType.national), ("associations.csv", OrgType.association)):
        for body in _read(file):
            order += 1
            rows.append({
                "code": body["code"], "name": body["name"], "kana": body["kana"],
                "type": kind.value, "prefecture_number": None, "prefecture_name": None,
                "parent_code": None, "population": None, "households": None,
                "population_source": None, "area_km2": None, "habitable_area_km2": None,
                "sort_order": order,
            })
    for record in _read("lg_population.csv"):
        order += 1
        code = record["code"]
        is_prefecture = record["type"] == OrgType.prefecture.value
        reading = kana[code]["prefecture_kana" if is_prefecture else "city_kana"]
        rows.append({
            "code": code,
            "name": record["prefecture"] if is_prefecture else record["city"],
            "kana": to_katakana(reading) if reading else None,
            "type": record["type"],
            "prefecture_number": code[:2],
            "prefecture_name": record["prefecture"],
            "parent_code": None if is_prefecture else prefecture_code(code),
            "population": _int(record["pop_census_2020"]),
            "households": _int(record["households_census_2020"]),
            "population_source": CENSUS_SOURCE,
            "area_km2": _float(record["area_km2"]),
            "habitable_area_km2": _float(record["habitable_area_km2"]),
            "sort_order": order,
        })
    for ward in _read("designated_city_wards_population.csv"):
        order += 1
        rows.append({
            "code": ward["code"], "name": ward["city"] + ward["ward"], "kana": None,
            "type": OrgType.ward.value, "prefecture_number": ward["code"][:2],
            "prefecture_name": ward["prefecture"], "parent_code": ward["parent_code"],
            "population": _int(ward["pop_juki_2022_01_01"]),
            "households": _int(ward["households_juki_2020_01_01"]),
            "population_source": JUKI_WARD_SOURCE + "・世帯数は2020年1月1日",
            "area_km2": None, "habitable_area_km2": None, "sort_order": order,
        })
    problems = [f"{r['code']} {r['name']}: {msg}" for r in rows if (msg := lg_code_problem(r["code"]))]
    if problems:
        raise SeedError("団体コードの検査に失敗しました:\n" + "\n".join(problems))
    for row in rows:
        full = (row["prefecture_name"] or "") + row["name"] if row["type"] != OrgType.prefecture.value else row["name"]
        row["search_key"] = "|".join(filter(None, (search_key(full), search_key(row["kana"]))))
    return rows


async def seed_registry(session: AsyncSession,
                        progress: Callable[[int], None] | None = None) -> SeedReport:
    """Insert or update every organisation. Flushes; the caller commits."""
    rows = registry_rows()
    existing = {o.code: o for o in (await session.scalars(select(Organization))).all()}
    report = SeedReport(total=len(rows))
    for row in rows:
        current = existing.get(row["code"])
        if current is None:
            session.add(Organization(**row))
            report.added += 1
        else:
            changed = False
            for field in SEEDED_FIELDS:
                if getattr(current, field) != row[field]:
                    setattr(current, field, row[field])
                    changed = True
            if changed:
                report.changed += 1
            else:
                report.unchanged += 1
        if progress:
            progress(1)
        # Parents must exist before children reference them (foreign keys on).
        if row["type"] in (OrgType.prefecture.value, OrgType.designated_city.value, OrgType.national.value) and current is None:
            await session.flush()
    await session.flush()
    if report.added or report.changed:
        await OrganizationRepository(session).bump_revision()
    return report
