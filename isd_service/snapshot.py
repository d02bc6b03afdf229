"""Full snapshots of a version in every format: JSON, NDJSON, a zip of CSVs, MDD CSV files.

Everything here streams: records are read from the store in key order and written as they
come, so memory does not grow with the size of a version.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

from sqlalchemy.orm import Session

from isd_service.catalogue import Catalogue, EntityDef
from isd_service.formats import csv_records, mdd_csv
from isd_service.models import Version
from isd_service.records import decode, project, projected_json
from isd_service.releases import manifest
from isd_service.store import iter_snapshot

ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)  # fixed, so the same version always zips to the same bytes


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def entities_of(version: Version, entity_id: str | None) -> list[EntityDef]:
    catalogue = Catalogue.from_list(version.catalogue)
    if entity_id is None:
        return list(catalogue.entities.values())
    entity = catalogue.get(entity_id)
    if entity is None:
        raise LookupError(f"entity {entity_id!r} is not in version {version.number}")
    return [entity]


def iter_records(session: Session, entity: EntityDef, version: int) -> Iterator[dict[str, Any]]:
    for _key, data in iter_snapshot(session, entity.id, version):
        yield project(entity, decode(data))


def as_json(session: Session, version: Version, entity_id: str | None) -> Iterator[str]:
    entities = entities_of(version, entity_id)
    yield f'{{"version":{version.number},"sha256":"{version.sha256}","entities":{{'
    for i, entity in enumerate(entities):
        yield ("," if i else "") + f"{dumps(entity.id)}:["
        line = projected_json(entity)
        first = True
        for _key, data in iter_snapshot(session, entity.id, version.number):
            yield ("" if first else ",") + line(data)
            first = False
        yield "]"
    yield "}}\n"


def as_ndjson(session: Session, version: Version, entity_id: str | None) -> Iterator[str]:
    entities = entities_of(version, entity_id)
    yield dumps(manifest(version)) + "\n"
    for entity in entities:
        prefix = f'{{"entity":{dumps(entity.id)},"record":'
        line = projected_json(entity)
        batch = []
        for _key, data in iter_snapshot(session, entity.id, version.number):
            batch.append(prefix + line(data) + "}\n")
            if len(batch) >= 1000:
                yield "".join(batch)
                batch = []
        yield "".join(batch)


def as_csv_zip(session: Session, version: Version, entity_id: str | None) -> bytes:
    """Build a zip with one `<entity id>.csv` per entity (header = field ids, ISO dates)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for entity in entities_of(version, entity_id):
            info = zipfile.ZipInfo(f"{entity.id}.csv", date_time=ZIP_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w") as out:
                for chunk in csv_records.write(
                        entity, iter_records(session, entity, version.number)):
                    out.write(chunk.encode("utf-8"))
    return buffer.getvalue()


def as_mdd_csv(session: Session, version: Version, entity: EntityDef) -> Iterator[str]:
    return mdd_csv.write(entity, iter_records(session, entity, version.number))
