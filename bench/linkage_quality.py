"""名寄せ quality on two independently written generators of registrations (issue #11, item 7).

For each generator and size, the registrations are linked by the shipped model
(``linkage.link_batch``: Splink on DuckDB, clusters = connected components of the pairs at the
threshold) and compared with the generator's ground truth (``person_id``):

* **precision, recall, F1 are pairwise over clusters**: a pair of registrations is *predicted*
  when both are in one cluster, *true* when both are the same person; precision = predicted ∩
  true / predicted, recall = predicted ∩ true / true. (Chaining counts: a cluster A–B–C where
  only A–B and B–C were scored still predicts A–C.)
* **misses** (true pairs not in one cluster) are counted by the slips the generator injected
  (``errors`` on either registration, ``rosters_synthetic`` only: ``synthetic.py`` does not say
  what it changed) and, for both generators, by the comparison levels the model put the pair in
  (``explain_pair``), with "not blocked" when no blocking rule brings the pair together;
* **false links** (predicted pairs of different people) by what the two people are: twins,
  a look-alike made on purpose (``namesake_of``), the same household, or neither; and by levels.

Generators: ``synthetic`` (``synthetic.iter_registrations``, the one the model was first built
on) and ``rosters`` (``rosters_synthetic.roster_registrations``, written from a description of
real shelter rosters without looking at the first). The seeds differ from the training seeds.

    .venv/bin/python bench/linkage_quality.py [--sizes 20000,100000] [--generators synthetic,rosters]
        [--seed 777] [--model PATH] [--threshold 0.95] [--top 12] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from kiban.modules.disaster import linkage
from kiban.modules.disaster.linkage.model import load_model
from kiban.modules.disaster.linkage.normalise import COLUMNS, _normalise

FIELDS = ("record_id", "family_name", "given_name", "family_kana", "given_kana", "birth_date", "sex",
          "home_lg_code", "home_address", "phone", "registered_by")


def generate(generator: str, size: int, seed: int) -> list[dict]:
    if generator == "synthetic":
        from kiban.modules.disaster.synthetic import iter_registrations

        return [dict(r) for r in iter_registrations(size, seed=seed)]
    if generator == "rosters":
        from kiban.modules.disaster.rosters_synthetic import roster_registrations

        return roster_registrations(size, seed=seed)
    raise SystemExit(f"unknown generator {generator!r}")


def _pairs_of(groups: Iterable[list[str]]) -> Iterable[tuple[str, str]]:
    for members in groups:
        members = sorted(members)
        for i, a in enumerate(members):
            for b in members[i + 1:]:
                yield a, b


def pairwise(clusters: dict[str, str], persons: dict[str, str]) -> dict:
    """Pairwise precision/recall/F1 of clusters against persons (see the module docstring)."""
    both, predicted, true = Counter(), Counter(), Counter()
    for record_id, person in persons.items():
        cluster = clusters.get(record_id, record_id)
        both[(cluster, person)] += 1
        predicted[cluster] += 1
        true[person] += 1

    def count(counter: Counter) -> int:
        return sum(n * (n - 1) // 2 for n in counter.values())

    tp, pp, tt = count(both), count(predicted), count(true)
    precision = tp / pp if pp else 1.0
    recall = tp / tt if tt else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"true_pairs": tt, "predicted_pairs": pp, "true_positive": tp, "precision": precision, "recall": recall,
            "f1": f1}


def _blocked(a: tuple, b: tuple, rules: Sequence[Sequence[int]]) -> bool:
    return any(all(a[i] is not None and a[i] == b[i] for i in rule) for rule in rules)


def _level_key(explanation) -> str:
    return " ".join(f"{k}={v}" for k, v in explanation.levels.items())


def _slips(record: dict) -> set[str]:
    return set(record.get("errors") or ())


def analyse(records: list[dict], result, model, top: int) -> dict:
    by_id = {r["record_id"]: r for r in records}
    persons = {r["record_id"]: r["person_id"] for r in records}
    rules = [tuple(COLUMNS.index(c) for c in rule) for rule in model.blocking_rules]
    normalised: dict[str, tuple] = {}

    def row(rid: str) -> tuple:
        if rid not in normalised:
            normalised[rid] = _normalise(by_id[rid])
        return normalised[rid]

    clusters = result.clusters
    # misses: true pairs split across clusters
    by_person: dict[str, list[str]] = defaultdict(list)
    for rid, person in persons.items():
        by_person[person].append(rid)
    miss_tags, miss_signatures, miss_levels = Counter(), Counter(), Counter()
    misses = 0
    examples: list[dict] = []
    for a, b in _pairs_of(g for g in by_person.values() if len(g) > 1):
        if clusters.get(a, a) == clusters.get(b, b):
            continue
        misses += 1
        ra, rb = by_id[a], by_id[b]
        tags = _slips(ra) | _slips(rb)
        for tag in tags:
            miss_tags[tag] += 1
        miss_signatures[" + ".join(sorted(tags - {"phone_household", "addr_apartment"})) or "(none injected)"] += 1
        explanation = linkage.explain_pair(ra, rb, model=model)
        blocked = _blocked(row(a), row(b), rules)
        miss_levels[("" if blocked else "NOT BLOCKED ") + _level_key(explanation)] += 1
        if len(examples) < top:
            examples.append({"p": round(explanation.probability, 4), "blocked": blocked,
                             "a": {k: str(ra.get(k)) for k in FIELDS[1:10]},
                             "b": {k: str(rb.get(k)) for k in FIELDS[1:10]}, "errors": sorted(tags)})
    # false links: pairs of different people in one cluster
    members: dict[str, list[str]] = defaultdict(list)
    for rid in persons:
        members[clusters.get(rid, rid)].append(rid)
    false_kinds, false_levels = Counter(), Counter()
    false_pairs = 0
    false_examples: list[dict] = []
    for a, b in _pairs_of(m for m in members.values() if len(m) > 1):
        ra, rb = by_id[a], by_id[b]
        if ra["person_id"] == rb["person_id"]:
            continue
        false_pairs += 1
        pa, pb = ra["person_id"], rb["person_id"]
        if ra.get("twin_of") == pb or rb.get("twin_of") == pa:
            kind = "twins"
        elif ra.get("namesake_of") == pb or rb.get("namesake_of") == pa:
            kind = "look-alike (same name, same year, same town)"
        elif ra.get("household_id") is not None and ra.get("household_id") == rb.get("household_id"):
            kind = "same household"
        else:
            kind = "other"
        explanation = linkage.explain_pair(ra, rb, model=model)
        if explanation.probability < result.threshold:
            kind += ", chained (this pair itself below the threshold)"
        false_kinds[kind] += 1
        false_levels[_level_key(explanation)] += 1
        if len(false_examples) < top:
            false_examples.append({"p": round(explanation.probability, 4), "kind": kind,
                                   "a": {k: str(ra.get(k)) for k in FIELDS[1:10]},
                                   "b": {k: str(rb.get(k)) for k in FIELDS[1:10]}})
    return {
        "misses": misses, "miss_tags": miss_tags.most_common(top), "miss_signatures": miss_signatures.most_common(top),
        "miss_levels": miss_levels.most_common(top), "miss_examples": examples,
        "false_pairs": false_pairs, "false_kinds": false_kinds.most_common(top),
        "false_levels": false_levels.most_common(top), "false_examples": false_examples,
    }


def run(generator: str, size: int, seed: int, model_path: Path | None, threshold: float, top: int) -> dict:
    started = time.perf_counter()
    records = generate(generator, size, seed)
    generated = time.perf_counter() - started
    started = time.perf_counter()
    result = linkage.link_batch([{k: r.get(k) for k in FIELDS} for r in records], threshold=threshold,
                                model_path=model_path)
    linked = time.perf_counter() - started
    metrics = pairwise(result.clusters, {r["record_id"]: r["person_id"] for r in records})
    model = load_model(model_path) if model_path else linkage.default_model()
    details = analyse(records, result, model, top)
    tags = Counter(t for r in records for t in r.get("errors") or ())
    return {"generator": generator, "size": size, "seed": seed, "generate_s": round(generated, 1),
            "link_s": round(linked, 1), **metrics, **details, "injected": dict(sorted(tags.items()))}


def report(out: dict) -> None:
    print(f"\n== {out['generator']} n={out['size']:,} seed={out['seed']}: P {out['precision']:.4f}  "
          f"R {out['recall']:.4f}  F1 {out['f1']:.4f}  (true pairs {out['true_pairs']:,}, predicted "
          f"{out['predicted_pairs']:,}, correct {out['true_positive']:,}; link {out['link_s']} s)")
    print(f"  misses: {out['misses']:,} true pairs not in one cluster")
    if out["miss_tags"]:
        print("   by injected slip (either registration; a pair counts once per slip):")
        for tag, n in out["miss_tags"]:
            print(f"     {n:6,}  {tag}")
        print("   by combination of slips:")
        for tag, n in out["miss_signatures"]:
            print(f"     {n:6,}  {tag}")
    print("   by comparison levels:")
    for key, n in out["miss_levels"]:
        print(f"     {n:6,}  {key}")
    print(f"  false links: {out['false_pairs']:,} pairs of different people in one cluster")
    for kind, n in out["false_kinds"]:
        print(f"     {n:6,}  {kind}")
    print("   by comparison levels:")
    for key, n in out["false_levels"]:
        print(f"     {n:6,}  {key}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20000,100000")
    parser.add_argument("--generators", default="synthetic,rosters")
    parser.add_argument("--seed", type=int, default=777, help="the seed of each run is this + the size")
    parser.add_argument("--model", type=Path, default=None, help="a model JSON (default: the shipped one)")
    parser.add_argument("--threshold", type=float, default=linkage.DEFAULT_THRESHOLD)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--examples", action="store_true", help="print example misses and false links")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure here")
    args = parser.parse_args(argv)
    command = "  ".join(["cd /work/main && .venv/bin/python bench/linkage_quality.py", *sys.argv[1:]])
    results = []
    summary = []
    for size in (int(s) for s in args.sizes.split(",")):
        for generator in args.generators.split(","):
            out = run(generator, size, args.seed + size, args.model, args.threshold, args.top)
            report(out)
            if args.examples:
                for title, key in (("missed", "miss_examples"), ("false links", "false_examples")):
                    print(f"  examples, {title}:")
                    for example in out[key]:
                        print("    ", json.dumps(example, ensure_ascii=False))
            results.append(out)
            summary.append(f"  {generator:9} {size:>8,}  P {out['precision']:.4f}  R {out['recall']:.4f}  "
                           f"F1 {out['f1']:.4f}  misses {out['misses']:,}  false {out['false_pairs']:,}")
            sys.stdout.flush()
    print("\nsummary (pairwise over clusters, threshold", args.threshold, ")")
    print("\n".join(summary))
    print(f"\nrerun: {command}")
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=1, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
