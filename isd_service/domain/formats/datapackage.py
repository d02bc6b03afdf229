"""A version as a Frictionless Data Package: one tabular resource per entity, its MDD CSV
download, described by a Table Schema with the types and formats as served (pure).

Resource paths are relative to the package's own URL (/versions/{n}/datapackage.json), so
the file names no host and a CDN may keep it for ever; `frictionless validate <url>` reads
each CSV from beside it and checks its bytes, hash, rows, primary key and foreign keys.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from isd_service.domain.catalogue import Catalogue, EntityDef, FieldDef

# "24:00" ends a day in Clock_Interval: a Table Schema time would refuse it.
TIME_PATTERN = "(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)"
MDD_DATE_FORMAT = "%d/%m/%Y"


def table_field(fdef: FieldDef) -> dict[str, Any]:
    """A Table Schema field for one data item, as the MDD CSV file writes its values."""
    out: dict[str, Any] = {"name": fdef.name, "title": fdef.id}
    constraints: dict[str, Any] = {}
    if fdef.required:
        constraints["required"] = True
    if fdef.type == "integer":
        out["type"] = "integer"
    elif fdef.type == "date":
        out.update(type="date", format=MDD_DATE_FORMAT)
    elif fdef.type == "time":
        out["type"] = "string"
        constraints["pattern"] = TIME_PATTERN
    else:
        # Ids stay strings: "1" and "001" are different values.
        out["type"] = "string"
        if fdef.max_length is not None:
            constraints["maxLength"] = fdef.max_length
        if fdef.values is not None:
            constraints["enum"] = list(fdef.values)
    if fdef.description:
        out["description"] = fdef.description
    if constraints:
        out["constraints"] = constraints
    return out


def table_schema(entity: EntityDef, catalogue: Catalogue) -> dict[str, Any]:
    name = {f.id: f.name for f in entity.fields}
    schema: dict[str, Any] = {
        "fields": [table_field(f) for f in entity.fields],
        "primaryKey": [name[k] for k in entity.key],
        "missingValues": [""],
    }
    foreign_keys = []
    for fk in entity.foreign_keys:
        target = catalogue.get(fk.entity)
        if target is None:
            continue
        target_name = {f.id: f.name for f in target.fields}
        foreign_keys.append({
            "fields": [name[f] for f in fk.fields],
            "reference": {"resource": fk.entity,
                          "fields": [target_name[f] for f in fk.references]}})
    if foreign_keys:
        schema["foreignKeys"] = foreign_keys
    return schema


def datapackage(
    number: int,
    published_at: datetime,
    catalogue: Catalogue,
    files: dict[str, tuple[str, int, str]],
    *,
    licence: dict[str, Any],
) -> dict[str, Any]:
    """The package of version ``number``; ``files``: entity id -> (path relative to the
    package's URL, size in bytes, SHA-256) of its MDD CSV download."""
    resources = []
    for entity in catalogue.entities.values():
        path, size, sha256 = files[entity.id]
        resource: dict[str, Any] = {
            "name": entity.id, "title": entity.name, "path": path, "type": "table",
            "format": "csv", "mediatype": "text/csv", "encoding": "utf-8",
            "bytes": size, "hash": f"sha256:{sha256}",
            "dialect": {"delimiter": ",", "quoteChar": '"', "header": True},
            "schema": table_schema(entity, catalogue),
        }
        if entity.description:
            resource["description"] = entity.description
        resource["sources"] = [{"title": entity.source}]
        resources.append(resource)
    return {
        "name": f"isd-{number}",
        "title": f"Industry Standing Data, version {number}",
        "version": str(number),
        "created": published_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "licenses": [licence],
        "resources": resources,
    }
