"""The batch 名寄せ on Spark: the same Splink model, predicted and clustered by Spark SQL.

The comparison levels are written in DuckDB's SQL (``compare.py``). ``spark_settings`` turns a
trained model into Spark's dialect: the standard functions map one to one (``starts_with`` →
``startswith``; ``levenshtein``, ``length``, ``left``, ``right``, ``substr`` are the same), and the
three DuckDB functions Spark lacks are SQL functions defined here (``SPARK_FUNCTIONS``), registered
in the session before Splink runs:

* ``kiban_jaro_winkler``: the algorithm of ``compare.jaro_winkler`` (DuckDB's, from rapidfuzz),
  written with Spark's higher-order functions; Splink's own Spark jar computes a different
  Jaro–Winkler (Apache Commons Text), which would move pairs across ``JW_CLOSE``;
* ``kiban_within_one_edit_or_swap`` for ``damerau_levenshtein(a, b) <= 1`` (the only use the
  levels make of it; any other is refused);
* ``kiban_regexp_full_match`` for ``regexp_full_match`` (``RLIKE`` anchored with ``\\z``).

They are SQL, not Python or Scala UDFs: no jar to ship to a cluster, nothing evaluated outside the
JVM, and CASE WHEN stays lazy (a Python UDF would be computed for every pair). Exactness rests on
the invariant the DuckDB twins rely on: every value compared by a distance is ASCII (``normalise``),
so characters, bytes and code units are one thing, and Jaro–Winkler is compared with ``JW_CLOSE``,
which sits in a gap no similarity of readings up to ``JW_MAX_LEN`` falls into. Names compared with
``length``/``left``/``right`` may be any Unicode: DuckDB, Spark and Python all count code points.

A level whose SQL calls a function not listed in ``_SPARK_BUILTINS`` or ``SPARK_FUNCTIONS`` is
refused (``spark_settings`` raises) rather than run with a guessed meaning.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import tempfile
import threading
import uuid
from typing import Any

def _let(name: str, value: str, body: str) -> str:
    """``body`` with ``name`` bound to ``value`` (evaluated once). Spark SQL has no LET, and a SQL
    function may not call another SQL function inside a lambda, so one function binds with these."""
    return f"transform(array({value}), {name} -> {body})[0]"


# Marks a matched character of p; never in a compared value, which is ASCII.
_TAKEN = "'\uffff'"
# compare._jaro's greedy matching: for each character j of t, the first unmatched equal character
# of p within the window [j - bound, j + bound]. The accumulator holds q, p with its matched
# characters replaced by _TAKEN (so ``locate`` from the window's start finds the first unmatched
# one), and tm, the matched characters of t in t's order.
_JARO_MATCH = (
    "aggregate(sequence(0, length(t) - 1), named_struct('q', p, 'tm', ''), (acc, j) -> "
    + _let("f", "locate(substr(t, j + 1, 1), acc.q, greatest(0, j - bound) + 1)",
           f"IF(f > 0 AND f <= j + bound + 1, named_struct('q', overlay(acc.q PLACING {_TAKEN} FROM f FOR 1), "
           "'tm', concat(acc.tm, substr(t, j + 1, 1))), acc)")
    + ")")
# the matched characters of p in p's order
_MATCHED_P = (f"array_join(transform(sequence(1, length(p)), "
              f"i -> IF(substr(m.q, i, 1) = {_TAKEN}, substr(p, i, 1), NULL)), '')")
_JARO_SCORE = (
    "IF(c = 0, CAST(0 AS DOUBLE), ((c / length(a) + c / length(b)) "
    "+ (c - size(filter(sequence(1, c), k -> substr(m.tm, k, 1) <> substr(pm, k, 1))) div 2) / c) "
    "/ CAST(3 AS DOUBLE))")
# compare._jaro on a and b: the longer string cut to the shorter's length + window (the window from
# the longer one), lengths in the formula the original ones
_JARO = (
    "CASE WHEN length(a) = 0 OR length(b) = 0 THEN CAST(0 AS DOUBLE) "
    "WHEN length(a) = 1 AND length(b) = 1 THEN IF(a = b, CAST(1 AS DOUBLE), CAST(0 AS DOUBLE)) "
    "ELSE " + _let(
        "bound", "IF(length(b) > length(a), length(b) div 2 - 1, length(a) div 2 - 1)", _let(
            "p", "IF(length(b) > length(a), a, left(a, length(b) + bound))", _let(
                "t", "IF(length(b) > length(a), left(b, length(a) + bound), b)", _let(
                    "m", _JARO_MATCH, _let(
                        "pm", _MATCHED_P, _let(
                            "c", "length(m.tm)", _JARO_SCORE)))))) + " END")
_PREFIX = "size(filter(sequence(1, least(length(a), length(b), 4)), k -> k >= 1 AND substr(a, 1, k) = substr(b, 1, k)))"

#: SQL functions created in the Spark session (``CREATE OR REPLACE TEMPORARY FUNCTION``).
SPARK_FUNCTIONS: tuple[tuple[str, str], ...] = (
    # compare.jaro_winkler: prefix weight 0.1, common prefix up to 4, only above 0.7
    ("kiban_jaro_winkler", "(a STRING, b STRING) RETURNS DOUBLE RETURN CASE WHEN a IS NULL OR b IS NULL THEN NULL ELSE "
     + _let("sim", _JARO, _let("prefix", _PREFIX,
                               "IF(sim > 0.7 AND prefix > 0, sim + prefix * CAST(0.1 AS DOUBLE) * (1 - sim), sim)"))
     + " END"),
    # compare.within_one_edit_or_swap, i.e. damerau_levenshtein(a, b) <= 1
    ("kiban_within_one_edit_or_swap", """(a STRING, b STRING)
