"""Tables of modules/childcare (imported by kiban.models so Alembic and the isolation tests see them)."""

from __future__ import annotations
