"""Every victim record's roster key: the import key a roster row of the same person would have.

A roster's preview and its acceptance ask which rows are in the municipality's 台帳 already.
They computed the key of every record there (folded name and reading, birth date, home,
household) each time: on 30,000 records, 2.2 s of CPU on the server, twice per import. The key
is now written with the record (``models._keys_with_the_name``, as the search keys).

The records that exist are not filled here: computing and writing a million keys inside the
upgrade took 17 minutes on PostgreSQL (bench database, 2 cores), every registration locked out
meanwhile. The jobs process fills them a thousand at a time in short transactions
(``imports.fill_roster_keys``), finding them by a partial index that empties as it goes; until
then a preview computes the keys still missing, as before.

Revision ID: 0037
Revises: 0036
Create Date: 2026-12-02
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0037'
down_revision = '0036'
branch_labels = None
depends_on = None

MISSING = sa.text('roster_key IS NULL')


def upgrade() -> None:
    with op.batch_alter_table('victim_record', schema=None) as batch_op:
        batch_op.add_column(sa.Column('roster_key', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_victim_record_roster_key_missing', ['lg_code', 'id'], unique=False,
                              postgresql_where=MISSING, sqlite_where=MISSING)


def downgrade() -> None:
    with op.batch_alter_table('victim_record', schema=None) as batch_op:
        batch_op.drop_index('ix_victim_record_roster_key_missing')
        batch_op.drop_column('roster_key')