RETURNS BOOLEAN
RETURN CASE WHEN a IS NULL OR b IS NULL THEN NULL
  WHEN a = b OR levenshtein(a, b) <= 1 THEN true
  WHEN length(a) <> length(b) OR length(a) < 2 THEN false
  ELSE exists(sequence(0, length(a) - 2),
              i -> concat(substr(a, 1, i), substr(a, i + 2, 1), substr(a, i + 1, 1), substr(a, i + 3)) = b)
END"""),
    ("kiban_regexp_full_match", r"""(s STRING, pattern STRING)
RETURNS BOOLEAN
RETURN s RLIKE concat('^(?:', pattern, ')\\z')"""),
)

# DuckDB → Spark, in the level SQL of a model
_RENAMES = (
    (re.compile(r"\bjaro_winkler_similarity\s*\("), "kiban_jaro_winkler("),
    (re.compile(r"\bregexp_full_match\s*\("), "kiban_regexp_full_match("),
    (re.compile(r"\bstarts_with\s*\("), "startswith("),
)
_DAMERAU_WITHIN_ONE = re.compile(r"\bdamerau_levenshtein\s*\(\s*(\w+)\s*,\s*(\w+)\s*\)\s*<=\s*1\b")
# Spark built-ins the translated SQL may use (sqlglot's names), each with DuckDB's meaning on our
# values: lengths and cuts in code points, levenshtein on ASCII, byte-wise equality, prefixes and
# substrings (``contains``: a UTF-8 byte substring is a code-point substring)
_SPARK_BUILTINS = frozenset({"And", "Or", "Not", "Xor", "Levenshtein", "Length", "Left", "Right", "Substring",
                             "StartsWith", "Contains", "Concat", "DPipe", "Coalesce"})


def spark_sql_condition(sql: str) -> str:
    """One level's SQL condition (DuckDB) in Spark's dialect; ValueError for a function we have
    no exact Spark equivalent of."""
    if sql == "ELSE":
        return sql
    out = _DAMERAU_WITHIN_ONE.sub(r"kiban_within_one_edit_or_swap(\1, \2)", sql)
    for pattern, name in _RENAMES:
        out = pattern.sub(name, out)
    _check_functions(out)
    return out


def _check_functions(sql: str) -> None:
    import sqlglot
    from sqlglot import exp

    ours = {name for name, _ in SPARK_FUNCTIONS}
    for node in sqlglot.parse_one(sql, read="spark").find_all(exp.Func):
        if isinstance(node, exp.Anonymous):
            if node.name.lower() in ours:
                continue
            name = node.name
        elif type(node).__name__ in _SPARK_BUILTINS:
            continue
        else:
            name = node.sql_name().lower()
        raise ValueError(f"the linkage level SQL uses {name}(), which has no exact Spark equivalent "
                         f"in linkage/spark.py: {sql}")


def spark_settings(settings_dict: dict) -> dict:
    """A trained model (DuckDB dialect, as saved) in Spark's dialect: same parameters."""
    out = copy.deepcopy(settings_dict)
    out["sql_dialect"] = "spark"
    for comparison in out["comparisons"]:
        for level in comparison["comparison_levels"]:
            level["sql_condition"] = spark_sql_condition(level["sql_condition"])
    rules = []
    for rule in out["blocking_rules_to_generate_predictions"]:
        sql = rule["blocking_rule"] if isinstance(rule, dict) else rule
        # l."col" = r."col" AND ...: quoted for DuckDB; Spark quotes with backticks
        rules.append({"blocking_rule": sql.replace('"', "`"), "sql_dialect": "spark"})
    out["blocking_rules_to_generate_predictions"] = rules
    return out


def register_functions(spark) -> None:
    """Create (or replace) our SQL functions in the session."""
    for name, body in SPARK_FUNCTIONS:
        spark.sql(f"CREATE OR REPLACE TEMPORARY FUNCTION {name}{body}")


