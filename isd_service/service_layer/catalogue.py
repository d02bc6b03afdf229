"""Catalogue changes: new entities and new data items, going out with the next version."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from isd_service.adapters import repository
from isd_service.domain.catalogue import (
    Catalogue,
    EntityDef,
    FieldDef,
    changed_field,
    check_new_entity,
    check_new_field,
    check_relations,
    entity_from_dict,
    field_from_dict,
)
from isd_service.domain.errors import NotFound
from isd_service.service_layer import approvals, audit
from isd_service.service_layer.unit_of_work import UnitOfWork


def add_entity(uow: UnitOfWork, definition: dict[str, Any], *, actor: str,
               organisation: str | None) -> EntityDef:
    """Add a new entity (a definition in the shape of GET /catalogue's entities)."""
    entity = entity_from_dict(definition)
    with uow.transaction() as session:
        working = repository.working_catalogue(session)
        check_new_entity(working, entity)
        check_relations(Catalogue([*working.entities.values(), entity]))
        repository.add_entity(session, entity)
        audit.record(session, action="catalogue.add_entity", actor=actor,
                     organisation=organisation, subject=entity.id, details=entity.to_dict())
        _void(session, f"entity {entity.id} was added to the catalogue", actor, organisation)
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
        _void(session, f"field {entity_id}.{new.id} was added to the catalogue", actor,
              organisation)
    return new


def change_field(uow: UnitOfWork, entity_id: str, field_id: str, changes: dict[str, Any], *,
                 actor: str, organisation: str | None) -> FieldDef:
    """Give a field a new display name (its header in files) or description."""
    with uow.transaction() as session:
        entity = repository.entity_definition(session, entity_id)
        if entity is None:
            raise NotFound(f"no entity {entity_id!r} in the catalogue", slug="no-such-entity")
        if entity.field(field_id) is None:
            raise NotFound(f"{entity_id} has no field {field_id!r}", slug="no-such-field")
        changed = changed_field(entity, field_id, changes)
        repository.change_field(session, entity_id, changed)
        audit.record(session, action="catalogue.change_field", actor=actor,
                     organisation=organisation, subject=f"{entity_id}.{field_id}",
                     details={"entity": entity_id, "field": changed.to_dict()})
        _void(session, f"field {entity_id}.{field_id} was changed", actor, organisation)
    return changed


def set_relations(uow: UnitOfWork, entity_id: str, foreign_keys: Any, *, actor: str,
                  organisation: str | None) -> EntityDef:
    """Declare an entity's relations (replacing those it had; [] removes them all). They go
    out with the next version, whose publication checks them."""
    with uow.transaction() as session:
        entity = repository.entity_definition(session, entity_id)
        if entity is None:
            raise NotFound(f"no entity {entity_id!r} in the catalogue", slug="no-such-entity")
        changed = entity_from_dict({**entity.to_dict(), "foreign_keys": foreign_keys})
        working = repository.working_catalogue(session)
        check_relations(Catalogue(changed if e.id == entity_id else e
                                  for e in working.entities.values()))
        repository.set_foreign_keys(session, changed)
        audit.record(session, action="catalogue.set_relations", actor=actor,
                     organisation=organisation, subject=entity_id,
                     details={"foreign_keys": [fk.to_dict() for fk in changed.foreign_keys]})
    return changed


def add_missing(uow: UnitOfWork, definitions: list[dict[str, Any]], *, actor: str,
                organisation: str | None) -> list[str]:
    """Add the entities of ``definitions`` that the working catalogue lacks (all of them to
    an empty one), in their order, and their relations to an entity that declares none;
    return the ids of the entities added or given relations. An entity whose id is there
    already is otherwise left as it is; one whose source another entity uses is refused."""
    entities = [entity_from_dict(d) for d in definitions]
    with uow.transaction() as session:
        empty = repository.catalogue_is_empty(session)
        added = []
        for entity in entities:
            working = repository.working_catalogue(session)
            if entity.id in working:
                continue
            check_new_entity(working, entity)
            repository.add_entity(session, entity)
            added.append(entity.id)
        working = repository.working_catalogue(session)
        for entity in entities:
            current = working.get(entity.id)
            if current is not None and entity.foreign_keys and not current.foreign_keys:
                repository.set_foreign_keys(
                    session, replace(current, foreign_keys=entity.foreign_keys))
                added += [] if entity.id in added else [entity.id]
        check_relations(repository.working_catalogue(session))
        if added and not empty:  # an empty database's seed catalogue is no change to record
            audit.record(session, action="catalogue.add_entity", actor=actor,
                         organisation=organisation, subject=", ".join(added),
                         details={"entities": [e.to_dict() for e in entities
                                               if e.id in added]})
    return added


def read_catalogue_file(path: Path) -> list[dict[str, Any]]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    return doc["entities"] if isinstance(doc, dict) else doc


def _void(session: Session, reason: str, actor: str, organisation: str | None) -> None:
    """A catalogue change goes out with whichever set publishes next: approvals were for
    publications without it."""
    approvals.void_requests(session, approvals.ANY_SET, reason=reason, actor=actor,
                            organisation=organisation)
