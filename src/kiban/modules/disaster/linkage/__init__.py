"""名寄せ of evacuee registrations: which registrations, made by different municipalities, are
the same person. A Fellegi–Sunter model run by Splink (on DuckDB or Spark), on Japanese-normalised
fields.

Three ways in:

* ``link_batch(records)`` — Splink predicts scored pairs over the whole batch and clusters them
  (connected components at a threshold). For the 広域被災者データベース's nightly 名寄せ.
* ``Matcher(records)`` / ``.add(record)`` / ``.candidates(record)`` — the same model, scored in
  Python for one new registration against everything registered so far (in-memory blocking
  indexes keyed exactly like the Splink blocking rules). For the registration screen.
* ``explain_pair(a, b)`` — probability and the reasons, in Japanese, for one pair.

Batch and online agree: both read the trained parameters (``data/linkage_model.json``), block
with the same rules and put a pair into the same comparison levels (each level is written twice,
as Splink SQL and as Python; loading a model checks that its SQL is exactly this code's).
DuckDB's Jaro–Winkler, Levenshtein and Damerau–Levenshtein are reproduced on ASCII-coded values.
The probabilities agree to floating-point rounding (the tests check every pair of a batch).

Read it in this order (each module imports only the ones above it):

``normalise.py``
    a registration → the comparison columns (``COLUMNS``): readings, names, dates, addresses,
    phones; row by row (``_normalise``) and column by column for batches (``_normalise_columns``).
``compare.py``
    string distances (Python twins of the SQL functions), the comparison levels (SQL + Python
    twin each), the agreement categories, ``COMPARISONS`` and ``BLOCKING_RULES``.
``model.py``
    the trained model (``load_model``, weights), scoring a pair, probability, the Japanese
    reasons and ``explain_pair``.
``matcher.py``
    the online ``Matcher``.
``engine.py``
    the Splink glue: ``settings()``, Arrow tables, DuckDB, ``run_splink`` and ``link_batch``
    (on DuckDB or Spark: the setting ``KIBAN_LINKAGE_ENGINE``).
``spark.py``
    the Spark backend: the model's SQL in Spark's dialect and the SQL functions that make Spark
    give DuckDB's answer (docs/linkage.md).
``training.py``
    ``train_splink``, ``train_model`` and the command line
    (``python -m kiban.modules.disaster.linkage train``).

This package re-exports the names other code uses, so ``from kiban.modules.disaster.linkage
import X`` works for each of them.
"""

from __future__ import annotations

from kiban.modules.disaster.linkage.compare import (
    BLOCKING_RULES,
    COMPARISON_NAMES,
    COMPARISONS,
    GIVEN_NAME_DIFFERS_M,
    HOUSEHOLD_LEVELS,
    JW_CLOSE,
    JW_CLOSE_SQL,
    Comparison,
    Level,
    address_agreement,
    jaro_winkler,
    levenshtein,
    phone_agreement,
    surname_agreement,
    within_one_edit_or_swap,
)
from kiban.modules.disaster.linkage.engine import BatchResult, _arrow_table, link_batch, run_splink, settings
from kiban.modules.disaster.linkage.matcher import Candidate, Matcher
from kiban.modules.disaster.linkage.model import (
    DEFAULT_CANDIDATE_PROBABILITY,
    DEFAULT_THRESHOLD,
    MODEL_PATH,
    Model,
    PairExplanation,
    default_model,
    explain_pair,
    load_model,
)
from kiban.modules.disaster.linkage.normalise import (
    ADDR,
    ADDR_LG,
    ADDR_NUM,
    ADDR_TOWN,
    COLUMNS,
    DOB,
    FAM_K,
    FAM_R,
    FAM_RL,
    FIELDS,
    GIV_K,
    GIV_R,
    GIV_RL,
    JW_MAX_LEN,
    NAME_K,
    NAME_R,
    NAME_RAW,
    PHONE,
    RID,
    SEX,
    SPLINK_COLUMNS,
    _ascii,
    _normalise,
    normalise_address,
    normalise_phone,
    normalise_record,
)
from kiban.modules.disaster.linkage.training import main, train_model, train_splink

__all__ = [
    "ADDR", "ADDR_LG", "ADDR_NUM", "ADDR_TOWN", "BLOCKING_RULES", "COLUMNS", "COMPARISONS", "COMPARISON_NAMES",
    "DEFAULT_CANDIDATE_PROBABILITY", "DEFAULT_THRESHOLD", "DOB", "FAM_K", "FAM_R", "FAM_RL", "FIELDS",
    "GIVEN_NAME_DIFFERS_M", "GIV_K", "GIV_R", "GIV_RL", "HOUSEHOLD_LEVELS", "JW_CLOSE", "JW_CLOSE_SQL", "JW_MAX_LEN",
    "MODEL_PATH", "NAME_K", "NAME_R", "NAME_RAW", "PHONE", "RID", "SEX", "SPLINK_COLUMNS",
    "BatchResult", "Candidate", "Comparison", "Level", "Matcher", "Model", "PairExplanation",
    "_arrow_table", "_ascii", "_normalise",
    "address_agreement", "default_model", "explain_pair", "jaro_winkler", "levenshtein", "link_batch", "load_model",
    "main", "normalise_address", "normalise_phone", "normalise_record", "phone_agreement", "run_splink", "settings",
    "surname_agreement", "train_model", "train_splink", "within_one_edit_or_swap",
]