def spark_session(master: str | None = None, *, driver_memory: str | None = None,
                  shuffle_partitions: int | None = None, conf: dict[str, str] | None = None):
    """The active Spark session, or a new one, with our SQL functions registered.

    The master is ``master``, else the one ``spark-submit`` was given (when this runs under it),
    else the setting ``KIBAN_LINKAGE_SPARK_MASTER``. ``driver_memory`` and ``conf`` only apply when
    this call starts the JVM (in local mode the driver is also the executor, so its memory is all of
    Spark's); under spark-submit, give them to spark-submit.
    """
    from pyspark.sql import SparkSession

    from kiban.kit.settings import get_settings

    builder = SparkSession.builder.appName("kiban-linkage")
    under_submit = "PYSPARK_GATEWAY_PORT" in os.environ  # spark-submit started us, with its own conf
    if master or not under_submit:
        master = master or get_settings().linkage_spark_master
        builder = builder.master(master)
    # in local mode, our defaults; on a cluster, spark-defaults.conf / spark-submit's decide
    local = bool(master) and master.startswith("local")
    settings = {"spark.ui.showConsoleProgress": "false", "spark.sql.session.timeZone": "UTC",
                **({"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "8"} if local else {}),
                **({"spark.sql.shuffle.partitions": str(shuffle_partitions)} if shuffle_partitions else {}),
                **({"spark.driver.memory": driver_memory} if driver_memory else {}), **(conf or {})}
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    register_functions(spark)
    return spark


# One Spark batch at a time per process: the checkpoint directory is the session's, set per run.
_RUN_LOCK = threading.Lock()


def _delete_path(spark, path: str) -> None:
    """Delete a directory on whatever file system Spark writes to (file:, hdfs:, s3a: ...)."""
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).delete(hadoop_path, True)


def run_splink_spark(table, settings_dict: dict, *, threshold: float, min_pair_probability: float,
                     spark: Any = None, master: str | None = None, driver_memory: str | None = None):
    """Predict and cluster an Arrow table of normalised registrations with Splink on Spark.

    Gives what ``engine.run_splink`` gives on DuckDB (the model is translated by ``spark_settings``).
    Splink writes its intermediate tables as parquet under a directory made for this run inside
    ``spark.checkpoint.dir`` (which on a cluster must be storage every executor shares; default:
    the local temporary directory), deleted at the end.
    """
    from splink import Linker, SparkAPI

    from kiban.modules.disaster.linkage.engine import BatchResult

    translated = spark_settings(settings_dict)
    spark = spark or spark_session(master, driver_memory=driver_memory)
    base = spark.conf.get("spark.checkpoint.dir", None)
    if base is None:
        if not spark.sparkContext.master.startswith("local"):
            raise ValueError("set spark.checkpoint.dir to storage every executor shares (hdfs://, s3a://, "
                             "a shared mount) to run the 名寄せ batch on a cluster; see docs/linkage.md")
        base = tempfile.gettempdir()
    run_dir = f"{base.rstrip('/')}/kiban-linkage-{uuid.uuid4().hex}"
    with _RUN_LOCK:
        register_functions(spark)
        spark.sparkContext.setCheckpointDir(run_dir)
        try:
            db = SparkAPI(spark_session=spark, register_udfs_automatically=False)
            linker = Linker(db.register(spark.createDataFrame(table), table_name="registrations"), translated,
                            log_level=logging.WARNING)
            predictions = linker.inference.predict(
                threshold_match_probability=min(min_pair_probability, threshold), warning_mode="never")
            clustered = linker.clustering.cluster_pairwise_predictions_at_threshold(
                predictions, threshold_match_probability=threshold)
            pairs_table = predictions.as_spark_dataframe() \
                .where(f"match_probability >= {float(min_pair_probability)!r}") \
                .select("record_id_l", "record_id_r", "match_probability").toArrow()
            clusters_table = clustered.as_spark_dataframe().select("record_id", "cluster_id").toArrow()
        finally:
            # Splink's tables of this run: temporary views over parquet in run_dir, and caches
            for view in spark.catalog.listTables():
                if view.isTemporary and (view.name.startswith("__splink") or view.name == "registrations"):
                    spark.catalog.dropTempView(view.name)
            spark.catalog.clearCache()
            _delete_path(spark, run_dir)
    pairs = list(zip(*(pairs_table.column(i).to_pylist() for i in range(3)), strict=True))
    clusters = dict(zip(clusters_table.column(0).to_pylist(), clusters_table.column(1).to_pylist(), strict=True))
    return BatchResult(pairs, clusters, threshold)


__all__ = ["SPARK_FUNCTIONS", "register_functions", "run_splink_spark", "spark_session",
           "spark_settings", "spark_sql_condition"]
