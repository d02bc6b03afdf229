"""Typed ORM models: the working catalogue, versioned records, staged changes, loads,
versions and the background builds of their downloads, the release calendar, tokens, the
audit log and webhooks."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from isd_service.domain.approval import RequestState
from isd_service.domain.lifecycle import ReleaseState, RunOutcome, transition

# Named constraints, so that Alembic can alter and drop them on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only makes INTEGER PRIMARY KEY an auto-incrementing rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# Keys must sort by code point on both databases: PostgreSQL's default collation would
# order them by locale and change the order that hashes are computed in.
KeyText = Text().with_variant(Text(collation="C"), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """A moment, stored in UTC and always read back as an aware UTC datetime.

    SQLite keeps no time zone and hands naive datetimes back; with this type no reader has
    to remember that they are UTC. A naive datetime is refused: its zone would be a guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"a naive datetime ({value.isoformat()}) has no time zone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _enum(states: type[StrEnum], length: int = 16) -> Enum:
    """A domain enumeration stored as its values' text (VARCHAR, no database type)."""
    return Enum(states, native_enum=False, length=length, validate_strings=True,
                values_callable=lambda members: [m.value for m in members])


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class CatalogueEntity(Base):
    """An entity of the working catalogue (the one the draft is validated against)."""

    __tablename__ = "catalogue_entity"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    key: Mapped[list[str]] = mapped_column(JSON)
    effective_from: Mapped[str | None] = mapped_column(String(63))
    effective_to: Mapped[str | None] = mapped_column(String(63))
    # [{"fields": [...], "reference": {"entity", "fields"}}]; null: none declared.
    foreign_keys: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    fields: Mapped[list[CatalogueField]] = relationship(
        order_by="CatalogueField.position", cascade="all, delete-orphan", lazy="selectin")


class CatalogueField(Base):
    """A data item of an entity, in the position it takes in files."""

    __tablename__ = "catalogue_field"

    entity_id: Mapped[str] = mapped_column(ForeignKey("catalogue_entity.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))
    required: Mapped[bool] = mapped_column(Boolean)
    max_length: Mapped[int | None] = mapped_column(Integer)
    values: Mapped[list[str] | None] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(Text)


class Record(Base):
    """A record as it stands in versions valid_from <= v < valid_to (valid_to null: still)."""

    __tablename__ = "record"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entity_id: Mapped[str] = mapped_column(String(63))
    key: Mapped[str] = mapped_column(KeyText)
    data: Mapped[str] = mapped_column(Text)
    valid_from: Mapped[int] = mapped_column(Integer)
    valid_to: Mapped[int | None] = mapped_column(Integer)
    # domain.records.key_range(key), computed by the database as rows are written
    # (repository.key_range_sql): publication re-hashes a range from these rows alone.
    key_range: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        # Snapshots and history walk an entity in key order.
        Index("ix_record_entity_key", "entity_id", "key", "valid_from"),
        # Publication reads the live rows of the ranges a change touched, range by range in
        # key order.
        Index("ix_record_live_range", "entity_id", "key_range", "key",
              sqlite_where=text("valid_to IS NULL"), postgresql_where=text("valid_to IS NULL")),
        # A delta only reads rows that started or ended between its two versions.
        Index("ix_record_entity_valid_from", "entity_id", "valid_from"),
        Index("ix_record_entity_valid_to", "entity_id", "valid_to"),
        # At most one live row per key: the row the next publication closes.
        Index("uq_record_live_key", "entity_id", "key", unique=True,
              sqlite_where=text("valid_to IS NULL"), postgresql_where=text("valid_to IS NULL")),
    )


class RecordRange(Base):
    """One key range of an entity (domain.records.RangeHash), as it stands in versions
    valid_from <= v < valid_to; only versions published under hash rule 2 have them."""

    __tablename__ = "record_range"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entity_id: Mapped[str] = mapped_column(String(63))
    key_range: Mapped[int] = mapped_column(Integer)
    records: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    valid_from: Mapped[int] = mapped_column(Integer)
    valid_to: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_record_range_entity", "entity_id", "key_range", "valid_from"),
        Index("uq_record_range_live", "entity_id", "key_range", unique=True,
              sqlite_where=text("valid_to IS NULL"), postgresql_where=text("valid_to IS NULL")),
    )


