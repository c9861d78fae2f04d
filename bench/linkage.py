"""名寄せ of evacuee registrations (issue #5): accuracy, speed and memory of our pipeline
(Japanese normalisation + the shipped Splink model, ``kiban.modules.disaster.linkage``) side by
side with a baseline (Splink with the same blocking rules and plain string comparisons on the
raw fields, trained the same way), on synthetic registrations with ground truth.

For each size, ``size + queries`` registrations are generated (``synthetic.py``, seed per size)
and ``queries`` of them, drawn at random, are held out as new registrations for the online
matcher. Each pipeline runs in its own child process, so its peak RSS is its own (the child
also holds the raw data, as an Arrow table). Wall time is linking only — from records to pairs
and clusters in Python — not generating the data or training; the baseline is trained once per
run (the shipped model needs no training). F1 is pairwise over clusters: two registrations are
linked when they share a cluster at the threshold.

Targets (2-core, 24 GB machine): F1 ≥ 0.98 at 100k and 1M and above the baseline at every
size; 1M within 2× the baseline's wall time and peak memory under 6 GB; online p95 < 200 ms
against 1M.

    .venv/bin/python bench/linkage.py [--sizes 10000,100000,1000000] [--quick] [--queries 1000]

Engines (issue #11): ``--engine duckdb,spark --records 100000,1000000`` runs the shipped model's
batch on each engine instead (DuckDB with ``--threads``, Spark in local mode on ``--spark-master``
with ``--spark-memory`` for its driver), each engine in its own child process: F1 against the
synthetic truth, wall time (records to pairs and clusters in Python; the Spark session's start
is shown apart), peak RSS of the Python process and, for Spark, of its JVM, and the clusters of
the engines compared record by record (F1 must agree within 0.001).

    .venv/bin/python bench/linkage.py --engine duckdb,spark --records 100000,1000000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from kiban.modules.disaster import linkage
from kiban.modules.disaster.synthetic import iter_registrations

RAW_FIELDS = ("record_id", "family_name", "given_name", "family_kana", "given_kana", "birth_date", "sex",
              "home_lg_code", "home_address", "phone", "registered_by")
TRAINING_SIZE, TRAINING_SEED = 100_000, 20240101  # as for the shipped model
THRESHOLD = linkage.DEFAULT_THRESHOLD

# ----------------------------------------------------------------------------- data


def dataset(size: int, queries: int, seed: int):
    """(raw Arrow table of the existing registrations, their person ids, held-out queries)."""
    import pyarrow as pa

    total = size + queries
    held = set(random.Random(seed).sample(range(total), queries))
    schema = pa.schema([(f, pa.string()) for f in RAW_FIELDS])
    batches, buffer, persons, query_records = [], [], [], []

    def flush():
        batches.append(pa.record_batch([pa.array([r[f] for r in buffer], pa.string()) for f in RAW_FIELDS],
                                       schema=schema))
        buffer.clear()

    for i, record in enumerate(iter_registrations(total, seed=seed)):
        record = dict(record)
        if record["birth_date"] is not None and not isinstance(record["birth_date"], str):
            record["birth_date"] = record["birth_date"].isoformat()
        if i in held:
            query_records.append(record)
            continue
        persons.append(record["person_id"])
        buffer.append(record)
        if len(buffer) >= 50_000:
            flush()
    if buffer:
        flush()
    return pa.Table.from_batches(batches, schema=schema), persons, query_records


def records_of(table):
    for batch in table.to_batches():
        yield from batch.to_pylist()


# ----------------------------------------------------------------------------- baseline


BASELINE_BLOCKING = (
    ("family_kana", "given_kana"), ("family_name", "given_name"), ("birth_date", "family_name"),
    ("birth_date", "given_name"), ("birth_date", "given_kana"), ("birth_date", "phone"),
    ("given_name", "phone"), ("family_name", "phone"), ("birth_date", "home_address"),
)  # ours, column for column, on the raw fields


def baseline_settings():
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    return SettingsCreator(
        link_type="dedupe_only", unique_id_column_name="record_id",
        comparisons=[
            cl.JaroWinklerAtThresholds("family_name", [0.9]),
            cl.JaroWinklerAtThresholds("given_name", [0.9]),
            cl.JaroWinklerAtThresholds("family_kana", [0.9]),
            cl.JaroWinklerAtThresholds("given_kana", [0.9]),
            cl.LevenshteinAtThresholds("birth_date", [1]),
            cl.ExactMatch("sex"),
            cl.JaroWinklerAtThresholds("home_address", [0.9]),
            cl.LevenshteinAtThresholds("phone", [1]),
        ],
        blocking_rules_to_generate_predictions=[block_on(*rule) for rule in BASELINE_BLOCKING],
        retain_matching_columns=False, max_iterations=30,
    )


def baseline_table(raw):
    """The raw fields, with empty strings as NULL (no other cleaning)."""
    import duckdb

    con = duckdb.connect()
    con.register("raw", raw)
    cols = ", ".join(f"NULLIF(TRIM({f}), '') AS {f}" for f in RAW_FIELDS)
    table = con.sql(f"SELECT {cols} FROM raw").to_arrow_table()
    con.close()
    return table


def train_baseline(path: Path) -> float:
    raw, _, _ = dataset(TRAINING_SIZE, 0, TRAINING_SEED)
    started = time.perf_counter()
    trained = linkage.train_splink(
        baseline_table(raw), baseline_settings(), seed=TRAINING_SEED,
        deterministic_rules=[("family_name", "given_name", "birth_date"), ("family_kana", "given_kana", "birth_date")],
        em_rules=[("birth_date", "home_lg_code"), ("given_name",)])
    path.write_text(json.dumps(trained, ensure_ascii=False), encoding="utf-8")
    return time.perf_counter() - started


# ----------------------------------------------------------------------------- metrics


def pairwise_f1(clusters: dict[str, str], persons: dict[str, str]) -> tuple[float, float, float]:
    """Precision, recall, F1 over pairs of registrations (same predicted cluster vs same person)."""
    both, predicted, true = Counter(), Counter(), Counter()
    for record_id, person in persons.items():
        cluster = clusters.get(record_id, record_id)
        both[(cluster, person)] += 1
        predicted[cluster] += 1
        true[person] += 1

    def pairs(counter):
        return sum(n * (n - 1) // 2 for n in counter.values())

    tp, pp, tt = pairs(both), pairs(predicted), pairs(true)
    precision = tp / pp if pp else 1.0
    recall = tp / tt if tt else 1.0
    return precision, recall, (2 * precision * recall / (precision + recall) if precision + recall else 0.0)


def components(pairs, threshold: float) -> dict[str, str]:
    parent: dict[str, str] = {}

    def find(x):
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while x != root:
            parent[x], x = root, parent.get(x, x)
        return root

    for a, b, p in pairs:
        if p >= threshold:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in list(parent)}


def peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM: unlike getrusage's ru_maxrss it restarts
    at exec, so a child does not inherit its parent's peak)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


# ----------------------------------------------------------------------------- children


def _jvm_children() -> list[int]:
    """Process ids of the JVMs this process started (pyspark's gateway)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                is_java = b"java" in cmdline.read().split(b"\0", 1)[0]
        except (OSError, ValueError, IndexError):
            continue
        if parent == os.getpid() and is_java:
            found.append(int(pid))
    return found


def _status_mb(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def engine_child(job: dict) -> dict:
    """One engine's batch over one synthetic dataset; clusters and pairs written for the parent."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    raw, persons, _ = dataset(job["size"], 0, job["seed"])
    person_of = dict(zip(raw.column("record_id").to_pylist(), persons, strict=True))
    out: dict = {"kind": job["engine"], "size": job["size"]}
    spark = None
    if job["engine"] == "spark":
        from kiban.modules.disaster.linkage.spark import spark_session

        started = time.perf_counter()
        spark = spark_session(job["spark_master"], driver_memory=job["spark_memory"],
                              shuffle_partitions=job["spark_partitions"])
        out["session_seconds"] = time.perf_counter() - started
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    jvm_cpu_before = sum(_cpu_seconds(p) for p in _jvm_children())
    started = time.perf_counter()
    result = linkage.link_batch(raw, threshold=THRESHOLD, min_pair_probability=0.5, engine=job["engine"],
                                threads=job["threads"], spark=spark)
    out["seconds"] = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    out["python_cpu_seconds"] = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    out["peak_rss_mb"] = peak_rss_mb()
    jvms = _jvm_children()
    out["jvm_peak_rss_mb"] = sum(_status_mb(p, "VmHWM") for p in jvms) if jvms else None
    out["jvm_cpu_seconds"] = sum(_cpu_seconds(p) for p in jvms) - jvm_cpu_before if jvms else None
    out["pairs"] = len(result.pairs)
    out["precision"], out["recall"], out["f1"] = pairwise_f1(result.clusters, person_of)
    ids = list(result.clusters)
    pq.write_table(pa.table({"record_id": ids, "cluster_id": [result.clusters[i] for i in ids]}),
                   f"{job['out']}.clusters.parquet")
    pq.write_table(pa.table({"l": [p[0] for p in result.pairs], "r": [p[1] for p in result.pairs],
                             "p": [p[2] for p in result.pairs]}), f"{job['out']}.pairs.parquet")
    if spark is not None:
        spark.stop()
    return out


def child(job: dict) -> dict:
    if job["kind"] == "train_baseline":
        return {"seconds": train_baseline(Path(job["baseline_model"]))}
    if job["kind"] == "engine":
        return engine_child(job)
    size, queries, seed = job["size"], job["queries"], job["seed"]
    raw, persons, query_records = dataset(size, queries, seed)
    ids = raw.column("record_id").to_pylist()
    person_of = dict(zip(ids, persons, strict=True))
    out: dict = {"kind": job["kind"], "size": size}

    if job["kind"] in ("ours", "baseline"):
        started = time.perf_counter()
        if job["kind"] == "ours":
            result = linkage.link_batch(raw, threshold=THRESHOLD, min_pair_probability=0.5, threads=job["threads"])
        else:
            settings = json.loads(Path(job["baseline_model"]).read_text(encoding="utf-8"))
            result = linkage.run_splink(baseline_table(raw), settings, threshold=THRESHOLD,
                                        min_pair_probability=0.5, threads=job["threads"])
        out["seconds"] = time.perf_counter() - started
        out["peak_rss_mb"] = peak_rss_mb()
        out["pairs"] = len(result.pairs)
        out["precision"], out["recall"], out["f1"] = pairwise_f1(result.clusters, person_of)
        best = max((pairwise_f1(components(result.pairs, t), person_of)[2], t)
                   for t in (0.5, 0.8, 0.9, 0.95, 0.99, 0.999))
        out["best_f1"], out["best_threshold"] = best
        return out

    # online: build the matcher on the existing registrations, then time the held-out ones
    started = time.perf_counter()
    matcher = linkage.Matcher(records_of(raw))
    out["build_seconds"] = time.perf_counter() - started
    out["matcher_rss_mb"] = peak_rss_mb()
    by_person: dict[str, list[str]] = {}
    for record_id, person in person_of.items():
        by_person.setdefault(person, []).append(record_id)
    times, top_right, with_match, no_match_clean = [], 0, 0, 0
    for record in query_records:
        started = time.perf_counter()
        found = matcher.candidates(record, limit=10)
        times.append((time.perf_counter() - started) * 1000)
        truth = set(by_person.get(record["person_id"], ()))
        confident = [c for c in found if c.probability >= THRESHOLD]
        if truth:
            with_match += 1
            top_right += bool(confident) and confident[0].record_id in truth
        else:
            no_match_clean += not confident
    times.sort()
    out.update(p50_ms=statistics.median(times), p95_ms=times[int(0.95 * (len(times) - 1))], max_ms=times[-1],
               queries=len(times), with_match=with_match, top1=top_right,
               without_match=len(times) - with_match, without_match_clean=no_match_clean,
               peak_rss_mb=peak_rss_mb())
    return out


def run_child(job: dict) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], capture_output=True, text=True,
                          check=False)
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"child failed: {job}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--quick", action="store_true", help="10k only")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads")
    parser.add_argument("--online-sizes", default="100000,1000000",
                        help="sizes (among --sizes) to time the online matcher against")
    parser.add_argument("--engine", help="compare engines instead: duckdb, spark or duckdb,spark")
    parser.add_argument("--records", default="100000", help="with --engine: sizes, e.g. 100000,1000000")
    parser.add_argument("--spark-master", default="local[2]")
    parser.add_argument("--spark-memory", default="6g", help="the Spark driver's memory (local mode: all of Spark's)")
    parser.add_argument("--spark-partitions", type=int, default=8, help="spark.sql.shuffle.partitions")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    if args.engine:
        compare_engines(args)
        return

    sizes = [10_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    online = [s for s in sizes if s in {int(x) for x in args.online_sizes.split(",")}] or sizes[-1:]
    print(f"threshold {THRESHOLD}; DuckDB threads {args.threads}; model {linkage.MODEL_PATH.name}")
    with tempfile.TemporaryDirectory() as tmp:
        baseline_model = Path(tmp) / "baseline.json"
        seconds = run_child({"kind": "train_baseline", "baseline_model": str(baseline_model)})["seconds"]
        print(f"baseline trained on {TRAINING_SIZE:,} synthetic registrations in {seconds:.0f} s "
              f"(ours is shipped, trained the same way)\n")
        header = (f"{'size':>9} {'pipeline':<9} {'precision':>9} {'recall':>7} {'F1':>7} {'best F1 (thr)':>14} "
                  f"{'pairs':>9} {'wall s':>7} {'peak RSS':>9}")
        print(header)
        verdicts = []
        for size in sizes:
            job = {"size": size, "queries": args.queries, "seed": 1000 + size % 997, "threads": args.threads,
                   "baseline_model": str(baseline_model)}
            ours = run_child({**job, "kind": "ours"})
            base = run_child({**job, "kind": "baseline"})
            for r in (ours, base):
                print(f"{size:>9,} {r['kind']:<9} {r['precision']:>9.4f} {r['recall']:>7.4f} {r['f1']:>7.4f} "
                      f"{r['best_f1']:>8.4f} ({r['best_threshold']:<5}) {r['pairs']:>9,} {r['seconds']:>7.1f} "
                      f"{r['peak_rss_mb']:>6,.0f} MB")
            ratio = ours["seconds"] / base["seconds"]
            print(f"{'':>9} ours/baseline wall time: {ratio:.2f}×", flush=True)
            verdicts.append((size, ours, base, ratio))

        print("\nonline matcher (Matcher.candidates, limit 10): held-out registrations against the rest")
        online_rows = []
        for size in online:
            job = {"size": size, "queries": args.queries, "seed": 1000 + size % 997, "kind": "online"}
            r = run_child(job)
            online_rows.append(r)
            print(f"{size:>9,} existing: build {r['build_seconds']:.0f} s, {r['matcher_rss_mb']:,.0f} MB RSS; "
                  f"{r['queries']} queries p50 {r['p50_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms, max {r['max_ms']:.0f} ms; "
                  f"true match ranked first (p ≥ {THRESHOLD}) {r['top1']}/{r['with_match']}, "
                  f"no candidate ≥ {THRESHOLD} for new people {r['without_match_clean']}/{r['without_match']}", flush=True)

    print("\ntargets:")
    for size, ours, base, ratio in verdicts:
        checks = [f"F1 {ours['f1']:.4f} > baseline {base['f1']:.4f}: {'yes' if ours['f1'] > base['f1'] else 'NO'}"]
        if size >= 100_000:
            checks.append(f"F1 ≥ 0.98: {'yes' if ours['f1'] >= 0.98 else 'NO'}")
        if size >= 1_000_000:
            checks.append(f"wall ≤ 2× baseline ({ratio:.2f}×): {'yes' if ratio <= 2 else 'NO'}")
            checks.append(f"peak < 6 GB ({ours['peak_rss_mb'] / 1024:.2f} GB): {'yes' if ours['peak_rss_mb'] < 6144 else 'NO'}")
        print(f"  {size:>9,}: " + "; ".join(checks))
    for r in online_rows:
        if r["size"] >= 1_000_000:
            print(f"  online p95 < 200 ms against {r['size']:,}: {'yes' if r['p95_ms'] < 200 else 'NO'} ({r['p95_ms']:.1f} ms)")
    flags = " --quick" if args.quick else f" --sizes {','.join(str(s) for s in sizes)}"
    print(f"\nrerun: .venv/bin/python bench/linkage.py{flags} --queries {args.queries} --threads {args.threads}"
          + ("" if args.quick else f" --online-sizes {','.join(str(s) for s in online)}"))


def _partition(path: str) -> dict[str, frozenset[str]]:
    """record_id → the set of record_ids in its cluster."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    members: dict[str, set[str]] = {}
    for record, cluster in zip(table.column("record_id").to_pylist(), table.column("cluster_id").to_pylist(),
                               strict=True):
        members.setdefault(cluster, set()).add(record)
    return {record: frozenset(group) for group in members.values() for record in group}


def _pairs(path: str) -> dict[tuple[str, str], float]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return dict(zip(zip(table.column("l").to_pylist(), table.column("r").to_pylist(), strict=True),
                    table.column("p").to_pylist(), strict=True))


def compare_engines(args) -> None:
    engines = [e.strip() for e in args.engine.split(",")]
    sizes = [int(s) for s in args.records.split(",")]
    print(f"threshold {THRESHOLD}; model {linkage.MODEL_PATH.name}; DuckDB threads {args.threads}; "
          f"Spark {args.spark_master}, driver memory {args.spark_memory}, {args.spark_partitions} shuffle partitions")
    print(f"{'records':>9} {'engine':<7} {'precision':>9} {'recall':>7} {'F1':>7} {'pairs':>9} {'wall s':>7} "
          f"{'session s':>9} {'py CPU s':>8} {'JVM CPU s':>9} {'py peak':>9} {'JVM peak':>9}")
    verdicts = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            results = {}
            for engine in engines:
                job = {"kind": "engine", "engine": engine, "size": size, "seed": 1000 + size % 997,
                       "threads": args.threads, "spark_master": args.spark_master, "spark_memory": args.spark_memory,
                       "spark_partitions": args.spark_partitions, "out": f"{tmp}/{engine}-{size}"}
                r = results[engine] = run_child(job)

                def mb(value):
                    return "-" if value is None else f"{value:,.0f} MB"

                def sec(value):
                    return "-" if value is None else f"{value:.1f}"

                print(f"{size:>9,} {engine:<7} {r['precision']:>9.4f} {r['recall']:>7.4f} {r['f1']:>7.4f} "
                      f"{r['pairs']:>9,} {r['seconds']:>7.1f} {sec(r.get('session_seconds')):>9} "
                      f"{r['python_cpu_seconds']:>8.1f} {sec(r['jvm_cpu_seconds']):>9} {mb(r['peak_rss_mb']):>9} "
                      f"{mb(r['jvm_peak_rss_mb']):>9}", flush=True)
            if len(engines) == 2:
                a, b = engines
                verdicts.append((size, results[a]["f1"], results[b]["f1"]))
                _report_differences(size, f"{tmp}/{a}-{size}", f"{tmp}/{b}-{size}", a, b)
    for size, f1_a, f1_b in verdicts:
        diff = abs(f1_a - f1_b)
        print(f"  {size:>9,}: F1 {engines[0]} {f1_a:.4f} vs {engines[1]} {f1_b:.4f}, |Δ| {diff:.5f} ≤ 0.001: "
              f"{'yes' if diff <= 0.001 else 'NO'}")
    print(f"\nrerun: .venv/bin/python bench/linkage.py --engine {args.engine} --records {args.records} "
          f"--threads {args.threads} --spark-master '{args.spark_master}' --spark-memory {args.spark_memory} "
          f"--spark-partitions {args.spark_partitions}")


def _report_differences(size: int, left: str, right: str, a: str, b: str) -> None:
    clusters_a, clusters_b = _partition(f"{left}.clusters.parquet"), _partition(f"{right}.clusters.parquet")
    moved = sorted(r for r in clusters_a.keys() | clusters_b.keys() if clusters_a.get(r) != clusters_b.get(r))
    pairs_a, pairs_b = _pairs(f"{left}.pairs.parquet"), _pairs(f"{right}.pairs.parquet")
    common = pairs_a.keys() & pairs_b.keys()
    delta = max((abs(pairs_a[k] - pairs_b[k]) for k in common), default=0.0)
    only = sorted((pairs_a.keys() | pairs_b.keys()) - common)
    print(f"{'':>9} {a} vs {b}: {len(moved)} of {len(clusters_a):,} records in a different cluster; "
          f"pairs ≥ 0.5 only on one side: {len(only)}; largest probability difference {delta:.2e}", flush=True)
    for key in only[:10]:
        print(f"{'':>11} {key}: {a} {pairs_a.get(key)}, {b} {pairs_b.get(key)}")
    for record in moved[:10]:
        print(f"{'':>11} {record}: {a} {sorted(clusters_a.get(record, ()))}, {b} {sorted(clusters_b.get(record, ()))}")


if __name__ == "__main__":
    main()
