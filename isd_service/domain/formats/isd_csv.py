"""The ISD data store's CSV layout, one entity per file (pure).

Line 1: entity id, entity name, version, changed; line 2: the column headers; then the records.
The headers and values are written as in the MDD files (MDD column names, dd/mm/yyyy dates,
every field quoted), so that software reading MDD files reads these too.

``changed`` is ``Y`` when the entity's content (its sha256 in the manifest) differs from the
version before (or there is no version before, or the entity is new in this version) and ``N``
otherwise: a participant holding the previous version can skip an unchanged file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from isd_service.domain.catalogue import EntityDef
from isd_service.domain.formats import mdd_csv


def changed(entity_id: str, entities: dict[str, Any],
            previous_entities: dict[str, Any] | None, *,
            differs: Callable[[], bool] | None = None) -> bool:
    """Whether the entity differs from the version before (see the module's docstring).

    ``differs``: how to tell when the two versions' hashes follow different rules (the first
    version hashed by rule 2 after versions hashed by rule 1), so cannot be compared.
    """
    if previous_entities is None or entity_id not in previous_entities:
        return True
    if differs is not None:
        return differs()
    return bool(previous_entities[entity_id]["sha256"] != entities[entity_id]["sha256"])


def write(entity: EntityDef, version: int, is_changed: bool,
          records: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Yield the file: the ISD line, then the entity as an MDD CSV file."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL).writerow(
        [entity.id, entity.name, str(version), "Y" if is_changed else "N"])
    yield buffer.getvalue()
    yield from mdd_csv.write(entity, records)
