"""広域被災者データベース: disasters (platform-wide, opened by a prefecture or 内閣府), shelters
and victim records (tenant-owned by the municipality that runs or registers them), match
decisions for 名寄せ across municipalities, and staged CSV imports."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint, event, false, inspect, text
from sqlalchemy.orm import Mapped, mapped_column

from kiban.core.tenancy.models import TenantScoped
from kiban.kit.db import Base, JSONDocument, UTCDateTime
from kiban.modules.disaster.names import SEARCH_KEY_LENGTH, compute_import_key, search_keys

NAME_PARTS = ("family_name", "given_name", "family_kana", "given_kana")
ROSTER_PARTS = NAME_PARTS + ("birth_date", "home_lg_code", "household_key")

DISASTER_KINDS = ("地震", "津波", "風水害", "土砂災害", "火山噴火", "雪害", "その他")


class Disaster(Base):
    __tablename__ = "disaster"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    occurred_on: Mapped[date] = mapped_column(Date)
    description: Mapped[str] = mapped_column(Text, default="")
    opened_by_code: Mapped[str] = mapped_column(ForeignKey("organization.code"))
    opened_by: Mapped[str] = mapped_column(String(200))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class DisasterArea(Base):
    """An affected municipality, and whether 災害救助法 applies there."""

    __tablename__ = "disaster_area"

    disaster_id: Mapped[str] = mapped_column(ForeignKey("disaster.id"), primary_key=True)
    municipality_code: Mapped[str] = mapped_column(ForeignKey("organization.code"), primary_key=True, index=True)
    relief_act: Mapped[bool] = mapped_column(Boolean, default=False)
    relief_act_from: Mapped[date | None] = mapped_column(Date)
    support_act: Mapped[bool] = mapped_column(Boolean, default=False)  # 被災者生活再建支援法の適用


class Shelter(TenantScoped, Base):
    __tablename__ = "shelter"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    disaster_id: Mapped[str] = mapped_column(ForeignKey("disaster.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300), default="")
    capacity: Mapped[int] = mapped_column(Integer, default=0)
    is_open: Mapped[bool] = mapped_column(Boolean, default=True)
    occupancy: Mapped[int] = mapped_column(Integer, default=0)
    needs: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


def _key_default(column: str):
    """For inserts that bypass the ORM's unit of work (bulk and Core inserts): the key from the
    row's own parameters, so no write path can leave it out."""

    def default(context) -> str:
        row = context.get_current_parameters()
        return search_keys(row.get("family_name"), row.get("given_name"), row.get("family_kana"),
                           row.get("given_kana"))[column]

    return default


def roster_key_of(values) -> str:
    """``roster_key`` from a record's values (a mapping holding ``ROSTER_PARTS``)."""
    return compute_import_key({part: values.get(part) or "" for part in NAME_PARTS + ("home_lg_code", "household_key")}
                              | {"birth_date": values.get("birth_date")})


def _roster_key_default(context) -> str:
    """As ``_key_default``, for ``roster_key``."""
    return roster_key_of(context.get_current_parameters())


def _key_column(column: str):
    # Compared in code point order (C collation on PostgreSQL, SQLite's default), so that a
    # B-tree range finds the keys beginning with a query whatever the database's locale.
    return mapped_column(String(SEARCH_KEY_LENGTH).with_variant(String(SEARCH_KEY_LENGTH, collation="C"), "postgresql"),
                         default=_key_default(column), server_default="")


