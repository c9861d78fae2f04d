"""Passwords are hashed with argon2id at RFC 9106's recommended low-memory parameters in
production. The test suite swaps in cheaper argon2id parameters (tests/conftest.py) to save CI
minutes; this file checks that production's hasher is untouched and that hashes made with either
verify, since each stored hash carries its own parameters."""

from __future__ import annotations

from argon2 import PasswordHasher, Type, extract_parameters

from kiban.core.identity import credentials

PASSWORD = "correct horse battery staple"


def test_production_hashes_with_argon2id_at_the_recommended_parameters() -> None:
    hasher = credentials.PRODUCTION_HASHER
    assert (hasher.type, hasher.time_cost, hasher.memory_cost, hasher.parallelism) == (Type.ID, 3, 65536, 4)
    stored = hasher.hash(PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert extract_parameters(stored).memory_cost == 65536


def test_a_hash_made_in_production_verifies_under_the_suites_parameters_and_back() -> None:
    production = credentials.PRODUCTION_HASHER.hash(PASSWORD)
    assert credentials.verify_password(production, PASSWORD)
    assert not credentials.verify_password(production, PASSWORD + "!")
    suite = credentials.hash_password(PASSWORD)
    assert suite.startswith("$argon2id$") and credentials.PRODUCTION_HASHER.verify(suite, PASSWORD)


def test_the_suite_signs_in_with_cheaper_argon2id_not_with_anything_else() -> None:
    assert credentials._hasher is not credentials.PRODUCTION_HASHER
    assert isinstance(credentials._hasher, PasswordHasher) and credentials._hasher.type == Type.ID