class Draft(Base):
    """The one draft: its row is locked by every writer so that writes never interleave."""

    __tablename__ = "draft"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class StagedChange(Base):
    """A staged change of one key: upsert (with the new data) or delete.

    ``frozen_for`` null: the open draft, the net change against the latest version with any
    frozen set on top. A release's id: that release's frozen set (the draft as it stood at the
    release's change deadline), the net change against the latest version.
    """

    __tablename__ = "staged_change"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    frozen_for: Mapped[int | None] = mapped_column(ForeignKey("release.id"))
    entity_id: Mapped[str] = mapped_column(String(63))
    key: Mapped[str] = mapped_column(KeyText)
    op: Mapped[str] = mapped_column(String(8))
    data: Mapped[str | None] = mapped_column(Text)
    # The load that staged it; no foreign key: it would check every row of a first load
    # against the load recorded in the same transaction (migration 0011).
    load_id: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        # One change per key in each set; the open draft's index also serves its lookups.
        Index("uq_staged_change_open_key", "entity_id", "key", unique=True,
              sqlite_where=text("frozen_for IS NULL"),
              postgresql_where=text("frozen_for IS NULL")),
        Index("uq_staged_change_frozen_key", "frozen_for", "entity_id", "key", unique=True,
              sqlite_where=text("frozen_for IS NOT NULL"),
              postgresql_where=text("frozen_for IS NOT NULL")),
    )


class Load(Base):
    """One accepted load into the draft: who, when, what input, what it changed."""

    __tablename__ = "load"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(200))
    organisation: Mapped[str | None] = mapped_column(String(20))
    format: Mapped[str] = mapped_column(String(16))
    mode: Mapped[str] = mapped_column(String(16))
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    sha256: Mapped[str] = mapped_column(String(64))
    inserted: Mapped[int] = mapped_column(Integer)
    updated: Mapped[int] = mapped_column(Integer)
    deleted: Mapped[int] = mapped_column(Integer)
    unchanged: Mapped[int] = mapped_column(Integer)
    entities: Mapped[dict[str, Any]] = mapped_column(JSON)
    version: Mapped[int | None] = mapped_column(Integer, index=True)


class Version(Base):
    """A published, immutable version with its manifest and the catalogue it was built on."""

    __tablename__ = "version"

    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime())
    go_live_date: Mapped[date | None] = mapped_column(Date)
    previous_version: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    catalogue_sha256: Mapped[str] = mapped_column(String(64))
    record_count: Mapped[int] = mapped_column(Integer)
    entities: Mapped[dict[str, Any]] = mapped_column(JSON)
    catalogue: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    published_by: Mapped[str] = mapped_column(String(200))
    organisation: Mapped[str | None] = mapped_column(String(20))
    # The rule its entities' sha256 follow (domain.records): 1 for versions published before
    # key ranges existed, whose hashes stay as published; 2 since.
    hash_rule: Mapped[int] = mapped_column(Integer, server_default=text("1"))


class DownloadBuild(Base):
    """The background build of a published version's listed downloads: queued in the
    publication's own transaction, claimed by one builder under a lease, done or failed."""

    __tablename__ = "download_build"

    version: Mapped[int] = mapped_column(ForeignKey("version.number"), primary_key=True,
                                         autoincrement=False)
    # queued, running, done, failed (service_layer/download_builds.py)
    state: Mapped[str] = mapped_column(String(16), index=True)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    files: Mapped[int | None] = mapped_column(Integer)
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(String(1000))


class DownloadBuilder(Base):
    """A download builder's last sign of life: a queued job makes requests wait only while
    some builder is there to take it."""

    __tablename__ = "download_builder"

    runner: Mapped[str] = mapped_column(String(100), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiToken(Base):
    """A bearer token, stored only as its SHA-256, for one organisation and its roles."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    # Who holds the token (a person or team), for four-eyes publication; null: unnamed.
    name: Mapped[str | None] = mapped_column(String(100))
    organisation: Mapped[str] = mapped_column(String(20))
    roles: Mapped[list[str]] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditEvent(Base):
    """One change, as it happened: append-only (the code never updates or deletes a row)."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(200))
    organisation: Mapped[str | None] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(40), index=True)
    subject: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)


class Release(Base):
    """A planned release of the calendar: deadline, publish time, go-live date and state."""

    __tablename__ = "release"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int | None] = mapped_column(Integer)
    change_deadline: Mapped[datetime] = mapped_column(UTCDateTime())
    publish_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    go_live_date: Mapped[date] = mapped_column(Date)
    state: Mapped[ReleaseState] = mapped_column(_enum(ReleaseState, 20), index=True)
    # skip or publish; null: the service's default (ISD_EMPTY_RELEASE)
    empty_draft: Mapped[str | None] = mapped_column(String(8))
    frozen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    published_version: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    def move_to(self, state: ReleaseState, *, at: datetime) -> None:
        """Change state by the lifecycle's rules (IllegalTransition otherwise)."""
        self.state = transition(self.state, state, release_id=self.id)
        self.updated_at = at


