"""Cost allocation speed: 50 common services, each allocated across all 1,788 local
governments (2020 census populations), methods rotating among 均等割, 人口割, 人口按分+重み係数
(r = 1.5) and a 30/70 mix, with and without a national subsidy. Target: under 200 ms for all 50.

    .venv/bin/python bench/costs.py [--services 50] [--repeat 5]
"""

from __future__ import annotations

import argparse
import csv
import time
from decimal import Decimal

from kiban.core.registry.seed import DATA_DIR
from kiban.modules.costs.allocation import Equal, Member, Mixed, Population, WeightedPopulation, allocate


def members() -> list[Member]:
    with (DATA_DIR / "lg_population.csv").open(encoding="utf-8") as handle:
        return [Member(r["code"], r["city"] or r["prefecture"], int(r["pop_census_2020"])) for r in csv.DictReader(handle)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    everyone = [m for m in members() if m.population > 0]  # 双葉町 (0 in 2020) pays nothing by population
    methods = [Equal(), Population(), WeightedPopulation(Decimal("1.5")),
               Mixed(((Equal(), Decimal(30)), (WeightedPopulation(Decimal("1.5")), Decimal(70))))]
    runs = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        for n in range(args.services):
            result = allocate(1_000_000_000 + n * 7_654_321, everyone, methods[n % len(methods)],
                              subsidy_rate=Decimal("0.5") if n % 3 == 0 else Decimal(0))
            assert sum(result.amounts) + result.subsidy == result.amount
        runs.append((time.perf_counter() - started) * 1000)
    best, worst = min(runs), max(runs)
    print(f"{args.services} services × {len(everyone)} local governments, {args.repeat} runs: "
          f"best {best:.0f} ms, worst {worst:.0f} ms, per service {best / args.services:.1f} ms; "
          f"target < 200 ms: {'yes' if best < 200 else 'NO'}")
    print(f"rerun: .venv/bin/python bench/costs.py --services {args.services} --repeat {args.repeat}")


if __name__ == "__main__":
    main()
