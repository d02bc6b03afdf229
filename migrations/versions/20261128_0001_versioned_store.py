"""Versioned store: catalogue, versioned records, the draft, loads, versions, tokens.

Revision ID: 0001
Revises:
Create Date: 2026-11-28 11:52:53.808014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("organisation", sa.String(length=20), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_token")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_api_token_token_sha256")),
    )
    op.create_table(
        "catalogue_entity",
        sa.Column("id", sa.String(length=63), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("key", sa.JSON(), nullable=False),
        sa.Column("effective_from", sa.String(length=63), nullable=True),
        sa.Column("effective_to", sa.String(length=63), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalogue_entity")),
        sa.UniqueConstraint("source", name=op.f("uq_catalogue_entity_source")),
    )
    op.create_table(
        "draft",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_draft")),
    )
    op.create_table(
        "load",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("organisation", sa.String(length=20), nullable=True),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("inserted", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("entities", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_load")),
    )
    with op.batch_alter_table("load", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_load_version"), ["version"], unique=False)

    op.create_table(
        "record",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("entity_id", sa.String(length=63), nullable=False),
        sa.Column(
            "key", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False
        ),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("valid_from", sa.Integer(), nullable=False),
        sa.Column("valid_to", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record")),
    )
    with op.batch_alter_table("record", schema=None) as batch_op:
        batch_op.create_index(
            "ix_record_entity_key", ["entity_id", "key", "valid_from"], unique=False
        )
        batch_op.create_index(
            "ix_record_entity_valid_from", ["entity_id", "valid_from"], unique=False
        )
        batch_op.create_index("ix_record_entity_valid_to", ["entity_id", "valid_to"], unique=False)
        batch_op.create_index(
            "uq_record_live_key",
            ["entity_id", "key"],
            unique=True,
            sqlite_where=sa.text("valid_to IS NULL"),
            postgresql_where=sa.text("valid_to IS NULL"),
        )

    op.create_table(
        "version",
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("go_live_date", sa.Date(), nullable=True),
        sa.Column("previous_version", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("catalogue_sha256", sa.String(length=64), nullable=False),
        sa.Column("record_count", sa.Integer(), nullable=False),
        sa.Column("entities", sa.JSON(), nullable=False),
        sa.Column("catalogue", sa.JSON(), nullable=False),
        sa.Column("published_by", sa.String(length=200), nullable=False),
        sa.Column("organisation", sa.String(length=20), nullable=True),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_version")),
    )
    op.create_table(
        "catalogue_field",
        sa.Column("entity_id", sa.String(length=63), nullable=False),
        sa.Column("id", sa.String(length=63), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("max_length", sa.Integer(), nullable=True),
        sa.Column("values", sa.JSON(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["entity_id"],
            ["catalogue_entity.id"],
            name=op.f("fk_catalogue_field_entity_id_catalogue_entity"),
        ),
        sa.PrimaryKeyConstraint("entity_id", "id", name=op.f("pk_catalogue_field")),
    )
    op.create_table(
        "draft_change",
        sa.Column("entity_id", sa.String(length=63), nullable=False),
        sa.Column(
            "key", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False
        ),
        sa.Column("op", sa.String(length=8), nullable=False),
        sa.Column("data", sa.Text(), nullable=True),
        sa.Column("load_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["load_id"], ["load.id"], name=op.f("fk_draft_change_load_id_load")
        ),
        sa.PrimaryKeyConstraint("entity_id", "key", name=op.f("pk_draft_change")),
    )
    # The one draft row: every writer locks it first (see drafts.lock_draft).
    op.execute("INSERT INTO draft (id, revision) VALUES (1, 0)")


def downgrade() -> None:
    op.drop_table("draft_change")
    op.drop_table("catalogue_field")
    op.drop_table("version")
    with op.batch_alter_table("record", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_record_live_key",
            sqlite_where=sa.text("valid_to IS NULL"),
            postgresql_where=sa.text("valid_to IS NULL"),
        )
        batch_op.drop_index("ix_record_entity_valid_to")
        batch_op.drop_index("ix_record_entity_valid_from")
        batch_op.drop_index("ix_record_entity_key")

    op.drop_table("record")
    with op.batch_alter_table("load", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_load_version"))

    op.drop_table("load")
    op.drop_table("draft")
    op.drop_table("catalogue_entity")
    op.drop_table("api_token")
