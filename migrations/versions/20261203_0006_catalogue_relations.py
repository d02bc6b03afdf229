"""Relations in the catalogue: an entity's declared foreign keys (fields -> another
entity's fields), kept with its definition and published with every version's catalogue.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 13:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("catalogue_entity") as batch:
        batch.add_column(sa.Column("foreign_keys", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("catalogue_entity") as batch:
        batch.drop_column("foreign_keys")
