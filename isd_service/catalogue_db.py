"""The working catalogue in the database: read it, add entities and data items to it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from isd_service.catalogue import (
    Catalogue,
    CatalogueError,
    EntityDef,
    FieldDef,
    check_new_entity,
    check_new_field,
    entity_from_dict,
    field_from_dict,
)
from isd_service.models import CatalogueEntity, CatalogueField
from isd_service.store import has_live_rows


def working_catalogue(session: Session) -> Catalogue:
    """The catalogue that loads are validated against and the next version will carry."""
    rows = session.scalars(select(CatalogueEntity).order_by(CatalogueEntity.position))
    return Catalogue(_to_def(row) for row in rows)


def _to_def(row: CatalogueEntity) -> EntityDef:
    return EntityDef(
        id=row.id, name=row.name, source=row.source, key=tuple(row.key),
        effective_from=row.effective_from, effective_to=row.effective_to,
        description=row.description,
        fields=tuple(FieldDef(id=f.id, name=f.name, type=f.type, required=f.required,
                              max_length=f.max_length,
                              values=tuple(f.values) if f.values is not None else None,
                              description=f.description) for f in row.fields),
    )


def _field_row(fdef: FieldDef, position: int) -> CatalogueField:
    return CatalogueField(id=fdef.id, position=position, name=fdef.name, type=fdef.type,
                          required=fdef.required, max_length=fdef.max_length,
                          values=list(fdef.values) if fdef.values is not None else None,
                          description=fdef.description)


def add_entity(session: Session, definition: dict[str, Any]) -> EntityDef:
    """Add a new entity to the working catalogue (the caller commits)."""
    entity = entity_from_dict(definition)
    check_new_entity(working_catalogue(session), entity)
    position = session.scalar(select(func.coalesce(func.max(CatalogueEntity.position), 0))) or 0
    session.add(CatalogueEntity(
        id=entity.id, position=position + 1, name=entity.name, source=entity.source,
        description=entity.description, key=list(entity.key),
        effective_from=entity.effective_from, effective_to=entity.effective_to,
        fields=[_field_row(f, i) for i, f in enumerate(entity.fields, start=1)]))
    session.flush()
    return entity


def add_field(session: Session, entity_id: str, definition: dict[str, Any]) -> FieldDef:
    """Add a new data item at the end of an entity's fields (the caller commits)."""
    row = session.get(CatalogueEntity, entity_id)
    if row is None:
        raise LookupError(f"no entity {entity_id!r} in the catalogue")
    new = field_from_dict(definition)
    check_new_field(_to_def(row), new, has_records=_has_records(session, entity_id))
    row.fields.append(_field_row(new, len(row.fields) + 1))
    session.flush()
    return new


def _has_records(session: Session, entity_id: str) -> bool:
    from isd_service.models import DraftChange

    staged = session.execute(select(DraftChange.key).where(
        DraftChange.entity_id == entity_id, DraftChange.op == "upsert").limit(1)).first()
    return staged is not None or has_live_rows(session, entity_id)


def install(session: Session, definitions: list[dict[str, Any]]) -> int:
    """Install a whole catalogue into an empty working catalogue; return the entity count."""
    if session.scalar(select(func.count()).select_from(CatalogueEntity)):
        raise CatalogueError([{"field": "catalogue", "message": "the catalogue is not empty"}])
    for definition in definitions:
        add_entity(session, definition)
    return len(definitions)


def read_catalogue_file(path: Path) -> list[dict[str, Any]]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    return doc["entities"] if isinstance(doc, dict) else doc
