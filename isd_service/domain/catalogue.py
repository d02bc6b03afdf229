"""The catalogue of data items: entities, their fields and keys (pure, no Flask or ORM).

A catalogue is what every record is validated against and what every version is published
with. Definitions travel as plain dicts (JSON) in the shape of ``GET /api/v1/catalogue``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from isd_service.domain.errors import Invalid

FIELD_TYPES = ("string", "integer", "date", "time", "enum")
ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
SOURCE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{0,99}$")
# The source of an ISD-only entity is its ISD data item id (M16, M18, ...); any other source
# is the stem of the Elexon MDD file the entity comes from.
ISD_ITEM = re.compile(r"^M[0-9]+$")
MAX_STRING_LENGTH = 10_000


class CatalogueError(Invalid):
    """A catalogue definition that cannot be accepted; ``problems`` says where and why."""

    slug = "invalid-definition"

    def __init__(self, problems: list[dict[str, Any]]):
        self.problems = problems
        super().__init__("; ".join(f"{p['field']}: {p['message']}" for p in problems))

    @property
    def detail(self) -> str:
        return "the catalogue change was refused"

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.problems


@dataclass(frozen=True)
class FieldDef:
    """One data item of an entity."""

    id: str
    name: str
    type: str
    required: bool = False
    max_length: int | None = None
    values: tuple[str, ...] | None = None
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name, "type": self.type,
                               "required": self.required}
        if self.max_length is not None:
            out["max_length"] = self.max_length
        if self.values is not None:
            out["values"] = list(self.values)
        if self.description:
            out["description"] = self.description
        return out


@dataclass(frozen=True)
class ForeignKey:
    """A relation: every record's ``fields`` (when any is set) name a record of ``entity``
    whose ``references`` hold the same values, in the same version."""

    fields: tuple[str, ...]
    entity: str
    references: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"fields": list(self.fields),
                "reference": {"entity": self.entity, "fields": list(self.references)}}

    def describe(self, entity_id: str) -> str:
        return (f"{entity_id}({', '.join(self.fields)}) -> "
                f"{self.entity}({', '.join(self.references)})")


@dataclass(frozen=True)
class EntityDef:
    """An entity (an MDD file or an ISD entity): its fields in order and its key."""

    id: str
    name: str
    source: str
    key: tuple[str, ...]
    fields: tuple[FieldDef, ...]
    effective_from: str | None = None
    effective_to: str | None = None
    description: str | None = None
    foreign_keys: tuple[ForeignKey, ...] = ()
    _by_id: dict[str, FieldDef] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_id.update({f.id: f for f in self.fields})

    def field(self, field_id: str) -> FieldDef | None:
        return self._by_id.get(field_id)

    @property
    def field_ids(self) -> list[str]:
        return [f.id for f in self.fields]

    @property
    def mdd_source(self) -> str | None:
        """The stem of the MDD file this entity comes from; None for an ISD-only entity."""
        return None if ISD_ITEM.match(self.source) else self.source

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "source": self.source,
            "key": list(self.key),
            "effective_from": self.effective_from,
            "effective_to": self.effective_to,
            "fields": [f.to_dict() for f in self.fields],
        }
        if self.description:
            out["description"] = self.description
        # Only when declared: a catalogue without relations keeps the hash it always had.
        if self.foreign_keys:
            out["foreign_keys"] = [fk.to_dict() for fk in self.foreign_keys]
        return out


class Catalogue:
    """Entities in their published order, looked up by id or by source name."""

    def __init__(self, entities: Iterable[EntityDef]):
        self.entities: dict[str, EntityDef] = {e.id: e for e in entities}
        self._by_source = {e.source.lower(): e for e in self.entities.values()}

    def relations(self) -> list[tuple[EntityDef, ForeignKey]]:
        """Every declared relation, as (the referring entity, its foreign key)."""
        return [(e, fk) for e in self.entities.values() for fk in e.foreign_keys]

    def referred_by(self, entity_id: str) -> list[tuple[EntityDef, ForeignKey]]:
        return [(e, fk) for e, fk in self.relations() if fk.entity == entity_id]

    def __contains__(self, entity_id: object) -> bool:
        return entity_id in self.entities

    def get(self, entity_id: str) -> EntityDef | None:
        return self.entities.get(entity_id)

    def by_source(self, source: str) -> EntityDef | None:
        return self._by_source.get(source.lower())

    def to_list(self) -> list[dict[str, Any]]:
        return [e.to_dict() for e in self.entities.values()]

    def sha256(self) -> str:
        return catalogue_sha256(self.to_list())

    @classmethod
    def from_list(cls, items: Iterable[Mapping[str, Any]]) -> Catalogue:
        return cls(entity_from_dict(item) for item in items)


class PublishedCatalogues:
    """Parsed catalogues of published versions by their SHA-256, the last ``size`` used.

    A published version's catalogue never changes and its hash names its content, so a
    process parses each one once instead of on every request that reads a version. The
    catalogues handed out are shared: read them, never change them.
    """

    def __init__(self, size: int = 16):
        self._size = size
        self._parsed: OrderedDict[str, Catalogue] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, sha256: str, definitions: Callable[[], Iterable[Mapping[str, Any]]]
            ) -> Catalogue:
        """The catalogue whose hash is ``sha256``; ``definitions`` gives it when not held."""
        with self._lock:
            catalogue = self._parsed.get(sha256)
            if catalogue is not None:
                self._parsed.move_to_end(sha256)
                return catalogue
        catalogue = Catalogue.from_list(definitions())
        with self._lock:
            self._parsed[sha256] = catalogue
            while len(self._parsed) > self._size:
                self._parsed.popitem(last=False)
        return catalogue


def catalogue_sha256(definitions: list[dict[str, Any]]) -> str:
    """Hash the canonical JSON of a catalogue (keys sorted, no whitespace)."""
    text = json.dumps(definitions, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def field_from_dict(data: Mapping[str, Any], where: str = "field") -> FieldDef:
    """Build and check one field definition."""
    problems: list[dict[str, Any]] = []

    def bad(name: str, message: str) -> None:
        problems.append({"field": f"{where}.{name}", "message": message})

    if not isinstance(data, Mapping):
        raise CatalogueError([{"field": where, "message": "must be an object"}])
    allowed = {"id", "name", "type", "required", "max_length", "values", "description"}
    for extra in sorted(set(data) - allowed):
        bad(extra, "unknown property")
    fid = data.get("id")
    if not isinstance(fid, str) or not ID_PATTERN.match(fid):
        bad("id", "must be snake_case: a lower-case letter, then letters, digits or _ (max 63)")
    name = data.get("name", fid)
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        bad("name", "must be a non-empty string of at most 200 characters")
    ftype = data.get("type")
    if ftype not in FIELD_TYPES:
        bad("type", f"must be one of {', '.join(FIELD_TYPES)}")
    required = data.get("required", False)
    if not isinstance(required, bool):
        bad("required", "must be true or false")
    max_length = data.get("max_length")
    if ftype == "string":
        if (not isinstance(max_length, int) or isinstance(max_length, bool)
                or not 1 <= max_length <= MAX_STRING_LENGTH):
            bad("max_length", f"a string field needs max_length between 1 and {MAX_STRING_LENGTH}")
    elif max_length is not None:
        bad("max_length", "only string fields have a max_length")
    values = data.get("values")
    if ftype == "enum":
        if (not isinstance(values, list) or not values
                or not all(isinstance(v, str) and v and len(v) <= 100 for v in values)
                or len(set(values)) != len(values)):
            bad("values", "an enum field needs a list of distinct non-empty strings")
    elif values is not None:
        bad("values", "only enum fields have values")
    description = data.get("description")
    if description is not None and not isinstance(description, str):
        bad("description", "must be a string")
    if problems:
        raise CatalogueError(problems)
    return FieldDef(
        id=fid, name=name, type=ftype, required=required,  # type: ignore[arg-type]
        max_length=max_length if ftype == "string" else None,
        values=tuple(values) if ftype == "enum" and values else None,
        description=description or None,
    )


def entity_from_dict(data: Mapping[str, Any]) -> EntityDef:
    """Build one entity definition, enforcing and reporting every rule."""
    if not isinstance(data, Mapping):
        raise CatalogueError([{"field": "entity", "message": "must be an object"}])
    problems: list[dict[str, Any]] = []

    def bad(name: str, message: str) -> None:
        problems.append({"field": name, "message": message})

    allowed = {"id", "name", "source", "key", "fields", "effective_from", "effective_to",
               "description", "foreign_keys"}
    for extra in sorted(set(data) - allowed):
        bad(extra, "unknown property")
    eid = data.get("id")
    if not isinstance(eid, str) or not ID_PATTERN.match(eid):
        bad("id", "must be snake_case: a lower-case letter, then letters, digits or _ (max 63)")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        bad("name", "must be a non-empty string of at most 200 characters")
    source = data.get("source")
    if not isinstance(source, str) or not SOURCE_PATTERN.match(source):
        bad("source", "must be letters, digits and _ (the MDD file stem or the ISD entity id)")
    raw_fields = data.get("fields")
    fields: list[FieldDef] = []
    if not isinstance(raw_fields, list) or not raw_fields:
        bad("fields", "must be a non-empty list")
    else:
        for i, raw in enumerate(raw_fields):
            try:
                fields.append(field_from_dict(raw, where=f"fields[{i}]"))
            except CatalogueError as exc:
                problems.extend(exc.problems)
    by_id = {f.id: f for f in fields}
    if len(by_id) != len(fields):
        bad("fields", "field ids must be unique")
    if len({f.name.lower() for f in fields}) != len(fields):
        bad("fields", "field names (file headers) must be unique")
    key = data.get("key")
    if not isinstance(key, list) or not key or not all(isinstance(k, str) for k in key):
        bad("key", "must be a non-empty list of field ids")
        key = []
    elif len(set(key)) != len(key):
        bad("key", "must not repeat a field")
    for k in key:
        if fields and k not in by_id:
            bad("key", f"{k!r} is not a field of this entity")
        elif fields and not by_id[k].required:
            bad("key", f"key field {k!r} must be required")
    for prop in ("effective_from", "effective_to"):
        ref = data.get(prop)
        if ref is None:
            continue
        if not isinstance(ref, str) or ref not in by_id:
            bad(prop, "must name a field of this entity")
        elif by_id[ref].type != "date":
            bad(prop, "must name a date field")
    if data.get("effective_to") is not None and data.get("effective_from") is None:
        bad("effective_to", "needs effective_from too")
    description = data.get("description")
    if description is not None and not isinstance(description, str):
        bad("description", "must be a string")
    foreign_keys = _foreign_keys(data.get("foreign_keys", []), by_id, problems)
    if problems:
        raise CatalogueError(problems)
    return EntityDef(
        id=eid, name=name, source=source, key=tuple(key), fields=tuple(fields),  # type: ignore[arg-type]
        effective_from=data.get("effective_from"), effective_to=data.get("effective_to"),
        description=description or None, foreign_keys=foreign_keys,
    )


def _foreign_keys(raw: Any, by_id: Mapping[str, FieldDef],
                  problems: list[dict[str, Any]]) -> tuple[ForeignKey, ...]:
    """Read an entity's declared relations; whether the referenced entity and fields exist
    is checked against the whole catalogue (check_relations)."""
    if not isinstance(raw, list):
        problems.append({"field": "foreign_keys", "message": "must be a list"})
        return ()
    out: list[ForeignKey] = []
    for i, item in enumerate(raw):
        where = f"foreign_keys[{i}]"
        ref = item.get("reference") if isinstance(item, Mapping) else None
        if (not isinstance(item, Mapping) or set(item) != {"fields", "reference"}
                or not isinstance(ref, Mapping) or set(ref) != {"entity", "fields"}):
            problems.append({"field": where, "message": (
                'must be {"fields": [field ids], "reference": {"entity": id, '
                '"fields": [field ids]}}')})
            continue
        fields, entity, references = item["fields"], ref["entity"], ref["fields"]
        if (not isinstance(fields, list) or not fields
                or not all(isinstance(f, str) for f in fields) or len(set(fields)) != len(fields)):
            problems.append({"field": f"{where}.fields",
                             "message": "must be a non-empty list of distinct field ids"})
            continue
        unknown = [f for f in fields if f not in by_id]
        if by_id and unknown:
            problems.append({"field": f"{where}.fields",
                             "message": f"{', '.join(map(repr, unknown))}: not a field of "
                                        "this entity"})
        if not isinstance(entity, str) or not ID_PATTERN.match(entity):
            problems.append({"field": f"{where}.reference.entity",
                             "message": "must be an entity id"})
            continue
        if (not isinstance(references, list) or len(references) != len(fields)
                or not all(isinstance(f, str) for f in references)):
            problems.append({"field": f"{where}.reference.fields", "message": (
                "must be a list of field ids of the referenced entity, one per field")})
            continue
        fk = ForeignKey(tuple(fields), entity, tuple(references))
        if fk in out:
            problems.append({"field": where, "message": "declared twice"})
        out.append(fk)
    return tuple(out)


def check_relations(catalogue: Catalogue) -> None:
    """Refuse relations to an entity or field the catalogue lacks, or between fields of
    different types (a key compares values as stored)."""
    problems = []
    for entity, fk in catalogue.relations():
        where = f"{entity.id}.foreign_keys {fk.describe(entity.id)}"
        target = catalogue.get(fk.entity)
        if target is None:
            problems.append({"field": where, "message": f"no entity {fk.entity!r}"})
            continue
        for mine, theirs in zip(fk.fields, fk.references, strict=True):
            other = target.field(theirs)
            own = entity.field(mine)
            if other is None:
                problems.append({"field": where,
                                 "message": f"{fk.entity} has no field {theirs!r}"})
            elif own is not None and _comparable(own.type) != _comparable(other.type):
                problems.append({"field": where, "message": (
                    f"{entity.id}.{mine} ({own.type}) cannot refer to "
                    f"{fk.entity}.{theirs} ({other.type})")})
    if problems:
        raise CatalogueError(problems)


def _comparable(field_type: str) -> str:
    # An enumeration holds strings: it may refer to a string field and be referred to.
    return "string" if field_type == "enum" else field_type


def check_new_entity(catalogue: Catalogue, entity: EntityDef) -> None:
    """Refuse an entity whose id or source name is already taken."""
    problems = []
    if entity.id in catalogue:
        problems.append({"field": "id", "message": f"entity {entity.id!r} already exists"})
    if catalogue.by_source(entity.source) is not None:
        problems.append({"field": "source",
                         "message": f"source {entity.source!r} is already used"})
    if problems:
        raise CatalogueError(problems)


def check_new_field(entity: EntityDef, new: FieldDef, *, has_records: bool) -> None:
    """Refuse a new data item that clashes, or is required where records already exist."""
    problems = []
    if entity.field(new.id) is not None:
        problems.append({"field": "id", "message": f"{entity.id} already has a field {new.id!r}"})
    if any(f.name.lower() == new.name.lower() for f in entity.fields):
        problems.append({"field": "name",
                         "message": f"{entity.id} already has a field named {new.name!r}"})
    if new.required and has_records:
        problems.append({"field": "required", "message": (
            "a new field on an entity that already has records must be optional: "
            "the existing records have no value for it")})
    if problems:
        raise CatalogueError(problems)


def changed_field(entity: EntityDef, field_id: str, changes: Mapping[str, Any]) -> FieldDef:
    """A field with a new display name (its header in files) or description.

    What a field holds (its type, length, values, whether required) is not changed here: the
    records already stored would no longer fit. A header that differs from a real file is
    what gets corrected this way.
    """
    current = entity.field(field_id)
    if current is None:
        raise CatalogueError([{"field": "field",
                               "message": f"{entity.id} has no field {field_id!r}"}])
    problems = []
    if not isinstance(changes, Mapping) or not changes:
        raise CatalogueError([{"field": "field",
                               "message": "give a new name or description"}])
    for extra in sorted(set(changes) - {"name", "description"}):
        problems.append({"field": extra, "message": "only a field's name and description "
                                                    "can change"})
    name = changes.get("name", current.name)
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        problems.append({"field": "name",
                         "message": "must be a non-empty string of at most 200 characters"})
    elif any(f.id != field_id and f.name.lower() == name.lower() for f in entity.fields):
        problems.append({"field": "name",
                         "message": f"{entity.id} already has a field named {name!r}"})
    description = changes.get("description", current.description)
    if description is not None and not isinstance(description, str):
        problems.append({"field": "description", "message": "must be a string"})
    if problems:
        raise CatalogueError(problems)
    return FieldDef(id=current.id, name=name, type=current.type, required=current.required,
                    max_length=current.max_length, values=current.values,
                    description=description or None)


def catalogue_changes(old: Catalogue, new: Catalogue) -> list[dict[str, Any]]:
    """List entity definitions added, changed or removed between two catalogues."""
    changes: list[dict[str, Any]] = []
    for eid, entity in new.entities.items():
        before = old.get(eid)
        if before is None:
            changes.append({"entity": eid, "op": "insert", "definition": entity.to_dict()})
        elif before.to_dict() != entity.to_dict():
            changes.append({"entity": eid, "op": "update", "definition": entity.to_dict()})
    for eid in old.entities:
        if eid not in new:
            changes.append({"entity": eid, "op": "delete", "definition": None})
    return changes