class VictimRecord(TenantScoped, Base):
    """One registration in a municipality's 被災者台帳 (``lg_code`` registered it). The same
    person may be registered by several municipalities; MatchDecision links them.

    ``name_key``, ``given_key``, ``kana_key`` and ``given_kana_key`` are the full and given name
    and reading folded for search (``names.search_keys``: 異体字, kana width and small kana),
    kept current with the name by this module whatever writes the row.
    ``person_id`` is the person the record belongs to after 名寄せ: the smallest record id of
    its linked registrations (None while it is linked to nothing). Only the service's link
    bookkeeping writes it (``service.sync_persons``), from match decisions in force; nothing
    typed into a form or a file can set it, since it widens who may read the record."""

    __tablename__ = "victim_record"
    __table_args__ = (
        UniqueConstraint("lg_code", "disaster_id", "import_key"),
        # Reads by id across tenants (a detail page, candidates, linked records): the primary
        # key leads with lg_code, so it cannot find an id alone.
        Index("ix_victim_record_id", "id", "disaster_id"),
        # Who sees a record itself (``service._visible_to``): its home and current municipality
        # and their prefectures (the registering one has the unique key led by lg_code). Led by
        # the code, so that SQLite, which picks the index matching the most equalities, takes
        # these rather than one led by the disaster alone.
        Index("ix_victim_record_home_lg_code_disaster_id", "home_lg_code", "disaster_id"),
        Index("ix_victim_record_current_lg_code_disaster_id", "current_lg_code", "disaster_id"),
        Index("ix_victim_record_home_pref_code_disaster_id", "home_pref_code", "disaster_id"),
        Index("ix_victim_record_current_pref_code_disaster_id", "current_pref_code", "disaster_id"),
        # The other registrations of the same person, and persons after 名寄せ.
        Index("ix_victim_record_person", "disaster_id", "person_id"),
        # The workspace's order (フリガナ順), for the areas that see most of a disaster.
        Index("ix_victim_record_kana_order", "disaster_id", "family_kana", "given_kana", "created_at", "id"),
        # Search: a query is looked up where it begins each key (``names``).
        Index("ix_victim_record_name_key", "disaster_id", "name_key"),
        Index("ix_victim_record_given_key", "disaster_id", "given_key"),
        Index("ix_victim_record_kana_key", "disaster_id", "kana_key"),
        Index("ix_victim_record_given_kana_key", "disaster_id", "given_kana_key"),
        # Which of a roster's rows are registered already (``service.registered_keys``).
        Index("ix_victim_record_roster_key", "lg_code", "disaster_id", "roster_key"),
        # The records registered before ``roster_key`` existed, until the jobs process has
        # filled them (``imports.fill_roster_keys``); empty from then on.
        Index("ix_victim_record_roster_key_missing", "lg_code", "id",
              postgresql_where=text("roster_key IS NULL"), sqlite_where=text("roster_key IS NULL")),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    disaster_id: Mapped[str] = mapped_column(ForeignKey("disaster.id"))
    family_name: Mapped[str] = mapped_column(String(100))
    given_name: Mapped[str] = mapped_column(String(100))
    family_kana: Mapped[str] = mapped_column(String(100), default="")
    given_kana: Mapped[str] = mapped_column(String(100), default="")
    birth_date: Mapped[date | None] = mapped_column(Date)
    sex: Mapped[str | None] = mapped_column(String(10))
    home_address: Mapped[str] = mapped_column(String(300), default="")
    home_lg_code: Mapped[str] = mapped_column(ForeignKey("organization.code"))
    home_pref_code: Mapped[str] = mapped_column(String(6))
    whereabouts: Mapped[str] = mapped_column(String(20))
    shelter_id: Mapped[str | None] = mapped_column(String(36))
    wide_area_lg_code: Mapped[str | None] = mapped_column(ForeignKey("organization.code"))
    # Where the person is now (the shelter's or 広域避難先 municipality, else the home one).
    current_lg_code: Mapped[str] = mapped_column(String(6))
    current_pref_code: Mapped[str] = mapped_column(String(6))
    phone: Mapped[str] = mapped_column(String(30), default="")
    household_key: Mapped[str] = mapped_column(String(60), default="")
    household_size: Mapped[int] = mapped_column(Integer, default=1)
    care_needs: Mapped[list] = mapped_column(JSON, default=list)
    damage_level: Mapped[str] = mapped_column(String(30), default="未調査")
    risai_status: Mapped[str] = mapped_column(String(10), default="未申請")
    rebuild_plan: Mapped[str] = mapped_column(String(20), default="未定")
    demolished: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # やむを得ず解体
    long_term_evacuation: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # 長期避難
    supports: Mapped[list] = mapped_column(JSON, default=list)
    note: Mapped[str] = mapped_column(String(400), default="")
    resident_subject_id: Mapped[str | None] = mapped_column(String(36), index=True)
    # 支援措置対象 (DV・ストーカー等の被害者): seen only by the municipality that registered it and by
    # the prefectures; never a 名寄せ candidate elsewhere, its whereabouts never shared.
    protected: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    import_key: Mapped[str | None] = mapped_column(String(64))
    # The import key a roster row of this person would have (``names.compute_import_key``), kept
    # current like the search keys: a roster's preview and acceptance read who is registered
    # already instead of normalising the whole 台帳 again (30,000 records: 2.2 s of CPU each time).
    roster_key: Mapped[str | None] = mapped_column(String(64), default=_roster_key_default)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    name_key: Mapped[str] = _key_column("name_key")
    given_key: Mapped[str] = _key_column("given_key")
    kana_key: Mapped[str] = _key_column("kana_key")
    given_kana_key: Mapped[str] = _key_column("given_kana_key")
    person_id: Mapped[str | None] = mapped_column(String(36))


#: What ``roster_key_of`` reads, to select.
ROSTER_KEY_COLUMNS = tuple(getattr(VictimRecord, part) for part in ROSTER_PARTS)


class MatcherChange(Base):
    """Which victim records one committed transaction wrote, under the generation it bumped: the
    名寄せ matchers' catch-up reads the entries past the generations they have seen
    (``matching``). ``name`` is one shard of a disaster's generation (``matcher:<disaster
    id>:<shard>``); on each shard the generations are consecutive and commit in order (the
    shard's row stays locked until the commit), so a matcher can tell when an entry it needs was
    pruned. Ids only, no personal data; entries older than ``matching.KEEP_CHANGES`` are deleted
    (a matcher that finds its next entry gone builds again)."""

    __tablename__ = "matcher_change"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    record_ids: Mapped[list] = mapped_column(JSON)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


@event.listens_for(VictimRecord, "before_insert")
@event.listens_for(VictimRecord, "before_update")
def _keys_with_the_name(_mapper, _connection, record: VictimRecord) -> None:
    """Every registration and every change of a name (the form, the API, an import, a resident
    registering at a shelter) stores its search keys with it, and every change of who the record
    is (name, reading, birth date, home, household) its roster key."""
    state = inspect(record)
    changed = {name for name in ROSTER_PARTS if state.attrs[name].history.has_changes()}
    if not state.has_identity or changed & set(NAME_PARTS):
        for column, value in search_keys(record.family_name, record.given_name, record.family_kana,
                                         record.given_kana).items():
            setattr(record, column, value)
    if not state.has_identity or changed:
        record.roster_key = roster_key_of({part: getattr(record, part) for part in ROSTER_PARTS})


class MatchDecision(Base):
    """A staff decision that two registrations are (``confirmed``) or are not (``rejected``)
    the same person. Reversible: ``reverted_at`` marks a decision taken back (e.g. a split).
    Platform-wide because it joins records of two municipalities; readable only through the
    disaster's sharing rules."""

    __tablename__ = "match_decision"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    disaster_id: Mapped[str] = mapped_column(ForeignKey("disaster.id"), index=True)
    record_a_code: Mapped[str] = mapped_column(String(6))
    record_a_id: Mapped[str] = mapped_column(String(36), index=True)
    record_b_code: Mapped[str] = mapped_column(String(6))
    record_b_id: Mapped[str] = mapped_column(String(36), index=True)
    decision: Mapped[str] = mapped_column(String(20))
    probability: Mapped[str] = mapped_column(String(20), default="")
    reasons: Mapped[list] = mapped_column(JSON, default=list)
    decided_by_code: Mapped[str] = mapped_column(String(6))
    decided_by: Mapped[str] = mapped_column(String(200))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reverted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reverted_by: Mapped[str | None] = mapped_column(String(200))
    # The 一括名寄せ run that made an automatic link (undone together); None for staff decisions.
    batch_id: Mapped[str | None] = mapped_column(String(36), index=True)
    # A staff confirmation across municipalities links nothing until the other record's owner (or
    # its prefecture) accepts it: ``pending`` → ``accepted`` (or ``declined``, taken back). "" for
    # decisions that need no acceptance (rejections, one municipality's own records, batch links).
    acceptance: Mapped[str] = mapped_column(String(20), default="", server_default="")
    awaiting_code: Mapped[str | None] = mapped_column(String(6), index=True)
    accepted_by_code: Mapped[str | None] = mapped_column(String(6))
    accepted_by: Mapped[str | None] = mapped_column(String(200))
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Who decided (the staff member's principal), for the per-person limit on confirmations.
    decided_by_principal: Mapped[str | None] = mapped_column(String(36), index=True)


class LinkageBatch(Base):
    """One 一括名寄せ run by a prefecture or 内閣府 (``run_by_code``; only it may apply or undo the
    run): scored first and shown as a preview (``previewed``), then applied as automatic links
    (``applied``), and undone as one batch (``undone``). ``pairs`` keeps what the preview showed:
    each pair's record ids and owners, probability, reasons and what applying does to it
    (``link`` / ``borderline`` / ``kept``); no names or contact details, so, like MatchDecision
    which it feeds, it is platform-wide and read only through the disaster's sharing rules."""

    __tablename__ = "linkage_batch"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    disaster_id: Mapped[str] = mapped_column(ForeignKey("disaster.id"), index=True)
    run_by_code: Mapped[str] = mapped_column(ForeignKey("organization.code"))
    status: Mapped[str] = mapped_column(String(20), default="previewed")
    records: Mapped[int] = mapped_column(Integer, default=0)
    threshold: Mapped[str] = mapped_column(String(20), default="")
    pairs: Mapped[list] = mapped_column(JSON, default=list)
    linked: Mapped[int] = mapped_column(Integer, default=0)
    undone: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    applied_by: Mapped[str | None] = mapped_column(String(200))
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    undone_by: Mapped[str | None] = mapped_column(String(200))
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RosterImport(TenantScoped, Base):
    """A staged CSV import: parsed and validated, nothing registered until staff accept it."""

    __tablename__ = "roster_import"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    disaster_id: Mapped[str] = mapped_column(ForeignKey("disaster.id"))
    filename: Mapped[str] = mapped_column(String(200))
    encoding: Mapped[str] = mapped_column(String(20))
    report: Mapped[dict] = mapped_column(JSONDocument)
    status: Mapped[str] = mapped_column(String(20), default="staged")  # staged / imported
    imported_count: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
