"""Synthetic evacuee registrations (issue #5): realistic, deterministic, with ground truth."""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from datetime import date

import pytest

from kiban.core.registry.codes import lg_code_problem
from kiban.modules.disaster.names import normalize_kana, normalize_kanji
from kiban.modules.disaster.synthetic import (
    DEFAULT_AFFECTED,
    DEFAULT_REGISTERING,
    generate,
    iter_registrations,
    municipalities,
)

KEYS = {"record_id", "family_name", "given_name", "family_kana", "given_kana", "birth_date", "sex",
        "home_lg_code", "home_address", "phone", "registered_by", "person_id", "household_id"}


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return generate(4000, seed=11)


@pytest.fixture(scope="module")
def by_person(records) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        out[r["person_id"]].append(r)
    return out


def _duplicate_pairs(by_person):
    for regs in by_person.values():
        yield from itertools.combinations(regs, 2)


def test_same_seed_same_records_other_seed_other_records() -> None:
    assert generate(300, seed=5) == generate(300, seed=5)
    assert generate(300, seed=5) != generate(300, seed=6)
    assert list(iter_registrations(300, seed=5)) == generate(300, seed=5)


def test_shape_count_and_unique_ids(records) -> None:
    assert len(records) == 4000
    assert all(set(r) == KEYS for r in records)
    assert len({r["record_id"] for r in records}) == len(records)
    for r in records:
        assert r["sex"] in ("male", "female", None)
        assert r["birth_date"] is None or isinstance(r["birth_date"], (date, str))
        if isinstance(r["birth_date"], str):
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["birth_date"])
        assert r["record_id"].startswith(r["registered_by"] + "-")


def test_codes_are_real_registry_codes(records) -> None:
    known = municipalities()
    assert [known[c].city for c in DEFAULT_AFFECTED] == ["輪島市", "珠洲市", "七尾市", "志賀町", "穴水町", "能登町"]
    assert known["172014"].city == "金沢市"
    for code in {r["home_lg_code"] for r in records} | {r["registered_by"] for r in records}:
        assert lg_code_problem(code) is None
        assert code in known and known[code].prefecture == "石川県"
    assert {r["home_lg_code"] for r in records} <= set(DEFAULT_AFFECTED)
    assert {r["registered_by"] for r in records} <= set(DEFAULT_REGISTERING)


def test_unknown_codes_are_refused() -> None:
    with pytest.raises(ValueError, match="not municipality codes"):
        generate(10, seed=1, affected_lg_codes=["172040"])  # wrong check digit: not a code
    other = generate(50, seed=1, affected_lg_codes=["011002"], registering_lg_codes=["011002", "012025"])
    assert {r["home_lg_code"] for r in other} == {"011002"}
    assert any(r["home_address"].startswith(("北海道札幌市", "札幌市")) for r in other)


def test_ground_truth_is_consistent(by_person, records) -> None:
    sizes = [len(v) for v in by_person.values()]
    assert max(sizes) <= 4 and min(sizes) >= 1
    assert sum(s > 1 for s in sizes) > len(sizes) / 2  # most people are registered more than once
    households = defaultdict(set)
    for person, regs in by_person.items():
        assert len({r["household_id"] for r in regs}) == 1
        assert len({r["home_lg_code"] for r in regs}) == 1
        assert len({r["registered_by"] for r in regs}) == len(regs)  # by different municipalities
        households[regs[0]["household_id"]].add(person)
    multi = [h for h, people in households.items() if len(people) > 1]
    assert len(multi) > len(households) / 3


def test_family_members_are_hard_negatives(by_person) -> None:
    households = defaultdict(list)
    for regs in by_person.values():
        households[regs[0]["household_id"]].append(regs[0])
    same_surname_other_person = 0
    for members in households.values():
        for a, b in itertools.combinations(members, 2):
            if normalize_kanji(a["family_name"]).strip() == normalize_kanji(b["family_name"]).strip():
                same_surname_other_person += 1
    assert same_surname_other_person > 300


def test_common_names_recur_for_different_people(by_person) -> None:
    people_by_name = defaultdict(set)
    for person, regs in by_person.items():
        r = regs[0]
        people_by_name[(normalize_kanji(r["family_name"]).strip(), normalize_kanji(r["given_name"]).strip())].add(person)
    assert max(len(p) for p in people_by_name.values()) >= 2


def _dob(value):
    return value if value is None or isinstance(value, date) else date.fromisoformat(value)


def test_the_variations_clerks_make_really_occur(by_person) -> None:
    seen = defaultdict(int)
    for a, b in _duplicate_pairs(by_person):
        if a["family_name"] != b["family_name"] and normalize_kanji(a["family_name"]) == normalize_kanji(b["family_name"]):
            seen["異体字"] += 1
        if a["family_kana"] and b["family_kana"] and a["family_kana"] != b["family_kana"] \
                and normalize_kana(a["family_kana"]) == normalize_kana(b["family_kana"]):
            seen["kana width/script"] += 1
        if any(re.search("[ｦ-ﾟ]", r["family_kana"]) for r in (a, b)):
            seen["half-width kana"] += 1
        if bool(a["family_kana"]) != bool(b["family_kana"]):
            seen["missing kana"] += 1
        da, db = _dob(a["birth_date"]), _dob(b["birth_date"])
        if da and db and da != db:
            if (da.year, da.month, da.day) == (db.year, db.day, db.month):
                seen["day/month swap"] += 1
            else:
                seen["other date typo"] += 1
        if ("丁目" in a["home_address"]) != ("丁目" in b["home_address"]) and a["home_address"] and b["home_address"]:
            seen["address format"] += 1
        if re.search("[０-９]", a["home_address"] + b["home_address"]):
            seen["full-width digits"] += 1
        if bool(a["phone"]) != bool(b["phone"]):
            seen["missing phone"] += 1
        if any(re.search(r"[ 　]", r["family_name"] + r["given_name"]) for r in (a, b)):
            seen["space in name"] += 1
        if any(re.fullmatch("[ぁ-んァ-ヶー]+", r["given_name"]) for r in (a, b)):
            seen["given name in kana"] += 1
    expected = ["異体字", "kana width/script", "half-width kana", "missing kana", "day/month swap", "other date typo",
                "address format", "full-width digits", "missing phone", "space in name", "given name in kana"]
    assert [k for k in expected if seen[k] == 0] == []
