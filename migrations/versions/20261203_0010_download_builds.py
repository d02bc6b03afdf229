"""Download builds: a published version's downloads built by a background builder.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "download_build",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("files", sa.Integer(), nullable=True),
        sa.Column("bytes", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.String(length=1000), nullable=True),
        sa.ForeignKeyConstraint(["version"], ["version.number"],
                                name=op.f("fk_download_build_version_version")),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_download_build")),
    )
    with op.batch_alter_table("download_build", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_download_build_state"), ["state"], unique=False)
    op.create_table(
        "download_builder",
        sa.Column("runner", sa.String(length=100), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("runner", name=op.f("pk_download_builder")),
    )


def downgrade() -> None:
    op.drop_table("download_builder")
    with op.batch_alter_table("download_build", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_download_build_state"))
    op.drop_table("download_build")
