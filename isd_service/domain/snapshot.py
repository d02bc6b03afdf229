"""Full snapshots of a version in every format: JSON, NDJSON, a zip of CSVs, MDD CSV files.

The writers take the version's records as a function ``rows(entity id)`` that yields the
stored data of the entity's records in key order, and write them as they come, so memory
does not grow with the size of a version. (The store supplies ``rows``.)
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO

from isd_service.domain.catalogue import Catalogue, EntityDef
from isd_service.domain.formats import csv_records, mdd_csv
from isd_service.domain.manifest import PublishedVersion, manifest
from isd_service.domain.records import decode, project, projected_json

ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)  # fixed, so the same version always zips to the same bytes

Rows = Callable[[str], Iterable[str]]


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def entities_of(version: PublishedVersion, entity_id: str | None) -> list[EntityDef]:
    """The entities of a version (or the one asked for); LookupError if it has none such."""
    catalogue = Catalogue.from_list(version.catalogue)
    if entity_id is None:
        return list(catalogue.entities.values())
    entity = catalogue.get(entity_id)
    if entity is None:
        raise LookupError(f"entity {entity_id!r} is not in version {version.number}")
    return [entity]


def records(entity: EntityDef, data: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Stored records as served: every field of the entity, in catalogue order."""
    for item in data:
        yield project(entity, decode(item))


def as_json(version: PublishedVersion, entity_id: str | None, rows: Rows) -> Iterator[str]:
    entities = entities_of(version, entity_id)
    yield f'{{"version":{version.number},"sha256":"{version.sha256}","entities":{{'
    for i, entity in enumerate(entities):
        yield ("," if i else "") + f"{dumps(entity.id)}:["
        line = projected_json(entity)
        first = True
        for data in rows(entity.id):
            yield ("" if first else ",") + line(data)
            first = False
        yield "]"
    yield "}}\n"


def as_ndjson(version: PublishedVersion, entity_id: str | None, rows: Rows) -> Iterator[str]:
    entities = entities_of(version, entity_id)
    yield dumps(manifest(version)) + "\n"
    for entity in entities:
        prefix = f'{{"entity":{dumps(entity.id)},"record":'
        line = projected_json(entity)
        batch = []
        for data in rows(entity.id):
            batch.append(prefix + line(data) + "}\n")
            if len(batch) >= 1000:
                yield "".join(batch)
                batch = []
        yield "".join(batch)


def write_csv_zip(version: PublishedVersion, entity_id: str | None, rows: Rows,
                  out: BinaryIO) -> None:
    """Write a zip with one `<entity id>.csv` per entity (header = field ids, ISO dates)."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for entity in entities_of(version, entity_id):
            info = zipfile.ZipInfo(f"{entity.id}.csv", date_time=ZIP_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w") as member, io.BufferedWriter(
                    member, 256 * 1024) as buffered:
                for chunk in csv_records.write(entity, records(entity, rows(entity.id))):
                    buffered.write(chunk.encode("utf-8"))


def as_mdd_csv(entity: EntityDef, rows: Rows) -> Iterator[str]:
    return mdd_csv.write(entity, records(entity, rows(entity.id)))
