"""Record queries answered by indexes: one expression index per field of each entity.

Each index holds a field's value (read from the record's JSON) then the key, for that
entity's rows only, so that an equality filter reads its matches in key order from a page's
cursor on. The catalogue is data: later entities and fields get theirs when they are added
(repository.add_entity, add_field); this revision indexes the catalogue already in place.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 15:01:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from isd_service.adapters.orm import field_index_ddl, field_index_name

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fields() -> list[tuple[str, str]]:
    return [(e, f) for e, f in op.get_bind().execute(
        sa.text("SELECT entity_id, id FROM catalogue_field ORDER BY entity_id, position"))]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for entity_id, field_id in _fields():
        op.execute(field_index_ddl(dialect, entity_id, field_id))


def downgrade() -> None:
    for entity_id, field_id in _fields():
        op.execute(f"DROP INDEX IF EXISTS {field_index_name(entity_id, field_id)}")
