"""Catalogue changes: new entities and new data items, going out with the next version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from isd_service.adapters import repository
from isd_service.domain.catalogue import (
    CatalogueError,
    EntityDef,
    FieldDef,
    check_new_entity,
    check_new_field,
    entity_from_dict,
    field_from_dict,
)
from isd_service.domain.errors import NotFound
from isd_service.service_layer import audit
from isd_service.service_layer.unit_of_work import UnitOfWork


def add_entity(uow: UnitOfWork, definition: dict[str, Any], *, actor: str,
               organisation: str | None) -> EntityDef:
    """Add a new entity (a definition in the shape of GET /catalogue's entities)."""
    entity = entity_from_dict(definition)
    with uow.transaction() as session:
        check_new_entity(repository.working_catalogue(session), entity)
        repository.add_entity(session, entity)
        audit.record(session, action="catalogue.add_entity", actor=actor,
                     organisation=organisation, subject=entity.id, details=entity.to_dict())
    return entity


def add_field(uow: UnitOfWork, entity_id: str, definition: dict[str, Any], *, actor: str,
              organisation: str | None) -> FieldDef:
    """Add a new data item at the end of an entity's fields."""
    with uow.transaction() as session:
        entity = repository.entity_definition(session, entity_id)
        if entity is None:
            raise NotFound(f"no entity {entity_id!r} in the catalogue", slug="no-such-entity")
        new = field_from_dict(definition)
        has_records = (repository.has_staged_upserts(session, entity_id)
                       or repository.has_live_rows(session, entity_id))
        check_new_field(entity, new, has_records=has_records)
        repository.add_field(session, entity_id, new)
        audit.record(session, action="catalogue.add_field", actor=actor,
                     organisation=organisation, subject=f"{entity_id}.{new.id}",
                     details={"entity": entity_id, "field": new.to_dict()})
    return new


def install(uow: UnitOfWork, definitions: list[dict[str, Any]]) -> int:
    """Install a whole catalogue into an empty working catalogue; return the entity count."""
    entities = [entity_from_dict(d) for d in definitions]
    with uow.transaction() as session:
        if not repository.catalogue_is_empty(session):
            raise CatalogueError([{"field": "catalogue", "message": "the catalogue is not empty"}])
        for entity in entities:
            check_new_entity(repository.working_catalogue(session), entity)
            repository.add_entity(session, entity)
    return len(entities)


def read_catalogue_file(path: Path) -> list[dict[str, Any]]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    return doc["entities"] if isinstance(doc, dict) else doc
