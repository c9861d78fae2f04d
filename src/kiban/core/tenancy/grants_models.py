"""Explicit sharing between organisations: a municipality lets another organisation (usually
its prefecture) read one kind of its records, for a stated purpose and legal basis."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from kiban.core.tenancy.models import TenantScoped
from kiban.kit.db import Base, UTCDateTime


class AccessGrant(TenantScoped, Base):
    """Owned by the granting tenant (``lg_code``); ``grantee_code`` may use ``permission``
    on the grantor's records until ``expires_on`` or revocation."""

    __tablename__ = "access_grant"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    grantee_code: Mapped[str] = mapped_column(ForeignKey("organization.code"), index=True)
    permission: Mapped[str] = mapped_column(String(100))
    purpose: Mapped[str] = mapped_column(String(200))
    legal_basis: Mapped[str] = mapped_column(String(200))
    granted_by: Mapped[str] = mapped_column(String(200))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_on: Mapped[date | None] = mapped_column(Date)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