class ReleaseLoad(Base):
    """Which release a load went to (the open one, or the frozen one by override)."""

    __tablename__ = "release_load"

    load_id: Mapped[int] = mapped_column(ForeignKey("load.id"), primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("release.id"), index=True)


class ReleaseRun(Base):
    """One run of a scheduled action (freeze or publish) and its outcome."""

    __tablename__ = "release_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("release.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    scheduled_for: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())
    outcome: Mapped[RunOutcome] = mapped_column(_enum(RunOutcome, 20))
    detail: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int | None] = mapped_column(Integer)
    runner: Mapped[str] = mapped_column(String(100))


class WebhookSubscription(Base):
    """A participant's endpoint told of every publication, with its own signing secret."""

    __tablename__ = "webhook_subscription"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    # Kept in clear: the service must compute each notice's HMAC with it.
    secret: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(200))
    envelope: Mapped[str] = mapped_column(String(8))  # plain or dip
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookDelivery(Base):
    """One notice to one subscriber, queued in the publication's own transaction."""

    __tablename__ = "webhook_delivery"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("webhook_subscription.id"),
                                                 index=True)
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    # pending, delivered, failed
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookAttempt(Base):
    """One try at sending a delivery, and how the receiver answered."""

    __tablename__ = "webhook_attempt"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_delivery.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int] = mapped_column(Integer)


class AdminSession(Base):
    """A signed-in browser of the admin pages: the token it signed in with, for a fixed
    lifetime. The cookie holds only a random secret, stored here as its SHA-256."""

    __tablename__ = "admin_session"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_token.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The last refused load's problems, so that its error table can be re-sorted.
    refusal: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class PublicationRequest(Base):
    """A request to publish a set (the open draft, or a release's frozen set) that waits for
    other publishers' approval (four eyes)."""

    __tablename__ = "publication_request"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[RequestState] = mapped_column(_enum(RequestState, 20), index=True)
    # null: the open draft; a release's id: that release's frozen set.
    release_id: Mapped[int | None] = mapped_column(ForeignKey("release.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    requested_by: Mapped[str] = mapped_column(String(200))
    holder: Mapped[str] = mapped_column(String(200))
    organisation: Mapped[str | None] = mapped_column(String(20))
    version: Mapped[int | None] = mapped_column(Integer)
    go_live_date: Mapped[date | None] = mapped_column(Date)
    force: Mapped[bool] = mapped_column(Boolean)
    approvals_needed: Mapped[int] = mapped_column(Integer)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    published_version: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    decisions: Mapped[list[PublicationDecision]] = relationship(
        order_by="PublicationDecision.id", lazy="selectin")


class PublicationDecision(Base):
    """One publisher's approval or rejection of a publication request."""

    __tablename__ = "publication_decision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("publication_request.id"), index=True)
    decision: Mapped[str] = mapped_column(String(8))  # approve or reject
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(200))
    holder: Mapped[str] = mapped_column(String(200))
    organisation: Mapped[str | None] = mapped_column(String(20))
    comment: Mapped[str | None] = mapped_column(String(500))


# --- indexes of record fields -----------------------------------------------------------------
# A record's values live in its JSON text, so each field of each entity gets an expression
# index (the field's value, then the key) limited to that entity's rows: an equality filter
# then reads its matches already in key order, from the cursor on, and stops at the page's
# end. The catalogue is data, so these indexes are made when an entity or a field is added
# (repository.add_entity, add_field), not declared here; Alembic is told to leave them alone.

FIELD_INDEX_PREFIX = "ix_record_field_"
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def sql_identifier(name: str) -> str:
    # Ids are checked by the catalogue; checked again because they are written into SQL.
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not an entity or field id")
    return name


def field_value_sql(dialect: str, field_id: str, *, table: str | None = "record") -> str:
    """The SQL of a record field's value: text on PostgreSQL, the JSON scalar on SQLite.

    Queries must write exactly the indexed expression for the index to serve them.
    """
    data = f"{table}.data" if table else "data"
    if dialect == "postgresql":
        return f"(CAST({data} AS JSONB) ->> '{sql_identifier(field_id)}')"
    return f"json_extract({data}, '$.{sql_identifier(field_id)}')"


def field_index_name(entity_id: str, field_id: str) -> str:
    digest = hashlib.sha256(f"{entity_id}.{field_id}".encode()).hexdigest()[:24]
    return FIELD_INDEX_PREFIX + digest


def field_index_ddl(dialect: str, entity_id: str, field_id: str) -> str:
    """CREATE INDEX for one field of one entity (a no-op when it exists)."""
    value = field_value_sql(dialect, field_id, table=None)
    return (f"CREATE INDEX IF NOT EXISTS {field_index_name(entity_id, field_id)} "
            f"ON record ({value}, key) WHERE entity_id = '{sql_identifier(entity_id)}'")
