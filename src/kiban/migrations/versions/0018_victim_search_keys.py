"""Normalised search keys on victim records (kana folded, 異体字 folded), written at registration, for paging and searching in SQL.

Adds ``name_key`` / ``kana_key`` (the name and its reading folded by
``kiban.modules.disaster.names``, the same function every write uses from now on) and
``person_id`` (the person after 名寄せ: the smallest record id of its linked registrations),
fills them for the records that exist, and indexes what the workspace, the detail page and the
dashboard ask: records by id, by person, and in フリガナ order within a disaster.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

BATCH = 5000
KEYS = ('name_key', 'given_key', 'kana_key', 'given_kana_key')
# Single-column indexes of 0011 replaced by ones that also hold the disaster (see models.py).
CODES = ('home_lg_code', 'current_lg_code', 'home_pref_code', 'current_pref_code')


def _key_type():
    # Code point order on PostgreSQL whatever the database's locale (a B-tree range finds the
    # keys beginning with a query); SQLite compares that way already.
    return sa.String(length=200).with_variant(sa.String(length=200, collation='C'), 'postgresql')


def upgrade() -> None:
    with op.batch_alter_table('victim_record', schema=None) as batch_op:
        for column in KEYS:
            batch_op.add_column(sa.Column(column, _key_type(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('person_id', sa.String(length=36), nullable=True))
        batch_op.create_index('ix_victim_record_id', ['id', 'disaster_id'], unique=False)
    bind = op.get_bind()
    _fill_search_keys(bind)
    _fill_persons(bind)
    with op.batch_alter_table('victim_record', schema=None) as batch_op:
        batch_op.create_index('ix_victim_record_person', ['disaster_id', 'person_id'], unique=False)
        batch_op.create_index('ix_victim_record_kana_order',
                              ['disaster_id', 'family_kana', 'given_kana', 'created_at', 'id'], unique=False)
        for column in KEYS:
            batch_op.create_index(f'ix_victim_record_{column}', ['disaster_id', column], unique=False)
        batch_op.drop_index('ix_victim_record_disaster_id')
        for column in CODES:
            batch_op.drop_index(f'ix_victim_record_{column}')
            batch_op.create_index(f'ix_victim_record_{column}_disaster_id', [column, 'disaster_id'], unique=False)


def _fill_search_keys(bind) -> None:
    """Every existing record's keys, in batches (keyset over the primary key), with the function
    registrations use."""
    from kiban.modules.disaster.names import search_keys

    select = sa.text("SELECT lg_code, id, family_name, given_name, family_kana, given_kana FROM victim_record"
                     " WHERE lg_code > :lg OR (lg_code = :lg AND id > :id) ORDER BY lg_code, id LIMIT :n")
    update = sa.text("UPDATE victim_record SET name_key = :name_key, given_key = :given_key, kana_key = :kana_key,"
                     " given_kana_key = :given_kana_key WHERE lg_code = :lg_code AND id = :id")
    last = ("", "")
    while True:
        rows = bind.execute(select, {"lg": last[0], "id": last[1], "n": BATCH}).all()
        if not rows:
            return
        bind.execute(update, [{"lg_code": r.lg_code, "id": r.id,
                               **search_keys(r.family_name, r.given_name, r.family_kana, r.given_kana)} for r in rows])
        last = (rows[-1].lg_code, rows[-1].id)


def _fill_persons(bind) -> None:
    """``person_id`` from the match decisions in force: connected components of confirmed or
    automatic links not awaiting acceptance (what ``service.clusters`` computes), each
    component named by its smallest record id."""
    rows = bind.execute(sa.text(
        "SELECT record_a_id, record_b_id FROM match_decision WHERE reverted_at IS NULL"
        " AND decision IN ('confirmed', 'auto') AND acceptance <> 'pending'")).all()
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in rows:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    person = [{"id": x, "person_id": find(x)} for x in list(parent)]
    update = sa.text("UPDATE victim_record SET person_id = :person_id WHERE id = :id")
    for start in range(0, len(person), BATCH):
        bind.execute(update, person[start:start + BATCH])


def downgrade() -> None:
    with op.batch_alter_table('victim_record', schema=None) as batch_op:
        for column in reversed(CODES):
            batch_op.drop_index(f'ix_victim_record_{column}_disaster_id')
            batch_op.create_index(f'ix_victim_record_{column}', [column], unique=False)
        batch_op.create_index('ix_victim_record_disaster_id', ['disaster_id'], unique=False)
        for column in reversed(KEYS):
            batch_op.drop_index(f'ix_victim_record_{column}')
        batch_op.drop_index('ix_victim_record_kana_order')
        batch_op.drop_index('ix_victim_record_person')
        batch_op.drop_index('ix_victim_record_id')
        batch_op.drop_column('person_id')
        for column in reversed(KEYS):
            batch_op.drop_column(column)
