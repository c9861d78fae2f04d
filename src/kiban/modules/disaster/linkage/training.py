"""Training the model with Splink's estimation on synthetic registrations from two generators
written independently of each other: ``synthetic.py`` and ``rosters_synthetic.py`` (modelled on
real shelter rosters), as many registrations from each, so that the model learns neither one's
habits alone (``bench/linkage_quality.py`` measures it on both, with other seeds).

λ from deterministic rules (recall 0.8) and u by random sampling, each within one generator's
registrations and averaged (``train_splink_on_populations`` says why); m by EM on two passes over
both (blocked on birth date + municipality, and on given name). Two parameters are set by hand: m of "the given
names differ" (``compare.GIVEN_NAME_DIFFERS_M``) and of "kanji differ, readings close"
(``compare.GIVEN_NAME_CLOSE_M``), which EM cannot learn because twins look like one person to it.
To retrain and overwrite ``data/linkage_model.json``::

    python -m kiban.modules.disaster.linkage train --registrations 100000 --seed 20240101

(``--registrations`` from each generator.)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from kiban.modules.disaster.linkage.engine import _arrow_table, _duckdb, settings
from kiban.modules.disaster.linkage.model import MODEL_PATH, _model_from_settings


def train_splink(table, settings_creator, *, seed: int, deterministic_rules: Sequence[Sequence[str]],
                 em_rules: Sequence[Sequence[str]], recall: float = 0.8, max_pairs_u: float = 2e7,
                 threads: int | None = None) -> dict:
    """Splink's estimation: λ from deterministic rules, u by random sampling, m by EM."""
    from splink import DuckDBAPI, Linker, block_on

    con = _duckdb(threads, None)
    linker = Linker(DuckDBAPI(con).register(table, table_name="training"), settings_creator,
                    log_level=logging.WARNING)
    linker.training.estimate_probability_two_random_records_match(
        [block_on(*rule) for rule in deterministic_rules], recall=recall)
    linker.training.estimate_u_using_random_sampling(max_pairs=max_pairs_u, seed=seed)
    for rule in em_rules:
        linker.training.estimate_parameters_using_expectation_maximisation(block_on(*rule))
    trained = linker.misc.save_model_to_json()
    con.close()
    trained.pop("linker_uid", None)
    return trained


def train_splink_on_populations(tables: Sequence[Any], settings_creator, *, seed: int,
                                deterministic_rules: Sequence[Sequence[str]], em_rules: Sequence[Sequence[str]],
                                recall: float = 0.8, max_pairs_u: float = 2e7, threads: int | None = None) -> dict:
    """``train_splink`` on several populations at once (the registrations of two generators).

    λ and u describe pairs of records *within* one population: pairs across two generators share
    no municipality and few names, so u estimated on the tables put together would make every
    agreement look rarer than it is. λ (deterministic rules) and u (random sampling) are
    estimated on each table and averaged; m by EM on all of them together, u kept fixed.
    """
    import pyarrow as pa
    from splink import DuckDBAPI, Linker, block_on

    estimated = []
    for i, table in enumerate(tables):
        con = _duckdb(threads, None)
        linker = Linker(DuckDBAPI(con).register(table, table_name=f"population_{i}"), settings_creator,
                        log_level=logging.WARNING)
        linker.training.estimate_probability_two_random_records_match(
            [block_on(*rule) for rule in deterministic_rules], recall=recall)
        linker.training.estimate_u_using_random_sampling(max_pairs=max_pairs_u, seed=seed)
        estimated.append(linker.misc.save_model_to_json())
        con.close()
    combined = json.loads(json.dumps(estimated[0]))
    combined["probability_two_random_records_match"] = sum(
        e["probability_two_random_records_match"] for e in estimated) / len(estimated)
    for c, comparison in enumerate(combined["comparisons"]):
        for lv, level in enumerate(comparison["comparison_levels"]):
            if level.get("is_null_level"):
                continue
            us = [e["comparisons"][c]["comparison_levels"][lv].get("u_probability") for e in estimated]
            us = [u for u in us if isinstance(u, (int, float))]
            if us:
                level["u_probability"] = sum(us) / len(us)
    combined.pop("linker_uid", None)
    con = _duckdb(threads, None)
    linker = Linker(DuckDBAPI(con).register(pa.concat_tables(tables), table_name="training"), combined,
                    log_level=logging.WARNING)
    for rule in em_rules:
        linker.training.estimate_parameters_using_expectation_maximisation(block_on(*rule))
    trained = linker.misc.save_model_to_json()
    con.close()
    trained.pop("linker_uid", None)
    return trained


def training_populations(n_registrations: int, seed: int) -> list[Iterator[dict]]:
    """``n_registrations`` synthetic registrations from each generator (their record ids differ
    in form, so no two registrations share one)."""
    from kiban.modules.disaster.rosters_synthetic import iter_roster_registrations
    from kiban.modules.disaster.synthetic import iter_registrations

    return [iter_registrations(n_registrations, seed=seed), iter_roster_registrations(n_registrations, seed=seed)]


def train_model(n_registrations: int = 100_000, seed: int = 20240101, path: Path | str | None = MODEL_PATH,
                *, threads: int | None = None) -> dict:
    """Train our model on ``n_registrations`` synthetic registrations of each generator and write
    it to ``path`` (None: don't write)."""
    trained = train_splink_on_populations(
        [_arrow_table(records) for records in training_populations(n_registrations, seed)], settings(), seed=seed,
        deterministic_rules=[("name_k", "dob"), ("name_yomi", "dob")],
        em_rules=[("dob", "addr_lg"), ("giv_k",)], threads=threads)
    _model_from_settings(trained)  # every level trained
    if path is not None:
        Path(path).write_text(json.dumps(trained, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return trained


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m kiban.modules.disaster.linkage")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="retrain on synthetic data (both generators) and overwrite data/linkage_model.json")
    train.add_argument("--registrations", type=int, default=100_000, help="from each of the two generators")
    train.add_argument("--seed", type=int, default=20240101)
    train.add_argument("--output", type=Path, default=MODEL_PATH)
    args = parser.parse_args(argv)
    if args.command == "train":
        trained = train_model(args.registrations, args.seed, args.output)
        print(f"wrote {args.output} (λ = {trained['probability_two_random_records_match']:.3g})")
