"""The batch 名寄せ on Splink: normalised registrations as an Arrow table, predicted and
clustered by Splink (connected components at a threshold), on DuckDB inside this process or on
Spark (``spark.py``), chosen by the setting ``KIBAN_LINKAGE_ENGINE`` (``duckdb`` | ``spark``) or
the ``engine`` argument. Both run the same trained model and give the same pairs and clusters.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiban.modules.disaster.linkage.compare import BLOCKING_RULES, _comparison_dicts
from kiban.modules.disaster.linkage.model import DEFAULT_THRESHOLD, MODEL_PATH, _model_from_settings
from kiban.modules.disaster.linkage.normalise import SPLINK_COLUMNS, _column_chunks, _normalise_columns


def settings(blocking_rules: Sequence[Sequence[str]] = BLOCKING_RULES):
    """The Splink settings (untrained) of our model."""
    from splink import SettingsCreator, block_on

    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="record_id",
        comparisons=_comparison_dicts(),
        blocking_rules_to_generate_predictions=[block_on(*rule) for rule in blocking_rules],
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
        em_convergence=0.0001,
        max_iterations=30,
    )


def _arrow_table(records: Any, chunk: int = 1_000_000):
    """Normalised registrations as a pyarrow Table of ``SPLINK_COLUMNS`` (all strings)."""
    import pyarrow as pa

    schema = pa.schema([(c, pa.string()) for c in SPLINK_COLUMNS])
    batches = [pa.table(_normalise_columns(cols), schema=schema) for cols in _column_chunks(records, chunk)]
    if not batches:
        return schema.empty_table()
    return pa.concat_tables(batches)


def _duckdb(threads: int | None, memory_limit: str | None):
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {int(threads or min(2, os.cpu_count() or 1))}")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET preserve_insertion_order = false")
    return con


@dataclass
class BatchResult:
    pairs: list[tuple[str, str, float]]  # (record_id_l, record_id_r, probability), id_l < id_r
    clusters: dict[str, str]  # record_id → cluster_id (a record_id of the cluster)
    threshold: float


ENGINES = ("duckdb", "spark")


def _engine(engine: str | None) -> str:
    if engine is None:
        from kiban.kit.settings import get_settings

        engine = get_settings().linkage_engine
    if engine not in ENGINES:
        raise ValueError(f"unknown linkage engine {engine!r}; one of {ENGINES}")
    return engine


def run_splink(table, settings_dict: dict | Any, *, threshold: float, min_pair_probability: float,
               threads: int | None = None, memory_limit: str | None = None, engine: str | None = "duckdb",
               spark: Any = None, spark_master: str | None = None) -> BatchResult:
    """Predict and cluster an Arrow table with a Splink model (ours or another one).

    ``engine``: "duckdb" (``threads``, ``memory_limit``), "spark" (a trained model dict of ours;
    an existing ``spark`` session, or one started on ``spark_master`` with ``memory_limit`` as the
    driver's memory), or None for the setting.
    """
    if _engine(engine) == "spark":
        from kiban.modules.disaster.linkage.spark import run_splink_spark

        return run_splink_spark(table, settings_dict, threshold=threshold, min_pair_probability=min_pair_probability,
                                spark=spark, master=spark_master, driver_memory=memory_limit)
    from splink import DuckDBAPI, Linker

    con = _duckdb(threads, memory_limit)
    db = DuckDBAPI(con)
    sdf = db.register(table, table_name="registrations")
    linker = Linker(sdf, settings_dict, log_level=logging.WARNING)
    predictions = linker.inference.predict(threshold_match_probability=min(min_pair_probability, threshold),
                                           warning_mode="never")
    clustered = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=threshold)
    pairs = con.sql(f"SELECT record_id_l, record_id_r, match_probability FROM {predictions.physical_name} "
                    f"WHERE match_probability >= {float(min_pair_probability)!r}").fetchall()
    clusters = dict(con.sql(f"SELECT record_id, cluster_id FROM {clustered.physical_name}").fetchall())
    con.close()
    return BatchResult(pairs, clusters, threshold)


def link_batch(records: Iterable[Mapping[str, Any]] | Any, *, threshold: float = DEFAULT_THRESHOLD,
               min_pair_probability: float | None = None, model_path: Path | str | None = None,
               threads: int | None = None, memory_limit: str | None = None, engine: str | None = None,
               spark: Any = None, spark_master: str | None = None) -> BatchResult:
    """Link a batch of registrations with Splink: scored pairs and clusters.

    ``records``: mappings with the registration keys, or a pyarrow Table with those columns.

    ``pairs`` holds every blocked pair with probability ≥ ``min_pair_probability`` (default: the
    threshold); ``clusters`` maps each record_id to its cluster, the connected components of
    the pairs at ``threshold``. ``engine``: "duckdb" or "spark" (default: the setting
    ``KIBAN_LINKAGE_ENGINE``); see ``run_splink``. ``threads`` (DuckDB) defaults to min(2, CPUs).
    """
    settings_dict = json.loads(Path(model_path or MODEL_PATH).read_text(encoding="utf-8"))
    _model_from_settings(settings_dict)  # refuse a model that does not match this code
    table = _arrow_table(records)
    if table.num_rows < 2:
        ids = table.column("record_id").to_pylist()
        return BatchResult([], {i: i for i in ids}, threshold)
    return run_splink(table, settings_dict, threshold=threshold,
                      min_pair_probability=threshold if min_pair_probability is None else min_pair_probability,
                      threads=threads, memory_limit=memory_limit, engine=_engine(engine), spark=spark,
                      spark_master=spark_master)


def main(argv: Sequence[str] | None = None) -> None:
    """Link registrations read from a parquet file, e.g. on a Spark cluster::

        python -m kiban.modules.disaster.linkage link --input registrations.parquet \\
            --clusters clusters.parquet --engine spark --spark-master spark://host:7077

    (or the same arguments after ``spark-submit [options] path/to/engine.py``; see docs/linkage.md).
    The input has the registration columns (``FIELDS``); ``--clusters`` gets record_id,
    cluster_id; ``--pairs`` the scored pairs.
    """
    import argparse

    import pyarrow as pa
    import pyarrow.parquet as pq

    parser = argparse.ArgumentParser(prog="python -m kiban.modules.disaster.linkage link",
                                     description="batch 名寄せ of registrations in a parquet file")
    parser.add_argument("--input", required=True, help="parquet with the registration columns")
    parser.add_argument("--clusters", required=True, help="parquet to write: record_id, cluster_id")
    parser.add_argument("--pairs", help="parquet to write: record_id_l, record_id_r, match_probability")
    parser.add_argument("--engine", choices=ENGINES, help="default: KIBAN_LINKAGE_ENGINE")
    parser.add_argument("--spark-master", help="default: KIBAN_LINKAGE_SPARK_MASTER, or spark-submit's --master")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--min-pair-probability", type=float, default=None)
    args = parser.parse_args(argv)
    result = link_batch(pq.read_table(args.input), threshold=args.threshold,
                        min_pair_probability=args.min_pair_probability, engine=args.engine,
                        spark_master=args.spark_master)
    ids = list(result.clusters)
    pq.write_table(pa.table({"record_id": ids, "cluster_id": [result.clusters[i] for i in ids]}), args.clusters)
    if args.pairs:
        pq.write_table(pa.table({"record_id_l": [p[0] for p in result.pairs], "record_id_r": [p[1] for p in result.pairs],
                                 "match_probability": [p[2] for p in result.pairs]}), args.pairs)
    print(f"{len(ids):,} registrations, {len(set(result.clusters.values())):,} people, "
          f"{len(result.pairs):,} pairs ≥ {result.threshold if args.min_pair_probability is None else args.min_pair_probability}")


if __name__ == "__main__":
    main()
