"""Hash rule 2: every record knows its key range, and each entity's range hashes are kept per
version, so that a publication re-hashes only the ranges its changes touch.

Existing rows get their range here (PostgreSQL computes it in SQL; on SQLite the engine's
registered function, the domain's own, does). Versions already published keep the rule-1
hashes they were published with (``version.hash_rule`` 1) and have no range rows; the first
publication after this revision hashes every entity under rule 2.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 17:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# domain.records.key_range: the first four hex digits of the key's SHA-256.
PG_KEY_RANGE = ("('x' || substr(encode(sha256(convert_to(key, 'UTF8')), 'hex'), 1, 4))"
                "::bit(16)::integer")
LIVE = "valid_to IS NULL"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.add_column("record", sa.Column("key_range", sa.Integer(), nullable=True))
        op.execute(f"UPDATE record SET key_range = {PG_KEY_RANGE}")
        op.alter_column("record", "key_range", nullable=False)
    else:
        # SQLite cannot make a column NOT NULL after the fact without copying the table
        # (and its per-field indexes): the default only fills the column until the update.
        op.add_column("record", sa.Column("key_range", sa.Integer(), nullable=False,
                                          server_default=sa.text("0")))
        op.execute("UPDATE record SET key_range = isd_key_range(key)")
    op.create_index("ix_record_live_range", "record", ["entity_id", "key_range", "key"],
                    sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE))
    op.create_table(
        "record_range",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("entity_id", sa.String(length=63), nullable=False),
        sa.Column("key_range", sa.Integer(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("valid_from", sa.Integer(), nullable=False),
        sa.Column("valid_to", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_range")),
    )
    op.create_index("ix_record_range_entity", "record_range",
                    ["entity_id", "key_range", "valid_from"])
    op.create_index("uq_record_range_live", "record_range", ["entity_id", "key_range"],
                    unique=True, sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE))
    op.add_column("version", sa.Column("hash_rule", sa.Integer(), nullable=False,
                                       server_default=sa.text("1")))


def downgrade() -> None:
    with op.batch_alter_table("version") as batch_op:
        batch_op.drop_column("hash_rule")
    op.drop_index("uq_record_range_live", table_name="record_range")
    op.drop_index("ix_record_range_entity", table_name="record_range")
    op.drop_table("record_range")
    op.drop_index("ix_record_live_range", table_name="record")
    with op.batch_alter_table("record") as batch_op:
        batch_op.drop_column("key_range")
