"""Four-eyes publication: tokens name their holder; publication requests and the decisions
on them; a release (and a scheduled run) may be awaiting approval. The admin pages' sessions.

Existing tokens keep working and show as unnamed (``name`` null). ``release.state`` and
``release_run.outcome`` widen to hold "awaiting-approval".

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_MOMENT = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name", sa.String(length=100), nullable=True))
    with op.batch_alter_table("release", schema=None) as batch_op:
        batch_op.alter_column("state", existing_type=sa.String(length=16),
                              type_=sa.String(length=20), existing_nullable=False)
    with op.batch_alter_table("release_run", schema=None) as batch_op:
        batch_op.alter_column("outcome", existing_type=sa.String(length=16),
                              type_=sa.String(length=20), existing_nullable=False)
    op.create_table(
        "admin_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC_MOMENT, nullable=False),
        sa.Column("expires_at", UTC_MOMENT, nullable=False),
        sa.Column("ended_at", UTC_MOMENT, nullable=True),
        sa.Column("refusal", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["token_id"], ["api_token.id"],
                                name=op.f("fk_admin_session_token_id_api_token")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_session")),
        sa.UniqueConstraint("secret_sha256", name=op.f("uq_admin_session_secret_sha256")),
    )
    op.create_index(op.f("ix_admin_session_token_id"), "admin_session", ["token_id"])
    op.create_table(
        "publication_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=True),
        sa.Column("requested_at", UTC_MOMENT, nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("organisation", sa.String(length=20), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("go_live_date", sa.Date(), nullable=True),
        sa.Column("force", sa.Boolean(), nullable=False),
        sa.Column("approvals_needed", sa.Integer(), nullable=False),
        sa.Column("decided_at", UTC_MOMENT, nullable=True),
        sa.Column("published_version", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["release_id"], ["release.id"],
                                name=op.f("fk_publication_request_release_id_release")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_publication_request")),
    )
    op.create_index(op.f("ix_publication_request_state"), "publication_request", ["state"])
    op.create_table(
        "publication_decision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=8), nullable=False),
        sa.Column("at", UTC_MOMENT, nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("organisation", sa.String(length=20), nullable=True),
        sa.Column("comment", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"], ["publication_request.id"],
            name=op.f("fk_publication_decision_request_id_publication_request")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_publication_decision")),
    )
    op.create_index(op.f("ix_publication_decision_request_id"), "publication_decision",
                    ["request_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_publication_decision_request_id"),
                  table_name="publication_decision")
    op.drop_table("publication_decision")
    op.drop_index(op.f("ix_publication_request_state"), table_name="publication_request")
    op.drop_table("publication_request")
    op.drop_index(op.f("ix_admin_session_token_id"), table_name="admin_session")
    op.drop_table("admin_session")
    # A release or run awaiting approval has no state before this revision: back to frozen.
    op.execute("UPDATE release SET state = 'frozen' WHERE state = 'awaiting-approval'")
    op.execute("UPDATE release_run SET outcome = 'nothing-to-do' "
               "WHERE outcome = 'awaiting-approval'")
    with op.batch_alter_table("release_run", schema=None) as batch_op:
        batch_op.alter_column("outcome", existing_type=sa.String(length=20),
                              type_=sa.String(length=16), existing_nullable=False)
    with op.batch_alter_table("release", schema=None) as batch_op:
        batch_op.alter_column("state", existing_type=sa.String(length=20),
                              type_=sa.String(length=16), existing_nullable=False)
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_column("name")
