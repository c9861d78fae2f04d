"""Seeded, realistic nursery-allocation instances for bench/allocation.py and the tests.

Shape (April intake of a large city such as さいたま市: ~8,000 applicants, ~311 licensed
facilities): applicants and facilities on a unit square split into municipalities (wards);
facilities rank their own municipality's residents first (広域利用); new-intake seats by age
class skewed so that 0–2歳児 are scarce (most 3–5歳児 seats are already taken by continuing
children, and small-scale facilities only have 0–2); applicants mostly 0–1歳; each applicant lists
1–6 facilities chosen by distance with noise (so preferences are correlated with location);
points from a few working-hours bands plus small adjustments (many ties) and a lottery tie-break;
about 12 % of children in sibling groups of 2–3 sharing home, points and (mostly) preferences,
with the three sibling rules in realistic proportions.
"""

from __future__ import annotations

import math
import random

from kiban.modules.childcare.allocation import Child, Facility, Instance, SiblingRule

AGE_SHARE = (0.30, 0.38, 0.14, 0.10, 0.05, 0.03)
# new-intake seats per facility by age class (min, max) for 認可保育所 and 小規模保育
NURSERY_SEATS = ((3, 9), (3, 9), (1, 5), (1, 6), (0, 3), (0, 2))
SMALL_SEATS = ((2, 5), (2, 6), (1, 4), (0, 0), (0, 0), (0, 0))
POINT_BANDS = (100, 90, 80, 70, 60, 50, 40)
ADJUST = (0, 0, 0, 1, 2, 3, 5)


def generate(n_children: int, n_facilities: int, seed: int = 1, *, sibling_share: float = 0.12,
             wards: int = 3, name_prefix: str = "施設") -> Instance:
    rng = random.Random(seed)
    municipalities = [f"99{seed % 10}{w:02d}" for w in range(wards * wards)]

    def ward_of(x: float, y: float) -> str:
        return municipalities[min(wards - 1, int(y * wards)) * wards + min(wards - 1, int(x * wards))]

    facilities = []
    fpos = []
    for i in range(n_facilities):
        x, y = rng.random(), rng.random()
        small = rng.random() < 0.3
        seats = SMALL_SEATS if small else NURSERY_SEATS
        cap = tuple(rng.randint(lo, hi) for lo, hi in seats)
        facilities.append(Facility(id=f"F{i:04d}", municipality=ward_of(x, y), capacity=cap,
                                   name=f"{name_prefix}{i + 1}", residents_first=True))
        fpos.append((x, y))

    def preferences(x: float, y: float, age: int) -> tuple[str, ...]:
        k = rng.choices((1, 2, 3, 4, 5, 6), weights=(8, 12, 22, 24, 20, 14))[0]
        scored = []
        for i, (fx, fy) in enumerate(fpos):
            if facilities[i].capacity[age] == 0 and rng.random() < 0.9:
                continue  # parents rarely list a facility with no class for their child
            d = math.hypot(fx - x, fy - y)
            scored.append((d + rng.gauss(0, 0.04), i))
        scored.sort()
        return tuple(facilities[i].id for _, i in scored[:k])

    children: list[Child] = []
    n_group_children = int(n_children * sibling_share)
    groups = 0
    while sum(1 for c in children if c.sibling_group) < n_group_children:
        size = 3 if rng.random() < 0.2 else 2
        groups += 1
        gid = f"G{groups:04d}"
        x, y = rng.random(), rng.random()
        points = rng.choice(POINT_BANDS) + rng.choice(ADJUST) + 2  # sibling adjustment
        rule = rng.choices(list(SiblingRule), weights=(6, 3, 1))[0]
        ages = sorted(rng.sample(range(6), size)) if rng.random() > 0.05 else [1] * size
        base = None
        for m, age in enumerate(ages):
            prefs = preferences(x, y, age)
            if base is not None and rng.random() < 0.85:
                prefs = base
            base = base or prefs
            children.append(Child(id=f"C{len(children):05d}", age_class=age,
                                  municipality=ward_of(x, y), points=points,
                                  preferences=prefs, tie_break=(rng.randrange(10**6),),
                                  sibling_group=gid, sibling_rule=rule, label=f"第{m + 1}子"))
    while len(children) < n_children:
        x, y = rng.random(), rng.random()
        age = rng.choices(range(6), weights=AGE_SHARE)[0]
        points = rng.choice(POINT_BANDS) + rng.choice(ADJUST)
        children.append(Child(id=f"C{len(children):05d}", age_class=age, municipality=ward_of(x, y),
                              points=points, preferences=preferences(x, y, age),
                              tie_break=(rng.randrange(10**6),)))
    rng.shuffle(children)
    return Instance(children=tuple(children), facilities=tuple(facilities))
