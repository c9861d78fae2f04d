"""Principals, their credentials, memberships in organisations, and web sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kiban.core.tenancy.models import TenantScoped
from kiban.kit.db import Base, UTCDateTime


class Principal(Base):
    """Anyone or anything that acts: resident, business user, staff, operator, API client."""

    __tablename__ = "principal"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    display_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class StaffCredential(Base):
    """A staff member's sign-in: username, argon2id password hash, TOTP secret (encrypted),
    and the failure counter behind lockout and backoff."""

    __tablename__ = "staff_credential"

    principal_id: Mapped[str] = mapped_column(ForeignKey("principal.id"), primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    totp_secret_encrypted: Mapped[str | None] = mapped_column(String(300))
    totp_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_totp_step: Mapped[int | None] = mapped_column(Integer)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Membership(TenantScoped, Base):
    """A principal's role in one organisation (the tenant)."""

    __tablename__ = "membership"

    principal_id: Mapped[str] = mapped_column(ForeignKey("principal.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(40))
    granted_by: Mapped[str] = mapped_column(String(200))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebSession(Base):
    """A browser session. Only the SHA-256 of the cookie's token is stored. ``stage`` is
    ``password`` (second factor pending), ``enrol`` (TOTP enrolment pending) or ``active``."""

    __tablename__ = "web_session"
    __table_args__ = (UniqueConstraint("token_hash"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    principal_id: Mapped[str] = mapped_column(ForeignKey("principal.id"), index=True)
    stage: Mapped[str] = mapped_column(String(10))
    acting_lg_code: Mapped[str | None] = mapped_column(ForeignKey("organization.code"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class JpkiChallenge(Base):
    """A single-use random challenge for My Number Card sign-in, bound to the browser it was
    issued to (the SHA-256 of that browser's CSRF cookie)."""

    __tablename__ = "jpki_challenge"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(100))
    browser_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ResidentIdentity(Base):
    """A resident known only by a pseudonym derived from the card certificate (a keyed hash of
    issuer and serial number). The platform never receives or stores a My Number."""

    __tablename__ = "resident_identity"

    pseudonym: Mapped[str] = mapped_column(String(64), primary_key=True)
    principal_id: Mapped[str] = mapped_column(ForeignKey("principal.id"), index=True)
    issuer: Mapped[str] = mapped_column(String(300))
    not_after: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_sign_in_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OidcLogin(Base):
    """One started sign-in: what the callback must match."""

    __tablename__ = "oidc_login"

    state: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64))
    code_verifier: Mapped[str] = mapped_column(String(128))
    browser_hash: Mapped[str] = mapped_column(String(64))
    redirect_uri: Mapped[str] = mapped_column(String(500))
    next_url: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class BusinessIdentity(Base):
    """A business user as the provider knows them (issuer + subject), with their 法人番号."""

    __tablename__ = "business_identity"

    issuer: Mapped[str] = mapped_column(String(300), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    principal_id: Mapped[str] = mapped_column(ForeignKey("principal.id"), index=True)
    corporate_number: Mapped[str] = mapped_column(String(13), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_sign_in_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Invitation(TenantScoped, Base):
    """An organisation admin's invitation: a one-time link (only its hash is kept) with which
    the invitee sets a password; the second factor is enrolled at first sign-in."""

    __tablename__ = "invitation"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), index=True)
    principal_id: Mapped[str] = mapped_column(ForeignKey("principal.id"))
    role: Mapped[str] = mapped_column(String(40))
    invited_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ApiKey(TenantScoped, Base):
    """A key for another system to call the API for one organisation, limited to the
    permissions it was given. Only a hash of its secret is kept; the key is shown once."""

    __tablename__ = "api_key"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(10))  # live | test
    secret_hash: Mapped[str] = mapped_column(String(64))
    permissions: Mapped[list] = mapped_column(JSON)
    rate_limit_per_minute: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
