"""Typed ORM models: the draft catalogue, versioned records, the draft, loads, versions, tokens."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from isd_service.db import Base, BigId, KeyText


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

    __table_args__ = (
        # Snapshots and history walk an entity in key order.
        Index("ix_record_entity_key", "entity_id", "key", "valid_from"),
        # A delta only reads rows that started or ended between its two versions.
        Index("ix_record_entity_valid_from", "entity_id", "valid_from"),
        Index("ix_record_entity_valid_to", "entity_id", "valid_to"),
        # At most one live row per key: the row the next publication closes.
        Index("uq_record_live_key", "entity_id", "key", unique=True,
              sqlite_where=text("valid_to IS NULL"), postgresql_where=text("valid_to IS NULL")),
    )


class Draft(Base):
    """The one draft: its row is locked by every writer so that writes never interleave."""

    __tablename__ = "draft"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DraftChange(Base):
    """A staged change to the latest version: upsert (with data) or delete of one key."""

    __tablename__ = "draft_change"

    entity_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    key: Mapped[str] = mapped_column(KeyText, primary_key=True)
    op: Mapped[str] = mapped_column(String(8))
    data: Mapped[str | None] = mapped_column(Text)
    load_id: Mapped[int | None] = mapped_column(ForeignKey("load.id"))


class Load(Base):
    """One accepted load into the draft: who, when, what input, what it changed."""

    __tablename__ = "load"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
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
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    go_live_date: Mapped[date | None] = mapped_column(Date)
    previous_version: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    catalogue_sha256: Mapped[str] = mapped_column(String(64))
    record_count: Mapped[int] = mapped_column(Integer)
    entities: Mapped[dict[str, Any]] = mapped_column(JSON)
    catalogue: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    published_by: Mapped[str] = mapped_column(String(200))
    organisation: Mapped[str | None] = mapped_column(String(20))


class ApiToken(Base):
    """A bearer token, stored only as its SHA-256, for one organisation and its roles."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    organisation: Mapped[str] = mapped_column(String(20))
    roles: Mapped[list[str]] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
