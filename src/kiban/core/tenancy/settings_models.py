"""テナント設定: per-tenant overrides of nationally defined settings, and their history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from kiban.core.tenancy.models import TenantScoped
from kiban.kit.db import Base, UTCDateTime


class TenantSetting(TenantScoped, Base):
    """A tenant's own value for one setting; absent means "inherit"."""

    __tablename__ = "tenant_setting"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now())


class TenantSettingChange(TenantScoped, Base):
    """One change to a tenant's setting: who, when, old → new (``None`` = inherited)."""

    __tablename__ = "tenant_setting_change"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    old_value: Mapped[Any | None] = mapped_column(JSON)
    new_value: Mapped[Any | None] = mapped_column(JSON)
    changed_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(500), default="")
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
