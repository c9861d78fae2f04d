"""Training the model with Splink's estimation on synthetic registrations (``synthetic.py``).

λ from deterministic rules (recall 0.8), u by random sampling, m by EM on two passes (blocked on
birth date + municipality, and on given name). One parameter is set by hand: m of "the given
names differ" (``compare.GIVEN_NAME_DIFFERS_M``), which EM cannot learn because twins look like
one person to it. To retrain and overwrite ``data/linkage_model.json``::

    python -m kiban.modules.disaster.linkage train --registrations 100000 --seed 20240101
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

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


def train_model(n_registrations: int = 100_000, seed: int = 20240101, path: Path | str | None = MODEL_PATH,
                *, threads: int | None = None) -> dict:
    """Train our model on synthetic registrations and write it to ``path`` (None: don't write)."""
    from kiban.modules.disaster.synthetic import iter_registrations

    table = _arrow_table(iter_registrations(n_registrations, seed=seed))
    trained = train_splink(
        table, settings(), seed=seed,
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
    train = sub.add_parser("train", help="retrain on synthetic data and overwrite data/linkage_model.json")
    train.add_argument("--registrations", type=int, default=100_000)
    train.add_argument("--seed", type=int, default=20240101)
    train.add_argument("--output", type=Path, default=MODEL_PATH)
    args = parser.parse_args(argv)
    if args.command == "train":
        trained = train_model(args.registrations, args.seed, args.output)
        print(f"wrote {args.output} (λ = {trained['probability_two_random_records_match']:.3g})")
