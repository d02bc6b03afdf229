"""Relations between entities: which records refer to a record that is not there (pure).

A record satisfies a relation when its foreign key fields are all empty (nothing referred
to) or when the referenced entity holds a record with the same values, in the same version.
Values compare as stored (texts, ISO dates, integers): "1" and "001" differ. This is the
rule Frictionless applies to a data package's foreignKeys, so that a version this service
accepts also passes `frictionless validate`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from isd_service.domain.catalogue import Catalogue, EntityDef, ForeignKey

MAX_LISTED = 200

# Stored data texts of an entity's records in the version being checked.
RowsOf = Callable[[str], Iterable[str]]


def relations_to_check(catalogue: Catalogue,
                       changed: set[str] | None) -> list[tuple[EntityDef, ForeignKey]]:
    """The relations a version must check: all of them, or (``changed`` given) those whose
    either end changed, records or definition; the others held in the version before."""
    return [(e, fk) for e, fk in catalogue.relations()
            if changed is None or e.id in changed or fk.entity in changed]


def broken_relations(
    catalogue: Catalogue,
    rows_of: RowsOf,
    relations: list[tuple[EntityDef, ForeignKey]] | None = None,
    *,
    limit: int = MAX_LISTED,
) -> tuple[list[dict[str, Any]], int]:
    """Check ``relations`` (default: every declared one); return the first ``limit``
    offending records, each {"entity", "key", "relation", "values", "reference"}, and how
    many there are in all.

    Each referenced entity is read once per set of referenced fields, and each referring
    entity once, whatever the number of its relations: memory follows the referenced keys.
    """
    if relations is None:
        relations = catalogue.relations()
    targets: dict[tuple[str, tuple[str, ...]], set[tuple[Any, ...]]] = {}
    for _entity, fk in relations:
        if (fk.entity, fk.references) not in targets:
            targets[(fk.entity, fk.references)] = _values(rows_of(fk.entity), fk.references)
    by_entity: dict[str, list[ForeignKey]] = {}
    for entity, fk in relations:
        by_entity.setdefault(entity.id, []).append(fk)
    found: list[dict[str, Any]] = []
    total = 0
    for entity_id, fks in by_entity.items():
        entity = catalogue.entities[entity_id]
        for data in rows_of(entity_id):
            record = json.loads(data)
            for fk in fks:
                values = tuple(record.get(f) for f in fk.fields)
                if all(v is None for v in values):
                    continue
                if values in targets[(fk.entity, fk.references)]:
                    continue
                total += 1
                if len(found) < limit:
                    found.append({
                        "entity": entity_id,
                        "key": {k: record.get(k) for k in entity.key},
                        "relation": fk.describe(entity_id),
                        "values": dict(zip(fk.fields, values, strict=True)),
                        "reference": fk.entity,
                    })
    return found, total


def _values(rows: Iterable[str], fields: tuple[str, ...]) -> set[tuple[Any, ...]]:
    out = set()
    for data in rows:
        record = json.loads(data)
        values = tuple(record.get(f) for f in fields)
        if not all(v is None for v in values):
            out.add(values)
    return out
