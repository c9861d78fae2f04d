"""Tables of modules/surveys (imported by kiban.models so Alembic and the isolation tests see them)."""

from __future__ import annotations
