"""JSON input: `{"entities": {id: [record, ...]}}` (a JSON snapshot), or a list of records."""

from __future__ import annotations

import json
from typing import Any

from isd_service.domain.catalogue import Catalogue, EntityDef
from isd_service.domain.formats import EntityRows, decode_text
from isd_service.domain.validation import Problem, RawRow


def read(
    data: bytes, catalogue: Catalogue, file: str, entity: EntityDef | None
) -> tuple[list[EntityRows], list[Problem]]:
    """Read records per entity; a record's "line" is its 1-based position in its list."""
    text, problems = decode_text(data, file)
    if text is None:
        return [], problems
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        return [], [Problem(f"invalid JSON: {exc.msg} (column {exc.colno})", file=file,
                            line=exc.lineno)]
    except (ValueError, RecursionError) as exc:  # huge numbers, absurd nesting
        return [], [Problem(f"invalid JSON: {type(exc).__name__}: {str(exc)[:200]}",
                            file=file)]
    if isinstance(doc, dict) and isinstance(doc.get("entities"), dict):
        groups: dict[str, Any] = doc["entities"]
    elif entity is not None and isinstance(doc, list):
        groups = {entity.id: doc}
    elif entity is not None and isinstance(doc, dict) and isinstance(doc.get("records"), list):
        groups = {entity.id: doc["records"]}
    else:
        return [], [Problem(
            'expected {"entities": {entity id: [records]}}, or a list of records '
            "(or {\"records\": [...]}) with an entity given", file=file)]
    out: list[EntityRows] = []
    for eid, items in groups.items():
        edef = catalogue.get(eid)
        if edef is None:
            problems.append(Problem(f"unknown entity {eid!r}", eid, file))
            continue
        if entity is not None and edef.id != entity.id:
            problems.append(Problem(f"this load is for {entity.id}, not {eid}", eid, file))
            continue
        if not isinstance(items, list):
            problems.append(Problem("records must be a list", eid, file))
            continue
        rows = EntityRows(entity=edef, file=file, dates="iso")
        kept: list[RawRow] = []
        rows.rows = kept
        known = set(edef.field_ids)
        for number, item in enumerate(items, start=1):
            if not isinstance(item, dict):
                problems.append(Problem("a record must be an object", eid, file, number))
                continue
            unknown = sorted(set(item) - known)
            for name in unknown:
                problems.append(Problem(f"unknown field {name!r}", eid, file, number, name))
            if not unknown:
                kept.append(RawRow(number, item))
        out.append(rows)
    return out, problems
