"""Release calendar: releases, their frozen change sets, loads per release, scheduled runs,
and the scheduler's job store (shaped as APScheduler 3 creates it).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 12:19:22.299759
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "release",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("change_deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("publish_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("go_live_date", sa.Date(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("empty_draft", sa.String(length=8), nullable=True),
        sa.Column("frozen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_version", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_release")),
    )
    with op.batch_alter_table("release", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_release_publish_at"), ["publish_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_release_state"), ["state"], unique=False)

    op.create_table(
        "frozen_change",
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("entity_id", sa.String(length=63), nullable=False),
        sa.Column(
            "key", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False
        ),
        sa.Column("op", sa.String(length=8), nullable=False),
        sa.Column("data", sa.Text(), nullable=True),
        sa.Column("load_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["load_id"], ["load.id"], name=op.f("fk_frozen_change_load_id_load")
        ),
        sa.ForeignKeyConstraint(
            ["release_id"], ["release.id"], name=op.f("fk_frozen_change_release_id_release")
        ),
        sa.PrimaryKeyConstraint("release_id", "entity_id", "key", name=op.f("pk_frozen_change")),
    )
    op.create_table(
        "release_load",
        sa.Column("load_id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["load_id"], ["load.id"], name=op.f("fk_release_load_load_id_load")
        ),
        sa.ForeignKeyConstraint(
            ["release_id"], ["release.id"], name=op.f("fk_release_load_release_id_release")
        ),
        sa.PrimaryKeyConstraint("load_id", name=op.f("pk_release_load")),
    )
    with op.batch_alter_table("release_load", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_release_load_release_id"), ["release_id"], unique=False
        )

    op.create_table(
        "release_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("runner", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["release_id"], ["release.id"], name=op.f("fk_release_run_release_id_release")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_release_run")),
    )
    with op.batch_alter_table("release_run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_release_run_release_id"), ["release_id"], unique=False)

    # APScheduler's SQLAlchemyJobStore table, column for column (it only creates it when
    # missing); migrations/env.py leaves it out of autogenerate.
    op.create_table(
        "apscheduler_jobs",
        sa.Column("id", sa.Unicode(length=191), nullable=False),
        sa.Column("next_run_time", sa.Float(precision=25), nullable=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apscheduler_jobs")),
    )
    op.create_index("ix_apscheduler_jobs_next_run_time", "apscheduler_jobs", ["next_run_time"])


def downgrade() -> None:
    op.drop_index("ix_apscheduler_jobs_next_run_time", table_name="apscheduler_jobs")
    op.drop_table("apscheduler_jobs")
    with op.batch_alter_table("release_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_release_run_release_id"))

    op.drop_table("release_run")
    with op.batch_alter_table("release_load", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_release_load_release_id"))

    op.drop_table("release_load")
    op.drop_table("frozen_change")
    with op.batch_alter_table("release", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_release_state"))
        batch_op.drop_index(batch_op.f("ix_release_publish_at"))

    op.drop_table("release")
