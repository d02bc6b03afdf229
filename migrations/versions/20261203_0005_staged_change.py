"""One table of staged changes: the open draft and the frozen sets (draft_change and
frozen_change had the same shape); the scheduler's job store leaves the database.

A change of the open draft has ``frozen_for`` null, a change of a release's frozen set that
release's id. The scheduler now keeps its jobs in memory: the release table is the calendar's
truth and the scheduler re-reads it every few seconds, so a job store in the database only
duplicated it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "staged_change",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("frozen_for", sa.Integer(), nullable=True),
        sa.Column("entity_id", sa.String(length=63), nullable=False),
        sa.Column("key", KEY, nullable=False),
        sa.Column("op", sa.String(length=8), nullable=False),
        sa.Column("data", sa.Text(), nullable=True),
        sa.Column("load_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["frozen_for"], ["release.id"],
                                name=op.f("fk_staged_change_frozen_for_release")),
        sa.ForeignKeyConstraint(["load_id"], ["load.id"],
                                name=op.f("fk_staged_change_load_id_load")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staged_change")),
    )
    with op.batch_alter_table("staged_change", schema=None) as batch_op:
        batch_op.create_index(
            "uq_staged_change_open_key", ["entity_id", "key"], unique=True,
            sqlite_where=sa.text("frozen_for IS NULL"),
            postgresql_where=sa.text("frozen_for IS NULL"))
        batch_op.create_index(
            "uq_staged_change_frozen_key", ["frozen_for", "entity_id", "key"], unique=True,
            sqlite_where=sa.text("frozen_for IS NOT NULL"),
            postgresql_where=sa.text("frozen_for IS NOT NULL"))
    op.execute("INSERT INTO staged_change (frozen_for, entity_id, key, op, data, load_id) "
               "SELECT NULL, entity_id, key, op, data, load_id FROM draft_change")
    op.execute("INSERT INTO staged_change (frozen_for, entity_id, key, op, data, load_id) "
               "SELECT release_id, entity_id, key, op, data, load_id FROM frozen_change")
    op.drop_table("draft_change")
    op.drop_table("frozen_change")
    op.drop_index("ix_apscheduler_jobs_next_run_time", table_name="apscheduler_jobs")
    op.drop_table("apscheduler_jobs")


def downgrade() -> None:
    op.create_table(
        "apscheduler_jobs",
        sa.Column("id", sa.Unicode(length=191), nullable=False),
        sa.Column("next_run_time", sa.Float(precision=25), nullable=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apscheduler_jobs")),
    )
    op.create_index("ix_apscheduler_jobs_next_run_time", "apscheduler_jobs",
                    ["next_run_time"], unique=False)
    op.create_table(
        "draft_change",
        sa.Column("entity_id", sa.String(length=63), nullable=False),
        sa.Column("key", KEY, nullable=False),
        sa.Column("op", sa.String(length=8), nullable=False),
        sa.Column("data", sa.Text(), nullable=True),
        sa.Column("load_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["load_id"], ["load.id"],
                                name=op.f("fk_draft_change_load_id_load")),
        sa.PrimaryKeyConstraint("entity_id", "key", name=op.f("pk_draft_change")),
    )
    op.create_table(
        "frozen_change",
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("entity_id", sa.String(length=63), nullable=False),
        sa.Column("key", KEY, nullable=False),
        sa.Column("op", sa.String(length=8), nullable=False),
        sa.Column("data", sa.Text(), nullable=True),
        sa.Column("load_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["load_id"], ["load.id"],
                                name=op.f("fk_frozen_change_load_id_load")),
        sa.ForeignKeyConstraint(["release_id"], ["release.id"],
                                name=op.f("fk_frozen_change_release_id_release")),
        sa.PrimaryKeyConstraint("release_id", "entity_id", "key",
                                name=op.f("pk_frozen_change")),
    )
    op.execute("INSERT INTO draft_change (entity_id, key, op, data, load_id) "
               "SELECT entity_id, key, op, data, load_id FROM staged_change "
               "WHERE frozen_for IS NULL")
    op.execute("INSERT INTO frozen_change (release_id, entity_id, key, op, data, load_id) "
               "SELECT frozen_for, entity_id, key, op, data, load_id FROM staged_change "
               "WHERE frozen_for IS NOT NULL")
    op.drop_table("staged_change")
