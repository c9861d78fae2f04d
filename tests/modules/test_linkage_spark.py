"""The batch 名寄せ on Spark (local mode) gives DuckDB's pairs and clusters (issue #11).

Runs once per CI run: it touches no database, so the PostgreSQL pass skips it. Needs Java (Debian's
openjdk-17-jre-headless); where ``CI`` or ``KIBAN_REQUIRE_JAVA`` is set, a missing Java fails.
"""

from __future__ import annotations

import os
import random
import shutil
from collections import Counter

import pyarrow as pa
import pytest

from kiban.modules.disaster import linkage
from kiban.modules.disaster.linkage import spark as on_spark
from kiban.modules.disaster.synthetic import generate

pytestmark = pytest.mark.skipif(
    os.environ.get("KIBAN_TEST_DATABASE") == "postgresql",
    reason="runs once, in the SQLite pass: the Spark batch touches no database, so the PostgreSQL pass "
           "would only repeat it")

JAVA_REQUIRED = bool(os.environ.get("CI") or os.environ.get("KIBAN_REQUIRE_JAVA"))


@pytest.fixture(scope="module")
def spark():
    if shutil.which("java") is None:
        if JAVA_REQUIRED:
            pytest.fail("Java is required here for the Spark 名寄せ test (apt-get install openjdk-17-jre-headless)")
        pytest.skip("no java on PATH (apt-get install openjdk-17-jre-headless)")
    # tuned for a small batch on a busy 2-core machine (half the CPU of the defaults): C1 JIT only,
    # no whole-stage code generation or adaptive replanning, one shuffle partition
    session = on_spark.spark_session("local[2]", shuffle_partitions=1, conf={
        "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        "spark.sql.codegen.wholeStage": "false", "spark.sql.adaptive.enabled": "false"})
    yield session
    session.stop()


def registration(record_id: str, **fields) -> dict:
    base = {"record_id": record_id, "family_name": "佐藤", "given_name": "健太", "family_kana": "さとう",
            "given_kana": "けんた", "birth_date": "1980-05-12", "sex": "male", "home_lg_code": "172049",
            "home_address": "石川県輪島市河井町1丁目2番3号", "phone": "0768-22-1234"}
    return base | fields


# pairs that reach the levels synthetic data rarely does: kana-only given names (against kanji
# with no reading), names outside the BMP, readings just around the Jaro–Winkler threshold, swapped
# and mistyped dates, block numbers missing or mistyped, one digit of a phone
EDGES = [
    registration("e01"), registration("e02", given_name="けんた", given_kana=""),
    registration("e03", family_name="𠮷田", family_kana="", given_name="𠮷男", given_kana=""),
    registration("e04", family_name="吉田", family_kana="", given_name="𠮷男", given_kana="よしお"),
    registration("e05", given_kana="けんだ", birth_date="1980-12-05"),
    registration("e06", given_kana="けいた", birth_date="1980-05-21", home_address="輪島市河井町1丁目"),
    registration("e07", given_name="健太郎", given_kana="けんたろう", birth_date="1980-05-13",
                 home_address="輪島市河井町1-2-4", phone="0768-22-1235"),
    registration("e08", family_name="佐籐", family_kana="さとお", home_address="輪島市河合町1-2-3"),
    registration("e09", family_name="加藤", family_kana="かとう", phone="", home_address=""),
    registration("e10", given_name="", given_kana="", sex="", birth_date=""),
    registration("e11", given_name="龘太", given_kana=""),  # a spelling no name list knows, no reading
]


def _partition(clusters: dict[str, str]) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for record, cluster in clusters.items():
        groups.setdefault(cluster, set()).add(record)
    return {frozenset(g) for g in groups.values()}


def test_a_batch_on_spark_gives_duckdbs_pairs_and_clusters(spark) -> None:
    records = [*generate(2500, seed=11), *EDGES]
    # min_pair_probability 0: every blocked pair comes back with its probability
    duck = linkage.link_batch(records, min_pair_probability=0.0, engine="duckdb")
    on = linkage.link_batch(records, min_pair_probability=0.0, engine="spark", spark=spark)
    duck_pairs = {(a, b): p for a, b, p in duck.pairs}
    spark_pairs = {(a, b): p for a, b, p in on.pairs}
    assert spark_pairs.keys() == duck_pairs.keys()
    assert max(abs(p - duck_pairs[k]) for k, p in spark_pairs.items()) < 1e-9
    assert on.clusters == duck.clusters  # the same partition, with the same representative ids
    assert _partition(on.clusters) == _partition(duck.clusters)
    assert len(duck.pairs) > 2_000 and len(_partition(duck.clusters)) < len(records) - 500

    # the pairs went through every level whose SQL Spark evaluates with our functions or a
    # translated built-in, so the equality above covers them
    model = linkage.load_model()
    rows = {r[linkage.RID]: r for r in map(linkage._normalise, records)}
    reached: Counter = Counter()
    for a, b in duck_pairs:
        _, levels = linkage.model._score(rows[a], rows[b], model.weights, model.prior_weight)
        for comparison, level in zip(linkage.COMPARISONS, levels, strict=True):
            reached[comparison.name, comparison.levels[level].key] += 1
    translated = [(c.name, lv.key) for c in linkage.COMPARISONS for lv in c.levels
                  if on_spark.spark_sql_condition(lv.sql) != lv.sql]
    assert translated and [key for key in translated if not reached[key]] == []


def test_the_spark_functions_are_the_python_twins(spark) -> None:
    rng = random.Random(5)
    rows = [linkage._normalise(r) for r in generate(300, seed=3)]
    columns = (linkage.FAM_R, linkage.GIV_R, linkage.FAM_RL, linkage.GIV_RL, linkage.DOB, linkage.PHONE,
               linkage.ADDR_NUM)
    pairs = [("".join(rng.choice("abc") for _ in range(rng.randint(1, 8))),
              "".join(rng.choice("abc") for _ in range(rng.randint(1, 8)))) for _ in range(1500)]
    for _ in range(800):
        x, y = rng.choice(rows), rng.choice(rows)
        pairs += [(x[i], y[i]) for i in columns if x[i] is not None and y[i] is not None]
    pairs += [("a" * 64, "a" * 63 + "b"), ("ab", "ba"), ("a", "b"), ("a", "a"), ("", "a"), ("", ""),
              (linkage._ascii("さとう"), linkage._ascii("さうと")), ("19800512", "19801205"), ("19800512", "19805012")]
    spark.createDataFrame(pa.table({"a": [a for a, _ in pairs], "b": [b for _, b in pairs]})).createOrReplaceTempView("t")
    got = spark.sql("SELECT a, b, kiban_jaro_winkler(a, b) AS jw, kiban_within_one_edit_or_swap(a, b) AS dl, "
                    "levenshtein(a, b) AS lev FROM t").toArrow().to_pylist()
    assert len(got) == len(pairs)
    wrong = [g for g in got if abs(linkage.jaro_winkler(g["a"], g["b"]) - g["jw"]) > 1e-12
             or g["dl"] != linkage.within_one_edit_or_swap(g["a"], g["b"]) or g["lev"] != linkage.levenshtein(g["a"], g["b"])]
    assert wrong == []
    nulls = spark.sql("SELECT kiban_jaro_winkler(NULL, 'a'), kiban_within_one_edit_or_swap('a', NULL), "
                      "kiban_regexp_full_match('ゆうこ', '[ぁ-ゖ]+'), kiban_regexp_full_match('ゆう子', '[ぁ-ゖ]+'), "
                      "kiban_regexp_full_match(concat('ゆう', char(10)), '[ぁ-ゖ]+'), "
                      "length('𠮷田'), left('𠮷田', 1) = '𠮷'").collect()[0]
    assert list(nulls) == [None, None, True, False, False, 2, True]


def test_a_level_spark_cannot_evaluate_exactly_is_refused() -> None:
    assert on_spark.spark_sql_condition("damerau_levenshtein(dob_l, dob_r) <= 1") == \
        "kiban_within_one_edit_or_swap(dob_l, dob_r)"
    assert on_spark.spark_sql_condition("starts_with(a_l, a_r)") == "startswith(a_l, a_r)"
    for sql in ("damerau_levenshtein(dob_l, dob_r) <= 2", "soundex(fam_l) = soundex(fam_r)",
                "jaccard(addr_l, addr_r) > 0.5", "strlen(fam_k_l) = 2"):
        with pytest.raises(ValueError, match="no exact Spark equivalent"):
            on_spark.spark_sql_condition(sql)
    translated = on_spark.spark_settings(linkage.load_model().settings)
    assert translated["sql_dialect"] == "spark"
    assert all("`" in r["blocking_rule"] and '"' not in r["blocking_rule"]
               for r in translated["blocking_rules_to_generate_predictions"])
