"""The second registration generator (``rosters_synthetic``): deterministic, in the linkage's
shape, and its slips happen at the rates it states and are what their tags say."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from datetime import date, timedelta

import pytest

from kiban.modules.disaster import linkage
from kiban.modules.disaster.rosters_synthetic import (
    DOB_ERRORS,
    ERROR_RATES,
    roster_registrations,
    true_pairs,
)

N = 15_000
SHAPE = {"record_id", "family_name", "given_name", "family_kana", "given_kana", "birth_date", "sex",
         "home_lg_code", "home_address", "phone", "registered_by", "person_id", "household_id", "errors",
         "twin_of", "namesake_of"}
# slips that need something to act on (see ERROR_RATES): checked on what they can act on, or loosely
CONDITIONAL = {"dob_month_day_swap", "family_other_kanji", "lg_city_code", "given_other_kanji", "kana_typo",
               "phone_blank"}


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return roster_registrations(N, seed=4245)  # a region with a 政令市 (wards)


def test_same_seed_same_records_and_another_seed_others() -> None:
    first = roster_registrations(3_000, seed=7)
    assert first == roster_registrations(3_000, seed=7)
    assert [r["family_name"] for r in first] != [r["family_name"] for r in roster_registrations(3_000, seed=8)]


def test_records_have_the_linkage_shape(records) -> None:
    assert len(records) == N
    assert len({r["record_id"] for r in records}) == N
    for r in records[:2_000]:
        assert set(r) == SHAPE
        assert r["birth_date"] is None or isinstance(r["birth_date"], date)
        assert r["sex"] in ("male", "female", None)
        assert re.fullmatch(r"\d{6}", r["home_lg_code"]) and re.fullmatch(r"\d{6}", r["registered_by"])
        linkage.normalise_record(r)  # the linkage reads every one
    # some people are registered more than once, most once
    per_person = Counter(r["person_id"] for r in records)
    repeated = sum(1 for n in per_person.values() if n > 1) / len(per_person)
    assert 0.15 < repeated < 0.45
    assert true_pairs(records) == sum(n * (n - 1) // 2 for n in per_person.values())
    # registered in other municipalities than the home one, some in another prefecture
    assert sum(r["registered_by"][:2] != r["home_lg_code"][:2] for r in records) > N * 0.03


def test_slips_occur_at_their_stated_rates(records) -> None:
    counts = Counter(tag for r in records for tag in r["errors"])
    for tag, rate in ERROR_RATES.items():
        observed = counts[tag] / N
        if tag in CONDITIONAL:
            assert 0 < observed <= rate * 1.3, tag
            continue
        # a birth-date slip that changes nothing (no date to swap) is not tagged
        tolerance = 4 * math.sqrt(rate * (1 - rate) / N) + rate * 0.05
        assert abs(observed - rate) < tolerance, (tag, observed, rate)
    # conditional ones at their rate among what they can act on
    ward_homes = [r for r in records if r["home_lg_code"] in _wards() or "lg_city_code" in r["errors"]]
    if ward_homes:
        share = sum("lg_city_code" in r["errors"] for r in ward_homes) / len(ward_homes)
        assert abs(share - ERROR_RATES["lg_city_code"]) < 0.03
    with_kanji_given = [r for r in records if "given_in_kana" not in r["errors"]]
    share = sum("given_other_kanji" in r["errors"] for r in with_kanji_given) / len(with_kanji_given)
    assert ERROR_RATES["given_other_kanji"] * 0.6 < share <= ERROR_RATES["given_other_kanji"] * 1.1
    # outcomes the description promises
    for tag in ("family_variant", "family_variant_rare", "given_variant", "given_variant_rare", "surname_changed",
                "phone_household", "addr_apartment", "resubmitted"):
        assert counts[tag] > 0, tag


def _wards() -> set[str]:
    from kiban.modules.disaster.rosters_synthetic import _data

    return {code for codes in _data().wards.values() for code in codes}


def _clean_birth(records) -> dict[str, date]:
    """Each person's birth date, from a registration without a birth-date slip."""
    out: dict[str, date] = {}
    for r in records:
        if not set(DOB_ERRORS) & set(r["errors"]):
            out.setdefault(r["person_id"], r["birth_date"])
    return out


def test_birth_date_slips_are_what_their_tags_say(records) -> None:
    truth = _clean_birth(records)
    seen = Counter()
    for r in records:
        real = truth.get(r["person_id"])
        written = r["birth_date"]
        tags = set(r["errors"]) & set(DOB_ERRORS)
        if real is None:
            continue
        if not tags:
            assert written == real
            continue
        (tag,) = tags
        seen[tag] += 1
        if tag == "dob_missing":
            assert written is None
        elif tag == "dob_age_only":
            assert written is None or (written.month, written.day) == (1, 1) and abs(written.year - real.year) <= 1
        elif tag == "dob_one_day":
            assert abs(written - real) == timedelta(days=1)
        elif tag == "dob_month_day_swap":
            assert (written.year, written.month, written.day) == (real.year, real.day, real.month)
        elif tag == "dob_wareki_year":
            assert abs(written.year - real.year) == 1 and (written.month, written.day) == (real.month, real.day)
        else:
            a, b = written.strftime("%Y%m%d"), real.strftime("%Y%m%d")
            diff = [i for i in range(8) if a[i] != b[i]]
            if tag == "dob_digit_typo":
                assert len(diff) == 1
            else:
                assert len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
    assert set(seen) == set(DOB_ERRORS)
    # a one-day slip crosses digits at month ends (1970-01-10 / 1970-01-09 and the like)
    assert any(r["birth_date"] and r["birth_date"].day in (1, 9, 10, 19, 20, 29, 30, 31) for r in records
               if "dob_one_day" in r["errors"])


def test_name_and_contact_slips_are_what_their_tags_say(records) -> None:
    by_person = defaultdict(list)
    for r in records:
        by_person[r["person_id"]].append(r)
    checked = Counter()
    for r in records:
        tags = set(r["errors"])
        if "kana_missing" in tags:
            assert r["family_kana"] == "" and r["given_kana"] == ""
        if "given_kana_missing" in tags:
            assert r["family_kana"] and r["given_kana"] == ""
        if "addr_town_only" in tags:
            assert not re.search(r"[0-9０-９]", r["home_address"])
        if "addr_missing" in tags:
            assert r["home_address"] is None
        if "phone_missing" in tags:
            assert r["phone"] is None
        if "given_other_kanji" in tags:
            others = [o for o in by_person[r["person_id"]] if not {"given_other_kanji", "given_in_kana"} & set(o["errors"])
                      and not {"given_variant"} & (tags | set(o["errors"]))]
            for other in others:
                assert other["given_name"] != r["given_name"]
                checked["given_other_kanji"] += 1
    assert checked["given_other_kanji"] > 10


def test_twins_and_look_alikes_are_different_people_who_look_alike(records) -> None:
    by_person = {r["person_id"]: r for r in records}
    twins = [r for r in records if r["twin_of"] in by_person]
    assert twins
    for r in twins:
        other = by_person[r["twin_of"]]
        assert r["household_id"] == other["household_id"] and r["person_id"] != other["person_id"]
    namesakes = [r for r in records if r["namesake_of"] in by_person and not r["errors"]
                 and not by_person[r["namesake_of"]]["errors"]]
    assert namesakes
    for r in namesakes:
        other = by_person[r["namesake_of"]]
        assert (r["family_name"], r["given_name"]) == (other["family_name"], other["given_name"])
        assert r["birth_date"].year == other["birth_date"].year and r["birth_date"] != other["birth_date"]
        assert r["household_id"] != other["household_id"]
